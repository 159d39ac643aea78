"""Fetch recipes (dissertation ch. 4, demonstrations for RL): ``demos`` for push, pick-and-place and slide.

Scripted controllers written for bench read the block (or puck), gripper and goal from the
observation (observation[0:3] gripper, [3:6] object, [9:11] finger widths) and decide from
geometry alone, so they need no memory between steps. Fetch moves the gripper by 5 cm per unit of
action, so position errors are turned into actions with gain 10 (clipped to [-1, 1]).
  push            go behind the block (on the goal's far side), lower, push it to the goal
  pick-and-place  open above the block, lower, close, carry it to the goal
  slide           go behind the puck, then strike toward the goal at full speed; the goal is out
                  of reach, so most strikes miss (the dissertation notes 7/100 of its sliding
                  demonstrations succeed)
Demonstrations add N(0, 0.1^2) action noise, so not all succeed. An episode succeeds if the object
is within 5 cm of the goal at its last step (Fetch's convention). Reward: Gymnasium-Robotics'
sparse reward, 0 within 5 cm of the goal and -1 otherwise (ch. 4, eq. 16); 50-step episodes.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from bench.datasets.recipes.base import EnvironmentSpec, Recipe

TASKS = {"push": "FetchPush-v4", "pick-and-place": "FetchPickAndPlace-v4", "slide": "FetchSlide-v4"}
NOISE, GAIN = 0.1, 10.0
STRIKE_GAIN = 1.5  # slide: strike speed per metre to the goal (the puck must stop there by friction)
DEFAULT_EPISODES = 100


def environment(task: str) -> EnvironmentSpec:
    return EnvironmentSpec(
        name=f"fetch/{task}",
        gym_id=TASKS[task],
        family="fetch",
        packages=("gymnasium-robotics", "mujoco"),
        module="gymnasium_robotics",
        description=f"Gymnasium-Robotics {TASKS[task]}: 4-D actions (gripper motion, fingers), dict observations, "
                    "sparse reward 0 within 5 cm of the goal else -1, 50 steps",
    )


def _move(delta: np.ndarray) -> np.ndarray:
    return np.clip(GAIN * delta, -1.0, 1.0)


def push_action(observation: dict[str, np.ndarray], strike_gain: float | None = None) -> np.ndarray:
    grip, block = observation["observation"][0:3], observation["observation"][3:6]
    goal = observation["desired_goal"]
    to_goal = goal[:2] - block[:2]
    distance = np.linalg.norm(to_goal)
    action = np.zeros(4)
    action[3] = -1.0  # fingers closed
    if distance < (0.01 if strike_gain else 0.025):  # inside the 5 cm success radius: stop pushing
        return action
    direction = to_goal / distance
    behind = block[:2] - 0.06 * direction
    offset = grip[:2] - block[:2]
    along = float(offset @ -direction)
    lateral = float(np.linalg.norm(offset + along * direction))
    low = grip[2] < block[2] + 0.02
    if low and 0.02 <= along <= 0.1 and lateral < 0.02:
        # In position behind the block: drive through it toward the goal.
        action[:2] = direction * min(1.0, strike_gain * distance) if strike_gain else _move(to_goal)
        action[2] = _move(np.array([block[2] - grip[2]]))[0]
    elif np.linalg.norm(grip[:2] - behind) > 0.015:
        # Travel above the table to the point behind the block.
        action[:2] = _move(behind - grip[:2])
        action[2] = _move(np.array([block[2] + 0.06 - grip[2]]))[0]
    else:
        action[2] = _move(np.array([block[2] - grip[2]]))[0]  # descend behind it
    return action


def pick_and_place_action(observation: dict[str, np.ndarray]) -> np.ndarray:
    grip, block = observation["observation"][0:3], observation["observation"][3:6]
    fingers = float(observation["observation"][9:11].sum())
    goal = observation["desired_goal"]
    action = np.zeros(4)
    relative = block - grip
    held = np.linalg.norm(relative) < 0.02 and fingers < 0.06
    if held:
        action[:3] = _move(goal - block)
        action[3] = -1.0
    elif np.linalg.norm(relative[:2]) > 0.01:
        action[:2] = _move(relative[:2])
        action[2] = _move(np.array([block[2] + 0.05 - grip[2]]))[0]
        action[3] = 1.0
    elif abs(relative[2]) > 0.01:
        action[:3] = _move(relative)
        action[3] = 1.0
    else:
        action[3] = -1.0  # close on the block
    return action


def make_policy_for(task: str):
    def make_policy(kind: str, env: gym.Env):
        if kind == "random":
            return lambda observation, rng: rng.uniform(-1.0, 1.0, 4)
        scripted = {"push": push_action, "pick-and-place": pick_and_place_action,
                    "slide": lambda observation: push_action(observation, strike_gain=STRIKE_GAIN)}[task]
        noise = NOISE if kind == "demos" else 0.0

        def policy(observation, rng):
            action = scripted(observation)
            if noise:
                action = action + rng.normal(0.0, noise, 4)
            return np.clip(action, -1.0, 1.0)

        return policy

    return make_policy


def recipes() -> list[Recipe]:
    return [
        Recipe(
            name=f"fetch/{task}/demos",
            env=environment(task),
            policy=f"scripted {task} controller + N(0, {NOISE}^2) action noise",
            default_episodes=DEFAULT_EPISODES,
            make_policy=make_policy_for(task),
            episode_kind=lambda index, total: "demos",
            description=f"Fetch {task} demonstrations (ch. 4), some unsuccessful",
            # The scripted striker scores barely above random on slide, so it is no expert reference there.
            reference_policies={"random": "random"} if task == "slide" else {"random": "random", "expert": "scripted"},
            success_rule="final",
        )
        for task in TASKS
    ]
