"""PyTorch views of a loaded version: transitions (with windows of neighbouring steps) and whole episodes.

``Transitions`` is a map-style ``torch.utils.data.Dataset`` over steps, so a ``DataLoader`` shuffles,
batches and runs workers over it as over any other. ``delta_steps`` asks for neighbouring steps of
the same episode, as LeRobot's ``delta_timestamps`` does in seconds: ``{"obs": [-2, -1, 0]}`` stacks
three frames, ``{"action": [0, 1, 2, 3]}`` gives an action chunk. Offsets that fall outside the
episode repeat its first or last row and are flagged in ``"<key>_is_pad"``. ``Episodes`` is a
map-style view over whole episodes, and ``EpisodeStream`` an iterable one that splits episodes
between ``DataLoader`` workers.

Everything above reads the arrays the ``Dataset`` already holds in memory (never storage: random rows
from compressed chunks are ~1000x slower), so workers share them copy-on-write after a fork.
``ChunkTransitions`` is for versions that do not fit (a LazyDataset): minibatches shuffled at the
granularity of episode ranges (bench.datasets.chunk_sampling), each worker streaming its share.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import IterableDataset, get_worker_info

from bench.datasets.chunk_sampling import ChunkShuffleSampler
from bench.datasets.dataset import Dataset, Episode
from bench.datasets.lazy import READ_BYTES, LazyDataset
from bench.datasets.trajectories import flatten_tree, unflatten_tree
from bench.errors import InvalidInput

# Per-step keys and the observation keys: what ``delta_steps`` may name.
STEP_KEYS = ("action", "reward", "terminated", "truncated")
OBSERVATION_KEYS = ("obs", "next_obs")


def _tensor(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _tensor(item) for key, item in value.items()}
    return torch.from_numpy(np.ascontiguousarray(value))


class Transitions(TorchDataset):
    """Item i: step i's obs, action, reward, next_obs, terminated, truncated as tensors (dict observations
    stay dicts), with ``delta_steps`` windows where asked."""

    def __init__(self, dataset: Dataset, delta_steps: dict[str, list[int]] | None = None):
        self.dataset = dataset
        self.delta_steps = {key: [int(o) for o in offsets] for key, offsets in (delta_steps or {}).items()}
        for key, offsets in self.delta_steps.items():
            if key not in (*STEP_KEYS, *OBSERVATION_KEYS):
                raise InvalidInput(f"delta_steps key {key!r}: choose from {', '.join((*OBSERVATION_KEYS, *STEP_KEYS))}")
            if not offsets:
                raise InvalidInput(f"delta_steps[{key!r}] is empty; give at least one offset (0 is the step itself)")
        data = dataset.data
        self.episode_of_step = np.repeat(np.arange(data.num_episodes), data.lengths)
        self.step_in_episode = np.arange(data.num_steps) - data.step_starts[self.episode_of_step]

    def __len__(self) -> int:
        return self.dataset.num_steps

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]  # raises IndexError out of range
        index %= len(self)
        for key, offsets in self.delta_steps.items():
            item[key], item[f"{key}_is_pad"] = self._window(index, key, np.asarray(offsets))
        return _tensor(item)

    def _window(self, index: int, key: str, offsets: np.ndarray) -> tuple[Any, np.ndarray]:
        """Rows index + offsets of one episode, clamped to its edges; the mask says which were clamped."""
        data = self.dataset.data
        episode = self.episode_of_step[index]
        length = int(data.lengths[episode])
        # Observations run 0..T (T+1 rows); "next_obs" is the observation one row on.
        last = length if key in OBSERVATION_KEYS else length - 1
        shift = 1 if key == "next_obs" else 0
        wanted = self.step_in_episode[index] + shift + offsets
        clamped = np.clip(wanted, 0, last)
        pad = wanted != clamped
        if key in OBSERVATION_KEYS:
            rows = data.obs_starts[episode] + clamped
            flat = {name: array[rows] for name, array in flatten_tree(data.observations, "").items()}
            return (flat[""] if list(flat) == [""] else unflatten_tree(flat)), pad
        arrays = {"action": data.actions, "reward": data.rewards, "terminated": data.terminations,
                  "truncated": data.truncations}
        return arrays[key][data.step_starts[episode] + clamped], pad


def episode_tensors(episode: Episode) -> dict[str, Any]:
    """One episode as tensors: T+1 observations, T actions, rewards, terminations, truncations; infos; attrs."""
    return {"index": episode.index, "observations": _tensor(episode.observations), "actions": _tensor(episode.actions),
            "rewards": _tensor(episode.rewards), "terminations": _tensor(episode.terminations),
            "truncations": _tensor(episode.truncations), "infos": _tensor(episode.infos), "attrs": episode.attrs}


class Episodes(TorchDataset):
    """Item i: episode i as tensors (``episode_tensors``). Episodes differ in length: batch them with
    ``batch_size=None`` or a ``collate_fn`` that pads."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return self.dataset.num_episodes

    def __getitem__(self, index: int) -> dict[str, Any]:
        return episode_tensors(self.dataset.episode(index))


class EpisodeStream(IterableDataset):
    """Every episode once per pass, in a fresh random order each pass (``seed`` + pass number), split between
    ``DataLoader`` workers so that each episode is read by exactly one of them."""

    def __init__(self, dataset: Dataset, shuffle: bool = True, seed: int = 0):
        self.dataset, self.shuffle, self.seed = dataset, shuffle, seed
        self.passes = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = np.arange(self.dataset.num_episodes)
        if self.shuffle:
            np.random.default_rng([self.seed, self.passes]).shuffle(order)
        self.passes += 1
        worker = get_worker_info()
        if worker is not None:
            order = order[worker.id::worker.num_workers]
        for index in order:
            yield episode_tensors(self.dataset.episode(int(index)))


class ChunkTransitions(IterableDataset):
    """Minibatches of transitions as tensors from a version read on demand, ``epochs`` times over; each
    ``DataLoader`` worker streams every n-th block of each epoch's order, so the workers together draw every
    transition exactly once per epoch. Load with ``DataLoader(stream, batch_size=None, num_workers=n)``:
    the batches are made here, a block at a time (ChunkShuffleSampler)."""

    def __init__(self, version: LazyDataset, batch_size: int, window: int = 4, block_bytes: int = READ_BYTES,
                 seed: int = 0, epochs: int = 1):
        self.version, self.batch_size, self.window = version, batch_size, window
        self.block_bytes, self.seed, self.epochs = block_bytes, seed, epochs

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = get_worker_info()
        share = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        sampler = ChunkShuffleSampler(self.version, self.batch_size, self.window, self.block_bytes, self.seed, share)
        try:
            for _ in range(self.epochs):
                for batch in sampler.epoch():
                    yield _tensor(batch)
        finally:
            sampler.close()
