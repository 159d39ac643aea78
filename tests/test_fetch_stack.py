"""Fetch block stacking (dissertation ch. 4.7) and resets to demonstration states (ch. 4.4.4): the environment's
goals, rewards and success on hand-made states, the scripted stacker, the recorded simulator states, and
practice episodes that start inside demonstrations."""

from __future__ import annotations

import types

import gymnasium as gym
import numpy as np
import pytest

import bench.platform.envs  # noqa: F401  (registers bench/FetchStack*-v0)
from bench.datasets import Registry
from bench.datasets.recipes import get_recipe
from bench.datasets.recipes.base import to_trajectories
from bench.datasets.recipes.collection import collect_episodes
from bench.datasets.recipes.fetch import stack_action
from bench.errors import InvalidInput
from bench.evaluation.executors import execute_sweep
from bench.evaluation.layouts import ObservationLayout
from bench.evaluation.states import DemonstrationStarts
from bench.evaluation.store import RunStore
from bench.evaluation.sweeps import Budget, plan_sweep
from bench.platform.envs.fetch_stack import FetchStackEnv
from conftest import make_settings, run_bench, settings_env


@pytest.fixture(scope="module")
def stack2():
    env = gym.make("bench/FetchStack2-v0")
    yield env
    env.close()


@pytest.fixture(scope="module")
def demonstrations():
    """Three scripted stack-2 demonstrations, as the recipe collects them."""
    return to_trajectories(collect_episodes(get_recipe("fetch/stack2/demos"), 3, seed=0))


def with_block_at(env, block: int, position: np.ndarray) -> np.ndarray:
    """The simulator's state with ``block`` moved to ``position`` (at rest, upright)."""
    sim = env.unwrapped
    qpos = sim._utils.get_joint_qpos(sim.model, sim.data, f"object{block}:joint").copy()
    qpos[:3], qpos[3:] = position, [1.0, 0.0, 0.0, 0.0]
    sim._utils.set_joint_qpos(sim.model, sim.data, f"object{block}:joint", qpos)
    sim._utils.set_joint_qvel(sim.model, sim.data, f"object{block}:joint", np.zeros(6))
    return sim.sim_state()


def test_goals_stack_on_the_first_block_and_episodes_last_50_steps_per_moved_block(stack2):
    observation, _ = stack2.reset(seed=3)
    goals = observation["desired_goal"].reshape(2, 3)
    blocks = observation["achieved_goal"].reshape(2, 3)
    np.testing.assert_allclose(goals[0], blocks[0])  # g_1 = x_1: the first block starts in place
    np.testing.assert_allclose(goals[1] - goals[0], [0.0, 0.0, 0.05])  # g_i = g_(i-1) + 5 cm
    assert np.linalg.norm(blocks[1] - goals[1]) > 0.05
    assert observation["observation"].shape == (10 + 15 * 2,)
    assert stack2.spec.max_episode_steps == 50
    assert gym.spec("bench/FetchStack3-v0").max_episode_steps == 100
    with pytest.raises(ValueError, match="reward_type"):
        FetchStackEnv(blocks=2, reward_type="dense")


def test_sparse_and_step_rewards_and_success_on_hand_made_goals():
    sparse = gym.make("bench/FetchStack3-v0").unwrapped
    step = gym.make("bench/FetchStack3-v0", reward_type="step").unwrapped
    goal = np.array([1.3, 0.7, 0.42, 1.3, 0.7, 0.47, 1.3, 0.7, 0.52])
    achieved = np.stack([
        goal,                                                     # all three placed
        goal + np.array([0, 0, 0, 0.049, 0, 0, 0, 0, 0]),         # 4.9 cm off still counts (delta = 5 cm)
        goal + np.array([0, 0, 0, 0, 0, 0, 0.06, 0, 0]),          # the top block 6 cm off
        goal + np.array([0, 0, 0, 0, 0.1, 0, 0.06, 0, 0]),        # two blocks off
    ])
    goals = np.tile(goal, (4, 1))
    np.testing.assert_array_equal(sparse.compute_reward(achieved, goals, {}), [0, 0, -1, -1])  # eq. 17 - 1
    np.testing.assert_array_equal(step.compute_reward(achieved, goals, {}), [0, 0, -1, -2])  # sum of eq. 16
    assert [float(sparse._is_success(a, goal)) for a in achieved] == [1.0, 1.0, 0.0, 0.0]


def test_a_simulated_tower_is_rewarded_and_scored_a_success(stack2):
    observation, _ = stack2.reset(seed=5)
    goals = observation["desired_goal"].reshape(2, 3)
    tower = with_block_at(stack2, 1, goals[1] + [0.0, 0.0, 0.001])
    observation = stack2.unwrapped.reset_to(tower, observation["desired_goal"])
    observation, reward, _, _, info = stack2.step(np.array([0.0, 0.0, 0.0, 1.0]))
    assert reward == 0.0 and info["is_success"] == 1.0
    np.testing.assert_allclose(observation["achieved_goal"][3:], goals[1], atol=0.01)  # the block stays on top


def test_the_scripted_stacker_stacks_two_blocks(stack2):
    for seed in range(3):
        observation, _ = stack2.reset(seed=seed)
        while True:
            observation, reward, terminated, truncated, info = stack2.step(stack_action(observation, 2))
            if terminated or truncated:
                break
        assert info["is_success"] == 1.0 and reward == 0.0, seed


def test_demonstrations_record_the_simulator_state_and_reset_to_puts_the_simulator_back(stack2, demonstrations):
    states, observations = demonstrations.infos["sim_state"], demonstrations.observations
    sim = stack2.unwrapped
    assert states.shape == (demonstrations.num_steps + demonstrations.num_episodes, sim.model.nq + sim.model.nv)
    stack2.reset(seed=99)
    for row in [0, 17, 49, 51, 120]:
        observation = sim.reset_to(states[row], observations["desired_goal"][row])
        np.testing.assert_array_equal(sim.data.qpos, states[row][:sim.model.nq])  # positions equal
        np.testing.assert_array_equal(sim.data.qvel, states[row][sim.model.nq:])
        np.testing.assert_array_equal(observation["desired_goal"], observations["desired_goal"][row])
        # MuJoCo reports positions after a step from before its last substep's integration, so a recorded
        # observation may trail its state by one 2 ms substep: at most ~2 mm at these speeds.
        np.testing.assert_allclose(observation["achieved_goal"], observations["achieved_goal"][row], atol=3e-3)
    with pytest.raises(ValueError, match="numbers"):
        sim.reset_to(states[0][:-1], observations["desired_goal"][0])


def test_demonstration_starts_draw_a_state_the_demonstrator_acted_in_and_its_final_goal(stack2, demonstrations):
    dataset = types.SimpleNamespace(id="test/stack2-v1", data=demonstrations)
    layout = ObservationLayout.of({"name": "fetch/stack2"}, stack2.observation_space)
    starts = DemonstrationStarts(dataset, layout, stack2)
    obs_starts, lengths = demonstrations.obs_starts, demonstrations.lengths
    final_goals = demonstrations.observations["achieved_goal"][obs_starts + lengths]
    rng, episodes = np.random.default_rng(0), set()
    for _ in range(60):
        state, goal = starts.draw(rng)
        row = int(np.flatnonzero((demonstrations.infos["sim_state"] == state).all(1))[0])
        episode = int(np.searchsorted(obs_starts, row, side="right") - 1)
        assert row < obs_starts[episode] + lengths[episode]  # never the last state, after the last action
        np.testing.assert_array_equal(goal, final_goals[episode])
        episodes.add(episode)
    assert episodes == {0, 1, 2}
    without = types.SimpleNamespace(id="test/push-v1", data=types.SimpleNamespace(infos={}))
    with pytest.raises(InvalidInput, match="infos/sim_state"):
        DemonstrationStarts(without, layout, stack2)
    push = gym.make("FetchPush-v4")
    with pytest.raises(InvalidInput, match="cannot"):
        DemonstrationStarts(dataset, layout, push)


@pytest.mark.slow
def test_practice_episodes_start_from_demonstrations_and_evaluation_episodes_never_do(request, tmp_path,
                                                                                      monkeypatch):
    settings = make_settings(request, tmp_path, "sqlite-local")
    run_bench(settings_env(settings), "datasets", "build", "fetch/stack2/demos", "--episodes", "3",
              "--reference-episodes", "1", "--workers", "1")
    calls = []
    reset_to = FetchStackEnv.reset_to

    def counted(self, state, goal):
        calls.append(np.array(goal))
        return reset_to(self, state, goal)

    monkeypatch.setattr(FetchStackEnv, "reset_to", counted)
    registry = Registry.open(settings)
    try:
        store = RunStore(registry.engine)
        budget = Budget(offline_steps=0, online_steps=120, eval_every=60, eval_episodes=2, log_every=60)
        small = {"hidden_dims": "32x32", "batch_size": "32", "demo_batch_size": "8", "demo_resets": "true"}
        specs = plan_sweep(registry, store, "ddpg-demos", "fetch/stack2/demos-v1", [0], budget,
                           {**small, "demo_reset_share": "1.0"})
        outcome = execute_sweep(specs, registry.settings, store)[0]
        assert outcome.status == "completed", outcome.error
        # 120 steps of 50-step episodes: practice resets at steps 0, 50 and 100, each into a demonstration;
        # the 3 x 2 evaluation episodes reset normally.
        assert len(calls) == 3
        calls.clear()
        specs = plan_sweep(registry, store, "ddpg-demos", "fetch/stack2/demos-v1", [0], budget,
                           {**small, "demo_resets": "false"})
        assert execute_sweep(specs, registry.settings, store)[0].status == "completed" and calls == []
        push = run_bench(settings_env(settings), "datasets", "build", "fetch/push/demos", "--episodes", "2",
                         "--reference-episodes", "1", "--workers", "1")
        assert push.returncode == 0
        refused = run_bench(settings_env(settings), "evaluate", "ddpg-demos", "fetch/push/demos", "--online-steps",
                            "10", "--set", "demo_resets=true", check=False)
        assert refused.returncode != 0 and "infos/sim_state" in refused.stderr  # refused before any run is made
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        registry.close()


def test_her_relabels_stacking_goals_with_achieved_towers_and_the_envs_reward(stack2, demonstrations):
    """Ch. 4.3.4: half the goals become the episode's final achieved state, rewarded by compute_reward;
    a relabeled goal is a tower the demonstration built, so its last transitions earn 0, not -1."""
    import torch

    from bench.algorithms.replay import RelabelShares, Replay, TransitionBuffer

    data, layout = demonstrations, ObservationLayout.of({"name": "fetch/stack2"}, stack2.observation_space)
    rows = np.arange(data.num_steps) + np.repeat(np.arange(data.num_episodes), data.lengths)
    observations = data.observations
    buffer = TransitionBuffer.from_arrays(
        observations["observation"][rows], observations["observation"][rows + 1], data.actions, data.rewards,
        data.terminations, data.lengths, observations["desired_goal"][rows], observations["achieved_goal"][rows + 1])
    replay = Replay(buffer, relabel=RelabelShares(keep=0.5, final=0.5), goal_reward=layout.goal_reward(stack2), seed=0)
    batch = replay.sample(400)
    goal = batch.obs[:, -6:].numpy()
    # Which row each sample is: its state and action are unique in the data.
    index = [int(np.flatnonzero((buffer.state.numpy() == s).all(1))[0]) for s in batch.obs[:, :-6].numpy()]
    achieved = buffer.next_achieved.numpy()[index]
    expected = stack2.unwrapped.compute_reward(achieved, goal, {})
    np.testing.assert_array_equal(batch.reward.numpy(), expected)
    ends = buffer.episode_end.numpy()[index]
    relabeled = ~np.isclose(goal, buffer.goal.numpy()[index]).all(1)
    assert 0.3 < relabeled.mean() < 0.7
    np.testing.assert_array_equal(goal[relabeled], buffer.next_achieved.numpy()[ends[relabeled]])
    assert (batch.reward.numpy()[relabeled] == 0.0).any() and torch.all(batch.done == 0)
