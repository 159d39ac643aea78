"""A state run's offline data streamed from a version whose arrays do not fit in memory.

When even the arrays a run reads (its layout's observations and the steps) decode to more than
BENCH_LOAD_MAX_BYTES, the run's offline batches come from a ChunkShuffleSampler over the version
(blocks of consecutive episodes, a window of them decoded at a time, every transition once per epoch)
instead of an in-memory TransitionBuffer. Normalization statistics come from one pass over the same
arrays before training. The replay asks it for rows as it would a buffer (``draw``); a checkpoint
keeps where the stream is, and a resumed run continues from there.

What it cannot serve, it refuses before training: goals (relabeling reads other rows of an episode),
training on a subset of episodes (BC-x%), controllers (residuals are computed per dataset row) and
resets to demonstration states.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from bench.algorithms.base import Batch
from bench.datasets.chunk_sampling import ChunkShuffleSampler
from bench.datasets.lazy import LazyDataset

WINDOW = 4  # decoded blocks a streamed run holds at once (each about BLOCKS_PER_BUDGET-th of the budget)
BLOCKS_PER_BUDGET = 16


def state_statistics(version: LazyDataset, paths: list[str], state_of: Callable[[Any], np.ndarray],
                     part_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the state at every step (as a whole load computes them), in one pass over the arrays."""
    total = squares = None
    count = 0
    for part in version.parts(part_bytes, paths):
        obs_rows = np.arange(part.num_steps) + np.repeat(np.arange(part.num_episodes), part.lengths)
        states = state_of(part.observations)[obs_rows].astype(np.float64)
        total = states.sum(0) if total is None else total + states.sum(0)
        squares = (states ** 2).sum(0) if squares is None else squares + (states ** 2).sum(0)
        count += len(states)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    return mean, std


class StreamedOffline:
    """Offline rows drawn from a chunk-shuffled stream, as normalized tensors (what the replay asks of a buffer)."""

    streamed = True
    goal = None  # streamed runs have no goals

    def __init__(self, version: LazyDataset, paths: list[str], state_of: Callable[[Any], np.ndarray],
                 normalize: Callable[[np.ndarray], np.ndarray], to_unit: Callable[[np.ndarray], np.ndarray],
                 device: torch.device, seed: int, budget_bytes: int):
        self.sampler = ChunkShuffleSampler(version, batch_size=256, window=WINDOW, seed=seed, paths=paths,
                                           block_bytes=max(1, budget_bytes // BLOCKS_PER_BUDGET))
        self.state_of, self.normalize, self.to_unit = state_of, normalize, to_unit
        self.device = device
        self.size = version.num_steps
        self.action_dim = int(np.prod(version.manifest["arrays"]["actions"]["shape"][1:]))

    def draw(self, n: int) -> Batch:
        rows = self.sampler.draw(n)

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=self.device)

        return Batch(tensor(self.normalize(self.state_of(rows["obs"]))),
                     tensor(self.to_unit(rows["action"])), tensor(rows["reward"]),
                     tensor(self.normalize(self.state_of(rows["next_obs"]))), tensor(rows["terminated"]),
                     torch.ones(n, device=self.device))

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)

    def close(self) -> None:
        self.sampler.close()
