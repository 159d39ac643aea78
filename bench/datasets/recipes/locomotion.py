"""MuJoCo locomotion ``random`` datasets in the D4RL lineage: hopper, halfcheetah, walker2d (Gymnasium v5).

D4RL's random datasets roll out a randomly initialised SAC policy; bench uses uniform random
actions, which needs no network and is what Minari's mujoco/*/random data approximates too.
Reference scores are D4RL's published ones (measured with MuJoCo 1.5/2.0 and the -v2 envs, so
bench's v5 returns are comparable in scale, not exactly), plus bench's own random-policy return.
"""

from __future__ import annotations

import numpy as np

from bench.datasets.recipes.base import EnvironmentSpec, Recipe

# D4RL's REF_MIN_SCORE / REF_MAX_SCORE (d4rl/infos.py), as published.
D4RL_REFERENCES = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
}
GYM_IDS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
# Episodes, CPU-friendly: hopper and walker2d random episodes end in ~20 steps when they fall;
# halfcheetah never falls and runs 1,000 steps. D4RL's random datasets hold 1M steps.
DEFAULT_EPISODES = {"hopper": 1000, "halfcheetah": 50, "walker2d": 1000}


def environment(robot: str) -> EnvironmentSpec:
    low, high = D4RL_REFERENCES[robot]
    return EnvironmentSpec(
        name=f"mujoco/{robot}",
        gym_id=GYM_IDS[robot],
        family="locomotion",
        packages=("mujoco",),
        description=f"Gymnasium {GYM_IDS[robot]} (MuJoCo locomotion, 1,000-step episodes)",
        published_references={"d4rl": {
            "random": low, "expert": high,
            "note": "D4RL's published reference returns (REF_MIN_SCORE/REF_MAX_SCORE), measured on the -v2 "
                    "environments with older MuJoCo versions (1.5/2.0), not on Gymnasium v5",
        }},
    )


def make_policy(kind: str, env):
    low, high = env.action_space.low, env.action_space.high

    def uniform(obs, rng):
        return rng.uniform(low, high).astype(np.float32)

    return {"random": uniform}[kind]


def recipes() -> list[Recipe]:
    return [
        Recipe(
            name=f"mujoco/{robot}/random",
            env=environment(robot),
            policy="uniform random actions (D4RL used a randomly initialised SAC policy)",
            default_episodes=DEFAULT_EPISODES[robot],
            make_policy=make_policy,
            episode_kind=lambda index, total: "random",
            description=f"{GYM_IDS[robot]} uniform-random-action data, the D4RL random recipe",
            reference_policies={"random": "random"},
        )
        for robot in GYM_IDS
    ]
