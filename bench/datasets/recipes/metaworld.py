"""Meta-World Sawyer recipes (dissertation ch. 2, 7, 9): expert, medium, random and mixed datasets.

Policies (Meta-World's scripted experts, actions clipped to [-1, 1]):
  expert  scripted + N(0, 0.1^2) Gaussian action noise
  medium  each step, with probability eps (per task, tuned so that roughly 30-70% of episodes
          succeed) a uniform random action, else scripted + N(0, 0.3^2)
  random  uniform random actions
  mixed   like the dissertation's AWAC prior data (ch. 7: 10 demonstrations + 500 suboptimal
          trajectories), scaled: the first round(n * 10/510) episodes (at least 1) expert, the
          rest alternating medium and random
  misaimed  the scripted expert + N(0, 0.1^2) acting on an observation whose object position is
          moved MISAIM metres along x, so it reaches for a point beside the object: purposeful,
          systematically wrong behaviour (measured: 0/12 successes on the tasks that have a MISAIM)
  expert-misaimed  D4RL "medium-expert"-style: the first round(n / 10) episodes expert, the rest
          misaimed. ``medium`` and ``mixed`` perturb the expert with zero-mean noise, which a
          cloned mean action averages away (BC reaches 100% on drawer-open/mixed); here 90% of
          the data is biased the same way, so cloning it misses, and a method must pick the
          expert's actions out by their value (the AWAC/IQL claim of ch. 7-8)
Episodes last Meta-World's 500 steps; each reset draws one of MT1's 50 task variations.
"""

from __future__ import annotations

import numpy as np

from bench.datasets.recipes.base import EnvironmentSpec, Recipe
from bench.platform.envs.metaworld import TASKS, scripted_policy

EXPERT_NOISE = 0.1
MEDIUM_NOISE = 0.3
# Probability of a uniform random action in `medium`, per task, tuned on 16-30 episodes so that the
# measured success rate (docs/datasets.md, 40 episodes) falls in roughly 30-70%.
MEDIUM_EPSILON = {"drawer-open": 0.7, "drawer-close": 0.88, "button-press": 0.75, "push": 0.45,
                  "pick-place": 0.5, "door-open": 0.8}
# How far (metres, along x) the misaimed expert's view of the object is moved: per task, the smallest of
# 0.06 and 0.12 at which it failed all of 12 episodes (door-open and drawer-close succeed at both, so
# they have no misaimed data).
MISAIM = {"push": 0.06, "pick-place": 0.06, "drawer-open": 0.12, "button-press": 0.12}
DEFAULT_EPISODES = {"expert": 100, "medium": 100, "random": 100, "mixed": 255, "expert-misaimed": 255}


def environment(task: str) -> EnvironmentSpec:
    return EnvironmentSpec(
        name=f"metaworld/{task}",
        gym_id="bench/MetaWorld-v0",
        kwargs={"task": task},
        family="metaworld",
        packages=("metaworld", "mujoco"),
        description=f"Meta-World v3 Sawyer {task}: 4-D end-effector/gripper actions, 39-D state with the goal, "
                    "500 steps, a new task variation (of MT1's 50) per episode",
    )


def make_policy(task: str):
    def build(kind: str, env):
        scripted = scripted_policy(task)
        low, high = -1.0, 1.0

        def expert(obs, rng):
            return np.clip(scripted.get_action(obs) + rng.normal(0.0, EXPERT_NOISE, 4), low, high)

        def medium(obs, rng):
            if rng.random() < MEDIUM_EPSILON[task]:
                return rng.uniform(low, high, 4)
            return np.clip(scripted.get_action(obs) + rng.normal(0.0, MEDIUM_NOISE, 4), low, high)

        def uniform(obs, rng):
            return rng.uniform(low, high, 4)

        def noiseless(obs, rng):
            return np.clip(scripted.get_action(obs), low, high)

        def misaimed(obs, rng):
            seen = np.array(obs, copy=True)
            seen[4] += MISAIM[task]  # observation[4:7]: the object's (handle's, button's) position
            return np.clip(scripted.get_action(seen) + rng.normal(0.0, EXPERT_NOISE, 4), low, high)

        return {"expert": expert, "medium": medium, "random": uniform, "scripted": noiseless,
                "misaimed": misaimed}[kind]

    return build


def mixed_kind(index: int, total: int) -> str:
    experts = max(1, round(total * 10 / 510))
    if index < experts:
        return "expert"
    return "medium" if (index - experts) % 2 == 0 else "random"


def expert_misaimed_kind(index: int, total: int) -> str:
    return "expert" if index < max(1, round(total / 10)) else "misaimed"


def recipes() -> list[Recipe]:
    out = []
    for task in TASKS:
        env = environment(task)
        descriptions = {
            "expert": f"scripted expert + N(0, {EXPERT_NOISE}^2) action noise",
            "medium": f"scripted + N(0, {MEDIUM_NOISE}^2), uniform random action w.p. {MEDIUM_EPSILON[task]}",
            "random": "uniform random actions",
            "mixed": "~2% expert episodes, the rest alternating medium and random (AWAC-style prior data)",
        }
        if task in MISAIM:
            descriptions["expert-misaimed"] = (f"10% expert episodes, the rest the expert reaching {MISAIM[task]} m "
                                               "beside the object (+ N(0, 0.1^2))")
        kinds = {"mixed": mixed_kind, "expert-misaimed": expert_misaimed_kind}
        for kind, policy in descriptions.items():
            out.append(Recipe(
                name=f"metaworld/{task}/{kind}",
                env=env,
                policy=policy,
                default_episodes=DEFAULT_EPISODES[kind],
                make_policy=make_policy(task),
                episode_kind=kinds.get(kind, lambda index, total, kind=kind: kind),
                description=f"Meta-World {task}, {kind} data",
                reference_policies={"random": "random", "expert": "scripted"},
            ))
    return out
