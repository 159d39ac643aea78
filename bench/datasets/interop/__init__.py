"""Importers and exporters for the formats users already have, chosen by name or detected from the path.

Each format module offers ``detect(path) -> bool`` and ``read(path) -> SourceData``; those that
can be written also offer ``write(dataset, out) -> list[str]`` (notes on anything not carried).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.datasets.interop import guards
from bench.datasets.interop.source import SourceData
from bench.errors import BenchError, InvalidInput
from bench.platform.settings import ImportLimits


__all__ = ["SourceData", "read_source", "write_export", "detect_format", "IMPORT_FORMATS", "EXPORT_FORMATS"]


def _formats() -> dict[str, Any]:
    # Imported when first needed (start-up time): the format modules load h5py, pyarrow, minari and PyAV.
    from bench.datasets.interop import bench_dir, d4rl, lerobot, minari_dir, ogbench, robot_folder, rosbag

    # Detection order matters: bench versions, Minari datasets, LeRobot datasets, robot folders and bag
    # directories are all directories; each detector looks for its own marker file.
    return {"bench": bench_dir, "minari": minari_dir, "lerobot": lerobot, "robot-folder": robot_folder,
            "rosbag": rosbag, "d4rl": d4rl, "ogbench": ogbench}


IMPORT_FORMATS = ("bench", "minari", "lerobot", "robot-folder", "rosbag", "d4rl", "ogbench")
ROBOT_LOG_FORMATS = ("lerobot", "robot-folder", "rosbag")
EXPORT_FORMATS = ("minari", "d4rl")


def detect_format(path: Path) -> str:
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or directory")
    for name, module in _formats().items():
        if module.detect(path):
            return name
    raise InvalidInput(
        f"{path}: unknown format; expected a D4RL .hdf5, an OGBench .npz, a Minari dataset directory, a bench "
        "version directory, a LeRobot v3 dataset, a robot-log folder with robot.json or a ROS bag (use --format to force one)"
    )


def read_source(path: Path, format: str | None = None, options: dict[str, Any] | None = None,
                limits: ImportLimits = ImportLimits()) -> SourceData:
    """Read a source file or directory; ``options`` reach importers that take them (real-robot logs).

    Importers parse files from anyone: before any of them runs, a directory is checked against the
    limits (files, path lengths and depth, no links) and its Parquet and Arrow files by the guards
    (HDF5 files are walked by the importers that open them); whatever a parser still trips over is the
    input's fault and is reported as such (an InvalidInput naming the file), never as a crash.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or directory")
    name = format or detect_format(path)
    if name not in IMPORT_FORMATS:
        raise InvalidInput(f"unknown import format {name!r}; choose one of {', '.join(IMPORT_FORMATS)}")
    module = _formats()[name]
    if options and name not in ROBOT_LOG_FORMATS:
        raise InvalidInput(f"the {name} importer takes no robot-log options ({', '.join(sorted(options))})")
    try:
        if path.is_dir():
            guards.check_directory(path, limits)
            for file in sorted(path.rglob("*")):
                if file.suffix == ".parquet":
                    guards.check_parquet(file, limits)
                elif file.suffix in guards.ARROW_SUFFIXES:
                    guards.check_arrow_ipc(file)
        return module.read(path, limits=limits, **(options or {}))
    except BenchError:
        raise
    except MemoryError:
        raise guards.TooLarge(f"{path.name}: the input does not fit in this server's memory") from None
    except RecursionError:
        raise InvalidInput(f"{path.name}: the {name} input nests too deeply") from None
    except Exception as exc:  # a parser tripped over the input: the input's fault, said without internals
        raise InvalidInput(f"{path.name}: not a readable {name} input ({type(exc).__name__})") from None


def write_export(dataset, format: str, out: Path) -> list[str]:
    if format not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    return _formats()[format].write(dataset, Path(out).expanduser())
