"""A published version read on demand: episodes, episode ranges and parts decoded from the chunks they touch.

What ``Registry.load(..., in_memory=False)`` returns, and what it returns by itself for a version that
decodes to more than ``BENCH_LOAD_MAX_BYTES``. It answers what a Dataset answers about a version
(counts, spaces, the episode table, episodes, transitions at given rows) without holding its arrays;
reading many rows goes a range of consecutive episodes at a time (``parts``), never a row at a time
from compressed chunks. Every file is verified against the manifest before it is decoded
(format.read_rows), so what is read is what was published.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import gymnasium as gym
import numpy as np
import pyarrow as pa

from bench.datasets.dataset import Dataset, Episode
from bench.datasets.format import EPISODE_COLUMNS, read_rows, verify_files
from bench.datasets.robot_logs import robot_cameras, video_file
from bench.datasets.spaces import space_from_json
from bench.datasets.trajectories import Trajectories, unflatten_tree
from bench.datasets.video import decode_mp4
from bench.errors import IntegrityError
from bench.platform.environments import make_env

# Rows decoded at once when episodes are read in sequence (``episodes``, ``transitions``).
READ_BYTES = 64 << 20


def decoded_bytes(manifest: dict[str, Any]) -> int:
    """What a version's arrays take in memory once decoded, from its manifest."""
    total = 0
    for described in manifest["arrays"].values():
        total += int(np.prod(described["shape"], dtype=np.int64)) * np.dtype(described["dtype"]).itemsize
    return total


def split_arrays(arrays: dict[str, np.ndarray]) -> tuple[Any, dict[str, np.ndarray]]:
    """(observations as an array or a tree, infos) from the flat paths of the steps group."""
    observations = {path: value for path, value in arrays.items() if path.split("/")[0] == "observations"}
    tree = (observations["observations"] if list(observations) == ["observations"] else
            unflatten_tree({path.split("/", 1)[1]: value for path, value in observations.items()}))
    return tree, {path[len("infos/"):]: value for path, value in arrays.items() if path.startswith("infos/")}


def join_transitions(pieces: list[tuple[np.ndarray, dict[str, Any]]]) -> dict[str, Any]:
    """Transitions read in pieces (each: the positions it fills in the batch, its transitions dict) as one batch."""
    order = np.argsort(np.concatenate([positions for positions, _ in pieces]), kind="stable")

    def join(values: list[Any]) -> Any:
        if isinstance(values[0], dict):
            return {key: join([value[key] for value in values]) for key in values[0]}
        return np.concatenate(values)[order]

    return {key: join([batch[key] for _, batch in pieces]) for key in pieces[0][1]}


class LazyDataset:
    """One published version, read on demand; see the module docstring."""

    lazy = True

    def __init__(self, dataset_id: str, directory: Path, ensure: Callable[[list[str]], None],
                 manifest: dict[str, Any], episodes: pa.Table):
        self.id = dataset_id
        self.manifest = manifest
        self.episode_table = episodes
        self._directory, self._ensure = directory, ensure
        self.lengths = episodes.column("length").to_numpy().astype(np.int64)
        self.obs_starts = episodes.column("obs_start").to_numpy().astype(np.int64)
        self.step_starts = episodes.column("step_start").to_numpy().astype(np.int64)
        self._attrs = {name: episodes.column(name).to_numpy(zero_copy_only=False)
                       for name in episodes.column_names if name not in EPISODE_COLUMNS}
        # Bytes of one step row and one observation row over all arrays: how big a range of episodes is.
        self._row_bytes = {"steps": 0, "observations": 0}
        for described in manifest["arrays"].values():
            per_row = int(np.prod(described["shape"][1:], dtype=np.int64)) * np.dtype(described["dtype"]).itemsize
            self._row_bytes["observations" if described.get("rows") == "observations" else "steps"] += per_row

    # -- description ---------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return len(self.lengths)

    @property
    def num_steps(self) -> int:
        return int(self.manifest["counts"]["steps"])

    @property
    def observation_space(self) -> gym.Space:
        return space_from_json(self.manifest["observation_space"])

    @property
    def action_space(self) -> gym.Space:
        return space_from_json(self.manifest["action_space"])

    @property
    def content_sha256(self) -> str:
        return self.manifest["content_sha256"]

    @property
    def decoded_bytes(self) -> int:
        return decoded_bytes(self.manifest)

    def __len__(self) -> int:
        return self.num_steps

    def make_env(self, **overrides: Any) -> gym.Env:
        return make_env(self.manifest.get("env"), **overrides)

    def __repr__(self) -> str:
        return f"LazyDataset({self.id!r}, episodes={self.num_episodes}, steps={self.num_steps})"

    # -- reading -----------------------------------------------------------------------------------
    @property
    def video_cameras(self) -> dict[str, dict[str, Any]]:
        """A real-robot log's cameras stored as video (media/, one mp4 per episode), by name."""
        return {name: camera for name, camera in robot_cameras(self.manifest).items() if camera.get("storage") == "video"}

    def episode_bytes(self, start: int = 0, stop: int | None = None, videos: bool = False) -> np.ndarray:
        """Decoded bytes of each episode in ``start:stop`` (with its video frames when ``videos``)."""
        lengths = self.lengths[start:stop]
        per_observation = self._row_bytes["observations"]
        if videos:
            per_observation += sum(3 * int(c["height"]) * int(c["width"]) for c in self.video_cameras.values())
        return lengths * self._row_bytes["steps"] + (lengths + 1) * per_observation

    def array_bytes(self, paths: list[str] | None = None) -> int:
        """Decoded bytes of the given arrays (all by default)."""
        arrays = self.manifest["arrays"]
        return decoded_bytes({"arrays": {path: arrays[path] for path in (paths if paths is not None else arrays)}})

    def episode_range(self, start: int, stop: int, paths: list[str] | None = None, videos: bool = False) -> Trajectories:
        """Episodes ``start:stop`` as trajectories (spaces and episode attributes included), from their chunks;
        ``paths`` reads only those arrays (actions, rewards, terminations and truncations always). With
        ``videos``, a robot log's video cameras are decoded too, each observation's frame as
        ``observations["images"][camera]`` (uint8, H x W x 3), as if the log had stored images."""
        if not 0 <= start < stop <= self.num_episodes:
            raise IndexError(f"episode range {start}:{stop} is outside 0:{self.num_episodes}")
        obs = slice(int(self.obs_starts[start]), int(self.obs_starts[stop - 1] + self.lengths[stop - 1] + 1))
        steps = slice(int(self.step_starts[start]), int(self.step_starts[stop - 1] + self.lengths[stop - 1]))
        if paths is not None:
            paths = sorted(set(paths) | {"actions", "rewards", "terminations", "truncations"})
        cameras = self.video_cameras if videos else {}
        if paths is not None:
            paths = sorted(set(paths) | {f"observations/frame/{camera}" for camera in cameras})
        arrays = read_rows(self._directory, self.manifest, obs, steps, self._ensure, paths)
        for camera in cameras:
            arrays[f"observations/images/{camera}"] = self._video_frames(
                camera, start, stop, arrays[f"observations/frame/{camera}"])
        observations, infos = split_arrays(arrays)
        return Trajectories(
            observations=observations, actions=arrays["actions"], rewards=arrays["rewards"],
            terminations=arrays["terminations"], truncations=arrays["truncations"],
            lengths=self.lengths[start:stop].copy(), infos=infos,
            episode_attrs={name: column[start:stop] for name, column in self._attrs.items()},
            observation_space=self.observation_space, action_space=self.action_space)

    def _video_frames(self, camera: str, start: int, stop: int, frame_rows: np.ndarray) -> np.ndarray:
        """Each observation's frame of ``camera`` for episodes ``start:stop``, decoded from their mp4 files (each
        checked against the manifest first); ``frame_rows`` is observations/frame/<camera> over those episodes."""
        described = self.video_cameras[camera]
        frames, offset = [], 0
        for index in range(start, stop):
            name = video_file(camera, index)
            self._ensure([name])
            verify_files(self._directory, self.manifest, [name])
            observations = int(self.lengths[index]) + 1
            limit = 3 * int(described["height"]) * int(described["width"]) * max(observations, 1) * 2
            video = decode_mp4(self._directory / name, size=(int(described["height"]), int(described["width"])),
                               max_bytes=limit)
            wanted = np.asarray(frame_rows[offset:offset + observations], np.int64)
            if len(wanted) and (wanted.min() < 0 or wanted.max() >= len(video)):
                raise IntegrityError(f"{name}: observations/frame/{camera} points past the video's {len(video)} frames")
            frames.append(video[wanted])
            offset += observations
        return np.concatenate(frames)

    def ranges(self, part_bytes: int | None = None, videos: bool = False) -> list[tuple[int, int]]:
        """Consecutive episode ranges (start, stop) of about ``part_bytes`` (READ_BYTES) decoded each, at least
        one episode each."""
        part_bytes = READ_BYTES if part_bytes is None else part_bytes
        sizes = self.episode_bytes(videos=videos)
        out, start, filled = [], 0, 0
        for index, size in enumerate(sizes):
            filled += int(size)
            if filled >= part_bytes or index == len(sizes) - 1:
                out.append((start, index + 1))
                start, filled = index + 1, 0
        return out

    def parts(self, part_bytes: int | None = None, paths: list[str] | None = None) -> Iterator[Trajectories]:
        """The whole version (or its arrays in ``paths``) as consecutive parts of about ``part_bytes``: how exports,
        imports of bench copies and statistics passes stream it."""
        for start, stop in self.ranges(part_bytes):
            yield self.episode_range(start, stop, paths)

    def episode(self, index: int) -> Episode:
        if not -self.num_episodes <= index < self.num_episodes:
            raise IndexError(f"episode {index} out of range for {self.num_episodes} episodes")
        index %= self.num_episodes
        return replace(self._in_memory(index, index + 1).episode(0), index=index)

    def episodes(self, indices: Iterable[int] | None = None) -> Iterator[Episode]:
        """Episodes in order; all of them (read a range at a time) when ``indices`` is None."""
        if indices is not None:
            for index in indices:
                yield self.episode(int(index))
            return
        for start, stop in self.ranges():
            part = self._in_memory(start, stop)
            for offset in range(stop - start):
                yield replace(part.episode(offset), index=start + offset)

    def transitions(self, step_indices: np.ndarray) -> dict[str, Any]:
        """Transitions at the given step rows, as Dataset.transitions gives them, reading the episode ranges
        that hold them (each range once, however many rows it holds)."""
        step_indices = np.asarray(step_indices, dtype=np.int64).reshape(-1)
        if len(step_indices) and not (0 <= step_indices.min() and step_indices.max() < self.num_steps):
            raise IndexError(f"step rows must be in 0:{self.num_steps}")
        if not len(step_indices):
            return self._in_memory(0, 1).transitions(step_indices)
        episode_of = np.searchsorted(self.step_starts, step_indices, side="right") - 1
        pieces: list[tuple[np.ndarray, dict[str, Any]]] = []
        for start, stop in self.ranges():
            wanted = np.flatnonzero((episode_of >= start) & (episode_of < stop))
            if len(wanted):
                part = self._in_memory(start, stop)
                pieces.append((wanted, part.transitions(step_indices[wanted] - self.step_starts[start])))
        return join_transitions(pieces)

    def load(self, paths: list[str] | None = None) -> Dataset:
        """The whole version in memory, or only the arrays in ``paths`` (what a run reads of a larger version)."""
        return self._in_memory(0, self.num_episodes, paths)

    def _in_memory(self, start: int, stop: int, paths: list[str] | None = None) -> Dataset:
        """Episodes ``start:stop`` as an in-memory Dataset (its episode and step rows counted from ``start``)."""
        return Dataset(self.id, self.episode_range(start, stop, paths), self.manifest,
                       self.episode_table.slice(start, stop - start))
