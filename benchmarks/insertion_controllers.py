"""The insertion scenes' hand-designed controllers, measured: how each degrades, and the ceiling under rotation.

    python benchmarks/insertion_controllers.py [--episodes 40]

Block insertion, per rotation range r: ch. 5's P-controller (lowers the held block over the gap's
centre), a gap-aware controller (from each standing block's position and yaw it computes how far the
block's footprint reaches into the gap over the held block's depth, aims at the middle of the free
interval, waits above the blocks until it is there, then lowers: how much of Fig. 21a's degradation a
residual could undo at all), uniform random actions, and the share of resets whose free gap is wider
than the held block. Connector insertion, per goal noise: ch. 6's P-controller and random actions; and how
much the visual setting's image shows a 1 mm error (``image_sensitivity``), and the contact force that
dominates the dense reward when the peg is stuck (``stuck_force``), and what the arm's anti-windup
(``max_lead``) trades for bounding it: the force against the controller's speed and success (``dense_windup``).
Episodes reset with seeds 0..N-1. Prints JSON: success rate and mean return of each.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported: the visual setting renders offscreen

import gymnasium as gym
import mujoco
import numpy as np

import bench.platform.envs  # noqa: F401  (registers bench's insertion environments)
from bench.platform.envs import block_insertion as blocks
from bench.platform.envs import connector_insertion as connector


def free_gap(observation: np.ndarray) -> tuple[float, float]:
    """The x interval between the standing blocks' footprints over |y| <= the held block's half-depth."""
    low, high = -1.0, 1.0
    for i in range(2):
        position, quaternion = observation[3 + 7 * i:6 + 7 * i], observation[6 + 7 * i:10 + 7 * i]
        yaw = 2 * np.arctan2(quaternion[3], quaternion[0])
        reach = []
        for dx in (-blocks.STANDING[0], blocks.STANDING[0]):
            for dy in np.linspace(-blocks.STANDING[1], blocks.STANDING[1], 41):
                x = position[0] + dx * np.cos(yaw) - dy * np.sin(yaw)
                y = position[1] + dx * np.sin(yaw) + dy * np.cos(yaw)
                if abs(y) <= blocks.HELD[1]:
                    reach.append(x)
        if position[0] < 0:
            low = max(reach)
        else:
            high = min(reach)
    return low, high


def gap_aware_action(observation: np.ndarray) -> np.ndarray:
    low, high = free_gap(observation)
    held = np.asarray(observation[:3], np.float64)
    place = blocks.PLACE.copy()
    place[0] = (low + high) / 2
    target = place.copy()
    if np.linalg.norm(held[:2] - place[:2]) > 0.003:  # over the free gap first, above the blocks
        target[2] = max(held[2], blocks.PLACE[2] + 2 * blocks.HELD[2] + blocks.STANDING[2])
    return np.clip((target - held) / blocks.STEP, -1.0, 1.0)


def measure(env: gym.Env, act, episodes: int, rng: np.random.Generator) -> dict[str, float]:
    """Success rate and mean return of ``act(observation)`` (None: uniform random actions) over seeded resets."""
    successes, returns = [], []
    for seed in range(episodes):
        observation, _ = env.reset(seed=seed)
        total = 0.0
        while True:
            action = rng.uniform(-1.0, 1.0, 3) if act is None else act(observation)
            observation, reward, terminated, truncated, info = env.step(action)
            total += reward
            if terminated or truncated:
                break
        successes.append(info["success"])
        returns.append(total)
    return {"success_rate": float(np.mean(successes)), "return": round(float(np.mean(returns)), 2)}


def image_sensitivity() -> dict[str, float]:
    """How much the visual setting's 32 x 32 image shows a 1 mm error: with the peg resting on the socket's top,
    the sum over pixels of |image(+1 mm) - image(-1 mm)| (pixels in [0, 1]) per horizontal axis, and the
    visual reward stuck there and inserted."""
    env = connector.ConnectorInsertionEnv(observation_mode="image", reward="visual")
    env.reset(seed=0)
    on_top = connector.GOAL + [0.0, 0.0, connector.SOCKET_DEPTH + 0.0005]

    def image_at(position: np.ndarray) -> np.ndarray:
        env.data.qpos[env._qpos:env._qpos + 3] = position
        env.data.qpos[env._qpos + 3:env._qpos + 7] = [1.0, 0.0, 0.0, 0.0]
        mujoco.mj_forward(env.model, env.data)
        return env.image()

    def difference(offset: list[float]) -> float:
        plus, minus = image_at(on_top + offset).astype(np.float64), image_at(on_top - offset).astype(np.float64)
        return float(np.abs(plus - minus).sum() / 255.0)

    report = {"x_1mm_either_side": difference([0.001, 0, 0]), "y_1mm_either_side": difference([0, 0.001, 0]),
              "reward_stuck_on_top": env.visual_reward(image_at(on_top)),
              "reward_inserted": env.visual_reward(env.goal_image())}
    env.close()
    return report


def stuck_force(episodes: int, max_lead: float | None = None) -> dict[str, float]:
    """Why the dense reward (eq. 26) fails: the P-controller on +-1 mm goals, over its last 10 steps of each
    episode it ends stuck: f_z, how far the mocap target is below the peg, and eq. 26's force share."""
    env = connector.ConnectorInsertionEnv(reward="dense", goal_noise=0.001, max_lead=max_lead)
    forces, gaps, rewards = [], [], []
    for seed in range(episodes):
        observation, _ = env.reset(seed=seed)
        steps = []
        for _ in range(connector.MAX_EPISODE_STEPS):
            observation, reward, _, _, info = env.step(connector.hand_designed_action(observation))
            steps.append((info["f_z"], env.peg_position()[2] - env.data.mocap_pos[0][2], reward))
        if not info["success"]:
            for force, gap, reward in steps[-10:]:
                forces.append(force), gaps.append(gap), rewards.append(reward)
    if not forces:
        return {"stuck_episodes": 0}
    force = float(np.mean(forces))
    return {"stuck_episodes": len(forces) // 10, "f_z_newtons": force, "target_below_peg_mm": 1000 * float(np.mean(gaps)),
            "reward_per_step": float(np.mean(rewards)), "force_term_per_step": -connector.PHI * force}


def dense_windup(episodes: int, rng: np.random.Generator) -> dict[str, dict]:
    """The anti-windup's trade: per max_lead, the P-controller's success and dense return on exact and +-1 mm goals,
    and the force on the pegs it leaves stuck."""
    report = {}
    for lead in (None, 0.005, 0.003, 0.002):
        row = {f"goal_noise={noise}": measure(connector.ConnectorInsertionEnv(reward="dense", goal_noise=noise, max_lead=lead),
                                              connector.hand_designed_action, episodes, rng) for noise in (0.0, 0.001)}
        report[f"max_lead={lead}"] = {**row, "stuck": stuck_force(episodes, lead)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    report: dict[str, dict] = {"blocks": {}, "connector": {}}
    for rotation in (0.0, 0.1, 0.15, 0.2, 0.3):
        env = gym.make("bench/BlockInsertion-v0", rotation_range=rotation)
        wide = [np.subtract(*free_gap(env.reset(seed=seed)[0])[::-1]) >= 2 * blocks.HELD[0] for seed in range(args.episodes)]
        report["blocks"][f"rotation={rotation}"] = {
            "controller": measure(env, blocks.hand_designed_action, args.episodes, rng),
            "gap-aware": measure(env, gap_aware_action, args.episodes, rng),
            "random": measure(env, None, args.episodes, rng),
            "gap_wider_than_block": float(np.mean(wide))}
    for noise in (0.0, 0.0005, 0.001):
        env = gym.make("bench/ConnectorInsertion-v0", goal_noise=noise)
        report["connector"][f"goal_noise={noise}"] = {
            "controller": measure(env, connector.hand_designed_action, args.episodes, rng),
            "random": measure(env, None, args.episodes, rng)}
    report["connector"]["visual_image"] = image_sensitivity()
    report["connector"]["dense_stuck"] = stuck_force(args.episodes)
    report["connector"]["dense_windup"] = dense_windup(args.episodes, rng)
    print(json.dumps({"episodes": args.episodes, **report}, indent=1))


if __name__ == "__main__":
    main()
