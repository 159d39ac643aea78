"""`bench` commands for sharing through a server: serve the API, accounts and tokens, upload and
download datasets, push results, read leaderboards. Registered on the main app by bench.cli.

Account commands act on the database the settings name (run them on the server's machine, like
Django's createsuperuser); the others talk HTTP to ``--server`` / ``BENCH_SERVER`` when one is set.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.table import Table

from bench.cli import (SERVER_HELP, _client, _print_json, _registry, _size, _stages, _user_errors, app, datasets_app,
                       err, out)
from bench.errors import Conflict, InvalidInput

serve_app = typer.Typer(no_args_is_help=True, help="Run bench's services.")
app.add_typer(serve_app, name="serve")
users_app = typer.Typer(no_args_is_help=True, help="Accounts on this server's database.")
app.add_typer(users_app, name="users")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens (stored hashed; shown once).")
app.add_typer(tokens_app, name="tokens")
groups_app = typer.Typer(no_args_is_help=True, help="Groups: their members share the group's namespace.")
app.add_typer(groups_app, name="groups")
results_app = typer.Typer(no_args_is_help=True, help="Publish evaluation runs to a server.")
app.add_typer(results_app, name="results")
robot_logs_app = typer.Typer(no_args_is_help=True, help="Real-robot logs: import ROS bags, LeRobot v3 datasets, plain folders.")
app.add_typer(robot_logs_app, name="robot-logs")
robot_evals_app = typer.Typer(no_args_is_help=True, help="Real-robot evaluations: success labels per trial.")
app.add_typer(robot_evals_app, name="robot-evals")
leaderboard_app = typer.Typer(no_args_is_help=True, help="Leaderboards: suites of datasets, scored with intervals.")
app.add_typer(leaderboard_app, name="leaderboard")


# -- serving ---------------------------------------------------------------------------------------------
@serve_app.command("api")
def serve_api(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port"),
              workers: int = typer.Option(1, "--workers", help="uvicorn worker processes"),
              forwarded_allow_ips: str = typer.Option(
                  "127.0.0.1", "--forwarded-allow-ips",
                  help="reverse proxies whose X-Forwarded-For is trusted as the client address (rate limits "
                       "count per address); comma-separated, '*' for any")) -> None:
    """Serve the REST API (/api/v1, schema at /api/v1/openapi.json), migrating the database first."""
    import uvicorn

    with _user_errors():
        registry = _registry()  # migrates, and reports bad settings as one line before uvicorn starts
        registry.close()
        uvicorn.run("bench.web.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="info", timeout_graceful_shutdown=10, proxy_headers=True,
                    forwarded_allow_ips=forwarded_allow_ips)


@serve_app.command("ui")
def serve_ui(api: Optional[str] = typer.Option(None, "--api", help="the API to show (default: $BENCH_SERVER, "
                                                                 "else http://127.0.0.1:8000)"),
             public_api: Optional[str] = typer.Option(None, "--public-api", help="the API's address as browsers reach "
                                                      "it, for downloads and frames (default: --api)"),
             host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8501, "--port")) -> None:
    """Serve the web UI (Streamlit); it reads everything from the API over HTTP."""
    import os
    import sys

    from bench.platform.settings import Settings

    with _user_errors():
        url = api or Settings.load().server or "http://127.0.0.1:8000"
        app_file = Path(__file__).resolve().parent / "web" / "ui" / "app.py"
        env = {**os.environ, "BENCH_SERVER": url}
        if public_api:
            env["BENCH_PUBLIC_API_URL"] = public_api
        command = [sys.executable, "-m", "streamlit", "run", str(app_file), "--server.address", host,
                   "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
                   "--server.fileWatcherType", "none", "--theme.base", "light",
                   "--client.toolbarMode", "viewer"]
        err.print(f"bench UI on http://{host}:{port} (API {url})", markup=False, highlight=False)
        # Become Streamlit rather than wait for it: a SIGTERM to this process (a test's teardown,
        # systemd, docker stop) must reach the server, not orphan it.
        sys.stderr.flush()
        os.execve(sys.executable, command, env)


# -- accounts --------------------------------------------------------------------------------------------
def _accounts():
    from bench.platform.accounts import Accounts

    return Accounts(_registry().engine)


@users_app.command("create")
def users_create(name: str = typer.Argument(...), admin: bool = typer.Option(False, "--admin")) -> None:
    """Create a user and the namespace named after them."""
    with _user_errors():
        user = _accounts().create_user(name, admin)
        out.print(f"created user {user['name']}{' (admin)' if user['is_admin'] else ''} with namespace {user['name']}/",
                  highlight=False)


@users_app.command("list")
def users_list(as_json: bool = typer.Option(False, "--json")) -> None:
    with _user_errors():
        users = _accounts().list_users()
        if as_json:
            _print_json(users)
            return
        for user in users:
            out.print(f"{user['name']}{'  admin' if user['is_admin'] else ''}", highlight=False)


@tokens_app.command("create")
def tokens_create(user: str = typer.Argument(...), name: str = typer.Option(..., "--name", help="e.g. laptop")) -> None:
    """Create a token for USER and print it: it is stored hashed and cannot be shown again."""
    with _user_errors():
        token, info = _accounts().create_token(user, name)
        err.print(f"token {info['id']} ({info['name']}) for {user}; keep it secret, it is not shown again:",
                  markup=False, highlight=False)
        out.print(token, highlight=False)


@tokens_app.command("list")
def tokens_list(user: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    with _user_errors():
        tokens = _accounts().list_tokens(user)
        if as_json:
            _print_json(tokens)
            return
        table = Table("id", "name", "prefix", "created", "last used", "revoked", box=None)
        for t in tokens:
            table.add_row(str(t["id"]), t["name"], t["prefix"] + "...", (t["created_at"] or "")[:19],
                          (t["last_used_at"] or "-")[:19], "yes" if t["revoked"] else "no")
        out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int = typer.Argument(...)) -> None:
    with _user_errors():
        info = _accounts().revoke_token(token_id)
        out.print(f"revoked token {info['id']} ({info['name']}) of {info['user']}", highlight=False)


@groups_app.command("create")
def groups_create(name: str = typer.Argument(...), member: str = typer.Option(..., "--member", help="first member")) -> None:
    """Create a group (and its namespace) with a first member."""
    with _user_errors():
        accounts = _accounts()
        group = accounts.create_group(name, accounts.principal_of(member))
        out.print(f"created group {group['name']} with namespace {group['name']}/; members: {', '.join(group['members'])}",
                  highlight=False)


@groups_app.command("add")
def groups_add(group: str = typer.Argument(...), user: str = typer.Argument(...)) -> None:
    with _user_errors():
        from bench.platform.accounts import SYSTEM

        result = _accounts().add_member(group, user, SYSTEM)
        out.print(f"{group}: {', '.join(result['members'])}", highlight=False)


# -- datasets over HTTP -------------------------------------------------------------------------------------
@contextlib.contextmanager
def _transfer_bar(title: str) -> Iterator[Any]:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        task = progress.add_task(title, total=None)

        def update(what: str, done: int, total: int) -> None:
            progress.update(task, description=f"{title}: {what}", completed=done, total=total)

        yield update


def _require_client(server: str | None, command: str):
    client = _client(server)
    if client is None:
        raise InvalidInput(f"{command} needs a server: pass --server URL or set BENCH_SERVER")
    return client


@datasets_app.command("upload")
def upload(
    path: Path = typer.Argument(..., help="a file or directory in any importable format (see bench datasets import)"),
    id: str = typer.Option(..., "--id", help="namespace/name (next version) or namespace/name-vN"),
    format: Optional[str] = typer.Option(None, "--format", help="bench, minari, d4rl or ogbench (default: detect)"),
    description: Optional[str] = typer.Option(None, "--description"),
    license: Optional[str] = typer.Option(None, "--license"),
    env: Optional[str] = typer.Option(None, "--env", help="gymnasium id of the environment that evaluates this data"),
    tags: list[str] = typer.Option([], "--tag", help="a tag (repeatable)"),
    private: Optional[bool] = typer.Option(None, "--private/--public", help="who may read it (default: public)"),
    server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Upload to a server, which validates and publishes it; run it again to resume an interrupted upload."""
    with _user_errors():
        client = _require_client(server, "bench datasets upload")
        from bench.platform.settings import Settings

        with _transfer_bar(f"{path.name} -> {id}") as bar:
            result = client.upload(path, id, format=format, description=description, license=license, env_id=env,
                                   tags=tags, private=private, scratch=Settings.load().home, progress=bar)
        if as_json:
            _print_json(result)
            return
        dataset = result["dataset"]
        out.print(f"published {dataset['id']} on {client.server}: {dataset['episodes']} episodes, "
                  f"{dataset['steps']} steps, {_size(dataset['size_bytes'])}", highlight=False)


def _episode_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    start, sep, stop = text.partition(":")
    if not sep or not start.strip().isdigit() or not stop.strip().isdigit():
        raise InvalidInput(f"--episodes {text!r}: expected START:STOP, e.g. 0:50 (STOP excluded)")
    start_index, stop_index = int(start), int(stop)
    if stop_index <= start_index:
        raise InvalidInput(f"--episodes {text!r}: STOP must be greater than START")
    return start_index, stop_index


@datasets_app.command("download")
def download(
    id: str = typer.Argument(..., help="namespace/name-vN, or namespace/name for the latest"),
    out_dir: Path = typer.Option(..., "--out", help="a new directory; it receives a bench-format version"),
    episodes: Optional[str] = typer.Option(None, "--episodes", help="only episodes START:STOP (STOP excluded)"),
    server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
) -> None:
    """Download a version (or an episode range of it) as a bench-format directory, verified against its manifest."""
    with _user_errors():
        selected = _episode_range(episodes)
        client = _client(server)
        if client is not None:
            with _transfer_bar(f"{id} -> {out_dir}") as bar:
                info = client.download(id, out_dir, selected, progress=bar)
            version = info["id"]
        else:
            if out_dir.exists():
                raise Conflict(f"{out_dir} already exists; choose a new directory")
            registry = _registry()
            version = registry.show(id).id
            source = registry.subset_dir(version, *selected) if selected else registry.local_dir(version)
            partial = out_dir.with_name(out_dir.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(source, partial)
            _verify_copy(partial)
            partial.rename(out_dir)
        span = f" episodes {selected[0]}:{selected[1]} of" if selected else ""
        out.print(f"downloaded{span} {version} to {out_dir} (verified)", highlight=False)


def _verify_copy(directory: Path) -> None:
    """Every file of a copied version against its manifest, as a download from a server is checked."""
    from bench.datasets.format import MANIFEST, file_sha256
    from bench.errors import IntegrityError

    manifest = json.loads((directory / MANIFEST).read_text())
    for name, entry in manifest["files"].items():
        if not (directory / name).is_file() or file_sha256(directory / name) != entry["sha256"]:
            shutil.rmtree(directory, ignore_errors=True)
            raise IntegrityError(f"{name}: sha256 differs from the manifest; the stored version is damaged "
                                 "(bench datasets verify names every such file)")


# -- real-robot logs and evaluations -----------------------------------------------------------------------
@robot_logs_app.command("import")
def robot_logs_import(
    path: Path = typer.Argument(..., help="a ROS 1/2 bag (or a directory of bags), a LeRobot v3 dataset directory, "
                                          "or a plain log folder (docs/robot-logs.md)"),
    id: str = typer.Option(..., "--id", help="namespace/name (next version)"),
    robot: Optional[str] = typer.Option(None, "--robot", help="e.g. sawyer (default: from the log's metadata)"),
    task: Optional[str] = typer.Option(None, "--task", help='e.g. "open drawer"'),
    lab: Optional[str] = typer.Option(None, "--lab"),
    format: Optional[str] = typer.Option(None, "--format", help="rosbag, lerobot or robot-folder (default: detect)"),
    mapping: Optional[Path] = typer.Option(None, "--mapping", help="ROS bags: which topics are state, action, "
                                                                   "cameras and clock (JSON or YAML)"),
    description: Optional[str] = typer.Option(None, "--description"),
    license: Optional[str] = typer.Option(None, "--license"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Import a real-robot log as a new version: frames, commands, timestamps, labels, videos, original files."""
    from bench.datasets.interop import ROBOT_LOG_FORMATS, detect_format

    with _user_errors():
        chosen = format or detect_format(path)
        if chosen not in ROBOT_LOG_FORMATS:
            raise InvalidInput(f"{path} is a {chosen} dataset, not a robot log ({', '.join(ROBOT_LOG_FORMATS)}); "
                               "use bench datasets import")
        options = {key: value for key, value in (("robot", robot), ("task", task), ("lab", lab)) if value}
        if mapping is not None:
            if chosen != "rosbag":
                raise InvalidInput("--mapping applies to ROS bags only")
            options["mapping"] = str(mapping)
        registry = _registry()
        with _stages(f"importing {path.name} as {id}") as stage:
            info = registry.import_path(path, id, format=chosen, description=description, license=license,
                                        progress=stage, source_options=options)
        if as_json:
            _print_json(info.to_json())
            return
        out.print(f"published {info.id}: {info.episodes} episodes, {info.steps} steps, {_size(info.size_bytes)} "
                  f"(tags: {', '.join(info.tags)})", highlight=False)


@robot_evals_app.command("add")
def robot_evals_add(
    dataset: str = typer.Argument(..., help="the robot log the trials belong to (namespace/name)"),
    policy: str = typer.Option(..., "--policy", help="e.g. val, iql"),
    phase: str = typer.Option(..., "--phase", help="offline, or online (after fine-tuning)"),
    trials: Path = typer.Option(..., "--trials", help="CSV: success[,trial,task,judge,notes]"),
    task: Optional[str] = typer.Option(None, "--task", help="the task, when the CSV has no task column"),
    judge: Optional[str] = typer.Option(None, "--judge", help="who labeled them, when the CSV has no judge column"),
) -> None:
    """Record real-robot trials with their success labels."""
    from bench.platform.robot_evals import RobotEvals, read_trials_csv

    with _user_errors():
        registry = _registry()
        registry.show(dataset)  # the log must exist
        count = RobotEvals(registry.engine).add(dataset, policy, phase, read_trials_csv(trials), task, judge)
        out.print(f"recorded {count} {phase} trial(s) of {policy} on {dataset}", highlight=False)


@robot_evals_app.command("show")
def robot_evals_show(dataset: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """Success rates per task and policy, offline -> online, with Wilson 95% intervals."""
    from bench.platform.robot_evals import RobotEvals, rate_text

    with _user_errors():
        evals = RobotEvals(_registry().engine)
        summary = evals.summary([dataset])
        if as_json:
            _print_json({"summary": summary, "trials": evals.trials(dataset)})
            return
        table = Table("task", "policy", "offline", "online", box=None)
        for entry in summary:
            table.add_row(entry["task"], entry["policy"], rate_text(entry["offline_success"]),
                          rate_text(entry["online_success"]))
        out.print(table if summary else f"no trials recorded for {dataset}")


# -- results and leaderboards ---------------------------------------------------------------------------------
@results_app.command("push")
def results_push(run_ids: list[str] = typer.Argument(..., help="finished local runs (bench runs list)"),
                 server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP)) -> None:
    """Publish local runs (config, provenance, curves, results) to a server's leaderboards."""
    from bench.platform.runs import RunStore

    with _user_errors():
        client = _require_client(server, "bench results push")
        store = RunStore(_registry().engine)
        for run_id in run_ids:
            run = store.get(run_id)
            stored = client.push_run({k: v for k, v in run.to_json().items() if k not in {"checkpoint", "owner"}},
                                     store.curves(run_id))
            out.print(f"pushed {stored['id']} ({run.algorithm} on {run.dataset_id}, seed {run.seed}) as {stored['owner']}",
                      highlight=False)


def _suites_and_board(name: str | None, server: str | None):
    client = _client(server)
    if client is not None:
        return client, (client.leaderboards() if name is None else client.leaderboard(name))
    from bench.leaderboards.board import build_leaderboard
    from bench.leaderboards.suites import Suites

    registry = _registry()
    suites = Suites(registry.engine)
    if name is None:
        return None, [spec.to_json() for spec in suites.list()]
    return None, build_leaderboard(suites.get(name), registry.engine)


@leaderboard_app.command("list")
def leaderboard_list(server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
                     as_json: bool = typer.Option(False, "--json")) -> None:
    """Leaderboard suites: shipped ones and, on a server, user-defined ones."""
    with _user_errors():
        _, specs = _suites_and_board(None, server)
        if as_json:
            _print_json(specs)
            return
        table = Table("name", "metric", "phase", "datasets", "title", box=None)
        for spec in specs:
            table.add_row(spec["name"], spec["metric"], spec["phase"], str(len(spec["datasets"])), spec.get("title") or "")
        out.print(table)


@leaderboard_app.command("show")
def leaderboard_show(
    name: str = typer.Argument(...),
    markdown: bool = typer.Option(False, "--markdown", help="a Markdown table"),
    as_json: bool = typer.Option(False, "--json", help="every entry, interval, run id and hash"),
    server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
) -> None:
    """A leaderboard: per dataset "offline -> online" with 95% intervals, then mean and IQM across the suite."""
    from bench.leaderboards.render import footnote, table_rows, to_markdown

    with _user_errors():
        _, board = _suites_and_board(name, server)
        if as_json:
            _print_json(board)
            return
        if markdown:
            out.print(to_markdown(board), markup=False, highlight=False, end="")
            return
        spec = board["leaderboard"]
        counted = "trials" if spec.get("kind") == "robot" else "runs"
        out.print(f"{spec['name']}: {spec.get('title') or ''} ({board['runs_considered']} {counted})", highlight=False)
        header, rows = table_rows(board)
        table = Table(*header, box=None)
        for row in rows:
            table.add_row(*row)
        out.print(table if rows else "no completed runs on these datasets yet")
        out.print(footnote(board), markup=False, highlight=False)
