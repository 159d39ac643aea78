"""Hand-designed controllers and actuation noise (dissertation ch. 5-6, eq. 24): the pieces residual RL builds on."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from bench.errors import InvalidInput
from bench.evaluation.controllers import make_controller
from bench.platform.environments import import_environment_module
from bench.platform.envs.actuation import ActuationNoise


class Recorder(gym.Env):
    """Records the actions it executes; observations are zeros."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self):
        self.executed = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.executed.append(np.array(action))
        return np.zeros(1, np.float32), 0.0, False, False, {}


def executed(env: ActuationNoise, action: np.ndarray, steps: int, seed: int = 0) -> np.ndarray:
    env.unwrapped.executed.clear()
    env.reset(seed=seed)
    for _ in range(steps):
        env.step(action)
    return np.stack(env.unwrapped.executed)


def test_actuation_noise_is_eq_24_with_its_bias_and_spread_and_follows_the_seed():
    env = ActuationNoise(Recorder(), mu=0.05, sigma=0.1)
    u = executed(env, np.zeros(2), 20_000)
    eps = u  # u = 0, so the executed action is the noise (never clipped at these values: |eps| < 1)
    assert np.all(np.abs(eps) < 1.0)
    # Mean within 4 standard errors of mu, spread within 3% of sigma, dimensions uncorrelated.
    np.testing.assert_allclose(eps.mean(0), 0.05, atol=4 * 0.1 / np.sqrt(20_000))
    np.testing.assert_allclose(eps.std(0), 0.1, rtol=0.03)
    assert abs(np.corrcoef(eps.T)[0, 1]) < 0.03
    np.testing.assert_array_equal(executed(env, np.zeros(2), 50, seed=3), executed(env, np.zeros(2), 50, seed=3))
    assert not np.array_equal(executed(env, np.zeros(2), 50, seed=3), executed(env, np.zeros(2), 50, seed=4))
    # Executed actions stay in the action space; sigma = 0 is a pure bias.
    np.testing.assert_array_equal(executed(ActuationNoise(Recorder(), mu=0.3), np.array([0.9, -0.2]), 3),
                                  np.tile([1.0, 0.1], (3, 1)).astype(np.float32))
    with pytest.raises(ValueError, match="sigma"):
        ActuationNoise(Recorder(), sigma=-0.1)


def test_the_p_controller_brings_the_gripper_to_its_target_without_noise():
    import_environment_module("gymnasium_robotics")
    env = gym.make("FetchReach-v4")
    control = make_controller("p-controller", "fetch/reach")
    # (Seed 0's goal lies ~2 cm below where the gripper can go: every gain stops there.)
    for seed in (1, 2, 3):
        observation, _ = env.reset(seed=seed)
        start = np.linalg.norm(observation["observation"][0:3] - observation["desired_goal"])
        for _ in range(30):
            observation, _, _, _, info = env.step(control(observation))
        end = np.linalg.norm(observation["observation"][0:3] - observation["desired_goal"])
        assert end < 0.01 < start and info["is_success"] == 1.0, (seed, start, end)
    env.close()
    # Zero gains: no motion.
    still = make_controller("p-controller", "fetch/reach", gains=(0.0, 0.0, 0.0))
    np.testing.assert_array_equal(still(observation), [0.0, 0.0, 0.0, -1.0])


def test_scripted_controllers_are_the_recipes_experts():
    import bench.platform.envs  # noqa: F401  (registers bench/MetaWorld-v0)

    env = gym.make("bench/MetaWorld-v0", task="peg-insert-side")
    control = make_controller("scripted", "metaworld/peg-insert-side")
    observation, _ = env.reset(seed=0)
    success = False
    for _ in range(env.unwrapped.max_episode_steps):
        observation, _, terminated, truncated, info = env.step(control(observation))
        success = success or info["success"]
        if success or terminated or truncated:
            break
    assert success  # Meta-World's own policy inserts the peg
    env.close()
    observation = {"observation": np.zeros(25), "desired_goal": np.ones(3), "achieved_goal": np.zeros(3)}
    assert make_controller("scripted", "fetch/push")(observation).shape == (4,)
    # On the insertion scenes the scripted controller is their P-controller (eq. 29), whose gains can be set.
    held = np.zeros(17)
    held[0:3] = [0.01, 0.0, 0.1]  # 1 cm aside and 7 cm above the held block's place (x* z = 3.2 cm)
    expected = np.clip(-np.array([1.0, 1.0, 0.3]) * (held[0:3] - [0.0, 0.0, 0.032]) / 0.02, -1, 1)
    np.testing.assert_allclose(make_controller("scripted", "insertion/blocks")(held), expected)
    np.testing.assert_allclose(make_controller("p-controller", "insertion/blocks")(held), expected)
    np.testing.assert_allclose(make_controller("p-controller", "insertion/blocks", gains=(0.5, 0.5, 0.1))(held),
                               [-0.25, 0.0, -0.34])


def test_controllers_refuse_what_they_cannot_do():
    cases = [
        (("pid", "fetch/reach"), {}, "unknown controller 'pid'"),
        (("p-controller", "metaworld/peg-insert-side"), {}, r"fetch/\* environments"),
        (("p-controller", "fetch/reach"), {"gains": (1.0, 1.0)}, "three non-negative"),
        (("p-controller", "insertion/connector"), {"gains": (1.0, -1.0, 0.3)}, "three non-negative"),
        (("p-controller", "fetch/reach"), {"gain": 2.0}, "unexpected keyword"),
        (("scripted", "fetch/push"), {"gains": (1.0, 1.0, 1.0)}, "takes no parameters"),
        (("scripted", "mujoco/hopper"), {}, "no scripted controller"),
        (("scripted", "metaworld/fly-to-the-moon"), {}, "no scripted policy"),
    ]
    for args, parameters, message in cases:
        with pytest.raises(InvalidInput, match=message):
            make_controller(*args, **parameters)
