"""Published versions read by their storage location alone, no database: whole loads, single episodes, episode ranges.

What remote workers (a Ray node, a process pool) and the API's viewers use. Every file read is first
checked against the manifest, and the manifest against the sha256 the registry recorded
(format.read_version, format.read_rows): what is loaded is what was published.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any, Callable

import pyarrow.parquet as pq

from bench.datasets.dataset import Dataset
from bench.datasets.format import EPISODES, MANIFEST, parse_manifest, read_manifest, read_version, verify_files
from bench.datasets.lazy import LazyDataset
from bench.datasets.storage import Storage
from bench.errors import IntegrityError

# Partial local copies of remote versions: just the files that single episodes needed.
PARTS_SUFFIX = ".parts"


def stored_version_dir(storage: Storage, cache_dir: Path, storage_path: str, manifest_sha256: str) -> Path:
    """A published version's files as a local directory: in place on local storage, else a verified cache."""
    if storage.is_local:
        return storage.local_path(storage_path)
    cached = cache_dir / manifest_sha256
    if not (cached / MANIFEST).is_file():
        manifest = parse_manifest(storage.read_bytes(f"{storage_path}/{MANIFEST}"), MANIFEST)
        storage.download_dir(storage_path, cached, manifest["files"])
    return cached


def open_stored_parts(storage: Storage, cache_dir: Path, storage_path: str,
                      manifest_sha256: str) -> tuple[Path, Callable[[list[str]], None], dict[str, Any], Any]:
    """A published version for reading parts of it: (directory, ensure, verified manifest, episode table).

    On local storage the directory is the version itself. On remote storage it is a whole cached copy
    when there is one, else ``cache/<manifest sha256>.parts``, into which ``ensure(names)`` fetches
    just the files a read needs (each appears whole or not at all; the reader verifies its hash).
    """
    known: dict[str, Any] = {}  # the verified manifest, once read
    if storage.is_local:
        directory, ensure = storage.local_path(storage_path), (lambda names: None)
    elif (cache_dir / manifest_sha256 / MANIFEST).is_file():
        directory, ensure = cache_dir / manifest_sha256, (lambda names: None)
    else:
        directory = cache_dir / f"{manifest_sha256}{PARTS_SUFFIX}"

        def ensure(names: list[str]) -> None:
            """Fetch the missing files; one that does not match the manifest is never kept."""
            missing = [name for name in names if not (directory / name).is_file()]
            for name in missing:
                raw = storage.read_bytes(f"{storage_path}/{name}")
                expected = manifest_sha256 if name == MANIFEST else known["files"].get(name, {}).get("sha256")
                if hashlib.sha256(raw).hexdigest() != expected:
                    raise IntegrityError(f"{name}: sha256 differs from the manifest; the stored version is damaged "
                                         "(bench datasets verify lists every problem)")
                target = directory / name
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f"{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
                partial.write_bytes(raw)
                os.replace(partial, target)
            if missing:
                os.utime(directory)  # recently used, for the cache's eviction

        ensure([MANIFEST])
    manifest = read_manifest(directory, manifest_sha256)
    known.update(manifest)
    ensure([EPISODES])
    verify_files(directory, manifest, [EPISODES])
    return directory, ensure, manifest, pq.read_table(directory / EPISODES)


def open_lazy_version(storage: Storage, cache_dir: Path, dataset_id: str, storage_path: str,
                      manifest_sha256: str) -> LazyDataset:
    """A published version to read on demand (episodes, ranges, parts), by its storage location alone."""
    directory, ensure, manifest, table = open_stored_parts(storage, cache_dir, storage_path, manifest_sha256)
    return LazyDataset(dataset_id, directory, ensure, manifest, table)


def load_stored_version(storage: Storage, cache_dir: Path, dataset_id: str, storage_path: str,
                        manifest_sha256: str) -> Dataset:
    """Load a version by its storage location alone (no database): how remote workers read datasets."""
    data, manifest, table = read_version(stored_version_dir(storage, cache_dir, storage_path, manifest_sha256),
                                         expected_manifest_sha256=manifest_sha256)
    return Dataset(dataset_id, data, manifest, table)
