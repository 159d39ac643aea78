"""Chance level of the tabletop's goal-reaching evaluation: success of policies that know nothing; prints JSON.

    python benchmarks/tabletop_chance.py [--tasks reach,button-press,drawer-open] [--seeds 3]

The same episodes a pixel run evaluates (``bench evaluate ... --online-env held-out --task T``): each
seed's held-out scene, the fixed evaluation resets, success at the final step. Two policies: no
action at all, and uniform random actions. A learned policy's success means something only above these.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from bench.evaluation.layouts import evaluation_seed
from bench.evaluation.sweeps import HELD_OUT_SCENE_SEED
from bench.platform.envs.tabletop import TabletopEnv

EVAL_EPISODES = 10  # per seed, as the documented runs (--eval-episodes 10)


def success_count(task: str, seed: int, policy: str) -> int:
    env = TabletopEnv(scene_split="held-out", scene_seed=HELD_OUT_SCENE_SEED + seed, task=task)
    rng = np.random.default_rng(seed)
    wins = 0
    try:
        for episode in range(EVAL_EPISODES):
            env.reset(seed=evaluation_seed(episode))
            while True:
                action = np.zeros(4) if policy == "none" else rng.uniform(-1.0, 1.0, 4)
                _, _, terminated, truncated, info = env.step(action.astype(np.float32))
                if terminated or truncated:
                    break
            wins += bool(info.get("success", False))
    finally:
        env.close()
    return wins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="reach,button-press,drawer-open")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    report = {}
    for task in args.tasks.split(","):
        for policy in ("none", "random"):
            wins = sum(success_count(task, seed, policy) for seed in range(args.seeds))
            report[f"{task}/{policy}"] = {"successes": wins, "episodes": args.seeds * EVAL_EPISODES}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
