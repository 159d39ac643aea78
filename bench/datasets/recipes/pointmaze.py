"""PointMaze recipes (D4RL maze2d lineage, Gymnasium-Robotics): ``navigate`` and ``stitch`` data, sparse and dense.

A waypoint controller follows the shortest path over maze cells (breadth-first search) to its
goal: it aims a PD controller (action = 10 (waypoint - position) - 1 velocity, clipped) at the
next cell's centre, and at the goal itself in the goal's cell.
  navigate  D4RL/Minari-style: 1,000-step episodes in which the controller (+ N(0, 0.1^2) action
            noise) drives to a random cell; on arrival the environment draws another
            (continuing_task=True, reset_target=True)
  stitch    short segments (at most 100 steps): from a random cell to a random cell at most 3
            cells away, ending on arrival; no segment's path contains both the evaluation start
            and the evaluation goal cell, so reaching the goal from the start means stitching
            segments together (the IQL argument, dissertation ch. 8)
Evaluation (the environment reference): a fixed start and goal cell per maze marked in the maze
map, continuing_task=True with reset_target=False, so the return counts the steps spent at the
goal (sparse: reward 1 within 0.45 of it; dense: exp(-distance)), Gymnasium-Robotics' episode
lengths (umaze 300, medium 600, large 800 steps), as D4RL's maze2d scores it.

Single-task recipes (``pointmaze/<maze>-single/...``, D4RL AntMaze's setting, dissertation ch. 8;
the environment is ``bench.platform.envs.pointmaze_single``): one start cell and one goal cell,
the goal not in the observation, reward 1 and the episode's end on arriving within 0.45 of the
goal's centre, and a time limit of about 1.5 times the controller's path (umaze 180, medium 300,
large 450 steps), within which the data's wandering, run from the start, arrives in 19% (medium)
and 5% (large) of episodes (benchmarks/maze_wandering.py). The data never aims at the goal:
  play      AntMaze "diverse"-style: from a random cell, the controller (+ N(0, 0.1^2)) drives to
            random cells one after another for 1,000 steps
  stitch    OGBench-style segments, as above, in the single-task environment: at most 3 cells /
            100 steps, never containing both the start and the goal cell
In the data, as in AntMaze's, passing the goal earns reward 1 per step within it but does not end
the episode (an episode that ended there would leave only paths into the goal, a sink in the
data's mean action that cloning follows to the goal: measured, BC 70% in one seed).
Cloning play data reproduces wandering, while a value function can carry the goal's reward back
through the pieces of paths the data contains. Cloning stitch segments, measured, does not always
wander: over 10 seeds its policy reached the goal in most episodes in 2 (docs/results.md).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from bench.datasets.recipes.base import EnvironmentSpec, EpisodeRecord, Recipe, rollout
from bench.platform.envs.pointmaze_single import EVALUATION_CELLS, GOAL_RADIUS, MAZES, evaluation_map
from bench.platform.environments import import_environment_module
from bench.platform.envs.pointmaze_single import base_map as _base_map

NAVIGATE_STEPS, STITCH_MAX_STEPS, STITCH_MAX_CELLS = 1000, 100, 3
NOISE, KP, KD = 0.1, 10.0, 1.0
DEFAULT_EPISODES = {"navigate": {"umaze": 100, "medium": 200, "large": 300},
                    "stitch": {"umaze": 1000, "medium": 2000, "large": 3000},
                    "play": {"umaze": 100, "medium": 200, "large": 300}}
# The single-task time limits: about 1.5 times the noiseless controller's path from start to goal
# (measured: 120, 197 and 299 steps), where Gymnasium-Robotics allows 300, 600 and 800.
SINGLE_TASK_STEPS = {"umaze": 180, "medium": 300, "large": 450}


def _gym_id(maze: str, dense: bool) -> str:
    return f"PointMaze_{MAZES[maze]}{'Dense' if dense else ''}-v3"


def environment(maze: str, dense: bool) -> EnvironmentSpec:
    return EnvironmentSpec(
        name=f"pointmaze/{maze}{'-dense' if dense else ''}",
        gym_id=_gym_id(maze, dense),
        kwargs={"maze_map": evaluation_map(maze), "continuing_task": True, "reset_target": False},
        family="pointmaze",
        packages=("gymnasium-robotics", "mujoco"),
        module="gymnasium_robotics",
        description=f"Gymnasium-Robotics PointMaze {MAZES[maze]} ({'dense' if dense else 'sparse'} reward); "
                    f"evaluation from cell {EVALUATION_CELLS[maze][0]} to cell {EVALUATION_CELLS[maze][1]}",
    )


def free_cells(grid: list[list[Any]]) -> list[tuple[int, int]]:
    return [(r, c) for r, row in enumerate(grid) for c, cell in enumerate(row) if cell != 1]


def shortest_path(grid: list[list[Any]], start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
    """Cells from start to goal (both included), by breadth-first search over free cells."""
    previous = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        r, c = cell
        for nxt in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if grid[nxt[0]][nxt[1]] != 1 and nxt not in previous:
                previous[nxt] = cell
                queue.append(nxt)
    path, cell = [], goal
    while cell is not None:
        path.append(cell)
        cell = previous[cell]
    return path[::-1]


def cell_of(maze, position: np.ndarray) -> tuple[int, int]:
    return tuple(int(v) for v in maze.cell_xy_to_rowcol(position))


def waypoint_action(maze, position: np.ndarray, velocity: np.ndarray, goal: np.ndarray, noise: float,
                    rng: np.random.Generator) -> np.ndarray:
    """PD control toward the next cell centre on the shortest path to ``goal`` (a point), or the goal itself
    in the goal's cell."""
    grid = maze.maze_map
    here, there = cell_of(maze, position), cell_of(maze, goal)
    path = shortest_path(grid, here, there) if grid[here[0]][here[1]] != 1 else [there]
    waypoint = goal if len(path) <= 1 else maze.cell_rowcol_to_xy(np.array(path[1]))
    action = KP * (waypoint - position) - KD * velocity
    if noise:
        action = action + rng.normal(0.0, noise, 2)
    return np.clip(action, -1.0, 1.0)


class WaypointController:
    """The waypoint controller aimed at the observation's goal (goal-conditioned PointMaze)."""

    def __init__(self, env: gym.Env, noise: float):
        self.maze = env.unwrapped.maze
        self.noise = noise

    def __call__(self, observation: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        return waypoint_action(self.maze, observation["achieved_goal"], observation["observation"][2:4],
                               observation["desired_goal"], self.noise, rng)


def make_policy(kind: str, env: gym.Env):
    """random: uniform actions; navigate: the controller with noise; stitch and controller: without."""
    if kind == "random":
        return lambda observation, rng: rng.uniform(-1.0, 1.0, 2)
    return WaypointController(env, noise=NOISE if kind == "navigate" else 0.0)


# -- single task --------------------------------------------------------------------------------------
class Wanderer:
    """Play data's behaviour (single task): the controller + noise driving to one random cell after another,
    a new one drawn on entering the current one's cell."""

    def __init__(self, env: gym.Env):
        self.maze = env.unwrapped.maze
        self.cells = free_cells(self.maze.maze_map)
        self.target: tuple[int, int] | None = None

    def __call__(self, state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.target is None or cell_of(self.maze, state[:2]) == self.target:
            self.target = self.cells[rng.integers(len(self.cells))]
        aim = self.maze.cell_rowcol_to_xy(np.array(self.target))
        return waypoint_action(self.maze, state[:2], state[2:4], aim, NOISE, rng)


class _CellSegment(gym.Wrapper):
    """A stitch segment in the single-task environment: it ends (truncated) on arriving within the goal
    radius of its target cell's centre, and the controller drives there without noise."""

    def __init__(self, env: gym.Env, cell: tuple[int, int]):
        super().__init__(env)
        self.aim = env.unwrapped.maze.cell_rowcol_to_xy(np.array(cell))

    def step(self, action):
        state, reward, terminated, truncated, info = self.env.step(action)
        arrived = bool(np.linalg.norm(state[:2] - self.aim) <= GOAL_RADIUS)
        return state, reward, terminated, truncated or arrived, info

    def policy(self, state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return waypoint_action(self.env.unwrapped.maze, state[:2], state[2:4], self.aim, 0.0, rng)


def make_single_task_policy(kind: str, env: gym.Env):
    """random: uniform actions; play: the wanderer; the reference expert ("controller"): the controller
    aimed at the task's goal."""
    if kind == "random":
        return lambda state, rng: rng.uniform(-1.0, 1.0, 2)
    if kind == "play":
        return Wanderer(env)
    task = env.unwrapped
    return lambda state, rng: waypoint_action(task.maze, state[:2], state[2:4], task.goal, 0.0, rng)


def single_task_environment(maze: str) -> EnvironmentSpec:
    (start, goal), steps = EVALUATION_CELLS[maze], SINGLE_TASK_STEPS[maze]
    return EnvironmentSpec(
        name=f"pointmaze/{maze}-single",
        gym_id="bench/PointMazeSingleTask-v0",
        kwargs={"maze": maze, "max_episode_steps": steps},
        family="pointmaze",
        packages=("gymnasium-robotics", "mujoco"),
        description=f"PointMaze {MAZES[maze]} as one task (AntMaze's setting): from cell {start} to cell {goal}, "
                    f"goal not observed, reward 1 and the end on arrival, {steps} steps",
    )


def _single_task_collection_env(maze: str, kind: str):
    def make(**render: Any) -> gym.Env:
        # The data runs through the goal (reward 1 while there) instead of ending at it, as AntMaze's does:
        # ending there would leave only paths into the goal, a sink that cloning follows.
        return single_task_environment(maze).make(
            end_on_arrival=False, max_episode_steps=NAVIGATE_STEPS if kind == "play" else STITCH_MAX_STEPS, **render)

    return make


def _single_task_collector(maze: str):
    def collect(env: gym.Env, kind: str, reset_seed: int, rng: np.random.Generator,
                on_step: Callable[[int], None] | None = None) -> EpisodeRecord:
        if kind == "play":
            wanderer = Wanderer(env)
            start = wanderer.cells[rng.integers(len(wanderer.cells))]
            return rollout(env, wanderer, reset_seed, rng, options={"reset_cell": start}, on_step=on_step)
        start, goal = _stitch_cells(maze, rng)
        segment = _CellSegment(env, goal)
        return rollout(segment, segment.policy, reset_seed, rng, options={"reset_cell": start}, on_step=on_step)

    return collect


def _collection_env(maze: str, dense: bool, kind: str):
    def make(**render: Any) -> gym.Env:
        import_environment_module("gymnasium_robotics")  # registers PointMaze
        if kind == "navigate":
            return gym.make(_gym_id(maze, dense), maze_map=_base_map(maze), continuing_task=True, reset_target=True,
                            max_episode_steps=NAVIGATE_STEPS, **render)
        return gym.make(_gym_id(maze, dense), maze_map=_base_map(maze), continuing_task=False, reset_target=False,
                        max_episode_steps=STITCH_MAX_STEPS, **render)

    return make


def _stitch_cells(maze: str, rng: np.random.Generator) -> tuple[tuple[int, int], tuple[int, int]]:
    grid = _base_map(maze)
    cells = free_cells(grid)
    start_cell, goal_cell = EVALUATION_CELLS[maze]
    while True:
        start = cells[rng.integers(len(cells))]
        goal = cells[rng.integers(len(cells))]
        path = shortest_path(grid, start, goal)
        if 1 <= len(path) - 1 <= STITCH_MAX_CELLS and not (start_cell in path and goal_cell in path):
            return start, goal


def _collector(maze: str):
    def collect(env: gym.Env, kind: str, reset_seed: int, rng: np.random.Generator,
                on_step: Callable[[int], None] | None = None) -> EpisodeRecord:
        options = None
        if kind == "stitch":
            start, goal = _stitch_cells(maze, rng)
            options = {"reset_cell": np.array(start), "goal_cell": np.array(goal)}
        return rollout(env, make_policy(kind, env), reset_seed, rng, options=options, on_step=on_step)

    return collect


def _maze_recipe(env: EnvironmentSpec, maze: str, kind: str, policy: str, description: str, make_policy,
                 make_collection_env, collect_episode) -> Recipe:
    """A maze recipe: one kind of data for one environment, scored against random actions and the controller."""
    return Recipe(
        name=f"{env.name}/{kind}",
        env=env,
        policy=policy,
        default_episodes=DEFAULT_EPISODES[kind][maze],
        make_policy=make_policy,
        episode_kind=lambda index, total: kind,
        description=description,
        reference_policies={"random": "random", "expert": "controller"},
        make_collection_env=make_collection_env,
        collect_episode=collect_episode,
    )


def recipes() -> list[Recipe]:
    out = []
    for maze in MAZES:
        for dense in (False, True):
            env = environment(maze, dense)
            for kind, policy in {
                "navigate": f"waypoint controller + N(0, {NOISE}^2) driving to random cells, {NAVIGATE_STEPS}-step episodes",
                "stitch": f"waypoint controller, segments of at most {STITCH_MAX_CELLS} cells / {STITCH_MAX_STEPS} steps "
                          "that never contain both the evaluation start and goal",
            }.items():
                out.append(_maze_recipe(
                    env, maze, kind, policy, f"PointMaze {maze} {kind} data, {'dense' if dense else 'sparse'} reward",
                    make_policy, _collection_env(maze, dense, kind), _collector(maze)))
    for maze in MAZES:
        env = single_task_environment(maze)
        for kind, policy in {
            "play": f"waypoint controller + N(0, {NOISE}^2) wandering from a random cell to random cells, "
                    f"{NAVIGATE_STEPS}-step episodes",
            "stitch": f"waypoint controller, segments of at most {STITCH_MAX_CELLS} cells / {STITCH_MAX_STEPS} steps "
                      "from random cells, never containing both the start and the goal cell",
        }.items():
            out.append(_maze_recipe(
                env, maze, kind, policy,
                f"PointMaze {maze} as one task (AntMaze's setting), {kind} data that never aims at the goal",
                make_single_task_policy, _single_task_collection_env(maze, kind), _single_task_collector(maze)))
    return out
