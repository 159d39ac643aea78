"""The `bench` command: the CLI mirrors the Python API (``bench datasets ...`` is ``Registry``)."""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.errors import BenchError, InvalidInput

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Versioned robot-learning datasets and evaluation.")
datasets_app = typer.Typer(no_args_is_help=True, help="Import, list, inspect, verify, export and yank dataset versions.")
app.add_typer(datasets_app, name="datasets")
recipes_app = typer.Typer(no_args_is_help=True, help="Recipes that regenerate benchmark datasets deterministically.")
app.add_typer(recipes_app, name="recipes")
envs_app = typer.Typer(no_args_is_help=True, help="Environments (tasks) and their reference scores.")
app.add_typer(envs_app, name="envs")

# Piped output gets wide lines rather than rich's default 80 columns, so tables stay one row per item.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Report a user's mistake as one line on stderr with exit code 1; nothing else changes."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for warning in caught:
            err.print(f"warning: {warning.message}", markup=False, highlight=False)
    except BenchError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted; nothing was published", markup=False)
        raise typer.Exit(130) from None


@contextlib.contextmanager
def _stages(title: str) -> Iterator[Any]:
    """A live line on stderr (spinner, stage, elapsed time); yields a callback that names the stage."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task(title)
        yield lambda stage: progress.update(task, description=f"{title}: {stage}")


def _registry():
    from bench.datasets import Registry

    return Registry.open()


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{option} is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{option} must be a JSON object")
    return value


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def _size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "-"
    value = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(num_bytes)


@app.command()
def init() -> None:
    """Create BENCH_HOME, migrate its database to the newest schema, and create the storage root."""
    from bench.platform import db

    with _user_errors():
        registry = _registry()
        revision = db.current_revision(registry.engine)
        out.print(f"bench home   {registry.settings.home}", highlight=False)
        out.print(f"database     {registry.engine.url.render_as_string(hide_password=True)} (schema {revision})", highlight=False)
        out.print(f"storage      {registry.settings.storage_url}", highlight=False)


@datasets_app.command("import")
def import_(
    path: Path = typer.Argument(..., help="D4RL .hdf5, OGBench .npz, Minari dataset directory or bench version directory"),
    id: str = typer.Option(..., "--id", help="namespace/name (next version) or namespace/name-vN"),
    format: Optional[str] = typer.Option(None, "--format", help="bench, minari, d4rl or ogbench (default: detect)"),
    allow_nonfinite: bool = typer.Option(False, "--allow-nonfinite", help="accept NaN/inf values"),
    description: Optional[str] = typer.Option(None, "--description"),
    license: Optional[str] = typer.Option(None, "--license"),
    env: Optional[str] = typer.Option(None, "--env", help="gymnasium id of the environment that evaluates this data"),
    env_kwargs: Optional[str] = typer.Option(None, "--env-kwargs", help='JSON keyword arguments for it, e.g. \'{"task": "push"}\''),
    as_json: bool = typer.Option(False, "--json", help="print the new version as JSON"),
) -> None:
    """Import a dataset file or directory as a new immutable version."""
    with _user_errors():
        kwargs = _json_object(env_kwargs, "--env-kwargs") if env_kwargs else None
        registry = _registry()
        with _stages(f"importing {path.name} as {id}") as stage:
            info = registry.import_path(path, id, format=format, allow_nonfinite=allow_nonfinite,
                                        description=description, license=license, env_id=env, env_kwargs=kwargs,
                                        progress=stage)
        if as_json:
            _print_json(info.to_json())
        else:
            out.print(f"published {info.id}: {info.episodes} episodes, {info.steps} steps, {_size(info.size_bytes)}",
                      highlight=False)


@datasets_app.command("list")
def list_(
    namespace: Optional[str] = typer.Option(None, "--namespace", help="only this namespace and those below it"),
    include_yanked: bool = typer.Option(False, "--include-yanked", help="also list yanked versions"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List published versions."""
    with _user_errors():
        infos = _registry().list(namespace=namespace, include_yanked=include_yanked)
        if as_json:
            _print_json([info.to_json() for info in infos])
            return
        table = Table("id", "episodes", "steps", "size", "source", "published", box=None)
        table.columns[0].no_wrap = True
        for info in infos:
            label = info.id + (" (yanked)" if info.yanked else "")
            table.add_row(label, str(info.episodes), str(info.steps), _size(info.size_bytes),
                          info.source_format or "-", (info.published_at or "")[:19])
        out.print(table if infos else "no datasets")


@datasets_app.command()
def show(
    id: str = typer.Argument(..., help="namespace/name-vN, or namespace/name for the latest"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one version: counts, spaces, environment, hashes."""
    with _user_errors():
        info = _registry().show(id)
        if as_json:
            _print_json(info.to_json())
            return
        rows = [
            ("id", info.id), ("state", info.state + (f" ({info.yank_reason})" if info.yanked else "")),
            ("episodes", info.episodes), ("steps", info.steps), ("size", _size(info.size_bytes)),
            ("observation space", json.dumps(info.observation_space)), ("action space", json.dumps(info.action_space)),
            ("environment", json.dumps(info.env) if info.env else "none"), ("source format", info.source_format),
            ("content sha256", info.content_sha256), ("manifest sha256", info.manifest_sha256),
            ("created", info.created_at), ("published", info.published_at),
            ("license", info.license or "-"), ("description", info.description or "-"),
        ]
        table = Table(show_header=False, box=None)
        table.add_column(no_wrap=True)
        table.add_column(overflow="fold")  # hashes and spaces are shown whole, never cut with an ellipsis
        for key, value in rows:
            table.add_row(key, str(value))
        out.print(table)


@datasets_app.command()
def verify(id: str = typer.Argument(...)) -> None:
    """Re-hash every file of a version against its manifest; exit 1 naming each file that differs."""
    with _user_errors():
        registry = _registry()
        info = registry.show(id)
        with err.status(f"verifying {info.id} ..."):
            problems = registry.verify(info.id)
        if problems:
            for problem in problems:
                err.print(f"{info.id}: {problem}", markup=False, highlight=False)
            raise typer.Exit(1)
        out.print(f"{info.id}: all files match the manifest", highlight=False)


@datasets_app.command()
def export(
    id: str = typer.Argument(...),
    format: str = typer.Option(..., "--format", help="minari or d4rl"),
    out_path: Path = typer.Option(..., "--out", help="a new directory (minari, named name-vN) or .hdf5 file (d4rl)"),
) -> None:
    """Export a version to another format."""
    with _user_errors():
        registry = _registry()
        with err.status(f"exporting {id} to {out_path} ..."):
            notes = registry.export(id, format, out_path)
        for note in notes:
            err.print(f"note: {note}", markup=False, highlight=False)
        out.print(f"wrote {out_path}", highlight=False)


@datasets_app.command()
def yank(id: str = typer.Argument(...), reason: str = typer.Option(..., "--reason")) -> None:
    """Hide a version from listings; it stays loadable by its exact id, with a warning."""
    with _user_errors():
        info = _registry().yank(id, reason)
        out.print(f"yanked {info.id}: {info.yank_reason}", highlight=False)


@datasets_app.command()
def gc(as_json: bool = typer.Option(False, "--json")) -> None:
    """Remove what crashed imports left behind (staging rows, staging directories, orphan files)."""
    with _user_errors():
        report = _registry().gc()
        if as_json:
            _print_json(report.to_json())
            return
        removed = report.staging_versions + report.staging_dirs + report.orphan_dirs
        for item in removed:
            out.print(f"removed {item}", highlight=False)
        out.print(f"gc: removed {len(removed)} leftover(s)", highlight=False)


@datasets_app.command()
def build(
    recipe: str = typer.Argument(..., help="a recipe name from `bench recipes list`, e.g. metaworld/drawer-open/expert"),
    episodes: Optional[int] = typer.Option(None, "--episodes", min=1, help="default: the recipe's"),
    seed: int = typer.Option(0, "--seed"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="collector processes (default: all cores)"),
    reference_episodes: int = typer.Option(20, "--reference-episodes", min=1,
                                           help="episodes per policy when measuring reference scores the first time"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Generate a recipe's dataset (same recipe + seed + size = same content hash) and publish it."""
    from bench.datasets.recipes.build import build as build_recipe

    with _user_errors():
        registry = _registry()
        with _stages(f"building {recipe}") as stage:
            info = build_recipe(registry, recipe, episodes=episodes, seed=seed, workers=workers,
                                reference_episodes=reference_episodes, progress=stage)
        if as_json:
            _print_json(info.to_json())
        else:
            out.print(f"published {info.id}: {info.episodes} episodes, {info.steps} steps, {_size(info.size_bytes)}, "
                      f"content {info.content_sha256[:12]}", highlight=False)


@datasets_app.command()
def card(
    id: str = typer.Argument(...),
    out_path: Optional[Path] = typer.Option(None, "--out", help="write a directory with card.md and its preview images"),
) -> None:
    """A markdown card: statistics, success rate, return histogram, reference scores, preview frames."""
    from bench.datasets.cards import dataset_card

    with _user_errors():
        registry = _registry()
        text = dataset_card(registry, id)
        if out_path is None:
            sys.stdout.write(text)
            return
        info = registry.show(id)
        out_path.mkdir(parents=True, exist_ok=True)
        (out_path / "card.md").write_text(text)
        for name in registry.manifest(info.id)["files"]:
            if name.startswith("media/"):
                (out_path / "media").mkdir(exist_ok=True)
                (out_path / name).write_bytes(registry.storage.read_bytes(f"{info.storage_path}/{name}"))
        out.print(f"wrote {out_path / 'card.md'}", highlight=False)


@recipes_app.command("list")
def recipes_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every recipe: its environment, collecting policy and default size."""
    from bench.datasets.recipes import all_recipes

    with _user_errors():
        recipes = all_recipes()
        if as_json:
            _print_json([recipe.to_json() for recipe in recipes])
            return
        table = Table("recipe", "environment", "episodes", "policy", box=None)
        table.columns[0].no_wrap = True
        table.columns[1].no_wrap = True
        table.columns[3].overflow = "fold"
        for recipe in recipes:
            table.add_row(recipe.name, recipe.env.name, str(recipe.default_episodes), recipe.policy)
        out.print(table)


def _environments(registry):
    """The catalogue, with every recipe's environment registered (published references included)."""
    from bench.datasets.recipes import all_recipes
    from bench.datasets.recipes.build import register_environment

    seen = set()
    for recipe in all_recipes():
        if recipe.env.name not in seen:
            register_environment(registry, recipe)
            seen.add(recipe.env.name)
    return registry.environments


def _reference_text(info) -> str:
    pair = info.reference_pair()
    return "-" if pair is None else f"{pair[0]:.1f} / {pair[1]:.1f} ({pair[2]})"


@envs_app.command("list")
def envs_list(family: Optional[str] = typer.Option(None, "--family"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Environments with their reference scores (random / expert return used for normalization)."""
    with _user_errors():
        infos = _environments(_registry()).list(family=family)
        if as_json:
            _print_json([info.to_json() for info in infos])
            return
        table = Table("environment", "gymnasium id", "random / expert", box=None)
        for info in infos:
            table.add_row(info.name, info.gym_id, _reference_text(info))
        out.print(table)


@envs_app.command("show")
def envs_show(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """One environment: how it is built and every reference score with its source and method."""
    with _user_errors():
        info = _environments(_registry()).get(name)
        if as_json:
            _print_json(info.to_json())
            return
        out.print(f"{info.name}: {info.gym_id} {json.dumps(info.kwargs)}", highlight=False)
        out.print(info.description or "", highlight=False)
        table = Table("source", "kind", "return", "episodes", "how", box=None)
        table.columns[-1].overflow = "fold"
        for score in info.references:
            table.add_row(score.source, score.kind, f"{score.value:.3f}", str(score.episodes or "-"), score.method or "-")
        out.print(table)
        out.print(f"normalization: {_reference_text(info)}", highlight=False)


def main() -> None:  # pragma: no cover - console entry point wrapper
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
