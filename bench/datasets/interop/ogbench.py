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

import numpy as np

from bench.datasets.interop.guards import check_npz
from bench.datasets.interop.source import SourceData
from bench.datasets.trajectories import Trajectories
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
    ends = arrays["terminals"].astype(bool).reshape(-1).copy()
    notes = ["OGBench rows: each episode's last action has no successor observation and is dropped"]
    if not ends[-1]:
        ends[-1] = True
        notes.append("the last episode has no terminal flag; it ends at the end of the file")
    end_rows = np.flatnonzero(ends)
    start_rows = np.concatenate([[0], end_rows[:-1] + 1])
    lengths = end_rows - start_rows  # L rows -> L-1 steps
    if (lengths < 1).any():
        raise InvalidInput(f"{name}: episode {int(np.flatnonzero(lengths < 1)[0])} has a single row and no transition")
    step_mask = np.ones(rows, dtype=bool)
    step_mask[end_rows] = False
    rewards = arrays["rewards"][step_mask] if "rewards" in arrays else np.zeros(int(lengths.sum()), np.float32)
    if "rewards" not in arrays:
        notes.append("no rewards in the file: stored as zeros (OGBench tasks define rewards from goals)")
    truncations = np.zeros(int(lengths.sum()), dtype=bool)
    truncations[np.cumsum(lengths) - 1] = True
    infos = {key: arrays[key] for key in _INFO_KEYS if key in arrays}
    extra = sorted(set(arrays) - {"observations", "actions", "terminals", "rewards", "next_observations", "masks", "valids", *_INFO_KEYS})
    infos.update({key: arrays[key] for key in extra})
    data = Trajectories(
        observations=arrays["observations"],
        actions=arrays["actions"][step_mask],
        rewards=rewards,
        terminations=np.zeros(int(lengths.sum()), dtype=bool),
        truncations=truncations,
        lengths=lengths,
        infos=infos,
    )
    return SourceData(data, "ogbench", notes, env=environment_from_file_name(path.name), env_inferred=True)


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
