"""Rendered steps per second of the pixel tabletop (48x48 RGB observations), and its scripted primitives' success.

    python benchmarks/tabletop.py [--steps 3000]

Prints JSON: environment steps per second with random actions (every step renders its image;
resets every 50 steps draw new scenes), for training and held-out scenes, and per task the share
of held-out episodes in which the scripted primitive reaches the goal (resets with a task pose a
goal image by running that primitive once, which the reset rate includes).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from bench.platform.envs.tabletop import TabletopEnv  # noqa: E402
from bench.platform.envs.tabletop_primitives import TASK_PRIMITIVES, Primitive  # noqa: E402


def steps_per_second(split: str, steps: int) -> float:
    env = TabletopEnv(scene_split=split)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    started = time.perf_counter()
    for step in range(steps):
        _, _, _, truncated, _ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        if truncated:
            env.reset(seed=step)
    elapsed = time.perf_counter() - started
    env.close()
    return steps / elapsed


def primitive_success(task: str, episodes: int) -> dict:
    env = TabletopEnv(scene_split="held-out", task=task)
    successes, started = [], time.perf_counter()
    for episode in range(episodes):
        observation, _ = env.reset(seed=episode)
        primitive, rng = Primitive(TASK_PRIMITIVES[task]), np.random.default_rng(episode)
        while True:
            observation, _, _, truncated, info = env.step(primitive(observation, rng))
            if truncated:
                break
        successes.append(info["success"])
    env.close()
    return {"success_rate": float(np.mean(successes)), "episodes": episodes,
            "seconds_per_episode": (time.perf_counter() - started) / episodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    report = {"image": "48x48x3", "steps_per_second": {split: round(steps_per_second(split, args.steps), 1)
                                                      for split in ("train", "held-out")},
              "scripted_success": {task: primitive_success(task, args.episodes) for task in TASK_PRIMITIVES}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
