"""Minibatches from versions larger than memory: block shuffling covers every transition once per epoch, per seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from bench.datasets.chunk_sampling import ChunkShuffleSampler
from bench.datasets.torch_data import ChunkTransitions
from bench.errors import InvalidInput
from bench.testing.data import random_trajectories


@pytest.fixture
def lazy(local_registry, rng):
    data = random_trajectories(rng, episodes=40, min_len=3, max_len=30, dict_obs=True)
    return local_registry.load(local_registry.publish(data, "t/stream").id, in_memory=False)


def drawn_steps(batches) -> np.ndarray:
    return np.concatenate([np.asarray(batch["step"]) for batch in batches])


def test_an_epoch_draws_every_transition_exactly_once(lazy):
    sampler = ChunkShuffleSampler(lazy, batch_size=32, window=3, block_bytes=2000, seed=4)
    assert len(sampler.blocks) > 6  # several rotations
    batches = list(sampler.epoch())
    assert sorted(drawn_steps(batches)) == list(range(lazy.num_steps))
    assert all(len(batch["step"]) == 32 for batch in batches[:-1])
    # Each batch's rows are the transitions at its steps.
    for batch in batches[:3]:
        expected = lazy.transitions(batch["step"])
        np.testing.assert_array_equal(batch["action"], expected["action"])
        np.testing.assert_array_equal(batch["next_obs"]["observation"], expected["next_obs"]["observation"])
    # The next epoch is another order, and covers everything again.
    second = drawn_steps(sampler.epoch())
    assert sorted(second) == list(range(lazy.num_steps)) and not np.array_equal(second, drawn_steps(batches))
    sampler.close()


def test_the_draws_are_a_function_of_the_seed(lazy):
    def run(seed):
        sampler = ChunkShuffleSampler(lazy, batch_size=16, window=2, block_bytes=1500, seed=seed)
        try:
            return drawn_steps(sampler.epoch())
        finally:
            sampler.close()

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_shares_split_the_blocks_between_workers(lazy):
    shares = [ChunkShuffleSampler(lazy, 16, 2, 1500, seed=3, share=(i, 3)) for i in range(3)]
    steps = [drawn_steps(sampler.epoch()) for sampler in shares]
    assert sorted(np.concatenate(steps)) == list(range(lazy.num_steps))
    assert all(len(part) for part in steps)
    with pytest.raises(InvalidInput, match="share"):
        ChunkShuffleSampler(lazy, 16, share=(3, 3))


def test_a_dataloader_with_workers_streams_every_transition_once(lazy):
    stream = ChunkTransitions(lazy, batch_size=64, window=2, block_bytes=2000, seed=0)
    batches = list(DataLoader(stream, batch_size=None, num_workers=2))
    assert isinstance(batches[0]["action"], torch.Tensor) and isinstance(batches[0]["obs"], dict)
    assert sorted(torch.cat([batch["step"] for batch in batches]).tolist()) == list(range(lazy.num_steps))


def test_tiny_windows_and_large_batches_still_draw_whole_batches(lazy):
    """A batch larger than what the window's blocks have left takes more blocks in (the window grows for it)."""
    sampler = ChunkShuffleSampler(lazy, batch_size=200, window=1, block_bytes=300, seed=0)
    batches = list(sampler.epoch())
    assert sorted(drawn_steps(batches)) == list(range(lazy.num_steps))
    assert all(len(batch["step"]) == 200 for batch in batches[:-1])
    sampler.close()


def test_video_cameras_are_decoded_on_the_fly_with_each_block(local_registry, tmp_path):
    """A robot log keeps its camera as mp4 (media/); blocks of its episodes come with each observation's frame."""
    from bench.testing.data import write_robot_folder

    written = write_robot_folder(tmp_path / "session", lengths=(6, 8, 5), size=(24, 32))
    lazy = local_registry.load(local_registry.import_path(tmp_path / "session", "lab/wipe").id, in_memory=False)
    assert set(lazy.video_cameras) == {"front"}
    part = lazy.episode_range(0, 3, videos=True)
    frames = part.observations["images"]["front"]
    assert frames.shape == (6 + 8 + 5, 24, 32, 3) and frames.dtype == np.uint8
    for index, (obs_rows, _) in enumerate(part.iter_episode_slices()):  # lossy video: within a few levels
        assert np.abs(frames[obs_rows].astype(int) - written["frames"][index].astype(int)).mean() < 4.0
    sampler = ChunkShuffleSampler(lazy, batch_size=4, window=2, block_bytes=1, seed=0)  # one episode a block
    batches = list(sampler.epoch())
    assert sorted(drawn_steps(batches)) == list(range(lazy.num_steps))
    for batch in batches:
        # Step s of episode e has observation row s + e (each earlier episode has one observation more).
        rows = batch["step"] + np.searchsorted(lazy.step_starts, batch["step"], "right") - 1
        np.testing.assert_array_equal(batch["obs"]["images"]["front"], frames[rows])
        np.testing.assert_array_equal(batch["next_obs"]["images"]["front"], frames[rows + 1])
    sampler.close()
