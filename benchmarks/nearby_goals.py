"""Can a goal-conditioned state policy reach goals a few steps ahead in its own data? OGBench runs (gc-iql-state, ptp-state).

    python benchmarks/nearby_goals.py --home DIR RUN_ID [--episodes 10] [--ahead 10,25,50,100]

OGBench's scene tasks ask for two or more changes to the scene; a policy at 0% there may fail to
reach any goal, or only fail to chain them. This probe separates the two. It loads the run from
its checkpoint and, for data episodes that record their reset seed, resets the dataset's environment
in OGBench's data-collection mode with that seed (checking that it gives the episode's first observation), takes the episode's own
observation k steps later as the goal, and runs the policy (deterministic, the final goal only:
no planner) for max(2k, 50) steps. The same episodes with zero actions ("stay") are the control.
Distances are between normalized states (the policy's input space); "reached" means the policy
came within the data's median 5-step distance of the goal at some step. Prints JSON per k: the
reached share, the median start and closest distances, for the policy and for staying put.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench.evaluation.harness import median_distance_apart

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finished_runs import load_finished_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("run_id")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--ahead", default="10,25,50,100")
    args = parser.parse_args()
    run, spec = load_finished_run(args.home, args.run_id)
    if run.layout.goal_mode != "observation":
        raise SystemExit(f"{spec.dataset_id} is not an OGBench goal-conditioned dataset")
    dataset = run.dataset
    # OGBench's data-collection mode resets as the recipe did (the task mode poses a task at reset).
    env = dataset.make_env(mode="data_collection", terminate_at_goal=False)

    def normalized(observation) -> np.ndarray:
        return run.normalize(run.layout.state(observation))

    tolerance = median_distance_apart(run.states, run.obs_episode_end, 5)  # the normalized states plans live in
    report = {"run": args.run_id, "algorithm": spec.algorithm, "phase": run.phase, "step": run.step,
              "tolerance_5_steps": round(tolerance, 3), "mismatched_resets": 0, "ahead": {}}
    rows: dict[int, dict[str, list]] = {}
    used = 0
    for index in range(dataset.num_episodes):
        if used == args.episodes:
            break
        episode = dataset.episode(index)
        if episode.attrs.get("seed") is None:
            continue
        observations = run.layout.state(episode.observations, batched=True)
        first, _ = env.reset(seed=int(episode.attrs["seed"]))
        if not np.allclose(run.layout.state(first), observations[0], atol=1e-4):
            report["mismatched_resets"] += 1
            continue
        used += 1
        for k in [int(k) for k in args.ahead.split(",")]:
            if k >= len(observations):
                continue
            goal = observations[k]
            target = normalized(goal)
            for who in ("policy", "stay"):
                observation, _ = env.reset(seed=int(episode.attrs["seed"]))
                start = float(np.linalg.norm(normalized(observation) - target))
                closest = start
                for _ in range(max(2 * k, 50)):
                    action = (run.act(observation, goal, deterministic=True)[0] if who == "policy"
                              else np.zeros(env.action_space.shape, env.action_space.dtype))
                    observation, _, terminated, truncated, _ = env.step(action)
                    closest = min(closest, float(np.linalg.norm(normalized(observation) - target)))
                    if terminated:
                        break
                cell = rows.setdefault(k, {}).setdefault(who, [])
                cell.append((start, closest))
    for k, cells in sorted(rows.items()):
        report["ahead"][k] = {who: {"episodes": len(pairs),
                                    "reached": float(np.mean([c <= tolerance for _, c in pairs])),
                                    "median_start_distance": round(float(np.median([s for s, _ in pairs])), 3),
                                    "median_closest_distance": round(float(np.median([c for _, c in pairs])), 3)}
                             for who, pairs in cells.items()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
