"""Fetch recipes (dissertation ch. 4, demonstrations for RL): ``demos`` for push, pick-and-place, slide and stacking.

Scripted controllers written for bench read the block (or puck), gripper and goal from the
observation (observation[0:3] gripper, [3:6] object, [9:11] finger widths) and decide from
geometry alone, so they need no memory between steps. Fetch moves the gripper by 5 cm per unit of
action, so position errors are turned into actions with gain 10 (clipped to [-1, 1]).
  push            go behind the block (on the goal's far side), lower, push it to the goal
  pick-and-place  open above the block, lower, close, carry it to the goal
  slide           go behind the puck, then strike toward the goal at full speed; the goal is out
                  of reach, so most strikes miss (the dissertation notes 7/100 of its sliding
                  demonstrations succeed)
  stack2, stack3  bench's block stacking (``bench.platform.envs.fetch_stack``): block by block in
                  order, lift the first unplaced block, rise clear of the tower, travel above its
                  goal, lower it and let go, then rise straight up before fetching the next. The
                  demonstrations record the simulator's state per observation (``infos/sim_state``)
                  for resets to demonstration states (ch. 4.4.4).
Demonstrations add N(0, 0.1^2) action noise, so not all succeed. An episode succeeds if the object
is within 5 cm of the goal at its last step (Fetch's convention). Reward: Gymnasium-Robotics'
sparse reward, 0 within 5 cm of the goal and -1 otherwise (ch. 4, eq. 16); 50-step episodes.
"""

from __future__ import annotations

import numpy as np

from bench.datasets.recipes.base import EnvironmentSpec, Recipe, controller_policies

TASKS = {"push": "FetchPush-v4", "pick-and-place": "FetchPickAndPlace-v4", "slide": "FetchSlide-v4"}
STACKS = {"stack2": 2, "stack3": 3}  # bench's own environments, bench/FetchStack{N}-v0
NOISE, GAIN = 0.1, 10.0
STRIKE_GAIN = 1.5  # slide: strike speed per metre to the goal (the puck must stop there by friction)
DEFAULT_EPISODES = 100


def environment(task: str) -> EnvironmentSpec:
    if task in STACKS:
        blocks = STACKS[task]
        return EnvironmentSpec(
            name=f"fetch/{task}", gym_id=f"bench/FetchStack{blocks}-v0", family="fetch",
            packages=("gymnasium-robotics", "mujoco"), module="gymnasium_robotics",
            description=f"Fetch block stacking (dissertation ch. 4.7), {blocks} blocks: stack them on the first; "
                        f"sparse reward 0 when all are within 5 cm of their goals else -1 (eq. 17 - 1), "
                        f"{50 * (blocks - 1)} steps")
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


def stack_action(observation: dict[str, np.ndarray], blocks: int) -> np.ndarray:
    """The scripted stacker: the first block not yet on its goal is fetched and put there (see the module docstring)."""
    obs = observation["observation"]
    grip = obs[0:3]
    positions = obs[3:3 + 3 * blocks].reshape(blocks, 3)
    fingers = float(obs[3 + 6 * blocks:5 + 6 * blocks].sum())
    goals = observation["desired_goal"].reshape(blocks, 3)
    # Placed with a margin, so a block is let go only when it sits squarely on the one below.
    placed = np.linalg.norm(positions - goals, axis=1) < 0.025
    action = np.zeros(4)
    pending = [i for i in range(1, blocks) if not placed[i]]
    if not pending:
        action[2], action[3] = 0.5, 1.0  # done: rise, fingers open
        return action
    block, goal = positions[pending[0]], goals[pending[0]]
    relative = block - grip
    held = np.linalg.norm(relative) < 0.02 and fingers < 0.06
    above = goal + np.array([0.0, 0.0, 0.03])
    if held:
        action[3] = -1.0
        if np.linalg.norm(block[:2] - goal[:2]) <= 0.01:
            action[:3] = _move(goal - block)  # lower it onto the tower
        elif block[2] < above[2] - 0.015:
            action[2] = _move(np.array([above[2] - block[2]]))[0]  # lift clear of the tower first
        else:
            action[:3] = _move(above - block)
        return action
    action[3] = 1.0
    far = np.linalg.norm(relative[:2]) > 0.03
    if far and np.linalg.norm(grip[:2] - goals[0][:2]) < 0.05 and grip[2] < goal[2] + 0.03:
        action[2] = 1.0  # just let go on the tower: leave it straight up
    elif np.linalg.norm(relative[:2]) > 0.01:
        if far and grip[2] < block[2] + 0.04:  # low: rise before travelling
            action[:2] = 0.3 * _move(relative[:2])
            action[2] = _move(np.array([block[2] + 0.06 - grip[2]]))[0]
        else:
            action[:2] = _move(relative[:2])
            action[2] = _move(np.array([block[2] + 0.05 - grip[2]]))[0]
    elif abs(relative[2]) > 0.01:
        action[:3] = _move(relative)
    else:
        action[3] = -1.0  # close on the block
    return action


def scripted_action(task: str):
    """The scripted controller of a Fetch task: observation -> action (no noise)."""
    if task in STACKS:
        return lambda observation: stack_action(observation, STACKS[task])
    if task == "slide":
        return lambda observation: push_action(observation, strike_gain=STRIKE_GAIN)
    return {"push": push_action, "pick-and-place": pick_and_place_action}[task]


def recipes() -> list[Recipe]:
    return [
        Recipe(
            name=f"fetch/{task}/demos",
            env=environment(task),
            policy=f"scripted {task} controller + N(0, {NOISE}^2) action noise",
            default_episodes=DEFAULT_EPISODES,
            make_policy=controller_policies(lambda task=task: scripted_action(task), 4, NOISE, "demos"),
            episode_kind=lambda index, total: "demos",
            description=f"Fetch {task} demonstrations (ch. 4), some unsuccessful",
            # The scripted striker scores barely above random on slide, so it is no expert reference there.
            reference_policies={"random": "random"} if task == "slide" else {"random": "random", "expert": "scripted"},
            success_rule="final",
            record_sim_state=task in STACKS,
        )
        for task in [*TASKS, *STACKS]
    ]
