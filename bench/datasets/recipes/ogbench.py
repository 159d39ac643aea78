"""OGBench manipulation recipes (for PTP, dissertation ch. 10): ``play`` and ``noisy`` data from OGBench's oracles.

Collection follows OGBench's own generator (data_gen_scripts/generate_manipspace.py), in the
environment's ``data_collection`` mode: an oracle pursues a random target (move a cube, press a
button, open the drawer or window); when it is done the environment draws a new target
(``set_new_target``) and the matching oracle takes over, for 1,001 steps per episode.
  play   OGBench's open-loop plan oracles with smoothed noise (noise 0.1, smoothing 0.5)
  noisy  the closed-loop Markov oracles (min_norm 0.4) with per-episode Gaussian noise
         xi ~ U(0, 0.1), scaled [xi, xi, xi, 3 xi, 10 xi] per action dimension, and a uniform
         random action with probability 0.1 (0.2 for puzzles), as OGBench's commands use
Cube stacking probability per episode as OGBench: 0 (single), U(0, 0.25) (double), 0.5 (others).
Scene episodes in which the cube leaves the reachable area are redrawn, as OGBench does.
The oracles draw from numpy's global RNG; each episode seeds it from its own seed.
Evaluation is OGBench's: the same environment id in ``task`` mode, five tasks
(``reset(options={"task_id": k})``, k = 1..5), success from ``info["success"]``.
Differences from OGBench's files: bench keeps each episode's final observation (T+1), stores the
data-collection reward (1 while the current target is achieved) and per-observation success,
and no validation split; the default size is 100 episodes (OGBench: 1,000).
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np

from bench.datasets.recipes.base import EnvironmentSpec, EpisodeRecord, Recipe

GYM_IDS = {"scene": "scene-v0", "cube-single": "cube-single-v0", "cube-double": "cube-double-v0",
           "puzzle-3x3": "puzzle-3x3-v0"}
EPISODE_STEPS = 1001
PLAY_NOISE, PLAY_SMOOTHING, MARKOV_MIN_NORM, NOISY_MAX_XI = 0.1, 0.5, 0.4, 0.1
P_RANDOM_ACTION = {"scene": 0.1, "cube-single": 0.1, "cube-double": 0.1, "puzzle-3x3": 0.2}
DEFAULT_EPISODES = 100


def environment(name: str) -> EnvironmentSpec:
    return EnvironmentSpec(
        name=f"ogbench/{name}",
        gym_id=GYM_IDS[name],
        family="ogbench",
        packages=("ogbench", "mujoco"),
        module="ogbench.manipspace",
        description=f"OGBench {GYM_IDS[name]} (UR5e arm, 5-D actions); evaluation: five tasks, "
                    "reset(options={'task_id': 1..5}), success = info['success']",
    )


def _collection_env(name: str):
    def make(**render: Any) -> gym.Env:
        import ogbench.manipspace  # noqa: F401  (registers the environments)

        return gym.make(GYM_IDS[name], terminate_at_goal=False, mode="data_collection",
                        max_episode_steps=EPISODE_STEPS, **render)

    return make


def _oracles(name: str, kind: str, env: gym.Env) -> dict:
    from ogbench.manipspace.oracles.markov.button_markov import ButtonMarkovOracle
    from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
    from ogbench.manipspace.oracles.markov.drawer_markov import DrawerMarkovOracle
    from ogbench.manipspace.oracles.markov.window_markov import WindowMarkovOracle
    from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
    from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
    from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
    from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

    if kind == "play":
        plan = {"env": env, "noise": PLAY_NOISE, "noise_smoothing": PLAY_SMOOTHING}
        cube, button = CubePlanOracle(**plan), ButtonPlanOracle(**plan, gripper_always_closed=name == "puzzle-3x3")
        drawer, window = DrawerPlanOracle(**plan), WindowPlanOracle(**plan)
    else:
        markov = {"env": env, "min_norm": MARKOV_MIN_NORM}
        cube = CubeMarkovOracle(**markov, **({"max_step": 100} if name == "scene" else {}))
        button = ButtonMarkovOracle(**markov, gripper_always_closed=name == "puzzle-3x3")
        drawer, window = DrawerMarkovOracle(**markov), WindowMarkovOracle(**markov)
    if name == "scene":
        return {"cube": cube, "button": button, "drawer": drawer, "window": window}
    return {"button": button} if name == "puzzle-3x3" else {"cube": cube}


def _scene_is_healthy(qpos: np.ndarray) -> bool:
    """OGBench's check: the cube stays visible (not too far right, and only far left inside the drawer)."""
    cube = qpos[:, 14:17]
    too_far_right = (cube[:, 1] >= 0.29).any()
    lost_left = ((cube[:, 1] <= -0.3) & ((cube[:, 2] < 0.06) | (cube[:, 2] > 0.08))).any()
    return not (too_far_right or lost_left)


def _collector(name: str):
    def collect(env: gym.Env, kind: str, reset_seed: int, rng: np.random.Generator,
                on_step: Callable[[int], None] | None = None) -> EpisodeRecord:
        for attempt in range(100):
            seed = (reset_seed + attempt * 7_919) % 2**32
            np.random.seed(seed)  # the oracles use numpy's global RNG
            record, qpos = _episode(name, kind, env, seed, rng, on_step or (lambda step: None))
            if name != "scene" or _scene_is_healthy(qpos):
                record.attrs["seed"] = seed
                return record
        raise RuntimeError("no healthy scene episode in 100 attempts")

    return collect


def _episode(name: str, kind: str, env: gym.Env, seed: int, rng: np.random.Generator,
             on_step: Callable[[int], None]):
    oracles = _oracles(name, kind, env)
    observation, info = env.reset(seed=seed)
    on_step(0)
    p_stack = {"cube-single": 0.0, "cube-double": float(rng.uniform(0.0, 0.25))}.get(name, 0.5)
    xi = float(rng.uniform(0.0, NOISY_MAX_XI))
    agent = oracles[info["privileged/target_task"]]
    agent.reset(observation, info)
    observations, actions, rewards, terms, truncs = [observation], [], [], [], []
    success, qpos = [bool(info.get("success", False))], []
    low, high = env.action_space.low, env.action_space.high
    while True:
        if kind == "noisy" and rng.random() < P_RANDOM_ACTION[name]:
            action = rng.uniform(low, high)
        else:
            action = np.asarray(agent.select_action(observation, info), dtype=np.float64)
            if kind == "noisy":
                action = action + rng.normal(0.0, [xi, xi, xi, 3 * xi, 10 * xi])
        action = np.clip(action, -1.0, 1.0).astype(np.float32)
        observation, reward, terminated, truncated, info = env.step(action)
        if agent.done:  # the oracle reached its target: draw the next one, as OGBench's generator does
            agent_observation, agent_info = env.unwrapped.set_new_target(p_stack=p_stack)
            agent = oracles[agent_info["privileged/target_task"]]
            agent.reset(agent_observation, agent_info)
        observations.append(observation)
        actions.append(action)
        rewards.append(reward)
        terms.append(False)  # time-limited play: nothing terminates
        truncs.append(terminated or truncated)
        success.append(bool(info.get("success", False)))
        qpos.append(info["prev_qpos"])
        on_step(len(actions))
        if terminated or truncated:
            break
    record = EpisodeRecord(np.asarray(observations, np.float32), np.asarray(actions), np.asarray(rewards, np.float32),
                           np.asarray(terms), np.asarray(truncs), np.asarray(success),
                           {"seed": seed, "success": bool(np.any(success[1:]))})
    return record, np.asarray(qpos)


def recipes() -> list[Recipe]:
    out = []
    for name in GYM_IDS:
        for kind, policy in {
            "play": f"OGBench plan oracles, smoothed noise {PLAY_NOISE} (smoothing {PLAY_SMOOTHING}), targets redrawn when reached",
            "noisy": f"OGBench Markov oracles + per-episode Gaussian noise xi~U(0,{NOISY_MAX_XI}), "
                     f"random action w.p. {P_RANDOM_ACTION[name]}",
        }.items():
            out.append(Recipe(
                name=f"ogbench/{name}/{kind}",
                env=environment(name),
                policy=policy,
                default_episodes=DEFAULT_EPISODES,
                make_policy=lambda kind, env: None,  # unused: collect_episode runs the oracles
                episode_kind=lambda index, total, kind=kind: kind,
                description=f"OGBench {name} {kind} data ({EPISODE_STEPS}-step episodes)",
                make_collection_env=_collection_env(name),
                collect_episode=_collector(name),
            ))
    return out
