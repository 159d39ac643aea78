"""The registry: the one object users hold. It lists, searches, resolves, loads, verifies, exports and yanks
versions; publishing is publishing.py's, loading by storage location stored.py's, gc housekeeping.py's.

Readers only ever see ``published`` (or ``yanked``) rows, so a crash while publishing leaves nothing
visible.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from bench.datasets.catalogue import register_named_environment
from bench.datasets.dataset import Dataset, Episode
from bench.datasets.format import EPISODES, MANIFEST, file_sha256, parse_manifest, read_version, write_version
from bench.datasets.housekeeping import REMOTE, STALE_AFTER, SUBSETS, GcReport, collect_garbage, trim_cache
from bench.datasets.ids import DatasetId
from bench.datasets.interop import write_export
from bench.datasets.publishing import (Publisher, apply_dataset_settings, check_tags, delete_if_empty, find_version_row,
                                       storage_path_of)
from bench.datasets.remote import RemoteRegistry
from bench.datasets.storage import Storage
from bench.datasets.lazy import LazyDataset, decoded_bytes
from bench.datasets.stored import load_stored_version, open_lazy_version, stored_version_dir
from bench.datasets.trajectories import Trajectories
from bench.errors import BenchError, Conflict, IntegrityError, InvalidInput, NotFound, did_you_mean
from bench.platform import db
from bench.platform.db import DatasetRow, DatasetTagRow, VersionRow, VersionState
from bench.platform.environments import EnvironmentCatalogue
from bench.platform.settings import Settings

class YankedVersionWarning(UserWarning):
    """A yanked version was loaded by its exact id."""


@dataclass(frozen=True)
class VersionInfo:
    """The public description of a version: the JSON contract of ``show --json`` and the API."""

    id: str
    namespace: str
    name: str
    version: int
    state: str
    episodes: int | None
    steps: int | None
    observation_space: dict[str, Any] | None
    action_space: dict[str, Any] | None
    env: dict[str, Any] | None
    size_bytes: int | None
    manifest_sha256: str | None
    content_sha256: str | None
    created_at: str
    published_at: str | None
    description: str | None
    license: str | None
    source_format: str | None
    yanked: bool
    yank_reason: str | None
    storage_path: str
    private: bool = False
    tags: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: VersionRow) -> "VersionInfo":
        dataset = row.dataset
        copied = {name: getattr(row, name) for name in _COPIED_COLUMNS}
        return cls(
            id=f"{dataset.namespace}/{dataset.name}-v{row.version}",
            namespace=dataset.namespace,
            name=dataset.name,
            created_at=_iso(row.created_at),
            published_at=_iso(row.published_at),
            yanked=row.state == VersionState.YANKED,
            private=bool(dataset.private),
            tags=tuple(sorted(tag.tag for tag in dataset.tags)),
            **copied,
        )

    def to_json(self) -> dict[str, Any]:
        # Shallow on purpose: dataclasses.asdict deep-copies every space and env dict, and was half the
        # cost of a page of search results. The values are JSON types already.
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "tags": list(self.tags)}


# VersionInfo fields that are the version row's columns as they are.
_COPIED_COLUMNS = ("version", "state", "episodes", "steps", "observation_space", "action_space", "env", "size_bytes",
                   "manifest_sha256", "content_sha256", "description", "license", "source_format", "yank_reason",
                   "storage_path")


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.isoformat()


class Registry:
    def __init__(self, settings: Settings, engine: sa.Engine, storage: Storage, remote: RemoteRegistry | None = None):
        self.settings = settings
        self.engine = engine
        self.session = db.make_sessionmaker(engine)
        self.storage = storage
        self.environments = EnvironmentCatalogue(self.session)
        self.publisher = Publisher(self.session, storage, settings)
        # A bench server (settings.server: BENCH_SERVER, with BENCH_TOKEN) that load() falls back to.
        self.remote = remote

    @classmethod
    def open(cls, settings: Settings | None = None, migrate: bool = True) -> "Registry":
        """Open the registry that the settings (env / bench.toml) describe, migrating its database."""
        settings = settings or Settings.load()
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = db.make_engine(settings.database_url)
        if migrate:
            db.ensure_schema(engine)
        remote = RemoteRegistry(settings.server, settings.token) if settings.server else None
        return cls(settings, engine, Storage(settings.storage_url, settings.storage_options), remote)

    def close(self) -> None:
        self.engine.dispose()
        if self.remote is not None:
            self.remote.close()

    # -- publishing (publishing.py) ---------------------------------------------------------------
    def import_path(self, path: str | Path, dataset_id: str, format: str | None = None, *,
                    allow_nonfinite: bool = False, description: str | None = None, license: str | None = None,
                    env_id: str | None = None, env_kwargs: dict[str, Any] | None = None,
                    progress: Callable[[str], None] | None = None, tags: list[str] | None = None,
                    private: bool | None = None, source_options: dict[str, Any] | None = None) -> VersionInfo:
        """Import a file or directory (format detected unless given) as the next version.

        ``env_id`` names the gymnasium environment that evaluates the data; its spaces then describe the
        data and must match the arrays. ``source_options`` go to the importer (e.g. a real-robot log's
        robot, task and lab). Every input is checked by the import guards first (interop/guards.py).
        """
        info = self.show(self.publisher.import_path(
            path, dataset_id, format, allow_nonfinite=allow_nonfinite, description=description, license=license,
            env_id=env_id, env_kwargs=env_kwargs, progress=progress, tags=tags, private=private,
            source_options=source_options))
        register_named_environment(self.environments, info.env)  # its reference scores, for the runs on it
        return info

    def publish(self, data: Trajectories, dataset_id: str, *, description: str | None = None,
                license: str | None = None, env: dict[str, Any] | None = None,
                provenance: dict[str, Any] | None = None, media: dict[str, bytes | Path] | None = None,
                originals: dict[str, Path] | None = None, allow_nonfinite: bool = False,
                progress: Callable[[str], None] | None = None, tags: list[str] | None = None,
                private: bool | None = None) -> VersionInfo:
        """Publish in-memory trajectories as the next version of ``namespace/name``.

        ``tags`` are added to the dataset's tags; ``private`` (if given) sets who may read it.
        """
        info = self.show(self.publisher.publish(
            data, dataset_id, description=description, license=license, env=env, provenance=provenance, media=media,
            originals=originals, allow_nonfinite=allow_nonfinite, progress=progress, tags=tags, private=private))
        register_named_environment(self.environments, info.env)
        return info

    def check_publishable(self, target: DatasetId) -> None:
        self.publisher.check_publishable(target)

    # -- reading ---------------------------------------------------------------------------------
    def _resolve_row(self, session, dataset_id: str) -> VersionRow:
        target = DatasetId.parse(dataset_id)
        if target.version is not None:
            row = find_version_row(session, target)
            if row is None or row.state == VersionState.STAGING:
                versions = session.scalars(
                    sa.select(VersionRow.version).join(DatasetRow)
                    .where(DatasetRow.namespace == target.namespace, DatasetRow.name == target.name,
                           DatasetRow.private.is_(False), VersionRow.state.in_([VersionState.PUBLISHED, VersionState.YANKED]))
                    .order_by(VersionRow.version)).all()
                hint = (f"; {target.unversioned} has {', '.join(f'v{v}' for v in versions)}" if versions
                        else self._near_names(session, target))
                raise NotFound(f"dataset version {target} not found{hint}")
            return row
        rows = session.scalars(
            sa.select(VersionRow).join(DatasetRow)
            .where(DatasetRow.namespace == target.namespace, DatasetRow.name == target.name,
                   VersionRow.state.in_([VersionState.PUBLISHED, VersionState.YANKED]))
            .order_by(VersionRow.version.desc())
        ).all()
        if not rows:
            raise NotFound(f"dataset {target} not found{self._near_names(session, target)}")
        published = [row for row in rows if row.state == VersionState.PUBLISHED]
        if not published:
            raise NotFound(f"every version of {target} is yanked; name one exactly, e.g. {target}-v{rows[0].version}")
        return published[0]

    @staticmethod
    def _near_names(session, target: DatasetId) -> str:
        """Public dataset names near a mistyped one (private ones are never hinted at: their names are private)."""
        names = session.execute(sa.select(DatasetRow.namespace, DatasetRow.name)
                                .where(DatasetRow.private.is_(False))).all()
        return did_you_mean(target.unversioned, (f"{namespace}/{name}" for namespace, name in names))

    def show(self, dataset_id: str) -> VersionInfo:
        with self.session() as session:
            row = self._resolve_row(session, dataset_id)
            row.dataset  # load the relationship inside the session
            return VersionInfo.from_row(row)

    def list(self, namespace: str | None = None, include_yanked: bool = False) -> list[VersionInfo]:
        states = [VersionState.PUBLISHED] + ([VersionState.YANKED] if include_yanked else [])
        query = (sa.select(VersionRow).join(DatasetRow).where(VersionRow.state.in_(states))
                 .order_by(DatasetRow.namespace, DatasetRow.name, VersionRow.version))
        if namespace:
            namespace = namespace.strip("/")
            query = query.where(sa.or_(DatasetRow.namespace == namespace,
                                       DatasetRow.namespace.startswith(namespace + "/", autoescape=True)))
        with self.session() as session:
            rows = session.scalars(query).all()
            return [VersionInfo.from_row(row) for row in rows]

    def search(self, text: str | None = None, env: str | None = None, tag: str | None = None,
               namespace: str | None = None, readable: set[str] | None = None, limit: int = 50,
               offset: int = 0, min_steps: int | None = None, max_steps: int | None = None,
               published_after: dt.datetime | None = None,
               published_before: dt.datetime | None = None) -> tuple[int, list[VersionInfo]]:
        """The latest published version of each matching dataset, one page of them, and the total.

        ``text`` matches the id or the description; ``env`` the environment's catalogue name or
        gymnasium id; ``readable`` lists the top-level namespaces whose private datasets the
        caller may see (None: all of them).
        """
        latest = (sa.select(VersionRow.dataset_id, sa.func.max(VersionRow.version).label("version"))
                  .where(VersionRow.state == VersionState.PUBLISHED).group_by(VersionRow.dataset_id).subquery())
        query = (sa.select(VersionRow).join(DatasetRow)
                 .join(latest, sa.and_(latest.c.dataset_id == VersionRow.dataset_id, latest.c.version == VersionRow.version)))
        if text:
            pattern = f"%{text.lower()}%"
            full_name = DatasetRow.namespace + "/" + DatasetRow.name
            query = query.where(sa.or_(sa.func.lower(full_name).like(pattern),
                                       sa.func.lower(sa.func.coalesce(VersionRow.description, "")).like(pattern)))
        if env:
            # The env reference is JSON; its text holds the catalogue name and the gymnasium id.
            query = query.where(sa.cast(VersionRow.env, sa.Text).like(f'%"{env}"%'))
        if tag:
            query = query.where(DatasetRow.tags.any(DatasetTagRow.tag == tag))
        if min_steps is not None:
            query = query.where(VersionRow.steps >= min_steps)
        if max_steps is not None:
            query = query.where(VersionRow.steps <= max_steps)
        if published_after is not None:
            query = query.where(VersionRow.published_at >= published_after)
        if published_before is not None:
            query = query.where(VersionRow.published_at < published_before)
        if namespace:
            namespace = namespace.strip("/")
            query = query.where(sa.or_(DatasetRow.namespace == namespace,
                                       DatasetRow.namespace.startswith(namespace + "/", autoescape=True)))
        if readable is not None:
            visible = [DatasetRow.private.is_(False)]
            for top in sorted(readable):
                visible += [DatasetRow.namespace == top, DatasetRow.namespace.startswith(top + "/", autoescape=True)]
            query = query.where(sa.or_(*visible))
        with self.session() as session:
            total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
            rows = session.scalars(query.order_by(DatasetRow.namespace, DatasetRow.name).limit(limit).offset(offset)).all()
            return int(total or 0), [VersionInfo.from_row(row) for row in rows]

    def versions(self, dataset_id: str) -> list[VersionInfo]:
        """Every published or yanked version of ``namespace/name``, oldest first."""
        target = DatasetId.parse(dataset_id)
        with self.session() as session:
            rows = session.scalars(
                sa.select(VersionRow).join(DatasetRow)
                .where(DatasetRow.namespace == target.namespace, DatasetRow.name == target.name,
                       VersionRow.state.in_([VersionState.PUBLISHED, VersionState.YANKED]))
                .order_by(VersionRow.version)).all()
            if not rows:
                raise NotFound(f"dataset {target.unversioned} not found")
            return [VersionInfo.from_row(row) for row in rows]

    def update_settings(self, dataset_id: str, tags: list[str] | None = None, private: bool | None = None) -> VersionInfo:
        """Add tags to a dataset or change who may read it (applies to every version)."""
        info = self.show(dataset_id)
        tags = check_tags(tags or [])
        with self.session.begin() as session:
            dataset = session.scalar(sa.select(DatasetRow).where(
                DatasetRow.namespace == info.namespace, DatasetRow.name == info.name))
            apply_dataset_settings(session, dataset, tags, private)
        return self.show(dataset_id)

    def delete(self, dataset_id: str) -> VersionInfo:
        """Remove one version for good: its row first (readers stop seeing it), then its files.

        Deleting is for mistakes (a private upload that should not exist); a published version
        others may depend on should be yanked instead.
        """
        target = DatasetId.parse(dataset_id)
        if target.version is None:
            raise InvalidInput(f"delete needs an exact version, e.g. {target}-v1")
        info = self.show(str(target))
        with self.session.begin() as session:
            row = self._resolve_row(session, str(target))
            session.delete(row)
            session.flush()
            delete_if_empty(session, target)
        self.storage.remove(info.storage_path)
        return info

    def subset_dir(self, dataset_id: str, start: int, stop: int) -> Path:
        """Episodes ``start:stop`` of a version as a bench-format directory of their own (cached, verified).

        The subset is deterministic (its manifest takes the version's creation time), so a server
        restarted mid-download serves the same bytes and a client can resume.
        """
        info = self.show(dataset_id)
        if start < 0 or stop <= start or stop > (info.episodes or 0):
            raise InvalidInput(f"episode range {start}:{stop} is outside 0:{info.episodes} of {info.id}")
        if (start, stop) == (0, info.episodes):
            return self.local_dir(info.id)
        target = self.settings.cache_dir / SUBSETS / f"{info.manifest_sha256}-{start}-{stop}"
        if (target / MANIFEST).is_file():
            os.utime(target)  # recently used: evicted last
            return target
        version = open_lazy_version(self.storage, self.settings.cache_dir, info.id, info.storage_path,
                                    info.manifest_sha256)
        data, manifest = version.episode_range(start, stop), version.manifest
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            write_version(partial, data, {
                key: manifest.get(key) for key in ("id", "namespace", "name", "version", "created_at", "description",
                                                   "license", "env", "provenance")
            } | {"subset": {"of": info.id, "episodes": [start, stop], "content_sha256": info.content_sha256}},
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(partial, target)
        except OSError:
            if not (target / MANIFEST).is_file():
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        trim_cache(self.settings.cache_dir, self.settings.subset_cache_bytes, keep={target})
        return target

    def manifest(self, dataset_id: str) -> dict[str, Any]:
        info = self.show(dataset_id)
        raw = self.storage.read_bytes(f"{info.storage_path}/{MANIFEST}")
        if _sha256_bytes(raw) != info.manifest_sha256:
            raise IntegrityError(f"{info.id} {MANIFEST}: sha256 differs from the registry's record; the stored "
                                 "version was changed")
        return parse_manifest(raw, f"{info.id} {MANIFEST}")

    def local_dir(self, dataset_id: str) -> Path:
        """A local directory holding the version: in place on local storage, else a verified cached copy."""
        info = self.show(dataset_id)
        return stored_version_dir(self.storage, self.settings.cache_dir, info.storage_path, info.manifest_sha256)

    def load(self, dataset_id: str, download: bool = True, in_memory: bool | None = None) -> Dataset | LazyDataset:
        """A version: its arrays in memory (a Dataset), or read on demand (a LazyDataset, ``in_memory=False``).
        ``namespace/name`` means its latest published version.

        By default (``in_memory=None``) a version that decodes to more than BENCH_LOAD_MAX_BYTES is read on
        demand and any other is loaded. A version this registry does not hold is downloaded from the server it
        names (BENCH_SERVER), when ``download``: verified file by file, kept under the cache directory and
        loaded from there next time.
        """
        try:
            info = self.show(dataset_id)
        except NotFound:
            if self.remote is None or not download:
                raise
            return self._load_remote(dataset_id)
        if info.yanked:
            warnings.warn(f"{info.id} is yanked: {info.yank_reason}", YankedVersionWarning, stacklevel=2)
        if in_memory is False or (in_memory is None and
                                  decoded_bytes(self.manifest(info.id)) > self.settings.load_max_bytes):
            return open_lazy_version(self.storage, self.settings.cache_dir, info.id, info.storage_path,
                                     info.manifest_sha256)
        return load_stored_version(self.storage, self.settings.cache_dir, info.id, info.storage_path,
                                   info.manifest_sha256)

    def episode_table(self, dataset_id: str) -> pa.Table:
        """episodes.parquet of a version (one row per episode: length, return, ends, attributes), verified."""
        info = self.show(dataset_id)
        raw = self.storage.read_bytes(f"{info.storage_path}/{EPISODES}")
        if _sha256_bytes(raw) != self.manifest(info.id)["files"].get(EPISODES, {}).get("sha256"):
            raise IntegrityError(f"{EPISODES}: sha256 differs from the manifest; the stored version is damaged")
        # One thread: a CLI that exits right after must not leave Arrow's pool threads behind.
        return pq.read_table(io.BytesIO(raw), use_threads=False)

    def _load_remote(self, dataset_id: str) -> Dataset:
        root = self.settings.cache_dir / REMOTE / hashlib.sha256(self.remote.server.encode()).hexdigest()[:16]
        target = DatasetId.parse(dataset_id)
        if target.version is None:  # namespace/name: the server says which version is its latest
            target = DatasetId.parse(self.remote.show(dataset_id)["id"])
        directory = root / storage_path_of(target)
        if not directory.is_dir():  # an exact version is immutable: once here, the server is not asked again
            directory.parent.mkdir(parents=True, exist_ok=True)
            self.remote.download(str(target), directory)  # every file checked against the manifest's sha256
        # The manifest was checked on download; the files are checked against it on every load.
        data, manifest, table = read_version(directory, expected_manifest_sha256=file_sha256(directory / MANIFEST))
        return Dataset(str(target), data, manifest, table)

    def episode(self, dataset_id: str, index: int) -> Episode:
        """One episode, reading (and verifying) only the chunks it touches: what the API's viewers serve."""
        info = self.show(dataset_id)
        if not 0 <= index < (info.episodes or 0):
            raise NotFound(f"{info.id} has episodes 0 to {(info.episodes or 0) - 1}, not {index}")
        return open_lazy_version(self.storage, self.settings.cache_dir, info.id, info.storage_path,
                                 info.manifest_sha256).episode(index)

    def verify(self, dataset_id: str) -> list[str]:
        """Re-hash every stored file against the manifest; return one line per problem (empty: intact)."""
        info = self.show(dataset_id)
        problems = []
        try:
            manifest_bytes = self.storage.read_bytes(f"{info.storage_path}/{MANIFEST}")
        except FileNotFoundError:
            return [f"{MANIFEST}: missing; the version cannot be checked or loaded"]
        if _sha256_bytes(manifest_bytes) != info.manifest_sha256:
            problems.append(f"{MANIFEST}: sha256 differs from the registry's record")
        try:
            manifest = parse_manifest(manifest_bytes, MANIFEST)
        except BenchError as exc:  # nothing else can be checked without it: one line says so
            return [f"{exc}; the version cannot be checked or loaded"]
        stored = self.storage.sizes(info.storage_path)
        for name, entry in manifest["files"].items():
            if not isinstance(entry, dict) or not {"size", "sha256"} <= set(entry):
                problems.append(f"{name}: the manifest's entry is damaged")
            elif name not in stored:
                problems.append(f"{name}: missing")
            elif stored[name] != entry["size"] or self.storage.sha256(f"{info.storage_path}/{name}") != entry["sha256"]:
                problems.append(f"{name}: sha256 differs from the manifest")
        for name in sorted(set(stored) - set(manifest["files"]) - {MANIFEST}):
            problems.append(f"{name}: not in the manifest")
        return problems

    def export(self, dataset_id: str, format: str, out: str | Path) -> list[str]:
        return write_export(self.load(dataset_id), format, Path(out))

    # -- lifecycle -------------------------------------------------------------------------------
    def manifest_digests(self) -> set[str]:
        """The manifest sha256 of every version there is (any state): what caches keyed by a version may keep."""
        with self.session() as session:
            return set(session.scalars(sa.select(VersionRow.manifest_sha256).where(
                VersionRow.manifest_sha256.is_not(None))).all())

    def gc(self, older_than: dt.timedelta = STALE_AFTER) -> GcReport:
        """Remove what crashed imports and uploads left behind, and trim the download cache (housekeeping.py)."""
        return collect_garbage(self.session, self.storage, self.settings, older_than)

    def yank(self, dataset_id: str, reason: str) -> VersionInfo:
        target = DatasetId.parse(dataset_id)
        if target.version is None:
            raise InvalidInput(f"yank needs an exact version, e.g. {target}-v1")
        if not reason or not reason.strip():
            raise InvalidInput("yank needs a reason")
        with self.session.begin() as session:
            row = self._resolve_row(session, dataset_id)
            # Conditional, so that of two concurrent yanks exactly one succeeds and the other is told.
            moved = session.execute(sa.update(VersionRow).where(VersionRow.id == row.id,
                                                                VersionRow.state == VersionState.PUBLISHED)
                                    .values(state=VersionState.YANKED, yanked_at=db.utcnow(), yank_reason=reason.strip()))
            if moved.rowcount != 1:
                raise Conflict(f"{target} is already yanked")
        return self.show(dataset_id)

def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
