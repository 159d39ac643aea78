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
algorithms_app = typer.Typer(no_args_is_help=True, help="Learning algorithms and their configs.")
app.add_typer(algorithms_app, name="algorithms")
runs_app = typer.Typer(no_args_is_help=True, help="Evaluation runs: list, inspect, resume, mark failed.")
app.add_typer(runs_app, name="runs")

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


SERVER_HELP = "a bench server URL (default: $BENCH_SERVER); without one, the local registry is used"


def _client(server: str | None):
    """A client for the server named by --server or BENCH_SERVER, or None to use the local registry."""
    from bench.platform.settings import Settings

    settings = Settings.load()
    url = server or settings.server
    if not url:
        return None
    from bench.web.client import Client

    return Client(url, settings.token)


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
    include_yanked: bool = typer.Option(False, "--include-yanked", help="also list yanked versions (local registry)"),
    query: Optional[str] = typer.Option(None, "--search", help="text in the id or description"),
    tag: Optional[str] = typer.Option(None, "--tag", help="only datasets with this tag"),
    env: Optional[str] = typer.Option(None, "--env", help="only datasets of this environment (name or gymnasium id)"),
    server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List published versions; with a search, tag or environment filter (or on a server), the latest
    version of each matching dataset."""
    with _user_errors():
        client = _client(server)
        if client is None and not (query or tag or env):
            items = [info.to_json() for info in _registry().list(namespace=namespace, include_yanked=include_yanked)]
        else:
            search = client.search if client is not None else _local_search(_registry())
            items, offset = [], 0
            while True:
                page = search(query, env, tag, namespace, limit=500, offset=offset)
                items += page["items"]
                offset += len(page["items"])
                if offset >= page["total"] or not page["items"]:
                    break
        if as_json:
            _print_json(items)
            return
        table = Table("id", "episodes", "steps", "size", "source", "published", box=None)
        table.columns[0].no_wrap = True
        for item in items:
            label = item["id"] + (" (yanked)" if item["yanked"] else "")
            table.add_row(label, str(item["episodes"]), str(item["steps"]), _size(item["size_bytes"]),
                          item["source_format"] or "-", (item["published_at"] or "")[:19])
        out.print(table if items else "no datasets")


def _local_search(registry):
    """The local registry's search with the server's page shape, so both feed one listing."""
    def search(text, env, tag, namespace, limit, offset):
        total, infos = registry.search(text, env, tag, namespace, None, limit, offset)
        return {"total": total, "items": [info.to_json() for info in infos]}

    return search


@datasets_app.command()
def show(
    id: str = typer.Argument(..., help="namespace/name-vN, or namespace/name for the latest"),
    server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one version: counts, spaces, environment, hashes."""
    from types import SimpleNamespace

    with _user_errors():
        client = _client(server)
        values = client.show(id) if client is not None else _registry().show(id).to_json()
        if as_json:
            _print_json(values)
            return
        info = SimpleNamespace(**values)
        rows = [
            ("id", info.id), ("state", info.state + (f" ({info.yank_reason})" if info.yanked else "")),
            ("episodes", info.episodes), ("steps", info.steps), ("size", _size(info.size_bytes)),
            ("observation space", json.dumps(info.observation_space)), ("action space", json.dumps(info.action_space)),
            ("environment", json.dumps(info.env) if info.env else "none"), ("source format", info.source_format),
            ("content sha256", info.content_sha256), ("manifest sha256", info.manifest_sha256),
            ("created", info.created_at), ("published", info.published_at),
            ("license", info.license or "-"), ("description", info.description or "-"),
            ("tags", ", ".join(info.tags) or "-"), ("visibility", "private" if info.private else "public"),
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
def yank(id: str = typer.Argument(...), reason: str = typer.Option(..., "--reason"),
         server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP)) -> None:
    """Hide a version from listings; it stays loadable by its exact id, with a warning."""
    with _user_errors():
        client = _client(server)
        if client is not None:
            info = client.yank(id, reason)
            out.print(f"yanked {info['id']}: {info['yank_reason']}", highlight=False)
            return
        info = _registry().yank(id, reason)
        out.print(f"yanked {info.id}: {info.yank_reason}", highlight=False)


@datasets_app.command()
def gc(as_json: bool = typer.Option(False, "--json")) -> None:
    """Remove what crashed imports and uploads left behind (staging rows and directories, orphan files, upload
    directories) and trim the download cache to its size bound."""
    with _user_errors():
        report = _registry().gc()
        if as_json:
            _print_json(report.to_json())
            return
        removed = report.removed
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
    from bench.datasets.recipes.build import register_recipe_environments

    register_recipe_environments(registry)
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


# -- algorithms, evaluation and runs -----------------------------------------------------------------
@algorithms_app.command("list")
def algorithms_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """The registered algorithms, with a one-line description each."""
    from bench.algorithms import list_algorithms

    specs = list_algorithms()
    if as_json:
        _print_json([{"name": s.name, "description": s.description, "paper": s.paper,
                      "learns_online": s.algorithm_class.learns_online} for s in specs])
        return
    table = Table("algorithm", "description", "paper", box=None)
    for spec in specs:
        table.add_row(spec.name, spec.description, spec.paper)
    out.print(table)


@algorithms_app.command("show")
def algorithms_show(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """An algorithm's config fields: default, where the default comes from, and per-domain presets."""
    from bench.algorithms import get_algorithm
    from bench.algorithms.config import DOMAINS, describe_fields

    with _user_errors():
        spec = get_algorithm(name)
        rows = describe_fields(spec.config_class)
        for row in rows:
            if row["name"] in spec.defaults:
                row["default"], row["source"] = spec.defaults[row["name"]], f"{spec.name} variant"
        presets = {domain: {"values": values, "source": spec.config_class.PRESET_SOURCES.get(domain, "")}
                   for domain, values in spec.config_class.PRESETS.items()}
        if as_json:
            _print_json({"name": spec.name, "description": spec.description, "paper": spec.paper,
                         "learns_online": spec.algorithm_class.learns_online, "fields": rows, "presets": presets,
                         "domains": DOMAINS})
            return
        out.print(f"{spec.name}: {spec.description} ({spec.paper})", highlight=False)
        table = Table("field", "type", "default", "source", "per-domain presets", box=None)
        table.columns[3].overflow = "fold"
        for row in rows:
            table.add_row(row["name"], row["type"], json.dumps(row["default"]), row["source"],
                          ", ".join(f"{d}={json.dumps(v)}" for d, v in row["presets"].items()))
        out.print(table)
        for domain, preset in presets.items():
            families = ", ".join(f for f, d in DOMAINS.items() if d == domain)
            out.print(f"preset {domain} ({families}): {json.dumps(preset['values'])} - {preset['source']}",
                      highlight=False)


@contextlib.contextmanager
def _run_progress(enabled: bool) -> Iterator[Any]:
    """Progress bars on stderr, one per run; yields the harness's progress callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if not enabled:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def callback(run_id: str, phase: str, step: int, total: int) -> None:
            if run_id not in tasks:
                tasks[run_id] = progress.add_task(run_id, total=total)
            progress.update(tasks[run_id], description=f"{run_id} {phase}", completed=step, total=total)

        yield callback


def _report_sweep(store, run_ids: list[str], as_json: bool) -> None:
    from bench.platform.runs import run_json, summarize

    runs = [store.get(run_id) for run_id in run_ids]
    summary = summarize(runs)
    if as_json:
        _print_json({"runs": [run_json(run) for run in runs], "summary": summary})
    else:
        table = Table("run", "seed", "status", "offline return", "offline score", "offline success",
                      "online return", "online score", "online success", box=None)
        for run in runs:
            item = run_json(run)
            cells = []
            for phase in ("offline", "online"):
                values = item[phase] or {}
                cells += [_number(values.get("return")), _number(values.get("normalized_score")),
                          _number(values.get("success_rate"))]
            table.add_row(run.id, str(run.seed), run.status, *cells)
        out.print(table)
        for phase in ("offline", "online"):
            if summary.get(phase):
                parts = [f"{metric} {_interval(summary[phase][metric])}" for metric in summary[phase]
                         if summary[phase][metric]]
                out.print(f"{phase}: " + "; ".join(parts), highlight=False)
    for run in runs:
        if run.error:
            err.print(f"{run.id}: {run.error}", markup=False, highlight=False)
    statuses = {run.status for run in runs}
    if "interrupted" in statuses:
        err.print(f"interrupted; continue with: bench runs resume {' '.join(r.id for r in runs if r.status != 'completed')}",
                  markup=False)
        raise typer.Exit(130)
    if statuses != {"completed"}:
        raise typer.Exit(1)


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}"


def _interval(stat: dict[str, Any] | None) -> str:
    if not stat:
        return "-"
    if stat["ci95"] is None:
        return f"{stat['mean']:.3g} (n=1)"
    low, high = stat["ci95"]
    return f"{stat['mean']:.3g} [{low:.3g}, {high:.3g}] (n={stat['n']})"


@app.command()
def evaluate(
    algorithm: str = typer.Argument(..., help="an algorithm name (bench algorithms list)"),
    dataset: str = typer.Argument(..., help="a dataset version, or namespace/name for its latest"),
    seeds: int = typer.Option(1, "--seeds", help="number of seeds (0, 1, ..., n-1)"),
    seed_list: Optional[str] = typer.Option(None, "--seed-list", help="explicit seeds, e.g. 3,7,11"),
    offline_steps: int = typer.Option(20000, "--offline-steps", help="gradient updates on the dataset"),
    online_steps: int = typer.Option(20000, "--online-steps", help="environment steps of online fine-tuning"),
    eval_every: int = typer.Option(5000, "--eval-every", help="evaluate every K updates / environment steps"),
    eval_episodes: int = typer.Option(10, "--eval-episodes", help="evaluation episodes (fixed seeds)"),
    log_every: int = typer.Option(1000, "--log-every", help="record training losses every K steps"),
    overrides: list[str] = typer.Option([], "--set", help="config override key=value (repeatable)"),
    online_env: str = typer.Option("dataset", "--online-env",
                                   help="'dataset' (its own environment) or 'held-out' (a new scene of held-out "
                                        "shapes and colours, per seed; tabletop)"),
    task: Optional[str] = typer.Option(None, "--task", help="the evaluation task of a scene family (tabletop: "
                                                            "drawer-open, button-press, object-in-tray, ...)"),
    executor: str = typer.Option("local", "--executor", help="local, process or ray"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="an existing Ray cluster (ray executor)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train ALGORITHM on DATASET offline, fine-tune it online, and score it over seeds."""
    from bench.platform.runs import RunStore
    from bench.platform.sweeps import Budget, execute_sweep, parse_overrides, plan_sweep, seeds_from

    with _user_errors():
        registry = _registry()
        store = RunStore(registry.engine)
        budget = Budget(offline_steps, online_steps, eval_every, eval_episodes, log_every)
        specs = plan_sweep(registry, store, algorithm, dataset, seeds_from(seeds, seed_list), budget,
                           parse_overrides(overrides), executor, online_env, task)
        err.print(f"sweep of {len(specs)} run(s): {', '.join(s.run_id for s in specs)}", markup=False, highlight=False)
        with _run_progress(not as_json and executor != "ray") as progress:
            execute_sweep(specs, registry.settings, store, executor, ray_address, progress)
        _report_sweep(store, [s.run_id for s in specs], as_json)


@runs_app.command("list")
def runs_list(
    algorithm: Optional[str] = typer.Option(None, "--algo"),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    status: Optional[str] = typer.Option(None, "--status"),
    limit: int = typer.Option(100, "--limit"),
    server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Runs, newest first, with their final offline and online results."""
    from bench.platform.runs import RunInfo, RunStore, run_json

    with _user_errors():
        client = _client(server)
        if client is not None:
            page = client.runs(algorithm=algorithm, dataset=dataset, status=status, limit=min(limit, 500))
            runs = [RunInfo(**{**item, "checkpoint": None}) for item in page["items"]]
        else:
            runs = RunStore(_registry().engine).list(algorithm, dataset, status, limit=limit)
        if as_json:
            _print_json([{**run_json(run), "algorithm": run.algorithm, "dataset_id": run.dataset_id,
                          "sweep_id": run.sweep_id, "created_at": run.created_at} for run in runs])
            return
        table = Table("run", "algorithm", "dataset", "seed", "status", "progress", "offline", "online", box=None)
        for run in runs:
            item = run_json(run)
            progress = f"{run.progress['phase']} {run.progress['step']}/{run.progress['total']}" if run.progress else "-"
            table.add_row(run.id, run.algorithm, run.dataset_id, str(run.seed), run.status, progress,
                          _headline(item["offline"]), _headline(item["online"]))
        out.print(table)


def _headline(values: dict[str, Any] | None) -> str:
    if not values:
        return "-"
    if values.get("normalized_score") is not None:
        return f"score {values['normalized_score']:.1f}"
    return f"return {values['return']:.3g}"


@runs_app.command("show")
def runs_show(run_id: str = typer.Argument(...), server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """One run: config, provenance, curves and results."""
    from bench.platform.runs import RunInfo, RunStore

    with _user_errors():
        client = _client(server)
        if client is not None:
            run = RunInfo(**{**client.run(run_id), "checkpoint": None})
            curves = client.curves(run_id)
        else:
            store = RunStore(_registry().engine)
            run = store.get(run_id)
            curves = store.curves(run_id)
        if as_json:
            _print_json({**run.to_json(), "curves": curves})
            return
        out.print(f"run {run.id} ({run.status}): {run.algorithm} on {run.dataset_id}, seed {run.seed}", highlight=False)
        out.print(f"dataset content sha256 {run.dataset_content_sha256}; env {run.env_name}", highlight=False)
        out.print(f"code {run.code_version} on {run.host}; config hash {run.config_hash[:16]}", highlight=False)
        out.print(f"config {json.dumps(run.config)}", highlight=False)
        plan = run.plan
        out.print(f"plan: {plan['offline_steps']} offline updates, {plan['online_steps']} online steps, "
                  f"eval every {plan['eval_every']} x {plan['eval_episodes']} episodes, executor {plan['executor']}",
                  highlight=False)
        table = Table("phase", "step", "return", "score", "success", box=None)
        for point in curves:
            if point["kind"] == "eval":
                table.add_row(point["phase"], str(point["step"]), _number(point["return"]),
                              _number(point.get("normalized_score")), _number(point.get("success_rate")))
        out.print(table)
        if run.timings:
            out.print("timings " + ", ".join(f"{k} {v:.3g}" for k, v in run.timings.items()), highlight=False)
        if run.error:
            out.print(f"error: {run.error}", highlight=False)


@runs_app.command("resume")
def runs_resume(
    run_ids: list[str] = typer.Argument(..., help="interrupted, failed or pending runs"),
    executor: str = typer.Option("local", "--executor"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Continue runs from their last checkpoints (a run without one starts over)."""
    from bench.platform.runs import RunStore
    from bench.platform.sweeps import execute_sweep, spec_for_resume

    with _user_errors():
        registry = _registry()
        store = RunStore(registry.engine)
        specs = [spec_for_resume(store, run_id) for run_id in run_ids]
        with _run_progress(not as_json and executor != "ray") as progress:
            execute_sweep(specs, registry.settings, store, executor, ray_address, progress, resume=True)
        _report_sweep(store, run_ids, as_json)


@runs_app.command("mark-failed")
def runs_mark_failed(
    run_ids: list[str] = typer.Argument(..., help="running or pending runs whose worker is gone"),
    reason: str = typer.Option("its worker died", "--reason"),
) -> None:
    """Mark runs whose worker died as failed, so `bench runs resume` can continue them from their checkpoints."""
    from bench.platform.runs import RunStore

    with _user_errors():
        store = RunStore(_registry().engine)
        for run_id in run_ids:
            store.mark_failed(run_id, reason)
            out.print(f"{run_id} marked failed; `bench runs resume {run_id}` continues it", highlight=False)


# The service-facing commands (serve, accounts, upload/download, results, leaderboards) live in their own
# module; importing it registers them on `app`.
from bench import cli_service  # noqa: E402,F401


def main() -> None:  # pragma: no cover - console entry point wrapper
    app()


if __name__ == "__main__":  # pragma: no cover
    # `python -m bench.cli` runs this file as __main__; the commands registered by bench.cli_service
    # live on the app of the imported module, so run that one.
    from bench.cli import app as registered_app

    registered_app()
