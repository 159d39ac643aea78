"""A bench-format version directory (e.g. one exported or downloaded), imported as a new version.

The directory comes from anyone, so before a chunk is decoded: its files must match its own
manifest (sizes and sha256, no extra or missing chunk), and the arrays that zarr.json declares must
fit the import limits. After decoding, the arrays must hash to the manifest's content_sha256.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import pyarrow.parquet as pq

from bench.datasets.format import EPISODES, MANIFEST, STEPS, content_sha256, read_manifest, read_version, verify_files
from bench.datasets.interop.guards import DecodedBudget, check_directory, json_text
from bench.datasets.interop.source import SourceData
from bench.datasets.lazy import LazyDataset
from bench.datasets.trajectories import EpisodeParts
from bench.errors import IntegrityError, InvalidInput
from bench.platform.settings import ImportLimits


def detect(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def _check_declared_sizes(path: Path, manifest: dict, limits: ImportLimits) -> int:
    """Check the arrays that zarr.json declares against the import limits; return their decoded bytes."""
    arrays = manifest.get("arrays")
    if not isinstance(arrays, dict):
        raise InvalidInput(f"{path.name}: the manifest has no arrays table")
    budget = DecodedBudget(limits, check_directory(path, limits), path.name)
    total = 0
    for name in arrays:
        metadata_file = path / STEPS / str(name) / "zarr.json"
        if ".." in str(name).split("/") or not metadata_file.is_file():
            raise InvalidInput(f"{path.name}: array {str(name)[:100]!r} has no zarr.json")
        metadata = json_text(metadata_file.read_bytes(), f"{STEPS}/{name}/zarr.json")
        shape, data_type = metadata.get("shape"), metadata.get("data_type")
        if not isinstance(shape, list) or not all(isinstance(n, int) for n in shape) or not isinstance(data_type, str):
            raise InvalidInput(f"{STEPS}/{name}/zarr.json: no shape or data_type")
        try:
            dtype = np.dtype(data_type)
        except TypeError:
            raise InvalidInput(f"{STEPS}/{name}/zarr.json: unknown data_type {data_type[:50]!r}") from None
        if dtype.kind not in "biuf":
            raise InvalidInput(f"{STEPS}/{name}/zarr.json: data_type {data_type[:50]!r} is not a number type")
        budget.add(str(name), shape, dtype.itemsize)
        total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    budget.check_ratio()
    return total


def read(path: Path, limits: ImportLimits = ImportLimits()) -> SourceData:
    """The version's episodes: in memory, or, when they decode to more than ``limits.part_bytes``, as
    EpisodeParts read a range of episodes at a time, whose written content must hash to the manifest's."""
    manifest = read_manifest(path)  # raises a clear error for a foreign manifest
    decoded = _check_declared_sizes(path, manifest, limits)
    notes = [f"imported from bench version {manifest.get('id')} (content {str(manifest.get('content_sha256'))[:12]})"]
    if decoded > limits.part_bytes:
        return SourceData(_in_parts(path, manifest, limits.part_bytes), "bench", notes, env=manifest.get("env"),
                          description=manifest.get("description"))
    try:
        data, manifest, _ = read_version(path)
    except IntegrityError as exc:
        raise InvalidInput(f"{path.name}: the copy does not match its own manifest ({exc})") from None
    except (OSError, KeyError, ValueError) as exc:
        raise InvalidInput(f"{path.name}: bench version is incomplete or corrupt ({type(exc).__name__})") from None
    if content_sha256(data) != manifest["content_sha256"]:
        raise InvalidInput(f"{path.name}: the arrays do not match the manifest's content_sha256; the copy is corrupt")
    return SourceData(data, "bench", notes, env=manifest.get("env"), description=manifest.get("description"))


def _in_parts(path: Path, manifest: dict, part_bytes: int) -> EpisodeParts:
    """Every file checked against the copy's own manifest first (nothing extra, nothing missing); then the
    episodes a range at a time, each chunk verified again as it is decoded (LazyDataset)."""
    try:
        verify_files(path, manifest)
        table = pq.read_table(path / EPISODES)
        version = LazyDataset(str(manifest.get("id") or path.name), path, lambda names: None, manifest, table)
    except IntegrityError as exc:
        raise InvalidInput(f"{path.name}: the copy does not match its own manifest ({exc})") from None
    except (OSError, KeyError, ValueError) as exc:
        raise InvalidInput(f"{path.name}: bench version is incomplete or corrupt ({type(exc).__name__})") from None

    def parts():
        try:
            yield from version.parts(part_bytes)
        except IntegrityError as exc:
            raise InvalidInput(f"{path.name}: the copy does not match its own manifest ({exc})") from None
        except (OSError, KeyError, ValueError) as exc:
            raise InvalidInput(f"{path.name}: bench version is incomplete or corrupt ({type(exc).__name__})") from None

    stream = EpisodeParts(parts)
    stream.expected_content_sha256 = manifest.get("content_sha256")
    return stream
