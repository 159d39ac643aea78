"""Where does PTP break: the plans, or following them? A finished tabletop PTP run, evaluated with different subgoals.

    python benchmarks/plan_probe.py --home DIR RUN_ID [--episodes 10] [--etas 0.01,0.1,1] [--generator-steps N]

Loads the run from its checkpoint (as a resume would) and evaluates its policy on the run's
multi-stage task in the run's scene, with the same episodes (``evaluation_seed``) each time,
conditioned on:
  final goal   the task's goal only (what gc-iql does);
  planner      the run's own plans (Algorithm 9), at each feasibility weight eta of ``--etas``;
  scripted     the end states of the task's scripted stages (the same scene and seed, replayed
               by the task's primitives in a second environment), then the goal: an oracle plan.
A policy that completes stages with the scripted plan and not with its own plans says the
planner is where PTP breaks; one that fails with both says the policy does not follow subgoals.
``--generator-steps N`` first trains the run's subgoal generators on to N steps (in memory only:
the run and its records are left as they are), to ask whether the planner is undertrained;
with ``--generator-beta B`` it trains fresh generators with eq. 50's KL weight B for N steps instead.
Prints JSON per condition: success rate, stage progress, the share of episodes that completed
each stage, and (planner) how many plans light the button, and how many at the button. On
states it also prints the feasibility term's V(s_0, x) for the first stage's scripted end and
for two copies of it that are no states (the gripper moved back to where it starts, or on to
where the goal shows it), and for s_0 itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
from pathlib import Path

import numpy as np
import torch

from bench.algorithms.ptp import build_planner
from bench.algorithms.subgoals import GENERATOR_KINDS, SubgoalSchedule
from bench.evaluation.harness import FixedGoal
from bench.evaluation.layouts import evaluation_seed
from bench.evaluation.planning import MappedSchedule
from bench.platform.envs.tabletop import TabletopEnv, task_stages
from bench.platform.envs.tabletop_layout import BUTTON, BUTTON_XY, GRIP
from bench.platform.envs.tabletop_primitives import TASK_STAGES, primitives_for_task, run_primitives

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finished_runs import load_finished_run  # noqa: E402


def scripted_stage_ends(overrides: dict, seed: int, key: str) -> list[np.ndarray]:
    """The observation (``key``) at the end of each scripted stage of the task, in the episode's scene and start."""
    return _scripted_stage_ends(tuple(sorted(overrides.items())), seed, key)


@functools.cache  # the oracle plans and the feasibility table replay the same episodes
def _scripted_stage_ends(overrides: tuple, seed: int, key: str) -> list[np.ndarray]:
    overrides = dict(overrides)
    env = TabletopEnv(**overrides)
    try:
        env.reset(seed=seed)
        rng, ends = np.random.default_rng(seed), []
        for primitive in primitives_for_task(overrides["task"]):
            run_primitives(env, [primitive], rng)
            ends.append(np.array(env._observation()[key]))
        return ends
    finally:
        env.close()


def episode(run, env, seed: int, condition: str, overrides: dict) -> dict:
    observation, info = env.reset(seed=seed)
    key = run.observation_key
    initial = observation[key]
    z = run._encode_one(initial, initial)
    z_goal = run._encode_one(info[run.goal_key], initial)
    if condition == "final goal":
        goals = FixedGoal(z_goal)
    elif condition == "scripted":
        ends = scripted_stage_ends(overrides, seed, key)[:-1]  # the last stage's end is the goal itself
        targets = torch.stack([run._encode_one(end, initial) for end in ends] + [z_goal])
        interval = env.max_episode_steps // len(targets)
        goals = MappedSchedule(SubgoalSchedule(run._to_plan(targets), interval, run.reach_epsilon),
                               run._from_plan, run._to_plan)
    else:
        goals, _ = run._schedule(z, z_goal, remember=False)
    while True:
        action, _ = run._act(z, goals.current, deterministic=True)
        observation, _, terminated, truncated, info = env.step(action)
        z = run._encode_one(observation[key], initial)
        goals.observe(z)
        if terminated or truncated:
            break
    stages = task_stages(overrides["task"], observation["state"], info.get("goal_state"))
    return {"success": bool(info["success"]), "stage_progress": float(info["stage_progress"]), "stages": stages,
            "targets": None if condition in ("final goal", "scripted") else goals.targets}


def evaluate(run, env, spec, overrides: dict, args, conditions: list[str]) -> dict[str, dict]:
    """Each condition's episodes (the same seeds every time): success, stage progress, each stage's share."""
    planner, results = run.algorithm.planner, {}
    own = planner.settings
    for condition in conditions:
        if condition.startswith("planner"):
            if not planner.active:
                continue
            planner.settings = dataclasses.replace(own, eta=float(condition.split("=")[1]))
        run._evaluation_rng = torch.Generator().manual_seed(spec.seed)
        episodes = [episode(run, env, evaluation_seed(i), condition, overrides) for i in range(args.episodes)]
        planner.settings = own
        result = {"success_rate": float(np.mean([e["success"] for e in episodes])),
                  "stage_progress": float(np.mean([e["stage_progress"] for e in episodes])),
                  "stage_done": [float(np.mean([e["stages"][i] for e in episodes]))
                                 for i in range(len(episodes[0]["stages"]))]}
        if episodes[0]["targets"] is not None and run.observation_key == "state" and \
                "press-button" in TASK_STAGES.get(overrides["task"], ()):
            targets = torch.stack([torch.as_tensor(e["targets"]) for e in episodes]).numpy()
            pressed = targets[..., BUTTON] > 0.5
            near = np.linalg.norm(targets[..., GRIP][..., :2] - targets[..., BUTTON_XY], axis=-1) < 0.05
            # Does the plan press the button where the button is? (A subgoal that lights it away from it is no state.)
            result["plans_with_a_pressed_subgoal"] = float(pressed.any(1).mean())
            result["plans_with_the_gripper_at_the_button"] = float((pressed & near).any(1).mean())
        results[condition] = result
    return results


def feasibility_of_the_first_stage(run, env, overrides: dict, episodes: int) -> dict[str, float] | None:
    """On states: medians of V(s_0, x) for x = the scripted first stage's end, the same state with the
    gripper left where it starts, with the gripper where the goal shows it, and s_0 itself."""
    if run.observation_key != "state" or not run.algorithm.planner.active:
        return None
    values: list[list[float]] = []
    for i in range(episodes):
        observation, info = env.reset(seed=evaluation_seed(i))
        start = observation["state"]
        stage_end = scripted_stage_ends(overrides, evaluation_seed(i), "state")[0]
        in_place, at_goal = stage_end.copy(), stage_end.copy()
        in_place[GRIP], at_goal[GRIP] = start[GRIP], info["goal_state"][GRIP]
        planned = run._to_plan(torch.from_numpy(np.stack([start, stage_end, in_place, at_goal, start]).astype(np.float32)))
        values.append(run._feasibility(planned[:1].expand(4, -1), planned[1:]).tolist())
    medians = np.median(np.asarray(values), 0)
    return {"scripted_stage_end": round(float(medians[0]), 2), "stage_end_gripper_at_start": round(float(medians[1]), 2),
            "stage_end_gripper_at_goal": round(float(medians[2]), 2), "s0_itself": round(float(medians[3]), 2),
            "episodes_preferring_the_scripted_end": float(np.mean([v[0] > max(v[1], v[2]) for v in values]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("run_id")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--etas", default="", help="feasibility weights to plan with (default: the run's own)")
    parser.add_argument("--generator-steps", type=int, default=0, help="train the generators on to this many steps")
    parser.add_argument("--generator-beta", type=float, help="fresh generators with this KL weight (eq. 50)")
    parser.add_argument("--generator-seeds", default="0", help="with --generator-beta: one fresh set per seed")
    parser.add_argument("--samples", type=int, help="N, the sampled latent sequences per plan (default: the run's)")
    parser.add_argument("--subgoal-generator", choices=GENERATOR_KINDS,
                        help="plan with this kind of generator instead of the run's (data: the prior data's transitions)")
    args = parser.parse_args()
    run, spec = load_finished_run(args.home, args.run_id)
    run._ensure_latents()
    overrides = dict(spec.env_overrides)
    env = TabletopEnv(**overrides)
    report = {"run": args.run_id, "algorithm": spec.algorithm, "task": overrides["task"], "phase": run.phase,
              "step": run.step, "conditions": {}}
    report["conditions"].update(evaluate(run, env, spec, overrides, args, ["final goal", "scripted"]))
    # The feasibility term of eq. 52, V(s, s'), on the first stage's real end and on two that are no states.
    report["feasibility_from_s0"] = feasibility_of_the_first_stage(run, env, overrides, args.episodes)
    fresh = args.generator_beta is not None or args.subgoal_generator is not None
    changes = {"generator_beta": args.generator_beta, "subgoal_generator": args.subgoal_generator}
    changes = {name: value for name, value in changes.items() if value is not None}
    for seed in ([int(s) for s in args.generator_seeds.split(",")] if fresh else [None]):
        planner = run.algorithm.planner
        if fresh:  # new generators, initialized and trained from this seed
            torch.manual_seed(seed)
            planner = run.algorithm.planner = build_planner(dataclasses.replace(run.config, **changes),
                                                            run.algorithm.latent_dim)
            planner.use_data(run._to_plan(run.latents), run.obs_episode_end)
        trained_from = planner.updates
        if planner.learned and args.generator_steps > planner.updates:
            states = run._to_plan(run.latents)
            generator = torch.Generator().manual_seed(spec.seed if seed is None else seed)
            for _ in range(planner.updates, args.generator_steps):
                planner.update(states, run.obs_episode_end, run.config.generator_batch_size, generator)
        if args.samples:
            planner.settings = dataclasses.replace(planner.settings, samples=args.samples)
        etas = [float(e) for e in args.etas.split(",") if e] or [planner.settings.eta]
        if planner.kind == "data":
            label = f"the data's transitions (seed {seed}), N {planner.settings.samples}"
        else:
            label = (f"fresh generators seed {seed}, beta {planner.beta:g}, " if fresh else "the run's generators, ") \
                + f"{planner.updates} steps (run: {trained_from}), N {planner.settings.samples}"
        report["conditions"].update({f"{label}: {name}": value for name, value in
                                     evaluate(run, env, spec, overrides, args,
                                              [f"planner eta={eta:g}" for eta in etas]).items()})
    env.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
