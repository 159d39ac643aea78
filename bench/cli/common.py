"""What every `bench` command shares: the consoles, one-line errors, progress lines, the registry or server client, JSON output."""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from typing import Any, Iterator

import typer
from rich.console import Console

from bench.errors import BenchError, InvalidInput


# Piped output gets wide lines rather than rich's default 80 columns, so tables stay one row per item.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)


err = Console(stderr=True, soft_wrap=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Report a user's mistake as one line on stderr with exit code 1; nothing else changes."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        # Simulators repeat the same warning on every reset; each distinct one is worth one line.
        for message in dict.fromkeys(str(warning.message) for warning in caught):
            err.print(f"warning: {message}", markup=False, highlight=False)
    except BenchError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted; nothing was published", markup=False)
        raise typer.Exit(130) from None


@contextlib.contextmanager
def stages(title: str) -> Iterator[Any]:
    """A live line on stderr (spinner, stage, elapsed time); yields a callback that names the stage."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task(title)
        yield lambda stage: progress.update(task, description=f"{title}: {stage}")


def open_registry():
    from bench.datasets import Registry

    return Registry.open()


SERVER_HELP = "a bench server URL (default: $BENCH_SERVER); without one, the local registry is used"


def client_for(server: str | None):
    """A client for the server named by --server or BENCH_SERVER, or None to use the local registry."""
    from bench.platform.settings import Settings

    settings = Settings.load()
    url = server or settings.server
    if not url:
        return None
    from bench.web.client import Client

    return Client(url, settings.token)


def json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{option} is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{option} must be a JSON object")
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def require_client(server: str | None, command: str):
    client = client_for(server)
    if client is None:
        raise InvalidInput(f"{command} needs a server: pass --server URL or set BENCH_SERVER")
    return client
