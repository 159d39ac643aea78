"""Does a finished pixel run's latent distance carry task signal? Start-to-goal vs one-step distances and the reward's eps.

    python benchmarks/latent_geometry.py --home DIR RUN_ID [--episodes 10]

Loads the run's representation from its checkpoint, resets its evaluation environment (task and
scene from the run's plan) and prints JSON: the calibrated eps of the sparse reward, the latent
distance from each episode's start to its goal image, and the distance one gripper step moves
the encoding. A reward ``-1[||z - z_g|| > eps]`` can only guide a policy when one step moves the
latent much less than the whole task does, and eps sits between the two.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from bench.algorithms import build_algorithm, get_algorithm
from bench.algorithms.config import config_from_json
from bench.platform.envs.tabletop import TabletopEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("run_id")
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    env = {**os.environ, "BENCH_HOME": args.home}
    shown = json.loads(subprocess.run([sys.executable, "-m", "bench.cli", "runs", "show", args.run_id, "--json"],
                                      env=env, capture_output=True, text=True, check=True).stdout)
    config = config_from_json(get_algorithm(shown["algorithm"]).config_class, shown["config"])
    algorithm = build_algorithm(shown["algorithm"], config, 0, 4)
    checkpoint = Path(args.home) / "datasets" / "_runs" / args.run_id / "checkpoint.pt"
    algorithm.load_checkpoint_state(torch.load(checkpoint, weights_only=False)["algorithm"])

    def encode(image: np.ndarray, initial: np.ndarray) -> torch.Tensor:
        context = torch.from_numpy(initial)[None] if algorithm.representation.conditional else None
        return algorithm.encode(torch.from_numpy(image)[None], context)[0]

    scene = TabletopEnv(**shown["plan"]["env_overrides"])
    to_goal, one_step = [], []
    for seed in range(args.episodes):
        observation, info = scene.reset(seed=seed)
        z0 = encode(observation["image"], observation["image"])
        to_goal.append(float((encode(info["goal_image"], observation["image"]) - z0).norm()))
        moved, *_ = scene.step(np.array([1.0, 0.0, 0.0, -1.0], np.float32))
        one_step.append(float((encode(moved["image"], observation["image"]) - z0).norm()))
    print(json.dumps({"run": args.run_id, "algorithm": shown["algorithm"], "task": shown["results"].get("task"),
                      "reward_epsilon": shown["results"].get("reward_epsilon"),
                      "start_to_goal_median": round(statistics.median(to_goal), 2),
                      "one_step_median": round(statistics.median(one_step), 2),
                      "start_to_goal": [round(x, 2) for x in to_goal], "one_step": [round(x, 2) for x in one_step]},
                     indent=2))


if __name__ == "__main__":
    main()
