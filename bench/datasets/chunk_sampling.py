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
from bench.datasets.lazy import READ_BYTES, LazyDataset, join_transitions
from bench.errors import InvalidInput


class ChunkShuffleSampler:
    """Minibatches of transitions (Dataset.transitions' dict plus ``"step"``, the rows' step indices)."""

    def __init__(self, version: LazyDataset, batch_size: int, window: int = 4, block_bytes: int = READ_BYTES,
                 seed: int = 0, share: tuple[int, int] = (0, 1)):
        """``share`` = (i, n): only every n-th block from the i-th of each epoch's order (DataLoader workers)."""
        if batch_size < 1 or window < 1:
            raise InvalidInput(f"batch_size and window must be >= 1, got {batch_size} and {window}")
        if not 0 <= share[0] < share[1]:
            raise InvalidInput(f"share must be (i, n) with 0 <= i < n, got {share}")
        self.version, self.batch_size, self.window, self.seed, self.share = version, batch_size, window, seed, share
        self.blocks = version.ranges(block_bytes)
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
        loaded: dict[int, Dataset] = {}  # block -> its episodes in memory
        remaining: dict[int, int] = {}  # block -> rows not yet drawn
        pool = np.empty(0, np.int64)  # global step rows not yet drawn, of the blocks in the window
        block_starts = np.array([self.version.step_starts[start] for start, _ in self.blocks] +
                                [self.version.num_steps], np.int64)

        size = 0  # pool[:size] are the rows not yet drawn

        def admit() -> None:
            nonlocal pool, size, next_block
            block, data = pending.pop(0).result()
            loaded[block] = data
            remaining[block] = data.num_steps
            pool = np.concatenate([pool[:size], block_starts[block] + np.arange(data.num_steps, dtype=np.int64)])
            size = len(pool)
            if next_block < len(order):  # keep one block decoding ahead of need
                pending.append(self._loader.submit(self._decode, order[next_block]))
                next_block += 1

        while pending and len(loaded) < self.window:
            admit()
        while size:
            while size < self.batch_size and pending:  # a nearly drained window: top it up, batches stay whole
                admit()
            take = min(self.batch_size, size)
            positions = rng.choice(size, size=take, replace=False)
            steps = pool[positions]
            # Remove the drawn rows in O(batch): the undrawn rows of the pool's last `take` slots fill the
            # holes the draw left before them.
            tail = np.arange(size - take, size)
            holes = positions[positions < size - take]
            pool[holes] = pool[tail[~np.isin(tail, positions)]]
            size -= take
            yield self._transitions(steps, loaded, block_starts)
            blocks_of = np.searchsorted(block_starts, steps, side="right") - 1
            for block, count in zip(*np.unique(blocks_of, return_counts=True)):
                remaining[int(block)] -= int(count)
                if remaining[int(block)] == 0:
                    del loaded[int(block)], remaining[int(block)]
                    if pending:
                        admit()
        self.epochs_done += 1

    def _decode(self, block: int) -> tuple[int, Dataset]:
        start, stop = self.blocks[block]
        return block, Dataset(self.version.id, self.version.episode_range(start, stop), self.version.manifest,
                              self.version.episode_table.slice(start, stop - start))

    def _transitions(self, steps: np.ndarray, loaded: dict[int, Dataset], block_starts: np.ndarray) -> dict[str, Any]:
        blocks_of = np.searchsorted(block_starts, steps, side="right") - 1
        pieces = []
        for block in np.unique(blocks_of):
            rows = np.flatnonzero(blocks_of == block)
            pieces.append((rows, loaded[int(block)].transitions(steps[rows] - block_starts[block])))
        batch = join_transitions(pieces)
        batch["step"] = steps
        return batch

    def close(self) -> None:
        self._loader.shutdown(wait=True, cancel_futures=True)
