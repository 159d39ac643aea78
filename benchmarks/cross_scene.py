"""Is it the scene or the seed? Evaluate finished tabletop runs' final policies in each other's held-out scenes.

    python benchmarks/cross_scene.py --home DIR RUN_ID [RUN_ID ...] [--episodes 10] [--trace]

For every run (a latent-goal run of ``bench evaluate ... --online-env held-out``) and every held-out
scene of the runs given (the scene of seed s is HELD_OUT_SCENE_SEED + s), loads the run's last
checkpoint and evaluates its policy on the run's task in that scene, with the same fixed
evaluation episodes. Prints JSON: a matrix policy (row) x scene (column) of success rates, and
each scene's fixture positions. A row that fails everywhere is the policy; a column that fails
for every policy is the scene. ``--trace`` adds, per policy and scene, where its episodes get to
on the way to an object task (the stages of a pick and place, from privileged state): the share
of episodes whose gripper came within 3 cm of the object, that lifted it, and the final
distance of the object to the tray and of the gripper to where the goal image shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.evaluation.kinds import build_run  # noqa: E402
from bench.evaluation.store import EventLog, RunStore  # noqa: E402
from bench.evaluation.sweeps import spec_of  # noqa: E402
from bench.platform.envs.tabletop_layout import BUTTON_XY, GRIP, HANDLE, OBJECT, PRESENT, TRAY_XY  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    os.environ["BENCH_HOME"] = args.home
    from bench.datasets import Registry
    from bench.platform.settings import Settings

    settings = Settings.load()
    store = RunStore(Registry.open(settings).engine)
    specs = {}
    for run_id in args.runs:
        info = store.get(run_id)
        spec = spec_of(store, run_id)
        if not (spec.env_overrides or {}).get("scene_seed"):
            raise SystemExit(f"run {run_id} did not practise in a held-out scene")
        specs[run_id] = (spec, info.seed)
    scenes = {spec.env_overrides["scene_seed"] for spec, _ in specs.values()}
    matrix, layouts, traces = {}, {}, {}
    for run_id, (spec, seed) in specs.items():
        row = {}
        for scene in sorted(scenes):
            spec.env_overrides = {**spec.env_overrides, "scene_seed": scene}
            spec.eval_episodes = args.episodes
            run = build_run(spec, settings, EventLog())
            if not run.load_checkpoint():
                raise SystemExit(f"run {run_id} has no checkpoint")
            episodes = record_states(run.eval_env) if args.trace else None
            row[str(scene)] = run.evaluate()["success_rate"]
            if episodes is not None:
                traces[f"{run_id} in {scene}"] = pick_and_place_stages(episodes)
            observation, _ = run.eval_env.reset(seed=0)
            state = observation["state"]
            layouts[str(scene)] = {"button_xy": state[BUTTON_XY].round(3).tolist(),
                                   "tray_xy": state[TRAY_XY].round(3).tolist(),
                                   "handle": state[HANDLE].round(3).tolist(),
                                   "present(drawer, button, tray, object)": state[PRESENT].tolist()}
            run.env.close()
            run.eval_env.close()
        matrix[f"{run_id} (seed {seed})"] = row
    print(json.dumps({"task": next(iter(specs.values()))[0].env_overrides.get("task"), "episodes": args.episodes,
                      "success": matrix, "scenes": layouts, **({"traces": traces} if args.trace else {})}, indent=2))


def record_states(env) -> list[list]:
    """Wrap ``env`` so that every episode's privileged states are kept (a new list at each reset)."""
    episodes: list[list] = []
    reset, step = env.reset, env.step

    def recording_reset(*args, **kwargs):
        observation, info = reset(*args, **kwargs)
        episodes.append([info["goal_state"], observation["state"]])  # the goal's state first
        return observation, info

    def recording_step(action):
        out = step(action)
        episodes[-1].append(out[0]["state"])
        return out

    env.reset, env.step = recording_reset, recording_step
    return episodes


def pick_and_place_stages(episodes: list[list]) -> dict[str, float]:
    near, lifted, to_tray, gripper_to_goal = [], [], [], []
    for recorded in episodes:
        goal, states = np.asarray(recorded[0]), np.asarray(recorded[1:])
        gripper_to_goal.append(float(np.linalg.norm(states[-1, GRIP] - goal[GRIP])))
        near.append(float(np.linalg.norm(states[:, GRIP] - states[:, OBJECT], axis=1).min() < 0.03))
        lifted.append(float(states[:, OBJECT][:, 2].max() > states[0, OBJECT][2] + 0.02))
        to_tray.append(float(np.linalg.norm(states[-1, OBJECT][:2] - states[-1, TRAY_XY])))
    return {"gripper_reached_object": float(np.mean(near)), "object_lifted": float(np.mean(lifted)),
            "final_object_tray_distance_m": float(np.mean(to_tray)),
            "final_gripper_to_goal_gripper_m": float(np.mean(gripper_to_goal))}


if __name__ == "__main__":
    main()
