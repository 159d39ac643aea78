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
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from bench.datasets.recipes.base import EnvironmentSpec, EpisodeRecord, Recipe, rollout
from bench.platform.environments import import_environment_module

MAZES = {"umaze": "UMaze", "medium": "Medium", "large": "Large"}
# Evaluation start and goal cells (row, column): far corners of each maze.
EVALUATION_CELLS = {"umaze": ((3, 1), (1, 1)), "medium": ((1, 1), (6, 6)), "large": ((1, 1), (7, 10))}
NAVIGATE_STEPS, STITCH_MAX_STEPS, STITCH_MAX_CELLS = 1000, 100, 3
NOISE, KP, KD = 0.1, 10.0, 1.0
DEFAULT_EPISODES = {"navigate": {"umaze": 100, "medium": 200, "large": 300},
                    "stitch": {"umaze": 1000, "medium": 2000, "large": 3000}}


def _base_map(maze: str) -> list[list[Any]]:
    import_environment_module("gymnasium_robotics")
    from gymnasium_robotics.envs.maze import maps

    return copy.deepcopy({"umaze": maps.U_MAZE, "medium": maps.MEDIUM_MAZE, "large": maps.LARGE_MAZE}[maze])


def evaluation_map(maze: str) -> list[list[Any]]:
    grid = _base_map(maze)
    (sr, sc), (gr, gc) = EVALUATION_CELLS[maze]
    grid[sr][sc], grid[gr][gc] = "r", "g"
    return grid


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


class WaypointController:
    """PD control toward the next cell centre on the shortest path to the observation's goal."""

    def __init__(self, env: gym.Env, noise: float):
        self.maze = env.unwrapped.maze
        self.grid = self.maze.maze_map
        self.noise = noise

    def __call__(self, observation: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        position, velocity = observation["achieved_goal"], observation["observation"][2:4]
        goal = observation["desired_goal"]
        here = tuple(int(v) for v in self.maze.cell_xy_to_rowcol(position))
        there = tuple(int(v) for v in self.maze.cell_xy_to_rowcol(goal))
        path = shortest_path(self.grid, here, there) if self.grid[here[0]][here[1]] != 1 else [there]
        waypoint = goal if len(path) <= 1 else self.maze.cell_rowcol_to_xy(np.array(path[1]))
        action = KP * (waypoint - position) - KD * velocity
        if self.noise:
            action = action + rng.normal(0.0, self.noise, 2)
        return np.clip(action, -1.0, 1.0)


def make_policy(kind: str, env: gym.Env):
    """random: uniform actions; navigate: the controller with noise; stitch and controller: without."""
    if kind == "random":
        return lambda observation, rng: rng.uniform(-1.0, 1.0, 2)
    return WaypointController(env, noise=NOISE if kind == "navigate" else 0.0)


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
                out.append(Recipe(
                    name=f"{env.name}/{kind}",
                    env=env,
                    policy=policy,
                    default_episodes=DEFAULT_EPISODES[kind][maze],
                    make_policy=make_policy,
                    episode_kind=lambda index, total, kind=kind: kind,
                    description=f"PointMaze {maze} {kind} data, {'dense' if dense else 'sparse'} reward",
                    reference_policies={"random": "random", "expert": "controller"},
                    make_collection_env=_collection_env(maze, dense, kind),
                    collect_episode=_collector(maze),
                ))
    return out
