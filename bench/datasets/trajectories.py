"""Trajectories in memory: the one shape every importer produces and the writer and loader share.

Episodes are concatenated. An episode of T steps has T+1 observations (the reset observation
included, as in Minari), T actions, rewards, terminations and truncations. Per-episode
attributes (seed, task, success, ...) are columns of equal length, one row per episode.
Infos are arrays whose rows align either with observations (T+1 per episode, as Minari's)
or with steps (T per episode, as D4RL's); the row count says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import gymnasium as gym
import numpy as np

from bench.datasets.spaces import infer_box
from bench.errors import InvalidInput

ObservationArrays = np.ndarray | dict[str, Any]


def flatten_tree(tree: ObservationArrays, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts of arrays -> {"a/b": array}; a bare array -> {prefix: array}."""
    if isinstance(tree, Mapping):
        out: dict[str, np.ndarray] = {}
        for key, value in tree.items():
            if not key or "/" in key:
                raise InvalidInput(f"observation key {key!r} is invalid: keys must be non-empty and contain no '/'")
            out.update(flatten_tree(value, f"{prefix}/{key}" if prefix else key))
        return out
    return {prefix: np.asarray(tree)}


def unflatten_tree(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return tree


def map_tree(fn, tree: ObservationArrays) -> ObservationArrays:
    if isinstance(tree, Mapping):
        return {key: map_tree(fn, value) for key, value in tree.items()}
    return fn(tree)


@dataclass
class Trajectories:
    observations: ObservationArrays
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    lengths: np.ndarray
    infos: dict[str, np.ndarray] = field(default_factory=dict)
    episode_attrs: dict[str, np.ndarray] = field(default_factory=dict)
    observation_space: gym.Space | None = None
    action_space: gym.Space | None = None

    @property
    def num_episodes(self) -> int:
        return int(len(self.lengths))

    @property
    def num_steps(self) -> int:
        return int(self.lengths.sum())

    @property
    def step_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    @property
    def obs_starts(self) -> np.ndarray:
        return self.step_starts + np.arange(self.num_episodes, dtype=np.int64)

    def episode_returns(self) -> np.ndarray:
        if self.num_steps == 0:
            return np.zeros(self.num_episodes)
        return np.add.reduceat(self.rewards.astype(np.float64), self.step_starts)

    def iter_episode_slices(self) -> Iterator[tuple[slice, slice]]:
        """(observation rows, step rows) of each episode."""
        for obs_start, step_start, length in zip(self.obs_starts, self.step_starts, self.lengths):
            yield slice(int(obs_start), int(obs_start + length + 1)), slice(int(step_start), int(step_start + length))

    def select_episodes(self, start: int, stop: int) -> "Trajectories":
        """Episodes ``start`` (inclusive) to ``stop`` (exclusive) as a new Trajectories (copies)."""
        if not 0 <= start < stop <= self.num_episodes:
            raise InvalidInput(f"episode range {start}:{stop} is outside 0:{self.num_episodes}")
        steps = slice(int(self.step_starts[start]), int(self.step_starts[stop - 1] + self.lengths[stop - 1]))
        rows = slice(steps.start + start, steps.stop + stop)  # each episode has one observation more than steps
        step_rows = self.num_steps
        return Trajectories(
            observations=map_tree(lambda a: a[rows].copy(), self.observations),
            actions=self.actions[steps].copy(),
            rewards=self.rewards[steps].copy(),
            terminations=self.terminations[steps].copy(),
            truncations=self.truncations[steps].copy(),
            lengths=self.lengths[start:stop].copy(),
            infos={k: (v[steps] if len(v) == step_rows else v[rows]).copy() for k, v in self.infos.items()},
            episode_attrs={k: v[start:stop].copy() for k, v in self.episode_attrs.items()},
            observation_space=self.observation_space,
            action_space=self.action_space,
        )

    def validate(self, allow_nonfinite: bool = False) -> "Trajectories":
        """Check shapes, counts and values; fill in spaces; raise InvalidInput naming the problem."""
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        if self.num_episodes == 0 or self.num_steps == 0:
            raise InvalidInput("the dataset is empty: it has no episodes with at least one step")
        if (self.lengths < 1).any():
            bad = int(np.flatnonzero(self.lengths < 1)[0])
            raise InvalidInput(f"episode {bad} has no steps; every episode needs at least one action")
        steps, obs_rows = self.num_steps, self.num_steps + self.num_episodes
        self.actions = np.asarray(self.actions)
        self.rewards = np.asarray(self.rewards)
        self.terminations = np.asarray(self.terminations).astype(bool, copy=False).reshape(-1)
        self.truncations = np.asarray(self.truncations).astype(bool, copy=False).reshape(-1)
        if self.rewards.ndim == 2 and self.rewards.shape[1] == 1:
            self.rewards = self.rewards[:, 0]
        for name in ("actions", "rewards", "terminations", "truncations"):
            rows = len(getattr(self, name))
            if rows != steps:
                raise InvalidInput(f"{name} has {rows} rows but the episodes have {steps} steps in all")
        if not np.issubdtype(self.rewards.dtype, np.floating) and not np.issubdtype(self.rewards.dtype, np.integer):
            raise InvalidInput(f"rewards must be numeric, got dtype {self.rewards.dtype}")
        for path, array in flatten_tree(self.observations, "observations").items():
            if len(array) != obs_rows:
                raise InvalidInput(
                    f"{path} has {len(array)} rows but {self.num_episodes} episodes of {steps} steps need "
                    f"{obs_rows} (T+1 per episode)"
                )
        for key, array in self.infos.items():
            if len(array) not in (steps, obs_rows):
                raise InvalidInput(f"infos/{key} has {len(array)} rows; expected {steps} (per step) or {obs_rows} (per observation)")
        for key, column in self.episode_attrs.items():
            if len(column) != self.num_episodes:
                raise InvalidInput(f"episode attribute {key!r} has {len(column)} values for {self.num_episodes} episodes")
        if not allow_nonfinite:
            self._check_finite()
        if self.observation_space is None:
            self.observation_space = _infer_space(self.observations)
        if self.action_space is None:
            self.action_space = infer_box(self.actions)
        return self

    def _check_finite(self) -> None:
        arrays = {**flatten_tree(self.observations, "observations"), "actions": self.actions, "rewards": self.rewards}
        arrays.update({f"infos/{key}": value for key, value in self.infos.items()})
        for path, array in arrays.items():
            if np.issubdtype(array.dtype, np.floating):
                finite = np.isfinite(array)
                if not finite.all():
                    row = int(np.argwhere(~finite)[0][0])
                    raise InvalidInput(
                        f"{path} has non-finite values (NaN or inf), first at row {row}; "
                        "pass --allow-nonfinite to import them anyway"
                    )


def _infer_space(observations: ObservationArrays) -> gym.Space:
    if isinstance(observations, Mapping):
        return gym.spaces.Dict({key: _infer_space(value) for key, value in observations.items()})
    return infer_box(np.asarray(observations))


class EpisodeParts:
    """A dataset read a part at a time: whole episodes, in order, each part a Trajectories.

    What an importer hands over for an input larger than its memory budget (ImportLimits.part_bytes),
    instead of one Trajectories; format.VersionWriter writes it part by part. ``read`` opens the source
    afresh on every iteration, so the parts can be read more than once (e.g. the first, for its shapes).
    Spaces set here (an environment's) are given to every part.
    """

    def __init__(self, read: Callable[[], Iterator[Trajectories]]):
        self._read = read
        self.observation_space: gym.Space | None = None
        self.action_space: gym.Space | None = None
        # What the source says the parts' content hashes to (a bench version's manifest); checked once written.
        self.expected_content_sha256: str | None = None

    def __iter__(self) -> Iterator[Trajectories]:
        for part in self._read():
            if self.observation_space is not None:
                part.observation_space, part.action_space = self.observation_space, self.action_space
            yield part

    def first(self) -> Trajectories:
        """The first part (read again from the source)."""
        for part in self:
            return part
        raise InvalidInput("the dataset is empty: it has no episodes with at least one step")
