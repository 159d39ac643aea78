"""A loaded dataset version: arrays in memory, an episode index, minibatch sampling and episode views.

Everything is loaded into memory first: random rows from compressed chunks are ~1000x slower
than numpy indexing, so sampling never touches storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import gymnasium as gym
import numpy as np
import pyarrow as pa

from bench.datasets.trajectories import ObservationArrays, Trajectories, flatten_tree, map_tree, unflatten_tree
from bench.platform.environments import make_env


@dataclass(frozen=True)
class Episode:
    """Views (no copies) of one episode's arrays: T+1 observations, T of everything else."""

    index: int
    observations: ObservationArrays
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    infos: dict[str, np.ndarray]
    attrs: dict[str, Any]

    def __len__(self) -> int:
        return len(self.actions)


class Dataset:
    """One published version in memory. ``sample`` draws transitions uniformly over all steps."""

    lazy = False  # a LazyDataset (bench.datasets.lazy) reads its arrays on demand instead

    def __init__(self, dataset_id: str, data: Trajectories, manifest: dict[str, Any], episodes: pa.Table):
        self.id = dataset_id
        self.data = data
        self.manifest = manifest
        self.episode_table = episodes
        self._obs_starts = data.obs_starts
        self._step_starts = data.step_starts
        # Step i of episode e has observation row i + e (each earlier episode adds one extra row);
        # its next observation is the row after.
        self.obs_row_of_step = np.arange(data.num_steps, dtype=np.int64) + np.repeat(
            np.arange(data.num_episodes, dtype=np.int64), data.lengths
        )
        # For every observation row, the row of its episode's last observation (what a chain of states
        # taken from one episode must not pass).
        self.obs_row_of_episode_end = np.repeat(data.obs_starts + data.lengths, data.lengths + 1).astype(np.int64)
        self._flat_observations = flatten_tree(data.observations, "")
        self._flat_step_infos = {k: v for k, v in data.infos.items() if len(v) == data.num_steps}
        self.rng = np.random.default_rng()

    # -- description ---------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return self.data.num_episodes

    @property
    def num_steps(self) -> int:
        return self.data.num_steps

    @property
    def observation_space(self) -> gym.Space:
        return self.data.observation_space

    @property
    def action_space(self) -> gym.Space:
        return self.data.action_space

    @property
    def content_sha256(self) -> str:
        return self.manifest["content_sha256"]

    @property
    def observations(self) -> ObservationArrays:
        return self.data.observations

    @property
    def actions(self) -> np.ndarray:
        return self.data.actions

    @property
    def rewards(self) -> np.ndarray:
        return self.data.rewards

    def __len__(self) -> int:
        return self.num_steps

    def make_env(self, **overrides: Any) -> gym.Env:
        """The gymnasium environment that evaluates this dataset, from its environment reference."""
        return make_env(self.manifest.get("env"), **overrides)

    def __repr__(self) -> str:
        return f"Dataset({self.id!r}, episodes={self.num_episodes}, steps={self.num_steps})"

    # -- sampling --------------------------------------------------------------------------------
    def transitions(self, step_indices: np.ndarray) -> dict[str, Any]:
        """Transitions at the given step rows: obs, action, reward, next_obs, terminated, truncated."""
        # ndarray.take gathers rows about twice as fast as fancy indexing.
        step_indices = np.asarray(step_indices)
        obs_rows = self.obs_row_of_step.take(step_indices)
        next_rows = obs_rows + 1
        if len(self._flat_observations) == 1 and "" in self._flat_observations:
            observations = self._flat_observations[""]
            obs, next_obs = observations.take(obs_rows, axis=0), observations.take(next_rows, axis=0)
        else:
            obs = unflatten_tree({k: v.take(obs_rows, axis=0) for k, v in self._flat_observations.items()})
            next_obs = unflatten_tree({k: v.take(next_rows, axis=0) for k, v in self._flat_observations.items()})
        return {
            "obs": obs,
            "action": self.data.actions.take(step_indices, axis=0),
            "reward": self.data.rewards.take(step_indices, axis=0),
            "next_obs": next_obs,
            "terminated": self.data.terminations.take(step_indices, axis=0),
            "truncated": self.data.truncations.take(step_indices, axis=0),
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Transition ``index`` (numpy; ``len`` counts steps, as LeRobot's frames). Episodes: ``episode(i)``."""
        if not -self.num_steps <= index < self.num_steps:
            raise IndexError(f"step {index} out of range for {self.num_steps} steps")
        return map_tree_values(lambda rows: rows[0], self.transitions(np.array([index % self.num_steps])))

    def sample(self, batch_size: int, rng: np.random.Generator | None = None) -> dict[str, Any]:
        """A uniform minibatch of transitions (with replacement); ``rng`` defaults to the dataset's own
        generator (``set_seed``)."""
        return self.transitions((rng or self.rng).integers(0, self.num_steps, size=batch_size))

    def sample_episodes(self, n: int, rng: np.random.Generator | None = None) -> list[Episode]:
        """``n`` distinct episodes drawn uniformly (Minari's ``sample_episodes``)."""
        if not 0 <= n <= self.num_episodes:
            raise ValueError(f"cannot sample {n} distinct episodes from {self.num_episodes}")
        chosen = (rng or self.rng).choice(self.num_episodes, size=n, replace=False)
        return [self.episode(int(index)) for index in chosen]

    def set_seed(self, seed: int) -> None:
        """Seed the generator ``sample`` and ``sample_episodes`` use when given none."""
        self.rng = np.random.default_rng(seed)

    # -- episodes -----------------------------------------------------------------------------------
    def episode(self, index: int) -> Episode:
        if not -self.num_episodes <= index < self.num_episodes:
            raise IndexError(f"episode {index} out of range for {self.num_episodes} episodes")
        index %= self.num_episodes
        length = int(self.data.lengths[index])
        obs_slice = slice(int(self._obs_starts[index]), int(self._obs_starts[index]) + length + 1)
        step_slice = slice(int(self._step_starts[index]), int(self._step_starts[index]) + length)
        infos = {
            key: value[step_slice] if len(value) == self.num_steps else value[obs_slice]
            for key, value in self.data.infos.items()
        }
        attrs = {name: _python_value(column[index]) for name, column in self.data.episode_attrs.items()}
        return Episode(
            index=index,
            observations=map_tree(lambda a: a[obs_slice], self.data.observations),
            actions=self.data.actions[step_slice],
            rewards=self.data.rewards[step_slice],
            terminations=self.data.terminations[step_slice],
            truncations=self.data.truncations[step_slice],
            infos=infos,
            attrs=attrs,
        )

    def episodes(self, indices: Iterable[int] | None = None) -> Iterator[Episode]:
        for index in range(self.num_episodes) if indices is None else indices:
            yield self.episode(int(index))


def map_tree_values(fn, values: dict[str, Any]) -> dict[str, Any]:
    """``fn`` on every array of a transitions dict, dict observations included."""
    return {key: map_tree(fn, value) for key, value in values.items()}


def _python_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
