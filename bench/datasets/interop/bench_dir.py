"""A bench-format version directory (e.g. one exported or downloaded), imported as a new version.

The directory comes from anyone, so before a chunk is decoded: its files must match its own
manifest (sizes and sha256, no extra or missing chunk), and the arrays that zarr.json declares must
fit the import limits. After decoding, the arrays must hash to the manifest's content_sha256.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.datasets.format import MANIFEST, STEPS, content_sha256, read_manifest, read_version
from bench.datasets.interop.guards import DecodedBudget, check_directory, json_text
from bench.datasets.interop.source import SourceData
from bench.errors import IntegrityError, InvalidInput
from bench.platform.settings import ImportLimits


def detect(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def _check_declared_sizes(path: Path, manifest: dict, limits: ImportLimits) -> None:
    arrays = manifest.get("arrays")
    if not isinstance(arrays, dict):
        raise InvalidInput(f"{path.name}: the manifest has no arrays table")
    budget = DecodedBudget(limits, check_directory(path, limits), path.name)
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
    budget.check_ratio()


def read(path: Path, limits: ImportLimits = ImportLimits()) -> SourceData:
    manifest = read_manifest(path)  # raises a clear error for a foreign manifest
    _check_declared_sizes(path, manifest, limits)
    try:
        data, manifest, _ = read_version(path)
    except IntegrityError as exc:
        raise InvalidInput(f"{path.name}: the copy does not match its own manifest ({exc})") from None
    except (OSError, KeyError, ValueError) as exc:
        raise InvalidInput(f"{path.name}: bench version is incomplete or corrupt ({type(exc).__name__})") from None
    if content_sha256(data) != manifest["content_sha256"]:
        raise InvalidInput(f"{path.name}: the arrays do not match the manifest's content_sha256; the copy is corrupt")
    notes = [f"imported from bench version {manifest.get('id')} (content {manifest['content_sha256'][:12]})"]
    return SourceData(data, "bench", notes, env=manifest.get("env"), description=manifest.get("description"))
