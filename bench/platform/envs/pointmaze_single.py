"""PointMaze posed as one task, the way D4RL's AntMaze poses its mazes: a fixed start and goal, no goal observed.

The goal-conditioned PointMaze (Gymnasium-Robotics) hands the learner its goal, so a policy that
drives "towards the goal" generalizes from any data that drives towards goals. Dissertation
ch. 8's stitching claim is about a different problem, AntMaze's: one start cell, one goal cell,
a sparse reward of 1 on arriving within 0.45 of the goal's centre, the episode ending there,
and a state (position, velocity) that says nothing about where the goal is. Data that wanders
between other cells then teaches cloning to wander, while a value function can carry the
goal's reward back along the pieces of paths the data does contain.

The start position gets Gymnasium-Robotics' uniform noise (0.25 of a cell) so that evaluation
episodes differ; the goal is the goal cell's centre, fixed, so that every episode (and every
dataset transition's reward) refers to the same point. ``reset(options={"reset_cell": (r, c)})``
starts elsewhere, and ``end_on_arrival=False`` keeps going past the goal (reward 1 while within
it), which data collection uses: D4RL's AntMaze data runs through its goal too. Data whose every
visit to the goal ends there has only paths into the goal and none out of it, so the mean action
of the data flows into the goal, and cloning it reached the goal (measured: BC 70% in one seed).
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np

MAZES = {"umaze": "UMaze", "medium": "Medium", "large": "Large"}
# Evaluation start and goal cells (row, column): far corners of each maze.
EVALUATION_CELLS = {"umaze": ((3, 1), (1, 1)), "medium": ((1, 1), (6, 6)), "large": ((1, 1), (7, 10))}
GOAL_RADIUS = 0.45  # Gymnasium-Robotics' success distance


def base_map(maze: str) -> list[list[Any]]:
    from bench.platform.environments import import_environment_module

    import_environment_module("gymnasium_robotics")
    from gymnasium_robotics.envs.maze import maps

    return copy.deepcopy({"umaze": maps.U_MAZE, "medium": maps.MEDIUM_MAZE, "large": maps.LARGE_MAZE}[maze])


def evaluation_map(maze: str) -> list[list[Any]]:
    """The maze's map with its evaluation start ``r`` and goal ``g`` marked (both forms of the task evaluate on it)."""
    grid = base_map(maze)
    (sr, sc), (gr, gc) = EVALUATION_CELLS[maze]
    grid[sr][sc], grid[gr][gc] = "r", "g"
    return grid


class SingleTaskPointMaze(gym.Env):
    """Reach one fixed goal cell from one start cell; observation = (x, y, vx, vy); reward 1 within the goal,
    where the episode ends (unless ``end_on_arrival`` is False)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, maze: str = "medium", end_on_arrival: bool = True, render_mode: str | None = None,
                 **render: Any):
        if maze not in MAZES:
            raise ValueError(f"maze must be one of {', '.join(MAZES)}, not {maze!r}")
        grid = evaluation_map(maze)  # imports gymnasium_robotics without its notices
        from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv

        self.maze_name = maze
        self.end_on_arrival = end_on_arrival
        self.start_cell, self.goal_cell = EVALUATION_CELLS[maze]
        self.inner = PointMazeEnv(maze_map=grid, render_mode=render_mode, continuing_task=True, reset_target=False,
                                  **render)
        self.maze = self.inner.maze
        self.goal = np.asarray(self.maze.cell_rowcol_to_xy(np.array(self.goal_cell)), np.float64)
        self.render_mode = render_mode
        self.action_space = self.inner.action_space
        self.observation_space = self.inner.observation_space["observation"]

    def _observe(self, observation: dict[str, np.ndarray]) -> tuple[np.ndarray, bool]:
        state = np.asarray(observation["observation"], np.float64)
        return state, bool(np.linalg.norm(state[:2] - self.goal) <= GOAL_RADIUS)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        cell = (options or {}).get("reset_cell")
        observation, _ = self.inner.reset(seed=seed, options={"goal_cell": np.array(self.goal_cell),
                                                               "reset_cell": np.array(cell if cell is not None
                                                                                      else self.start_cell)})
        # The goal is the cell's centre, not Gymnasium-Robotics' noisy draw (see the module docstring).
        self.inner.goal = self.goal.copy()
        self.inner.update_target_site_pos()
        state, at_goal = self._observe(observation)
        return state, {"success": at_goal}

    def step(self, action):
        observation, _, _, _, info = self.inner.step(action)
        state, at_goal = self._observe(observation)
        return state, float(at_goal), at_goal and self.end_on_arrival, False, {"success": at_goal}

    @property
    def model(self):
        """The MuJoCo model and data: previews turn the model's shadows off, episode views draw from the data."""
        return self.inner.model

    @property
    def data(self):
        return self.inner.data

    def render(self):
        return self.inner.render()

    def close(self):
        self.inner.close()
