"""`bench init` and `bench datasets ...`: import, list, show, verify, export, yank, gc, build, card, and upload/download
through a server. The commands mirror ``Registry``."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.table import Table

from bench.cli.common import (SERVER_HELP, client_for, err, json_object, open_registry, out, print_json,
                              require_client, stages, user_errors)
from bench.errors import Conflict, InvalidInput, NotFound
from bench.platform.units import human_size, plural


datasets_app = typer.Typer(no_args_is_help=True, help="Import, list, inspect, verify, export and yank dataset versions.")


def init() -> None:
    """Create BENCH_HOME, migrate its database to the newest schema, and create the storage root."""
    from bench.platform import db

    with user_errors():
        registry = open_registry()
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
    env: Optional[str] = typer.Option(None, "--env", help="the environment that evaluates this data: a catalogue name (bench envs list) or a gymnasium id"),
    env_kwargs: Optional[str] = typer.Option(None, "--env-kwargs", help='JSON keyword arguments for it, e.g. \'{"task": "push"}\''),
    as_json: bool = typer.Option(False, "--json", help="print the new version as JSON"),
) -> None:
    """Import a dataset file or directory as a new immutable version."""
    with user_errors():
        kwargs = json_object(env_kwargs, "--env-kwargs") if env_kwargs else None
        registry = open_registry()
        with stages(f"importing {path.name} as {id}") as stage:
            info = registry.import_path(path, id, format=format, allow_nonfinite=allow_nonfinite,
                                        description=description, license=license, env_id=env, env_kwargs=kwargs,
                                        progress=stage)
        if as_json:
            print_json(info.to_json())
        else:
            out.print(f"published {info.id}: {plural(info.episodes, 'episode')}, {plural(info.steps, 'step')}, "
                      f"{human_size(info.size_bytes)}", highlight=False)
            out.print(_environment_line(registry, info.env), highlight=False)


def _environment_line(registry, env: dict | None) -> str:
    """Which catalogue entry and reference scores a new version's runs will use, or why none."""
    from bench.datasets.catalogue import environment_label

    if not env or not env.get("id"):
        return "environment: none (runs need one: import again with --env NAME, see `bench envs list`)"
    if not env.get("name"):
        return (f"environment: {environment_label(env)}, not a catalogue entry: no reference scores, so runs report "
                "returns without a normalized score")
    try:
        pair = registry.environments.get(env["name"]).reference_pair()
    except NotFound:
        pair = None
    scores = (f"reference scores from {pair[2]}: random {pair[0]:.6g}, expert {pair[1]:.6g}" if pair
              else "no reference scores yet")
    return f"environment: {environment_label(env)}; {scores}"


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
    with user_errors():
        client = client_for(server)
        if client is None and not (query or tag or env):
            items = [info.to_json() for info in open_registry().list(namespace=namespace, include_yanked=include_yanked)]
        else:
            search = client.search if client is not None else _local_search(open_registry())
            items, offset = [], 0
            while True:
                page = search(query, env, tag, namespace, limit=500, offset=offset)
                items += page["items"]
                offset += len(page["items"])
                if offset >= page["total"] or not page["items"]:
                    break
        if as_json:
            print_json(items)
            return
        table = Table("id", "episodes", "steps", "size", "source", "published", box=None)
        table.columns[0].no_wrap = True
        for item in items:
            label = item["id"] + (" (yanked)" if item["yanked"] else "")
            table.add_row(label, str(item["episodes"]), str(item["steps"]), human_size(item["size_bytes"]),
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

    from bench.datasets.catalogue import environment_label
    from bench.datasets.format import summarize_episodes
    from bench.datasets.remote import quoted_id
    from bench.datasets.spaces import describe_space

    with user_errors():
        client = client_for(server)
        registry = open_registry() if client is None else None
        values = client.show(id) if client is not None else registry.show(id).to_json()
        if as_json:
            print_json(values)
            return
        if client is not None:
            manifest = client.get_json(f"/datasets/{quoted_id(values['id'])}/-/manifest")
            summary = client.get_json(f"/datasets/{quoted_id(values['id'])}/-/stats")
        else:
            manifest = registry.manifest(values["id"])
            summary = summarize_episodes(registry.episode_table(values["id"]))
        info = SimpleNamespace(**values)
        stored = manifest.get("arrays", {})
        ends = f"{summary['terminated']} terminated, {summary['truncated']} truncated" if "terminated" in summary else "-"
        success = summary.get("success")
        notes = (manifest.get("provenance") or {}).get("notes") or []
        rows = [
            ("id", info.id), ("state", info.state + (f" ({info.yank_reason})" if info.yanked else "")),
            ("episodes", info.episodes), ("steps", info.steps), ("size", human_size(info.size_bytes)),
            ("return", _spread(summary["return"])), ("length", _spread(summary["length"])), ("episode ends", ends),
            ("success", f"{success['rate']:.1%} ({success['successes']}/{success['episodes']} episodes)"
             if success else "- (episodes carry no success flag)"),
            ("observation space", describe_space(info.observation_space)),
            ("action space", describe_space(info.action_space)),
            ("stored arrays", "\n".join(f"{path}: {entry['dtype']} {tuple(entry['shape'])}"
                                         for path, entry in stored.items() if not path.startswith("infos/")) or "-"),
            ("info arrays", "\n".join(f"{path[len('infos/'):]}: {entry['dtype']} {tuple(entry['shape'])}"
                                       for path, entry in stored.items() if path.startswith("infos/")) or "-"),
            ("environment", environment_label(info.env)), ("source format", info.source_format),
            ("notes", "\n".join(notes) or "-"),
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


def _spread(stat: dict[str, float]) -> str:
    return f"mean {stat['mean']:.6g}, min {stat['min']:.6g}, max {stat['max']:.6g}"


@datasets_app.command()
def verify(id: str = typer.Argument(...)) -> None:
    """Re-hash every file of a version against its manifest; exit 1 naming each file that differs."""
    with user_errors():
        registry = open_registry()
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
    with user_errors():
        registry = open_registry()
        with err.status(f"exporting {id} to {out_path} ..."):
            notes = registry.export(id, format, out_path)
        for note in notes:
            err.print(f"note: {note}", markup=False, highlight=False)
        out.print(f"wrote {out_path}", highlight=False)


@datasets_app.command()
def yank(id: str = typer.Argument(...), reason: str = typer.Option(..., "--reason"),
         server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP)) -> None:
    """Hide a version from listings; it stays loadable by its exact id, with a warning."""
    with user_errors():
        client = client_for(server)
        if client is not None:
            info = client.yank(id, reason)
            out.print(f"yanked {info['id']}: {info['yank_reason']}", highlight=False)
            return
        info = open_registry().yank(id, reason)
        out.print(f"yanked {info.id}: {info.yank_reason}", highlight=False)


@datasets_app.command()
def gc(as_json: bool = typer.Option(False, "--json")) -> None:
    """Remove what crashed imports and uploads left behind (staging rows and directories, orphan files, upload
    directories), trim the download cache to its size bound, and remove the cached models of deleted versions."""
    from bench.evaluation.model_cache import remove_stale_models  # imports torch: start-up time

    with user_errors():
        registry = open_registry()
        report = registry.gc()
        models = remove_stale_models(registry.storage, registry.manifest_digests())
        if as_json:
            print_json({**report.to_json(), "models": models})
            return
        removed = [*report.removed, *models]
        for item in removed:
            out.print(f"removed {item}", highlight=False)
        out.print(f"gc: removed {plural(len(removed), 'leftover')}", highlight=False)


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

    with user_errors():
        registry = open_registry()
        with stages(f"building {recipe}") as stage:
            info = build_recipe(registry, recipe, episodes=episodes, seed=seed, workers=workers,
                                reference_episodes=reference_episodes, progress=stage)
        if as_json:
            print_json(info.to_json())
        else:
            out.print(f"published {info.id}: {info.episodes} episodes, {info.steps} steps, {human_size(info.size_bytes)}, "
                      f"content {info.content_sha256[:12]}", highlight=False)


@datasets_app.command()
def card(
    id: str = typer.Argument(...),
    out_path: Optional[Path] = typer.Option(None, "--out", help="write a directory with card.md and its preview images"),
) -> None:
    """A markdown card: statistics, success rate, return histogram, reference scores, preview frames."""
    from bench.datasets.cards import dataset_card

    with user_errors():
        registry = open_registry()
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


@datasets_app.command("upload")
def upload(
    path: Path = typer.Argument(..., help="a file or directory in any importable format (see bench datasets import)"),
    id: str = typer.Option(..., "--id", help="namespace/name (next version) or namespace/name-vN"),
    format: Optional[str] = typer.Option(None, "--format", help="bench, minari, d4rl or ogbench (default: detect)"),
    description: Optional[str] = typer.Option(None, "--description"),
    license: Optional[str] = typer.Option(None, "--license"),
    env: Optional[str] = typer.Option(None, "--env", help="the environment that evaluates this data: a catalogue name (bench envs list) or a gymnasium id"),
    tags: list[str] = typer.Option([], "--tag", help="a tag (repeatable)"),
    private: Optional[bool] = typer.Option(None, "--private/--public", help="who may read it (default: public)"),
    server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Upload to a server, which validates and publishes it; run it again to resume an interrupted upload."""
    with user_errors():
        client = require_client(server, "bench datasets upload")
        from bench.platform.settings import Settings

        with _transfer_bar(f"{path.name} -> {id}") as bar:
            result = client.upload(path, id, format=format, description=description, license=license, env_id=env,
                                   tags=tags, private=private, scratch=Settings.load().home, progress=bar)
        if as_json:
            print_json(result)
            return
        dataset = result["dataset"]
        out.print(f"published {dataset['id']} on {client.server}: {dataset['episodes']} episodes, "
                  f"{dataset['steps']} steps, {human_size(dataset['size_bytes'])}", highlight=False)


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
    with user_errors():
        selected = _episode_range(episodes)
        client = client_for(server)
        if client is not None:
            with _transfer_bar(f"{id} -> {out_dir}") as bar:
                info = client.download(id, out_dir, selected, progress=bar)
            version = info["id"]
        else:
            if out_dir.exists():
                raise Conflict(f"{out_dir} already exists; choose a new directory")
            registry = open_registry()
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
