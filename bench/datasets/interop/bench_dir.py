"""A bench-format version directory (e.g. one exported or downloaded), imported as a new version."""

from __future__ import annotations

from pathlib import Path

from bench.datasets.format import MANIFEST, content_sha256, read_manifest, read_version
from bench.datasets.interop import SourceData
from bench.errors import InvalidInput


def detect(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def read(path: Path) -> SourceData:
    read_manifest(path)  # raises a clear error for a foreign manifest
    try:
        data, manifest, _ = read_version(path)
    except (OSError, KeyError, ValueError) as exc:
        raise InvalidInput(f"{path}: bench version is incomplete or corrupt ({exc})") from exc
    if content_sha256(data) != manifest["content_sha256"]:
        raise InvalidInput(f"{path}: the arrays do not match the manifest's content_sha256; the copy is corrupt")
    notes = [f"imported from bench version {manifest.get('id')} (content {manifest['content_sha256'][:12]})"]
    return SourceData(data, "bench", notes, env=manifest.get("env"), description=manifest.get("description"))
