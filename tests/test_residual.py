"""Residual RL (dissertation ch. 5-6): the composition u = pi_H(s) + pi_theta(s), its learners and baselines, and the
block- and connector-insertion environments it is measured on."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from bench.algorithms import build_algorithm, make_config
from bench.datasets.recipes.build import build
from bench.errors import InvalidInput
from bench.evaluation.controllers import ResidualComposition, make_controller
from bench.evaluation.kinds import build_run
from bench.evaluation.layouts import evaluation_seed
from bench.evaluation.store import RunStore
from bench.evaluation.sweeps import Budget, plan_sweep
from bench.platform.envs import block_insertion, connector_insertion
from conftest import interrupted_evaluation, run_bench, settings_env

SMALL = {"hidden_dims": "32x32", "batch_size": "32"}


# -- the composition ----------------------------------------------------------------------------------
def test_the_executed_action_is_the_controller_plus_the_residual_and_a_zero_residual_is_the_controller():
    space = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
    composition = ResidualComposition(lambda observation: np.array([observation, -1.0]), space)
    np.testing.assert_allclose(composition.execute(0.5, np.zeros(2)), [0.5, -1.0])  # exactly pi_H
    # A residual counts half the space's range per unit (2 here); the sum is clipped to the space.
    np.testing.assert_allclose(composition.execute(0.5, np.array([0.25, -1.0])), [1.0, -2.0])
    np.testing.assert_allclose(composition.execute(1.5, np.array([1.0, 0.0])), [2.0, -1.0])
    # A dataset's action becomes the residual that reproduces it.
    residual = composition.residual_of(0.5, np.array([1.5, 0.0]))
    np.testing.assert_allclose(residual, [0.5, 0.5])
    np.testing.assert_allclose(composition.execute(0.5, residual), [1.5, 0.0])


@pytest.mark.parametrize("algorithm", ["residual-td3", "residual-sac"])
def test_the_residual_policys_last_layer_starts_near_zero(algorithm):
    torch.manual_seed(0)
    learner = build_algorithm(algorithm, make_config(algorithm), 17, 3)
    obs = torch.randn(256, 17)
    assert learner.act(obs).abs().max() > 0.02  # an ordinary initialisation acts
    learner.start_near_zero()
    assert learner.act(obs).abs().max() < 0.02


def test_sac_actor_warmup_trains_the_critic_alone_first():
    from bench.algorithms import Batch

    torch.manual_seed(0)
    sac = build_algorithm("residual-sac", make_config("residual-sac", None, {**SMALL, "actor_warmup": "3"}), 5, 2)
    batch = Batch(torch.randn(32, 5), torch.rand(32, 2) * 2 - 1, torch.randn(32), torch.randn(32, 5), torch.zeros(32))
    policy = [p.clone() for p in sac.policy.parameters()]
    critic = [p.clone() for p in sac.critic.parameters()]
    for _ in range(3):
        sac.update(batch)
    assert all(torch.equal(a, b) for a, b in zip(policy, sac.policy.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(critic, sac.critic.parameters()))
    sac.update(batch)
    assert not all(torch.equal(a, b) for a, b in zip(policy, sac.policy.parameters()))


def test_residual_configs_need_a_controller_and_refuse_relabeling_around_one():
    for algorithm in ("residual-td3", "residual-sac", "controller"):
        with pytest.raises(InvalidInput, match="needs a controller"):
            make_config(algorithm, None, {"controller": "none"})
    with pytest.raises(InvalidInput, match="controller_gains"):
        make_config("residual-td3", None, {"controller_gains": "1,1,0.3"})  # gains belong to the p-controller
    assert make_config("td3", None, {"controller": "p-controller", "controller_gains": "2,2,1"}).controller_gains == (2, 2, 1)
    residual_td3 = make_config("residual-td3")
    assert residual_td3.exploration == "gaussian" and residual_td3.her is False and residual_td3.actor_warmup == 1000


# -- the environments ---------------------------------------------------------------------------------
def rollout(env, control, seed):
    observation, info = env.reset(seed=seed)
    total = 0.0
    while True:
        observation, reward, terminated, truncated, info = env.step(control(observation))
        total += reward
        if terminated or truncated:
            return total, info


def test_block_insertion_rewards_eq_22_on_hand_made_states_and_rotates_within_its_range():
    env = block_insertion.BlockInsertionEnv(rotation_range=0.2)
    env.reset(seed=0)
    # Lift the held block 10 cm straight above its place, shift one standing block 3 cm and tip it 90 degrees.
    gripper, standing = env._gripper_qpos, env._standing_qpos[1]
    env.data.qpos[gripper:gripper + 3] = block_insertion.PLACE + [0.0, 0.0, 0.1]
    env.data.qpos[standing:standing + 3] = env.initial_standing[1] + [0.03, 0.0, 0.0]
    env.data.qpos[standing + 3:standing + 7] = [np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0]
    import mujoco

    mujoco.mj_forward(env.model, env.data)
    terms = env.reward_terms()
    assert terms["f"] == pytest.approx(-10 * 0.1, abs=1e-5)
    assert terms["g"] == pytest.approx(-(10 * 0.03 + np.pi / 2), abs=1e-4)
    assert not env._info(terms)["success"]
    # Rotation about the vertical, drawn from U[-r, r] per block and reset.
    angles = []
    for seed in range(30):
        env.reset(seed=seed)
        for _, quaternion in env.standing_poses():
            assert block_insertion.tilt_of(quaternion) < 1e-9  # upright
            angles.append(2 * np.arctan2(quaternion[3], quaternion[0]))
    assert max(np.abs(angles)) <= 0.2 and np.ptp(angles) > 0.3


def test_the_block_inserter_succeeds_on_straight_blocks_and_fails_on_rotated_ones():
    def success_rate(rotation):
        env = gym.make("bench/BlockInsertion-v0", rotation_range=rotation)
        return np.mean([rollout(env, block_insertion.hand_designed_action, seed)[1]["success"] for seed in range(10)])

    assert success_rate(0.0) == 1.0
    assert success_rate(0.3) <= 0.5


def test_connector_insertion_rewards_and_goal_noise():
    env = connector_insertion.ConnectorInsertionEnv(reward="dense")
    env.reset(seed=0)
    goal = connector_insertion.GOAL
    # Eq. 26 on hand-made positions: 1 cm to the side and 2 cm up, with an upward force of 2 N.
    position = goal + [0.01, 0.0, 0.02]
    expected = -100 * 0.03 - 0.002 / (np.linalg.norm([0.01, 0.0, 0.02]) + connector_insertion.EPSILON) - 0.1 * 2.0
    assert env.dense_reward(position, 2.0, inserted=False) == pytest.approx(expected)
    assert env.dense_reward(goal, 2.0, inserted=True) == pytest.approx(-0.002 / 0.01 + 0.2)  # pressing down pays
    assert env.inserted(goal) and not env.inserted(goal + [0.0, 0.0, 0.01])
    # The commanded goal is x* plus U[-n, n] per horizontal axis; the true goal never moves.
    noisy = connector_insertion.ConnectorInsertionEnv(goal_noise=0.001)
    offsets = np.array([noisy.reset(seed=seed)[0][4:7] - goal for seed in range(40)])
    assert np.all(np.abs(offsets[:, :2]) <= 0.001) and np.all(np.abs(offsets[:, 2]) < 1e-8) and offsets[:, :2].std() > 3e-4
    with pytest.raises(ValueError, match="reward"):
        connector_insertion.ConnectorInsertionEnv(reward="shaped")


def test_the_p_controller_inserts_exact_goals_and_misses_noisy_ones():
    control = make_controller("p-controller", "insertion/connector")
    exact = gym.make("bench/ConnectorInsertion-v0")
    results = [rollout(exact, control, seed) for seed in range(5)]
    assert all(info["success"] and info["distance"] < 1e-3 for _, info in results)
    assert all(total > 15 for total, _ in results)  # eq. 25: 1 per step inserted, inserted within ~10 steps
    noisy = gym.make("bench/ConnectorInsertion-v0", goal_noise=0.001)
    assert np.mean([rollout(noisy, control, seed)[1]["success"] for seed in range(20)]) < 0.6


def test_max_lead_bounds_the_targets_windup_and_the_force_on_a_stuck_peg():
    def press_on_the_edge(env):
        # The peg held 2 mm off the hole, over the socket's wall, and driven straight down for 25 steps.
        env.reset(seed=0)
        env.unwrapped.data.qpos[0:2] = env.unwrapped.data.mocap_pos[0][:2] = [connector_insertion.HOLE + 0.002, 0.0]
        for _ in range(25):
            _, _, _, _, info = env.step(np.array([0.0, 0.0, -1.0]))
        peg, target = env.unwrapped.peg_position(), env.unwrapped.data.mocap_pos[0]
        return info["f_z"], peg[2] - target[2]

    free_force, free_gap = press_on_the_edge(gym.make("bench/ConnectorInsertion-v0"))
    bounded_force, bounded_gap = press_on_the_edge(gym.make("bench/ConnectorInsertion-v0", max_lead=0.003))
    assert free_gap > 0.01 and free_force > 100  # wound up: the target far below the stuck peg
    assert bounded_gap <= 0.003 + 1e-9 and 0 < bounded_force < free_force / 3
    with pytest.raises(ValueError, match="max_lead"):
        connector_insertion.ConnectorInsertionEnv(max_lead=0.0)


def test_the_visual_setting_observes_32x32_grayscale_and_rewards_the_l1_distance_to_the_goal_image():
    env = gym.make("bench/ConnectorInsertion-v0", reward="visual", observation_mode="image")
    observation, _ = env.reset(seed=0)
    assert observation["image"].shape == (32, 32) and observation["image"].dtype == np.uint8
    assert observation["state"].shape == (7,)
    goal_image = env.unwrapped.goal_image()
    assert env.unwrapped.visual_reward(goal_image) == 0.0
    start = env.unwrapped.visual_reward(observation["image"])
    control = make_controller("p-controller", "insertion/connector")
    for _ in range(15):
        observation, reward, *_ = env.step(control(observation))
    assert start < reward <= 0.0 and reward > -0.01  # the inserted peg looks like the goal image


# -- through the harness ------------------------------------------------------------------------------
@pytest.fixture
def blocks(local_registry):
    info = build(local_registry, "insertion/blocks/controller", episodes=3, seed=0, workers=1, reference_episodes=2,
                 previews=False)
    return local_registry, RunStore(local_registry.engine), info.id


def test_the_controller_baseline_scores_the_controller_on_the_evaluation_episodes(blocks):
    registry, store, dataset_id = blocks
    budget = Budget(offline_steps=100, online_steps=100, eval_every=50, eval_episodes=2, log_every=50)
    spec = plan_sweep(registry, store, "controller", dataset_id, [0], budget, {}, "local",
                      env_options={"rotation_range": 0.3})[0]
    assert spec.offline_steps == 0 and spec.env_overrides == {"rotation_range": 0.3}
    outcome = build_run(spec, registry.settings, store).execute()
    assert outcome.status == "completed", outcome.error
    env = gym.make("bench/BlockInsertion-v0", rotation_range=0.3)
    expected = np.mean([rollout(env, block_insertion.hand_designed_action, evaluation_seed(e))[0] for e in range(2)])
    assert outcome.results["offline"]["final"]["return"] == pytest.approx(expected)
    assert outcome.results["online"] is None


def test_residual_runs_execute_controller_plus_residual_and_store_the_residual(blocks, monkeypatch):
    registry, store, dataset_id = blocks
    budget = Budget(offline_steps=0, online_steps=40, eval_every=40, eval_episodes=1, log_every=20)
    spec = plan_sweep(registry, store, "residual-td3", dataset_id, [0], budget, SMALL, "local",
                      env_options={"actuation_bias": 0.05, "actuation_noise": 0.01})[0]
    run = build_run(spec, registry.settings, store)
    assert type(run.env).__name__ == "ActuationNoise"  # eq. 24 wraps the environment the run practises in
    practice, seen = [], {}
    step, act = run.env.step, run.act

    def remembering_act(observation, goal, deterministic):
        seen["observation"] = observation
        return act(observation, goal, deterministic)

    def recording_step(action):  # the practice environment only (evaluation has its own)
        practice.append((seen["observation"], np.array(action)))
        return step(action)

    monkeypatch.setattr(run, "act", remembering_act)
    monkeypatch.setattr(run.env, "step", recording_step)
    outcome = run.execute()
    assert outcome.status == "completed", outcome.error
    stored = run.online.action[:40].numpy()
    assert len(practice) == 40
    for (observation, action), residual in zip(practice, stored):
        np.testing.assert_allclose(action, np.clip(block_insertion.hand_designed_action(observation) + residual, -1, 1),
                                   atol=1e-6)
    assert np.abs(stored).max() > 0.05  # exploration noise: the residual is not the executed action
    assert store.get(spec.run_id).plan["env_overrides"] == {"actuation_bias": 0.05, "actuation_noise": 0.01}


def test_offline_data_becomes_residual_targets(blocks):
    registry, store, dataset_id = blocks
    budget = Budget(offline_steps=10, online_steps=0, eval_every=10, eval_episodes=1)
    spec = plan_sweep(registry, store, "iql", dataset_id, [0], budget, {**SMALL, "controller": "scripted"}, "local")[0]
    run = build_run(spec, registry.settings, store)
    data = run.dataset.data
    rows = run.dataset.obs_row_of_step
    expected = data.actions - np.stack([block_insertion.hand_designed_action(data.observations[r]) for r in rows])
    np.testing.assert_allclose(run.offline.action.numpy(), np.clip(expected, -1, 1), atol=1e-6)


@pytest.fixture
def visual_connector(local_registry):
    info = build(local_registry, "insertion/connector-visual/controller", episodes=2, seed=0, workers=1,
                 reference_episodes=1, previews=False)
    return local_registry, RunStore(local_registry.engine), info.id


def test_a_visual_residual_run_reads_the_image_alone_in_fractions_of_255_and_scales_its_rewards(visual_connector):
    """Ch. 6.3.2.1: the learner sees the 32 x 32 image only; the P-controller still reads the state."""
    registry, store, dataset_id = visual_connector
    budget = Budget(offline_steps=0, online_steps=30, eval_every=30, eval_episodes=1, log_every=10)
    spec = plan_sweep(registry, store, "residual-sac", dataset_id, [0], budget,
                      {**SMALL, "observation_keys": "image", "reward_scale": "10"}, "local",
                      env_options={"goal_noise": 0.001})[0]
    run = build_run(spec, registry.settings, store)
    images = run.dataset.data.observations["image"]
    assert run.offline.state.shape[1] == 32 * 32  # no state column: the image alone
    # Pixels are divided by 255, never standardized (a constant pixel would be divided by 1e-3)
    np.testing.assert_allclose(run.offline.state[:3].numpy(), images[:3].reshape(3, -1) / 255.0, atol=1e-6)
    assert run.replay.reward_scale == 10.0
    observation, _ = run.env.reset(seed=3)
    executed, residual = run.act(observation, None, deterministic=True)
    np.testing.assert_allclose(executed, np.clip(connector_insertion.hand_designed_action(observation) + residual,
                                                 -1, 1), atol=1e-6)
    outcome = run.execute()
    assert outcome.status == "completed", outcome.error
    stored = torch.cat([run.offline.reward[:run.offline.size], run.online.reward[:run.online.size]]).numpy()
    assert stored.min() < -0.05 and stored.max() <= 0.0  # the L1 image reward, as the environment gives it
    sampled = run.replay.sample(64).reward.numpy()
    assert np.isin(np.round(sampled, 4), np.round(10.0 * stored, 4)).all()  # learned from 10 x that


def test_observation_keys_the_observations_lack_are_refused_before_a_run_is_recorded(visual_connector, blocks):
    registry, store, dataset_id = visual_connector
    budget = Budget(offline_steps=0, online_steps=10, eval_every=10, eval_episodes=1)
    with pytest.raises(InvalidInput, match="observation_keys depth: the observations have keys image, state"):
        plan_sweep(registry, store, "residual-sac", dataset_id, [0], budget, {"observation_keys": "depth"}, "local")
    _, _, blocks_id = blocks
    with pytest.raises(InvalidInput, match="no keys"):
        plan_sweep(registry, store, "sac", blocks_id, [0], budget, {"observation_keys": "image"}, "local")
    with pytest.raises(InvalidInput, match="reward_scale must be > 0"):
        plan_sweep(registry, store, "sac", blocks_id, [0], budget, {"reward_scale": "0"}, "local")
    assert store.list() == []


def test_a_finished_runs_policy_is_a_controller_scored_as_it_was_and_a_residual_learns_around_it(blocks,
                                                                                                  visual_connector):
    """Ch. 5.5.4: a policy trained before is pi_H; ``controller=run:ID`` names it."""
    registry, store, dataset_id = blocks
    budget = Budget(offline_steps=30, online_steps=0, eval_every=30, eval_episodes=2)
    source = plan_sweep(registry, store, "bc", dataset_id, [3], budget, SMALL, "local")[0]
    trained = build_run(source, registry.settings, store).execute()
    assert trained.status == "completed", trained.error
    named = {"controller": f"run:{source.run_id}"}
    spec = plan_sweep(registry, store, "controller", dataset_id, [0], budget, named, "local")[0]
    assert spec.controller_run["run_id"] == source.run_id and spec.controller_run["torch_threads"] is None
    outcome = build_run(spec, registry.settings, store).execute()
    assert outcome.status == "completed", outcome.error
    # The same deterministic policy on the same evaluation episodes: the same score
    assert outcome.results["offline"]["final"]["return"] == pytest.approx(trained.results["offline"]["final"]["return"])

    online = Budget(offline_steps=0, online_steps=20, eval_every=20, eval_episodes=1, log_every=10)
    spec = plan_sweep(registry, store, "residual-td3", dataset_id, [0], online, {**SMALL, **named}, "local")[0]
    run = build_run(spec, registry.settings, store)
    policy = run.residual.controller
    observation, _ = run.env.reset(seed=1)
    executed, residual = run.act(observation, None, deterministic=False)
    np.testing.assert_allclose(executed, np.clip(policy(observation) + residual, -1, 1), atol=1e-6)
    assert run.execute().status == "completed"

    unfinished = plan_sweep(registry, store, "bc", dataset_id, [4], budget, SMALL, "local")[0]
    refusals = {f"run:{'0' * 12}": "no such run", f"run:{unfinished.run_id}": "the run is pending; a controller is a "
                                                                              "finished run's policy"}
    for name, message in refusals.items():
        with pytest.raises(InvalidInput, match=message):
            plan_sweep(registry, store, "controller", dataset_id, [0], budget, {"controller": name}, "local")
    elsewhere, _, connector_id = visual_connector
    with pytest.raises(InvalidInput, match="acted in insertion/blocks, not in insertion/connector-visual"):
        plan_sweep(elsewhere, store, "controller", connector_id, [0], budget, named, "local")


def test_a_run_practises_in_one_setting_and_is_evaluated_in_another(local_registry):
    """Ch. 6.6.4: trained with exact goals, tested with goals perturbed by +-1 mm."""
    info = build(local_registry, "insertion/connector/controller", episodes=2, seed=0, workers=1,
                 reference_episodes=1, previews=False)
    store = RunStore(local_registry.engine)
    budget = Budget(offline_steps=0, online_steps=10, eval_every=10, eval_episodes=1)
    spec = plan_sweep(local_registry, store, "residual-sac", info.id, [0], budget, SMALL, "local",
                      env_options={"goal_noise": 0.0}, eval_env_options={"goal_noise": 0.001})[0]
    run = build_run(spec, local_registry.settings, store)
    assert run.env.unwrapped.goal_noise == 0.0 and run.eval_env.unwrapped.goal_noise == 0.001
    assert store.get(spec.run_id).plan["eval_env_overrides"] == {"goal_noise": 0.001}
    with pytest.raises(InvalidInput, match="goal_noise"):
        plan_sweep(local_registry, store, "residual-sac", info.id, [0], budget, SMALL, "local",
                   eval_env_options={"goal_noise": 1.0})
    assert len(store.list()) == 1


# -- the CLI ------------------------------------------------------------------------------------------
@pytest.fixture
def cli_blocks(local_settings):
    env = settings_env(local_settings)
    run_bench(env, "datasets", "build", "insertion/blocks/controller", "--episodes", "3", "--reference-episodes", "2",
              "--workers", "1")
    return local_settings, env


SHORT = ["--online-steps", "60", "--eval-every", "30", "--eval-episodes", "1", "--log-every", "10",
         "--set", "hidden_dims=32x32", "--set", "batch_size=32"]


@pytest.mark.slow
def test_residual_and_controller_evaluations_through_the_cli_with_environment_options(cli_blocks):
    settings, env = cli_blocks
    out = json.loads(run_bench(env, "evaluate", "residual-sac", "insertion/blocks/controller", *SHORT, "--env-set",
                               "rotation_range=0.1", "--env-set", "actuation_noise=0.02", "--json").stdout)
    run = out["runs"][0]
    assert run["status"] == "completed", run["error"]
    shown = json.loads(run_bench(env, "runs", "show", run["run_id"], "--json").stdout)
    assert shown["plan"]["env_overrides"] == {"rotation_range": 0.1, "actuation_noise": 0.02}
    assert shown["config"]["controller"] == "scripted"
    controller = json.loads(run_bench(env, "evaluate", "controller", "insertion/blocks/controller", "--eval-episodes", "2",
                                      "--json").stdout)["runs"][0]
    assert controller["status"] == "completed" and controller["online"] is None
    # Bad input: one line, non-zero exit, nothing recorded.
    for args, message in [(["--env-set", "rotation_range=2"], "rotation_range"),
                          (["--env-set", "actuation_noise=-1"], "sigma"),
                          (["--env-set", "wind=3"], "wind"),
                          (["--set", "controller=pid"], "unknown controller"),
                          (["--set", "controller=none"], "needs a controller"),
                          (["--set", "controller=run:feedfacecafe"], "no such run"),
                          (["--set", "observation_keys=image"], "no keys"),
                          (["--set", "reward_scale=-1"], "reward_scale must be > 0"),
                          (["--eval-env-set", "rotation_range=5"], "rotation_range")]:
        result = run_bench(env, "evaluate", "residual-td3", "insertion/blocks/controller", *args, check=False)
        assert result.returncode != 0 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1, \
            (args, result.stderr)
    listed = json.loads(run_bench(env, "runs", "list", "--json").stdout)
    assert len(listed) == 2


@pytest.mark.slow
def test_a_residual_run_interrupted_mid_practice_resumes_from_its_checkpoint(cli_blocks):
    settings, env = cli_blocks
    result = interrupted_evaluation(settings, env, ["residual-td3", "insertion/blocks/controller", "--online-steps",
                                                    "3000", "--eval-every", "100", "--eval-episodes", "1",
                                                    "--set", "hidden_dims=32x32", "--set", "batch_size=32"],
                                    lambda store, run_id: any(c["phase"] == "online"
                                                              for c in store.curves(run_id, kind="eval")))
    assert result.returncode == 130, result.stderr
    run = json.loads(result.stdout)["runs"][0]
    assert run["status"] == "interrupted"
    resumed = json.loads(run_bench(env, "runs", "resume", run["run_id"], "--json").stdout)
    assert resumed["runs"][0]["status"] == "completed"
    shown = json.loads(run_bench(env, "runs", "show", run["run_id"], "--json").stdout)
    assert shown["results"]["online"]["final"]["step"] == 3000
