"""Does a finished latent-goal run's goal-conditioned policy reach its goal image's gripper position? Privileged-state diagnostics.

    python benchmarks/goal_reaching.py --home DIR RUN_ID [--tasks button-press,object-in-tray] [--episodes 5]

Loads the run from its checkpoint (as a resume would), then, for each task, conditions the
policy on the task's goal image (the final goal: no planner) in the run's held-out scene and
prints JSON per task: how far the gripper starts from where the goal image shows it, how far
it ends, the success rate and the stage progress. A policy that ends no nearer than it started
has not learned to reach even the gripper part of a goal, and no subgoal plan can help it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from bench.platform.envs.tabletop import GRIP, TabletopEnv
from bench.evaluation.layouts import evaluation_seed

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finished_runs import load_finished_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("run_id")
    parser.add_argument("--tasks", help="tasks to condition on (default: the run's own)")
    parser.add_argument("--episodes", type=int, default=5)
    args = parser.parse_args()
    run, spec = load_finished_run(args.home, args.run_id)
    overrides = dict(spec.env_overrides)
    report = {"run": args.run_id, "algorithm": spec.algorithm, "phase": run.phase, "step": run.step, "tasks": {}}
    for task in (args.tasks.split(",") if args.tasks else [overrides["task"]]):
        env = TabletopEnv(**{**overrides, "task": task})  # the task's own horizon, or the run's if longer
        start, end, successes, progress = [], [], [], []
        for episode in range(args.episodes):
            observation, info = env.reset(seed=evaluation_seed(episode))
            # What the run reads: images, or the privileged state (representation=state).
            initial, goal_hand = observation[run.observation_key], info["goal_state"][GRIP]
            z_goal = run._encode_one(info[run.goal_key], initial)
            start.append(float(np.linalg.norm(observation["state"][GRIP] - goal_hand)))
            while True:
                action, _ = run._act(run._encode_one(observation[run.observation_key], initial), z_goal, deterministic=True)
                observation, _, terminated, truncated, info = env.step(action)
                if terminated or truncated:
                    break
            end.append(float(np.linalg.norm(observation["state"][GRIP] - goal_hand)))
            successes.append(bool(info["success"]))
            progress.append(float(info["stage_progress"]))
        env.close()
        report["tasks"][task] = {"gripper_to_goal_start_m": round(statistics.mean(start), 3),
                                 "gripper_to_goal_end_m": round(statistics.mean(end), 3),
                                 "success_rate": float(np.mean(successes)), "stage_progress": float(np.mean(progress))}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
