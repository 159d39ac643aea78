"""The Python API's PyTorch views: transitions with windows (LeRobot's delta_timestamps, in steps), episodes,
an episode stream split between DataLoader workers, and sampling with the dataset's own generator."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader

from bench.datasets.torch_data import Episodes, EpisodeStream, Transitions
from bench.errors import InvalidInput
from bench.testing.data import random_trajectories


@pytest.fixture
def dataset(local_registry):
    data = random_trajectories(np.random.default_rng(3), episodes=6, min_len=4, max_len=9)
    return local_registry.load(local_registry.publish(data, "lab/torch").id)


def test_transitions_are_the_datasets_steps_in_order(dataset):
    transitions = Transitions(dataset)
    assert len(transitions) == len(dataset) == dataset.num_steps
    batch = next(iter(DataLoader(transitions, batch_size=len(transitions))))
    np.testing.assert_array_equal(batch["action"].numpy(), dataset.actions)
    np.testing.assert_array_equal(batch["obs"].numpy(), dataset.observations[dataset.obs_row_of_step])
    np.testing.assert_array_equal(batch["next_obs"].numpy(), dataset.observations[dataset.obs_row_of_step + 1])
    np.testing.assert_array_equal(dataset[-1]["reward"], dataset.rewards[-1])
    with pytest.raises(IndexError):
        transitions[len(transitions)]


def test_windows_stay_inside_the_episode_and_flag_what_they_padded(dataset):
    windows = Transitions(dataset, delta_steps={"obs": [-2, -1, 0], "action": [0, 1, 2]})
    first = dataset.episode(1)
    start = int(dataset.data.step_starts[1])
    item = windows[start]  # the episode's first step: no history, so the first frame repeats
    expected = np.asarray(first.observations)[[0, 0, 0]]
    np.testing.assert_array_equal(item["obs"].numpy(), expected)
    assert item["obs_is_pad"].tolist() == [True, True, False]
    np.testing.assert_array_equal(item["action"].numpy(), first.actions[[0, 1, 2]])
    last = windows[start + len(first) - 1]  # its last step: the chunk runs past the end, repeating the last action
    np.testing.assert_array_equal(last["action"].numpy(), first.actions[[-1, -1, -1]])
    assert last["action_is_pad"].tolist() == [False, True, True]
    np.testing.assert_array_equal(last["obs"].numpy(), np.asarray(first.observations)[[-4, -3, -2]])
    with pytest.raises(InvalidInput, match="delta_steps key 'pixels'"):
        Transitions(dataset, delta_steps={"pixels": [0]})


def test_episodes_and_a_stream_split_between_workers_see_each_episode_once(dataset):
    episodes = Episodes(dataset)
    assert len(episodes) == 6
    np.testing.assert_array_equal(episodes[2]["actions"].numpy(), dataset.episode(2).actions)
    assert episodes[2]["observations"].shape[0] == len(dataset.episode(2)) + 1
    stream = DataLoader(EpisodeStream(dataset, seed=1), batch_size=None, num_workers=2)
    seen = sorted(int(item["index"]) for item in stream)
    assert seen == list(range(6))


def test_sampling_defaults_to_the_datasets_own_seeded_generator(dataset):
    dataset.set_seed(7)
    first = dataset.sample(16)["action"]
    picked = [episode.index for episode in dataset.sample_episodes(4)]
    dataset.set_seed(7)
    np.testing.assert_array_equal(dataset.sample(16)["action"], first)
    assert [episode.index for episode in dataset.sample_episodes(4)] == picked and len(set(picked)) == 4
    with pytest.raises(ValueError):
        dataset.sample_episodes(7)
