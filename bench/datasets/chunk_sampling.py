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
                 seed: int = 0, share: tuple[int, int] = (0, 1), videos: bool = True):
        """``share`` = (i, n): only every n-th block from the i-th of each epoch's order (DataLoader workers).
        ``videos``: a robot log's video cameras are decoded with each block (``obs["images"][camera]``)."""
        if batch_size < 1 or window < 1:
            raise InvalidInput(f"batch_size and window must be >= 1, got {batch_size} and {window}")
        if not 0 <= share[0] < share[1]:
            raise InvalidInput(f"share must be (i, n) with 0 <= i < n, got {share}")
        self.version, self.batch_size, self.window, self.seed, self.share = version, batch_size, window, seed, share
        self.videos = videos and bool(version.video_cameras)
        self.blocks = version.ranges(block_bytes, videos=self.videos)
        self.epochs_done = 0
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
        epoch = self.epochs_done
        rng = np.random.default_rng([self.seed, epoch, 1])
        order = self.block_order(epoch)
        pending: list[Future] = [self._loader.submit(self._decode, block) for block in order[:self.window + 1]]
        next_block = len(pending)
        # The window: ``slots`` blocks' transitions, laid out as one array per field of (slots x capacity) rows,
        # so a minibatch is one fancy index per field. A pool entry is slot * capacity + row in its block.
        capacity = max(int(self.version.lengths[start:stop].sum()) for start, stop in self.blocks)
        slots = self.window + 1  # a top-up of a nearly drained pool takes a block more
        window: dict[str, Any] | None = None
        slot_start = np.zeros(slots, np.int64)  # the global step row of each slot's first row
        remaining = np.zeros(slots, np.int64)  # rows of each slot not yet drawn
        pool = np.empty(0, np.int64)
        size = 0  # pool[:size] are the rows not yet drawn

        def admit() -> None:
            nonlocal pool, size, next_block, window, slot_start, remaining
            block, transitions = pending.pop(0).result()
            rows = len(transitions["action"])
            if window is None:
                window = _map(lambda a: np.empty((slots * capacity, *a.shape[1:]), a.dtype), transitions)
            if not (remaining == 0).any():  # every slot still has rows (a top-up): one slot more
                window = _map(lambda a: np.concatenate([a, np.empty((capacity, *a.shape[1:]), a.dtype)]), window)
                slot_start, remaining = np.append(slot_start, 0), np.append(remaining, 0)
            slot = int(np.flatnonzero(remaining == 0)[0])
            _fill(window, transitions, slot * capacity)
            slot_start[slot] = self.version.step_starts[self.blocks[block][0]]
            remaining[slot] = rows
            pool = np.concatenate([pool[:size], slot * capacity + np.arange(rows, dtype=np.int64)])
            size = len(pool)
            if next_block < len(order):  # keep one block decoding ahead of need
                pending.append(self._loader.submit(self._decode, order[next_block]))
                next_block += 1

        while pending and np.count_nonzero(remaining) < self.window:
            admit()
        while size:
            while size < self.batch_size and pending:  # a nearly drained window: top it up, batches stay whole
                admit()
            take = min(self.batch_size, size)
            positions = rng.choice(size, size=take, replace=False)
            keys = pool[positions]
            # Remove the drawn rows in O(batch): the undrawn rows of the pool's last `take` slots fill the
            # holes the draw left before them.
            drawn_in_tail = np.zeros(take, bool)
            drawn_in_tail[positions[positions >= size - take] - (size - take)] = True
            holes = positions[positions < size - take]
            pool[holes] = pool[size - take + np.flatnonzero(~drawn_in_tail)]
            size -= take
            batch = _map(lambda a: a.take(keys, axis=0), window)  # take: ~2x fancy indexing on rows
            slot, row = np.divmod(keys, capacity)
            batch["step"] = slot_start[slot] + row
            yield batch
            np.subtract.at(remaining, slot, 1)
            while pending and np.count_nonzero(remaining) < self.window:  # drained blocks leave, the next enter
                admit()
        self.epochs_done += 1

    def _decode(self, block: int) -> tuple[int, dict[str, Any]]:
        """A block's transitions (Dataset.transitions of all its steps), decoded from its chunks."""
        start, stop = self.blocks[block]
        part = Dataset(self.version.id, self.version.episode_range(start, stop, videos=self.videos), self.version.manifest,
                       self.version.episode_table.slice(start, stop - start))
        return block, part.transitions(np.arange(part.num_steps))

    def close(self) -> None:
        self._loader.shutdown(wait=True, cancel_futures=True)


def _map(fn, transitions: dict[str, Any]) -> dict[str, Any]:
    return {key: _map(fn, value) if isinstance(value, dict) else fn(value) for key, value in transitions.items()}


def _fill(window: dict[str, Any], transitions: dict[str, Any], offset: int) -> None:
    for key, value in transitions.items():
        if isinstance(value, dict):
            _fill(window[key], value, offset)
        else:
            window[key][offset:offset + len(value)] = value
