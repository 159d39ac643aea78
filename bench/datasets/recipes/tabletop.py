"""The pixel tabletop's prior data (``tabletop/prior``): short scripted interactions across many training scenes.

As VAL's prior data (dissertation ch. 9.6-9.7), every episode is drawn in a *new* environment
from the training half of p(E) (training shapes and colours only) and shows a few short
interactions that the scene affords: opening or closing a drawer, pressing the button, grasping
and lifting, placing into the tray or an open drawer, pushing. A primitive is chosen uniformly
among those afforded; when it finishes early another follows, until the 50-step episode ends.
No episode shows all the stages of a multi-stage target task (``button-then-tray`` ...; PTP,
ch. 10.6.1): those compositions are left for the learner to find.
Actions carry Gaussian noise with a per-episode scale sigma ~ U(0, 0.3), so the data covers
near-misses as well as successes. Observations are ``{"image": uint8 48x48x3, "state": privileged}``;
there is no task and no reward (the environment reports -1 every step), as in the dissertation's
self-supervised setting. Differences from the dissertation: a MuJoCo scene of bench's own instead
of the PyBullet Sawyer scenes, 6 object shapes (4 for training) instead of 84, and 1,000 episodes
of 50 steps by default (VAL's real-robot prior data: about 1,000 trajectories).
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

from bench.datasets.recipes.base import EnvironmentSpec, EpisodeRecord, Recipe
from bench.platform.envs.tabletop_primitives import Primitive, affordances, completes_a_multi_stage_task

EPISODE_STEPS = 50
MAX_NOISE = 0.3
DEFAULT_EPISODES = 1000


def environment() -> EnvironmentSpec:
    return EnvironmentSpec(
        name="tabletop/prior-scenes",
        gym_id="bench/Tabletop-v0",
        kwargs={"scene_split": "train", "max_episode_steps": EPISODE_STEPS},
        family="tabletop",
        packages=("mujoco",),
        description="bench's pixel tabletop (48x48 RGB, 4-D gripper velocity + grasp); a new training scene "
                    "per episode; no reward (self-supervised). Evaluate on held-out scenes with "
                    "`--online-env held-out` and a task: drawer-open, button-press, object-in-tray, object-lift",
    )


def collect(env: gym.Env, kind: str, reset_seed: int, rng: np.random.Generator,
            on_step: Callable[[int], None] | None = None) -> EpisodeRecord:
    on_step = on_step or (lambda step: None)
    observation, info = env.reset(seed=reset_seed)
    on_step(0)
    noise = float(rng.uniform(0.0, MAX_NOISE))
    images, states, actions, primitives = [observation["image"]], [observation["state"]], [], []
    primitive = None
    for step in range(EPISODE_STEPS):
        if primitive is None or primitive.done:
            # Never every stage of a multi-stage target task in one episode (PTP, ch. 10.6.1).
            options = [o for o in affordances(observation["state"]) if not completes_a_multi_stage_task(primitives + [o])]
            if not options:  # an empty scene: the gripper wanders
                options = ["wander"]
            choice = options[int(rng.integers(len(options)))]
            primitives.append(choice)
            primitive = _Wander() if choice == "wander" else Primitive(choice, noise)
        action = primitive(observation, rng)
        observation, _, terminated, truncated, info = env.step(action)
        images.append(observation["image"])
        states.append(observation["state"])
        actions.append(action)
        on_step(step + 1)
    steps = len(actions)
    truncations = np.zeros(steps, bool)
    truncations[-1] = True
    return EpisodeRecord(
        {"image": np.asarray(images, np.uint8), "state": np.asarray(states, np.float32)},
        np.asarray(actions, np.float32), np.full(steps, -1.0, np.float32), np.zeros(steps, bool), truncations,
        np.zeros(steps + 1, bool),
        {"seed": reset_seed, "success": False, "primitives": ",".join(primitives), "noise": noise,
         "object_shape": env.unwrapped.scene.object_shape or "", "object_colour": env.unwrapped.scene.object_colour})


class _Wander:
    done = False

    def __call__(self, observation, rng):
        return np.concatenate([rng.uniform(-1, 1, 3), [-1.0]]).astype(np.float32)


def recipes() -> list[Recipe]:
    env = environment()
    return [Recipe(
        name="tabletop/prior",
        env=env,
        policy=f"scripted primitives the scene affords, chained for {EPISODE_STEPS} steps, "
               f"Gaussian action noise sigma ~ U(0, {MAX_NOISE}) per episode",
        default_episodes=DEFAULT_EPISODES,
        make_policy=lambda kind, env: None,  # unused: collect runs the primitives
        episode_kind=lambda index, total: "prior",
        description="VAL-style prior data: short interactions in many training scenes of the pixel tabletop",
        make_collection_env=lambda **render: env.make(**render),
        collect_episode=collect,
    )]
