"""D4RL's HDF5 layout: flat per-transition arrays, episodes delimited by terminals and timeouts.

Reading: an episode ends at a row with ``terminals`` (terminated) or ``timeouts`` (truncated);
a final run with neither ends at the file's end and counts as truncated. With
``next_observations`` the final observation of each episode is the last row's next observation.
Without it, the last row of an episode has no recorded successor: an episode that ends in a
timeout drops that row's transition (as D4RL's own ``qlearning_dataset`` does), and one that ends
in a terminal keeps it with the final observation repeated (a terminal successor never enters a
TD target). ``infos/*`` are per-transition, ``metadata/*`` scalars are kept in the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

from bench.datasets.interop.guards import check_hdf5, hdf5_array, json_metadata
from bench.datasets.interop.source import SourceData
from bench.datasets.trajectories import EpisodeParts, Trajectories
from bench.errors import InvalidInput
from bench.platform.settings import ImportLimits

_REQUIRED = ("observations", "actions", "rewards", "terminals")
_HDF5_SUFFIXES = (".hdf5", ".h5", ".hdf")
_PER_ROW_SCALARS = ("rewards", "terminals", "timeouts")  # one value per row, as (rows,) or (rows, 1)


def detect(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() not in _HDF5_SUFFIXES:
        return False
    try:
        with h5py.File(path, "r") as handle:
            # Links are looked at, not followed: `name in handle` would open an external link's file.
            def linked(name: str) -> bool:
                return handle.get(name, getlink=True) is not None

            return linked("observations") and linked("actions") and not linked("data")
    except OSError:
        return path.suffix.lower() in _HDF5_SUFFIXES  # let read() report the corrupt file


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InvalidInput(f"{path.name}: not a readable HDF5 file ({exc})") from None


def _datasets(group: h5py.Group, prefix: str = "") -> dict[str, h5py.Dataset]:
    """Every dataset under a group by its relative path (the file was walked by check_hdf5: no links, no loops)."""
    found: dict[str, h5py.Dataset] = {}
    for key, item in group.items():
        name = f"{prefix}/{key}" if prefix else key
        if isinstance(item, h5py.Group):
            found.update(_datasets(item, name))
        else:
            found[name] = item
    return found


def read(path: Path, limits: ImportLimits = ImportLimits()) -> SourceData:
    """The file's episodes: in memory, or, when its arrays decode to more than ``limits.part_bytes``, as
    EpisodeParts read a slice of rows at a time (the same episodes, cut at episode ends)."""
    name = path.name
    with _open(path) as handle:
        check_hdf5(handle, limits, name, path.stat().st_size)
        missing = [key for key in _REQUIRED if key not in handle]
        if missing:
            raise InvalidInput(f"{name}: not a D4RL file, missing {', '.join(missing)}")
        try:
            arrays = {key: hdf5_array(handle, key, name, max_ndim=2 if key in _PER_ROW_SCALARS else 8)
                      for key in (*_REQUIRED, "timeouts", "next_observations") if key in handle}
            infos = {}
            if "infos" in handle:
                if not isinstance(handle["infos"], h5py.Group):
                    raise InvalidInput(f"{name}: infos is an array; a group of per-transition arrays belongs there")
                infos = {key: hdf5_array(handle["infos"], key, f"{name}: infos") for key in _datasets(handle["infos"])}
            _check_shapes(name, {key: value.shape for key, value in arrays.items()},
                          {key: value.shape for key, value in infos.items()})
            metadata = {}
            if "metadata" in handle:
                node = handle["metadata"]
                metadata.update({k: json_metadata(v) for k, v in node.attrs.items()})
                if isinstance(node, h5py.Group):
                    metadata.update({k: json_metadata(ds[()] if ds.size <= 64 else ds)
                                     for k, ds in _datasets(node).items()})
            metadata.update({k: json_metadata(v) for k, v in handle.attrs.items()})
            decoded = sum(value.size * value.dtype.itemsize for value in (*arrays.values(), *infos.values()))
            if decoded <= limits.part_bytes:
                source = from_flat_arrays({key: _per_row(key, value[...]) for key, value in arrays.items()},
                                          {key: value[...] for key, value in infos.items()})
            else:
                source = _in_parts(path, {key: value.size * value.dtype.itemsize // max(1, len(value))
                                          for key, value in (*arrays.items(), *infos.items())},
                                   list(arrays), list(infos), limits.part_bytes,
                                   _per_row("terminals", arrays["terminals"][...]),
                                   _per_row("timeouts", arrays["timeouts"][...]) if "timeouts" in arrays else None)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise InvalidInput(f"{name}: the HDF5 file is truncated or corrupt ({type(exc).__name__})") from None
    source.source_metadata = metadata
    return source


def _per_row(key: str, value: np.ndarray) -> np.ndarray:
    """rewards, terminals and timeouts as (rows,): D4RL writes some of them as (rows, 1)."""
    return value[:, 0] if key in _PER_ROW_SCALARS and value.ndim == 2 else value


def _check_shapes(name: str, arrays: dict[str, tuple], infos: dict[str, tuple]) -> None:
    """The arrays' declared shapes agree (nothing is read)."""
    for key in _PER_ROW_SCALARS:
        if key in arrays and len(arrays[key]) == 2 and arrays[key][1] != 1:
            raise InvalidInput(f"{name}: {key} has shape {arrays[key]}; one value per row is expected")
    rows = arrays["actions"][0] if arrays["actions"] else 0
    for key, shape in {**arrays, **{f"infos/{k}": v for k, v in infos.items()}}.items():
        if (shape[0] if shape else 0) != rows:
            raise InvalidInput(f"{name}: {key} has {shape[0] if shape else 0} rows but actions has {rows}")
    if len(arrays["observations"]) < 2 or len(arrays["actions"]) != 2:
        raise InvalidInput(f"{name}: observations and actions must be (rows, dims) arrays, got shapes "
                           f"{arrays['observations']} and {arrays['actions']}")
    if "next_observations" in arrays and arrays["next_observations"] != arrays["observations"]:
        raise InvalidInput(f"{name}: next_observations has shape {arrays['next_observations']} but "
                           f"observations has {arrays['observations']}")


def _in_parts(path: Path, row_bytes: dict[str, int], keys: list[str], info_keys: list[str], part_bytes: int,
              terminals: np.ndarray, timeouts: np.ndarray | None) -> SourceData:
    """The file as EpisodeParts: rows cut after an episode's end once a part holds ``part_bytes``.

    Each part is split by ``from_flat_arrays`` exactly as the whole file would be (it starts at an episode's
    first row and ends at one's last), so the parts' episodes are the whole file's. The notes are the
    whole file's, computed here from the (small) episode-end flags.
    """
    terminals = terminals.astype(bool).reshape(-1)
    timeouts = np.zeros_like(terminals) if timeouts is None else timeouts.astype(bool).reshape(-1)
    rows = len(terminals)
    if rows == 0:
        raise InvalidInput("the dataset is empty: it has no transitions")
    ends = terminals | timeouts
    notes = []
    if not ends[-1]:
        notes.append("the last episode ends at the end of the file with no terminal or timeout; stored as truncated")
    end_rows = np.flatnonzero(ends)
    if not len(end_rows) or end_rows[-1] != rows - 1:
        end_rows = np.append(end_rows, rows - 1)
    if "next_observations" not in keys:
        notes.append("no next_observations: episodes ending in a timeout drop their last transition; "
                     "episodes ending in a terminal repeat their last observation as the final one")
        starts = np.concatenate([[0], end_rows[:-1] + 1])
        dropped = int(np.sum((end_rows == starts) & ~terminals[end_rows]))
        if dropped:
            notes.append(f"{dropped} one-row episodes without a successor observation were dropped")
    rows_per_part = max(1, part_bytes // max(1, sum(row_bytes.values())))
    cuts, start = [], 0
    for end in end_rows:
        if end + 1 - start >= rows_per_part or end == rows - 1:
            cuts.append((start, int(end) + 1))
            start = int(end) + 1
    name = path.name

    def parts():
        try:
            with _open(path) as handle:
                for first, stop in cuts:
                    arrays = {key: _per_row(key, handle[key][first:stop]) for key in keys}
                    infos = {key: handle["infos"][key][first:stop] for key in info_keys}
                    if "next_observations" not in keys and not _has_transition(arrays, timeouts[first:stop]):
                        continue  # only one-row episodes without a successor: all dropped (noted above)
                    yield from_flat_arrays(arrays, infos).trajectories
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise InvalidInput(f"{name}: the HDF5 file is truncated or corrupt ({type(exc).__name__})") from None

    return SourceData(EpisodeParts(parts), "d4rl", notes)


def _has_transition(arrays: dict[str, np.ndarray], timeouts: np.ndarray) -> bool:
    """Whether a slice without next_observations keeps any transition (an episode of 2+ rows, or a terminal)."""
    terminals = np.asarray(arrays["terminals"]).astype(bool).reshape(-1)
    ends = np.flatnonzero(terminals | timeouts)
    if not len(ends) or ends[-1] != len(terminals) - 1:
        ends = np.append(ends, len(terminals) - 1)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return bool(np.any((ends > starts) | terminals[ends]))


def from_flat_arrays(arrays: dict[str, np.ndarray], infos: dict[str, np.ndarray]) -> SourceData:
    """Split D4RL's flat arrays into episodes of T steps and T+1 observations."""
    observations, actions = arrays["observations"], arrays["actions"]
    rewards = np.asarray(arrays["rewards"]).reshape(len(actions), *np.shape(arrays["rewards"])[1:])
    terminals = np.asarray(arrays["terminals"]).astype(bool).reshape(-1)
    timeouts = np.asarray(arrays.get("timeouts", np.zeros_like(terminals))).astype(bool).reshape(-1)
    rows = len(actions)
    if rows == 0:
        raise InvalidInput("the dataset is empty: it has no transitions")
    notes: list[str] = []
    ends = terminals | timeouts
    if not ends[-1]:
        ends = ends.copy()
        ends[-1] = True
        notes.append("the last episode ends at the end of the file with no terminal or timeout; stored as truncated")
    end_rows = np.flatnonzero(ends)
    start_rows = np.concatenate([[0], end_rows[:-1] + 1])
    truncations = ends & ~terminals

    next_observations = arrays.get("next_observations")
    if next_observations is not None:
        episodes = len(end_rows)
        final_positions = end_rows + np.arange(1, episodes + 1)
        is_final = np.zeros(rows + episodes, dtype=bool)
        is_final[final_positions] = True
        out = np.empty((rows + episodes, *observations.shape[1:]), dtype=observations.dtype)
        out[~is_final] = observations
        out[is_final] = next_observations[end_rows]
        data = Trajectories(
            observations=out, actions=actions, rewards=rewards, terminations=terminals, truncations=truncations,
            lengths=end_rows - start_rows + 1, infos=infos,
        )
        return SourceData(data, "d4rl", notes)

    notes.append("no next_observations: episodes ending in a timeout drop their last transition; "
                 "episodes ending in a terminal repeat their last observation as the final one")
    obs_parts, step_rows, lengths, dropped = [], [], [], 0
    for start, end in zip(start_rows, end_rows):
        if terminals[end]:
            obs_parts += [observations[start:end + 1], observations[end:end + 1]]
            step_rows.append(np.arange(start, end + 1))
        elif end > start:
            obs_parts.append(observations[start:end + 1])
            step_rows.append(np.arange(start, end))
        else:
            dropped += 1
            continue
        lengths.append(len(step_rows[-1]))
    if dropped:
        notes.append(f"{dropped} one-row episodes without a successor observation were dropped")
    if not lengths:
        raise InvalidInput("the dataset is empty: no episode has a complete transition")
    keep = np.concatenate(step_rows)
    truncated = truncations[keep].copy()
    episode_ends = np.cumsum(lengths) - 1
    truncated[episode_ends] |= ~terminals[keep][episode_ends]
    data = Trajectories(
        observations=np.concatenate(obs_parts), actions=actions[keep], rewards=rewards[keep],
        terminations=terminals[keep], truncations=truncated, lengths=np.asarray(lengths),
        infos={key: value[keep] for key, value in infos.items()},
    )
    return SourceData(data, "d4rl", notes)


def _exported_metadata(dataset) -> dict[str, Any]:
    """The source's scalar metadata back as D4RL's ``metadata/*`` datasets (``metadata/algorithm`` first of all;
    a Minari source's ``algorithm_name`` becomes it); arrays the import summarized are not rewritten."""
    source = (dataset.manifest.get("provenance") or {}).get("source_metadata") or {}
    kept = {key: value for key, value in source.items() if key not in ("bench_id", "content_sha256")
            and isinstance(value, (str, int, float, bool)) and not str(value).startswith("<array")}
    if "algorithm" not in kept and isinstance(source.get("algorithm_name"), str):
        kept["algorithm"] = source["algorithm_name"]
    return kept


def write(dataset, out: Path) -> list[str]:
    """Write D4RL's layout, always with next_observations so nothing is lost. A version read on demand is
    written a range of episodes at a time (LazyDataset.parts), never whole in memory."""
    if isinstance(dataset.observation_space, gym.spaces.Dict):
        raise InvalidInput("D4RL's layout has flat observations; this dataset's are a Dict (export to minari instead)")
    if out.exists():
        raise InvalidInput(f"{out} already exists; choose a new file")
    notes: list[str] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    parts = dataset.parts() if dataset.lazy else [dataset.data]
    with h5py.File(tmp, "w") as handle:
        for part in parts:
            # Step i of episode e has observation row i + e; its next observation is the row after.
            obs_rows = np.arange(part.num_steps) + np.repeat(np.arange(part.num_episodes), part.lengths)
            columns = {"observations": part.observations[obs_rows], "next_observations": part.observations[obs_rows + 1],
                       "actions": part.actions, "rewards": part.rewards, "terminals": part.terminations,
                       "timeouts": part.truncations}
            for key, value in part.infos.items():
                columns[f"infos/{key}"] = value if len(value) == part.num_steps else value[obs_rows]
                note = f"infos/{key}: per-observation rows written per transition (final rows dropped)"
                if len(value) != part.num_steps and note not in notes:
                    notes.append(note)
            for key, value in columns.items():
                _append(handle, key, np.asarray(value))
        metadata = handle.create_group("metadata")
        for key, value in _exported_metadata(dataset).items():
            metadata[key] = value
        metadata.attrs["bench_id"] = dataset.id
        metadata.attrs["content_sha256"] = dataset.content_sha256
    tmp.rename(out)
    return notes



def _append(handle: h5py.File, key: str, rows: np.ndarray) -> None:
    """Rows appended to a growable dataset (created by the first part)."""
    if key not in handle:
        handle.create_dataset(key, data=rows, maxshape=(None, *rows.shape[1:]), chunks=True)
        return
    dataset = handle[key]
    start = dataset.shape[0]
    dataset.resize(start + len(rows), axis=0)
    dataset[start:] = rows
