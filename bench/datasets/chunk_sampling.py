"""Random minibatches from a version larger than memory, shuffled at the granularity of episode ranges.

Random rows read one by one from compressed chunks cost ~1000x rows read from memory, so a version
that does not fit is shuffled the way LeRobot and RLDS users stream theirs: in blocks.

    blocks   consecutive episodes of about ``block_bytes`` decoded (LazyDataset.ranges): one read each
    epoch e  visits the blocks in the order of a permutation seeded by (seed, e)
    window   holds ``window`` decoded blocks; a minibatch draws rows uniformly *without replacement*
             among the rows of the window not yet drawn this epoch
    rotate   a block whose rows have all been drawn leaves; the next block of the order enters,
             decoded ahead of time by a background thread

So every transition is drawn exactly once per epoch, and what is drawn depends only on the seed: the
thread changes when a block is decoded, never which rows a minibatch gets. The price is correlation:
a minibatch's rows come from ``window`` blocks rather than from the whole version (benchmarks/streaming.py
measures how many distinct episodes a batch holds against uniform sampling).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterator

import numpy as np

from bench.datasets.dataset import Dataset
from bench.datasets.lazy import READ_BYTES, LazyDataset
from bench.errors import InvalidInput


class ChunkShuffleSampler:
    """Minibatches of transitions (Dataset.transitions' dict plus ``"step"``, the rows' step indices)."""

    def __init__(self, version: LazyDataset, batch_size: int, window: int = 4, block_bytes: int = READ_BYTES,
                 seed: int = 0, share: tuple[int, int] = (0, 1), videos: bool = True, paths: list[str] | None = None):
        """``share`` = (i, n): only every n-th block from the i-th of each epoch's order (DataLoader workers).
        ``videos``: a robot log's video cameras are decoded with each block (``obs["images"][camera]``).
        ``paths``: only these arrays are read (LazyDataset.episode_range)."""
        if batch_size < 1 or window < 1:
            raise InvalidInput(f"batch_size and window must be >= 1, got {batch_size} and {window}")
        if not 0 <= share[0] < share[1]:
            raise InvalidInput(f"share must be (i, n) with 0 <= i < n, got {share}")
        self.version, self.batch_size, self.window, self.seed, self.share = version, batch_size, window, seed, share
        self.videos, self.paths = videos and bool(version.video_cameras), paths
        self.blocks = version.ranges(block_bytes, videos=self.videos)
        self.block_starts = np.array([version.step_starts[start] for start, _ in self.blocks] + [version.num_steps],
                                     np.int64)
        self.capacity = max(int(version.lengths[start:stop].sum()) for start, stop in self.blocks)
        self.epochs_done = 0
        self._current: _Epoch | None = None  # the epoch ``draw`` is in
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-sampler")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Minibatches, epoch after epoch."""
        while True:
            yield from self.epoch()

    def block_order(self, epoch: int) -> list[int]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.blocks))
        return [int(block) for block in order[self.share[0]::self.share[1]]]

    def epoch(self) -> Iterator[dict[str, Any]]:
        """One epoch: each transition of this sampler's blocks exactly once (the last minibatch may be smaller)."""
        current = _Epoch(self, self.epochs_done)
        while not current.exhausted:
            yield current.take(self.batch_size)
        self.epochs_done += 1

    def draw(self, n: int) -> dict[str, Any]:
        """The next ``n`` rows, continuing into the next epoch when this one runs out: how a learner that asks for
        batches of any size (the harness's replay) consumes the stream."""
        pieces = []
        while n > 0:
            if self._current is None or self._current.exhausted:
                if self._current is not None:
                    self.epochs_done += 1
                self._current = _Epoch(self, self.epochs_done)
            piece = self._current.take(n)
            n -= len(piece["step"])
            pieces.append(piece)
        return pieces[0] if len(pieces) == 1 else _join(pieces)

    def state_dict(self) -> dict[str, int]:
        """Where ``draw`` is: its epoch and the rows drawn in it."""
        return {"epoch": self.epochs_done, "drawn": self._current.drawn if self._current is not None else 0}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue ``draw`` where ``state`` was taken: the epoch's draws are replayed without gathering any rows
        (blocks are decoded again as the replay passes them), so the next draw is the one that would have come."""
        self.epochs_done = int(state["epoch"])
        self._current = _Epoch(self, self.epochs_done)
        remaining = int(state["drawn"])
        while remaining > 0 and not self._current.exhausted:
            remaining -= len(self._current.take(min(remaining, 1 << 16), gather=False)["step"])

    def _decode(self, block: int) -> tuple[int, dict[str, Any]]:
        """A block's transitions (Dataset.transitions of all its steps), decoded from its chunks."""
        start, stop = self.blocks[block]
        part = Dataset(self.version.id, self.version.episode_range(start, stop, self.paths, videos=self.videos),
                       self.version.manifest, self.version.episode_table.slice(start, stop - start))
        return block, part.transitions(np.arange(part.num_steps))

    def close(self) -> None:
        self._loader.shutdown(wait=True, cancel_futures=True)


class _Epoch:
    """One epoch of a ChunkShuffleSampler: its block order, the window of decoded blocks and the pool of rows not
    yet drawn. The window is one array per field of (slots x capacity) rows, so a minibatch is one gather per
    field; a pool entry is slot * capacity + the row within its block."""

    def __init__(self, sampler: ChunkShuffleSampler, epoch: int):
        self.sampler = sampler
        self.rng = np.random.default_rng([sampler.seed, epoch, 1])
        self.order = sampler.block_order(epoch)
        self.pending: list[Future] = [sampler._loader.submit(sampler._decode, block)
                                      for block in self.order[:sampler.window + 1]]
        self.next_block = len(self.pending)
        self.slots = sampler.window + 1  # a top-up of a nearly drained pool takes a block more
        self.window: dict[str, Any] | None = None
        self.slot_start = np.zeros(self.slots, np.int64)  # the global step row of each slot's first row
        self.remaining = np.zeros(self.slots, np.int64)  # rows of each slot not yet drawn
        self.pool = np.empty(0, np.int64)
        self.size = 0  # pool[:size] are the rows not yet drawn
        self.drawn = 0
        while self.pending and np.count_nonzero(self.remaining) < sampler.window:
            self._admit()

    @property
    def exhausted(self) -> bool:
        return self.size == 0 and not self.pending

    def _admit(self) -> None:
        capacity = self.sampler.capacity
        block, transitions = self.pending.pop(0).result()
        rows = len(transitions["action"])
        if self.window is None:
            self.window = _map(lambda a: np.empty((self.slots * capacity, *a.shape[1:]), a.dtype), transitions)
        if not (self.remaining == 0).any():  # every slot still has rows (a top-up): one slot more
            self.window = _map(lambda a: np.concatenate([a, np.empty((capacity, *a.shape[1:]), a.dtype)]), self.window)
            self.slot_start, self.remaining = np.append(self.slot_start, 0), np.append(self.remaining, 0)
        slot = int(np.flatnonzero(self.remaining == 0)[0])
        _fill(self.window, transitions, slot * capacity)
        self.slot_start[slot] = self.sampler.block_starts[block]
        self.remaining[slot] = rows
        self.pool = np.concatenate([self.pool[:self.size], slot * capacity + np.arange(rows, dtype=np.int64)])
        self.size = len(self.pool)
        if self.next_block < len(self.order):  # keep one block decoding ahead of need
            self.pending.append(self.sampler._loader.submit(self.sampler._decode, self.order[self.next_block]))
            self.next_block += 1

    def take(self, n: int, gather: bool = True) -> dict[str, Any]:
        """Up to ``n`` rows drawn without replacement (fewer only when the epoch runs out)."""
        while self.size < n and self.pending:  # a nearly drained window: top it up, batches stay whole
            self._admit()
        take = min(n, self.size)
        positions = self.rng.choice(self.size, size=take, replace=False)
        keys = self.pool[positions]
        # Remove the drawn rows in O(batch): the undrawn rows of the pool's last `take` slots fill the holes
        # the draw left before them.
        drawn_in_tail = np.zeros(take, bool)
        drawn_in_tail[positions[positions >= self.size - take] - (self.size - take)] = True
        holes = positions[positions < self.size - take]
        self.pool[holes] = self.pool[self.size - take + np.flatnonzero(~drawn_in_tail)]
        self.size -= take
        self.drawn += take
        batch = _map(lambda a: a.take(keys, axis=0), self.window) if gather else {}  # take: ~2x fancy indexing
        slot, row = np.divmod(keys, self.sampler.capacity)
        batch["step"] = self.slot_start[slot] + row
        np.subtract.at(self.remaining, slot, 1)
        while self.pending and np.count_nonzero(self.remaining) < self.sampler.window:  # drained blocks leave
            self._admit()
        return batch


def _map(fn, transitions: dict[str, Any]) -> dict[str, Any]:
    return {key: _map(fn, value) if isinstance(value, dict) else fn(value) for key, value in transitions.items()}


def _fill(window: dict[str, Any], transitions: dict[str, Any], offset: int) -> None:
    for key, value in transitions.items():
        if isinstance(value, dict):
            _fill(window[key], value, offset)
        else:
            window[key][offset:offset + len(value)] = value


def _join(batches: list[dict[str, Any]]) -> dict[str, Any]:
    first = batches[0]
    return {key: _join([b[key] for b in batches]) if isinstance(first[key], dict)
            else np.concatenate([b[key] for b in batches]) for key in first}
