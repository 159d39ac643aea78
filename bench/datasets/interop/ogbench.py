"""OGBench's .npz layout: per-step observations and actions, ``terminals`` marking each episode's last row.

OGBench stores no successor for an episode's last row (its loaders mask that transition out),
so an episode of L rows becomes L observations and L-1 transitions: the last row's action is
dropped. The episodes are time-limited, so each ends truncated, not terminated. ``qpos``,
``qvel`` and ``button_states`` (manipulation) become per-observation infos. OGBench's datasets
carry no rewards (tasks define them from goals), so rewards are stored as zeros unless present.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets.interop.guards import check_npz
from bench.datasets.interop.source import SourceData
from bench.datasets.trajectories import EpisodeParts, Trajectories
from bench.errors import InvalidInput
from bench.platform.settings import ImportLimits

_INFO_KEYS = ("qpos", "qvel", "button_states")


def detect(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".npz"


def read(path: Path, limits: ImportLimits = ImportLimits()) -> SourceData:
    name = path.name
    declared = check_npz(path, limits)  # shapes and types from the headers, before any array is read
    missing = [key for key in ("observations", "actions", "terminals") if key not in declared]
    if missing:
        raise InvalidInput(f"{name}: not an OGBench dataset, missing {', '.join(missing)}")
    for key, (shape, _) in declared.items():
        if not shape:
            raise InvalidInput(f"{name}: {key} is a scalar; every array has one row per step")
    for key in ("terminals", "rewards"):
        if key in declared and len(declared[key][0]) != 1:
            raise InvalidInput(f"{name}: {key} has shape {declared[key][0]}; one value per row is expected")
    if len(declared["observations"][0]) < 2 or len(declared["actions"][0]) < 2:
        raise InvalidInput(f"{name}: observations and actions must be (rows, dims) arrays")
    decoded = sum(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize for shape, dtype in declared.values())
    if decoded > limits.part_bytes:
        return _in_parts(path, declared, limits.part_bytes)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidInput(f"{name}: not a readable .npz file ({type(exc).__name__})") from None
    rows = len(arrays["observations"])
    for key, value in arrays.items():
        if len(value) != rows:
            raise InvalidInput(f"{name}: {key} has {len(value)} rows but observations has {rows}")
    if rows == 0:
        raise InvalidInput(f"{name}: the dataset is empty")
    ends, notes = _episode_ends(name, arrays["terminals"], "rewards" in arrays)
    data = _to_trajectories(arrays, ends)
    return SourceData(data, "ogbench", notes, env=environment_from_file_name(path.name), env_inferred=True)


def _episode_ends(name: str, terminals: np.ndarray, has_rewards: bool) -> tuple[np.ndarray, list[str]]:
    """Each row's episode-end flag (the file's last row always ends one) and the notes on how rows were read."""
    ends = terminals.astype(bool).reshape(-1).copy()
    notes = ["OGBench rows: each episode's last action has no successor observation and is dropped"]
    if not ends[-1]:
        ends[-1] = True
        notes.append("the last episode has no terminal flag; it ends at the end of the file")
    end_rows = np.flatnonzero(ends)
    lengths = end_rows - np.concatenate([[0], end_rows[:-1] + 1])  # L rows -> L-1 steps
    if (lengths < 1).any():
        raise InvalidInput(f"{name}: episode {int(np.flatnonzero(lengths < 1)[0])} has a single row and no transition")
    if not has_rewards:
        notes.append("no rewards in the file: stored as zeros (OGBench tasks define rewards from goals)")
    return ends, notes


def _to_trajectories(arrays: dict[str, np.ndarray], ends: np.ndarray) -> Trajectories:
    """Rows of whole episodes (``ends`` flags each episode's last row) as trajectories."""
    end_rows = np.flatnonzero(ends)
    start_rows = np.concatenate([[0], end_rows[:-1] + 1])
    lengths = end_rows - start_rows
    step_mask = np.ones(len(ends), dtype=bool)
    step_mask[end_rows] = False
    rewards = arrays["rewards"][step_mask] if "rewards" in arrays else np.zeros(int(lengths.sum()), np.float32)
    truncations = np.zeros(int(lengths.sum()), dtype=bool)
    truncations[np.cumsum(lengths) - 1] = True
    infos = {key: arrays[key] for key in _INFO_KEYS if key in arrays}
    extra = sorted(set(arrays) - {"observations", "actions", "terminals", "rewards", "next_observations", "masks", "valids", *_INFO_KEYS})
    infos.update({key: arrays[key] for key in extra})
    return Trajectories(
        observations=arrays["observations"],
        actions=arrays["actions"][step_mask],
        rewards=rewards,
        terminations=np.zeros(int(lengths.sum()), dtype=bool),
        truncations=truncations,
        lengths=lengths,
        infos=infos,
    )


def _in_parts(path: Path, declared: dict[str, tuple[tuple[int, ...], np.dtype]], part_bytes: int) -> SourceData:
    """The file as EpisodeParts: every member read row by row from its (decompressing) stream, cut after an
    episode's last row once a part holds ``part_bytes``; each part converted as the whole file would be."""
    name = path.name
    rows = declared["observations"][0][0]
    for key, (shape, _) in declared.items():
        if shape[0] != rows:
            raise InvalidInput(f"{name}: {key} has {shape[0]} rows but observations has {rows}")
    if rows == 0:
        raise InvalidInput(f"{name}: the dataset is empty")
    with _Members(path, declared) as members:
        terminals = members.read("terminals", rows)
    ends, notes = _episode_ends(name, terminals, "rewards" in declared)
    row_bytes = sum(int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize for shape, dtype in declared.values())
    per_part = max(1, part_bytes // max(1, row_bytes))
    cuts, start = [], 0
    for end in np.flatnonzero(ends):
        if end + 1 - start >= per_part or end == rows - 1:
            cuts.append(int(end) + 1 - start)
            start = int(end) + 1

    def parts():
        with _Members(path, declared) as members:
            offset = 0
            for count in cuts:
                arrays = {key: members.read(key, count) for key in declared}
                yield _to_trajectories(arrays, ends[offset:offset + count])
                offset += count

    data = EpisodeParts(parts)
    return SourceData(data, "ogbench", notes, env=environment_from_file_name(name), env_inferred=True)


class _Members:
    """An npz's members read a number of rows at a time, each from its own decompressing stream."""

    def __init__(self, path: Path, declared: dict[str, tuple[tuple[int, ...], np.dtype]]):
        self.path, self.declared = path, declared
        self.streams: dict[str, Any] = {}

    def __enter__(self) -> "_Members":
        from numpy.lib import format as npy

        try:
            self.archive = zipfile.ZipFile(self.path)
            for key, (shape, dtype) in self.declared.items():
                stream = self.archive.open(f"{key}.npy")
                version = npy.read_magic(stream)
                reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                _, fortran_order, _ = reader(stream, max_header_size=10_000)
                if fortran_order and len(shape) > 1:
                    raise InvalidInput(f"{self.path.name}: {key} is stored in Fortran order; rows cannot be read in "
                                       f"parts (re-save it in C order, or raise BENCH_IMPORT_PART_BYTES)")
                self.streams[key] = stream
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            self.__exit__()
            raise InvalidInput(f"{self.path.name}: not a readable .npz file ({type(exc).__name__})") from None
        return self

    def read(self, key: str, count: int) -> np.ndarray:
        shape, dtype = self.declared[key]
        size = count * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        try:
            raw = self.streams[key].read(size)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise InvalidInput(f"{self.path.name}: not a readable .npz file ({type(exc).__name__})") from None
        if len(raw) != size:
            raise InvalidInput(f"{self.path.name}: {key} ends before its declared rows")
        return np.frombuffer(raw, dtype=dtype).reshape(count, *shape[1:]).copy()

    def __exit__(self, *exc_info) -> None:
        for stream in self.streams.values():
            stream.close()
        if getattr(self, "archive", None) is not None:
            self.archive.close()


# OGBench names its files <environment>-<kind>-v<N>[-val].npz; the environment is <environment>-v<N>.
_FILE_NAME = re.compile(r"^(?P<env>[a-z0-9-]+?)-(?:play|noisy|navigate|stitch|explore)-v(?P<version>\d+)(?:-val)?\.npz$")


def environment_from_file_name(name: str) -> dict | None:
    """The environment an OGBench file's name says (``cube-single-play-v0.npz`` -> ``cube-single-v0``), or None."""
    match = _FILE_NAME.match(name)
    if match is None:
        return None
    # Importing ogbench registers all of its environment ids (manipulation and mazes).
    return {"id": f"{match['env']}-v{match['version']}", "kwargs": {}, "module": "ogbench",
            "source": "ogbench file name"}
