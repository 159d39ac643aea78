"""Importers and exporters for the formats users already have, chosen by name or detected from the path.

Each format module offers ``detect(path) -> bool`` and ``read(path) -> SourceData``; those that
can be written also offer ``write(dataset, out) -> list[str]`` (notes on anything not carried).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.datasets.trajectories import Trajectories
from bench.errors import InvalidInput


@dataclass
class SourceData:
    """What an importer read: the trajectories plus what the manifest should say about them."""

    trajectories: Trajectories
    source_format: str
    # Notes on how the source was interpreted (e.g. dropped transitions), kept in the manifest.
    notes: list[str] = field(default_factory=list)
    env: dict[str, Any] | None = None
    description: str | None = None
    source_metadata: dict[str, Any] = field(default_factory=dict)


def _formats() -> dict[str, Any]:
    from bench.datasets.interop import bench_dir, d4rl, minari_dir, ogbench

    # Detection order matters: a bench version and a Minari dataset are both directories.
    return {"bench": bench_dir, "minari": minari_dir, "d4rl": d4rl, "ogbench": ogbench}


IMPORT_FORMATS = ("bench", "minari", "d4rl", "ogbench")
EXPORT_FORMATS = ("minari", "d4rl")


def detect_format(path: Path) -> str:
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or directory")
    for name, module in _formats().items():
        if module.detect(path):
            return name
    raise InvalidInput(
        f"{path}: unknown format; expected a D4RL .hdf5, an OGBench .npz, a Minari dataset directory "
        "or a bench version directory (use --format to force one)"
    )


def read_source(path: Path, format: str | None = None) -> SourceData:
    path = Path(path).expanduser()
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or directory")
    name = format or detect_format(path)
    if name not in IMPORT_FORMATS:
        raise InvalidInput(f"unknown import format {name!r}; choose one of {', '.join(IMPORT_FORMATS)}")
    return _formats()[name].read(path)


def write_export(dataset, format: str, out: Path) -> list[str]:
    if format not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    return _formats()[format].write(dataset, Path(out).expanduser())
