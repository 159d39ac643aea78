"""A Meta-World v3 Sawyer task as one gymnasium environment whose resets draw task variations.

Meta-World's MT1 benchmark fixes 50 variations of a task (object and goal positions) from a
seed; every reset here draws one of them with the environment's own RNG, so ``reset(seed=s)``
is reproducible and a dataset's episodes cover the variations as MT1's evaluation does. The
goal is observable (MT1's setting: observation[36:39] is the goal position). Episodes last
Meta-World's 500 steps; ``info["success"]`` is Meta-World's success flag.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np

# The dissertation's Sawyer tasks (ch. 2, 7, 9) that Meta-World ships scripted policies for.
TASKS = ("drawer-open", "drawer-close", "button-press", "push", "pick-place", "door-open")
VARIATIONS_SEED = 0


# Tasks whose policy class is not named after the task ("peg-insert-side" -> PegInsertionSide).
_POLICY_CLASSES = {"peg-insert-side": "SawyerPegInsertionSideV3Policy"}


def scripted_policy(task: str):
    """Meta-World's own scripted expert for a task."""
    from metaworld import policies

    class_name = _POLICY_CLASSES.get(task) or "Sawyer" + "".join(part.capitalize() for part in task.split("-")) + "V3Policy"
    return getattr(policies, class_name)()


@lru_cache(maxsize=None)
def _benchmark(name: str, variations_seed: int):
    """MT1's 50 variations of a task; building them costs about a second, so once per process."""
    import metaworld

    return metaworld.MT1(name, seed=variations_seed)


class MetaWorldTask(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(self, task: str = "drawer-open", variations_seed: int = VARIATIONS_SEED,
                 render_mode: str | None = None, width: int = 128, height: int = 128, camera_name: str = "corner"):
        import metaworld

        if task not in metaworld.MT1.ENV_NAMES and f"{task}-v3" not in metaworld.MT1.ENV_NAMES:
            raise ValueError(f"unknown Meta-World task {task!r}")
        name = task if task.endswith("-v3") else f"{task}-v3"
        benchmark = _benchmark(name, variations_seed)
        self._env = benchmark.train_classes[name](render_mode=render_mode, width=width, height=height,
                                                   camera_name=camera_name)
        self._tasks = list(benchmark.train_tasks)
        self._env.set_task(self._tasks[0])
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=self._env.observation_space.shape, dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=self._env.action_space.shape, dtype=np.float32)
        self.render_mode = render_mode
        self.max_episode_steps = int(self._env.max_path_length)
        self.variation = 0

    @property
    def model(self):
        """The MuJoCo model (for render settings such as shadows)."""
        return self._env.model

    @property
    def num_variations(self) -> int:
        return len(self._tasks)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        self.variation = int(options.get("variation", self.np_random.integers(len(self._tasks))))
        self._env.set_task(self._tasks[self.variation])
        obs, info = self._env.reset()
        info = {**info, "variation": self.variation}
        return obs.astype(np.float32), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self._env.step(np.clip(action, -1.0, 1.0))
        info = {**info, "success": bool(info.get("success", 0.0))}
        return obs.astype(np.float32), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        return self._env.render()

    def close(self):
        self._env.close()
