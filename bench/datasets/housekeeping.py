"""Housekeeping: what crashed writers, killed servers and anonymous downloads leave behind, and who removes it.

``collect_garbage`` (``bench datasets gc``, and every API start-up) removes staging rows whose writer
is gone with their files, staging directories, version directories with no row, upload directories
no open upload points to, and holds the download cache (episode-range subsets, partial copies of
remote versions) under its size bound with ``trim_cache``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa

from bench.datasets.storage import Storage
from bench.datasets.stored import PARTS_SUFFIX
from bench.platform import db
from bench.platform.db import DatasetRow, UploadRow, UploadState, VersionRow, VersionState
from bench.platform.settings import Settings

# Episode-range subsets built for downloads, under the cache directory.
SUBSETS = "subsets"
# Versions Registry.load downloaded from a bench server (BENCH_SERVER): cache/remote/<server hash>/<ns>/<name>/vN.
# Like whole cached copies of remote storage, they are what training loads and are not trimmed.
REMOTE = "remote"
# An upload directory with no open upload is left this long first: create() makes it before its row commits.
UPLOAD_DIR_GRACE = dt.timedelta(minutes=10)
# A staging row from another host is only presumed dead after this long (we cannot see its pid).
STALE_AFTER = dt.timedelta(hours=24)


@dataclass(frozen=True)
class GcReport:
    staging_versions: list[str]
    staging_dirs: list[str]
    orphan_dirs: list[str]
    upload_dirs: list[str] = ()  # upload directories with no open upload behind them
    cache_entries: list[str] = ()  # subsets and partial copies over the cache's size bound

    @property
    def removed(self) -> list[str]:
        return [*self.staging_versions, *self.staging_dirs, *self.orphan_dirs, *self.upload_dirs, *self.cache_entries]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def collect_garbage(session: Callable, storage: Storage, settings: Settings,
                    older_than: dt.timedelta = STALE_AFTER) -> GcReport:
    """Remove what crashed imports left: staging rows whose writer is gone, their files, staging dirs; version
    directories with no row; upload directories with no open upload; and trim the download cache."""
    host = socket.gethostname()
    now = db.utcnow()
    removed_versions, removed_dirs = [], []
    with session() as reading:
        staging_rows = reading.scalars(sa.select(VersionRow).where(VersionRow.state == VersionState.STAGING)).all()
        candidates = []
        for row in staging_rows:
            created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=dt.timezone.utc)
            alive = pid_alive(row.writer_pid) if row.writer_host == host else now - created < older_than
            if not alive:
                candidates.append((row.id, row.storage_path, f"{row.dataset.namespace}/{row.dataset.name}-v{row.version}"))
    for row_id, storage_path, label in candidates:
        storage.remove(storage_path)
        with session.begin() as writing:
            writing.execute(sa.delete(VersionRow).where(VersionRow.id == row_id, VersionRow.state == VersionState.STAGING))
        removed_versions.append(label)
    if settings.staging_dir.is_dir():
        for entry in sorted(settings.staging_dir.iterdir()):
            entry_host, _, rest = entry.name.rpartition("-")[0].rpartition("-")
            pid = rest if rest.isdigit() else None
            if entry_host != host or pid is None or not pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
                removed_dirs.append(str(entry))
    orphans = remove_orphan_dirs(session, storage)
    uploads = remove_upload_leftovers(session, settings.home / "uploads", older_than=min(older_than, UPLOAD_DIR_GRACE))
    cached = trim_cache(settings.cache_dir, settings.subset_cache_bytes)
    return GcReport(removed_versions, removed_dirs, orphans, uploads, cached)


def remove_upload_leftovers(session: Callable, root: Path, older_than: dt.timedelta) -> list[str]:
    """Upload directories whose upload is no longer open (or whose row was never committed: a server
    killed between making the directory and committing), once they are ``older_than`` old."""
    if not root.is_dir():
        return []
    with session() as reading:
        live = set(reading.scalars(sa.select(UploadRow.id).where(
            UploadRow.state.in_([UploadState.OPEN, UploadState.IMPORTING]))).all())
    cutoff = dt.datetime.now().timestamp() - older_than.total_seconds()
    removed = []
    for entry in sorted(root.iterdir()):
        if entry.name not in live and entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed.append(str(entry))
    return removed


def remove_orphan_dirs(session: Callable, storage: Storage) -> list[str]:
    """Version directories in storage with no row at all (e.g. a row deleted after a crash)."""
    removed = []
    with session() as reading:
        known = set(reading.scalars(sa.select(VersionRow.storage_path)).all())
        datasets = reading.scalars(sa.select(DatasetRow)).all()
        prefixes = [f"{d.namespace}/{d.name}" for d in datasets]
    for prefix in prefixes:
        for child in storage.list_dirs(prefix):
            path = f"{prefix}/{child}"
            if (child.startswith("v") and child[1:].isdigit() or child.endswith(".partial")) and path not in known:
                storage.remove(path)
                removed.append(path)
    return removed


def _tree_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def trim_cache(cache_dir: Path, max_bytes: int, keep: set[Path] = frozenset()) -> list[str]:
    """Hold what requests leave in the cache (episode-range subsets, partial copies of remote versions) under
    ``max_bytes``: least recently used first, never what is in ``keep``, leftovers of crashed writers always.

    Whole cached copies of remote versions (``cache/<sha256>``) are what training loads and are not
    counted. Everything removed is rebuilt the same way on the next request (subsets are deterministic).
    """
    removed, entries = [], []
    subsets = cache_dir / SUBSETS
    candidates = list(subsets.iterdir()) if subsets.is_dir() else []
    candidates += [p for p in cache_dir.iterdir() if p.name.endswith(PARTS_SUFFIX)] if cache_dir.is_dir() else []
    for entry in candidates:
        if ".partial-" in entry.name:
            pid = entry.name.rsplit(".partial-", 1)[1].split("-")[0]
            if not (pid.isdigit() and pid_alive(int(pid))):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(str(entry))
            continue
        try:
            entries.append((entry.stat().st_mtime, entry, _tree_bytes(entry)))
        except FileNotFoundError:  # removed by a concurrent trim
            continue
    total = sum(size for _, _, size in entries)
    for _, entry, size in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes:
            break
        if entry in keep:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(str(entry))
        total -= size
    return removed


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id runs on this host (a staging writer, an upload's importer)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
