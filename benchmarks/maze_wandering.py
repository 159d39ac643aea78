"""How often the single-task mazes' data behaviour reaches the goal by wandering, at their time limits. JSON.

    .venv/bin/python benchmarks/maze_wandering.py [--episodes 200]

Issue 24 asks for "a time limit at which aimless wandering does not reach the goal": a policy that
clones play data reproduces the wanderer (the controller + noise driving from random cell to random
cell), so the wanderer's success from the evaluation start is what cloning can get without
stitching. Per maze: the noiseless controller's steps from start to goal (what the limits are
derived from: about 1.5 times it), and the wanderer's success rate within the single-task limit and
within Gymnasium-Robotics' own episode lengths (300 / 600 / 800), over ``--episodes`` evaluation
episodes (seeds 0..n-1, the wanderer's random numbers from the same seed).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from bench.datasets.recipes import get_recipe
from bench.datasets.recipes.pointmaze import MAZES, SINGLE_TASK_STEPS, Wanderer, make_single_task_policy

GYMNASIUM_ROBOTICS_STEPS = {"umaze": 300, "medium": 600, "large": 800}


def steps_to_goal(env, policy, seed: int, rng: np.random.Generator, limit: int) -> int | None:
    state, _ = env.reset(seed=seed)
    for step in range(1, limit + 1):
        state, _, terminated, _, _ = env.step(policy(state, rng))
        if terminated:
            return step
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    args = parser.parse_args()
    out = {}
    for maze in MAZES:
        longest = GYMNASIUM_ROBOTICS_STEPS[maze]
        env = get_recipe(f"pointmaze/{maze}-single/play").env.make(max_episode_steps=longest)
        controller = make_single_task_policy("controller", env)
        expert = [steps_to_goal(env, controller, 10_000 + seed, np.random.default_rng(seed), longest)
                  for seed in range(20)]
        wandering = [steps_to_goal(env, Wanderer(env), seed, np.random.default_rng(seed), longest)
                     for seed in range(args.episodes)]
        arrived = np.array([np.inf if steps is None else steps for steps in wandering])
        out[maze] = {
            "controller_steps": {"mean": float(np.mean(expert)), "max": int(max(expert))},
            "time_limit": SINGLE_TASK_STEPS[maze],
            "wanderer_success_at_time_limit": float((arrived <= SINGLE_TASK_STEPS[maze]).mean()),
            "gymnasium_robotics_steps": longest,
            "wanderer_success_at_gymnasium_robotics_steps": float((arrived <= longest).mean()),
        }
        env.close()
    print(json.dumps({"command": f"python benchmarks/maze_wandering.py --episodes {args.episodes}", "mazes": out},
                     indent=2))


if __name__ == "__main__":
    main()
