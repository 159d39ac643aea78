"""How a dataset's environment is posed to a learner: state and goal extraction, goal rewards, evaluation episodes.

Three shapes of observation occur:
  flat     a Box observation (Meta-World, locomotion): the state is the observation, no goal
  dict     Gymnasium-Robotics goal envs (PointMaze, Fetch): state = ``observation``, the goal is
           ``desired_goal``, goals are relabeled with ``achieved_goal`` and the reward of a
           relabeled goal is the environment's own ``compute_reward``
  observation-goal  OGBench: the goal is a whole observation handed over at reset in
           ``info["goal"]``; the data has no goals, so all are relabeled and a goal counts as
           reached when it is exactly the state reached (OGBench's convention: reward 0 and
           episode end on success, -1 otherwise)
Evaluation episodes are fixed (seeds from EVALUATION_SEED, OGBench's five tasks in turn), so
every algorithm and seed is scored on the same episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from bench.datasets.trajectories import flatten_tree
from bench.errors import InvalidInput

EVALUATION_SEED = 20_211_006
OGBENCH_TASKS = 5


def evaluation_seed(episode: int) -> int:
    return int(np.random.SeedSequence([EVALUATION_SEED, episode]).generate_state(1)[0])


@dataclass(frozen=True)
class ObservationLayout:
    """How a dataset's observations pose its problem: where the state and the goal are, and what success means.

    (Not a task in the sense of ``--task``, a tabletop goal; it was called ``Task`` until issue 16.)
    """

    goal_mode: str  # "none", "dict" or "observation"
    family: str | None
    success_rule: str  # "any" step or the "final" step (Fetch)
    # The keys of a dict observation the learner reads (ch. 6.3.2.1's visual setting: the image alone,
    # while a controller still reads the whole observation); empty: every key.
    keys: tuple[str, ...] = ()

    @classmethod
    def of(cls, env_reference: dict[str, Any] | None, observation_space: gym.Space,
           keys: tuple[str, ...] = ()) -> "ObservationLayout":
        reference = env_reference or {}
        name = reference.get("name") or ""
        family = name.split("/")[0] if "/" in name else None
        if str(reference.get("module", "")).startswith("ogbench") or family == "ogbench":
            mode = "observation"
        elif isinstance(observation_space, gym.spaces.Dict) and "desired_goal" in observation_space.spaces:
            mode = "dict"
        else:
            mode = "none"
        if keys:
            space = observation_space["observation"] if mode == "dict" else observation_space
            available = sorted(space.spaces) if isinstance(space, gym.spaces.Dict) else []
            missing = [key for key in keys if key not in available]
            if missing:
                raise InvalidInput(f"observation_keys {', '.join(missing)}: the observations have "
                                   f"{'keys ' + ', '.join(available) if available else 'no keys (they are one array)'}")
        return cls(mode, family, "final" if family == "fetch" else "any", tuple(keys))

    @property
    def goal_conditioned(self) -> bool:
        return self.goal_mode != "none"

    # -- observations -----------------------------------------------------------------------------
    def array_paths(self, arrays: dict[str, Any]) -> list[str]:
        """The observation arrays of a version (its manifest's ``arrays``) that the learner reads: the state
        part's (chosen) leaves and, for goal envs, the achieved and desired goals."""
        if self.goal_mode == "dict":
            state, extra = "observations/observation", ["observations/achieved_goal", "observations/desired_goal"]
        else:
            state, extra = "observations", []
        chosen = [f"{state}/{key}" for key in self.keys] if self.keys else [state]
        return sorted(path for path in arrays if path in extra or
                      any(path == prefix or path.startswith(prefix + "/") for prefix in chosen))

    def _leaves(self, observation: Any) -> list[Any]:
        """The arrays the learner reads, in a fixed order: the (chosen keys of the) state part's leaves."""
        if self.goal_mode == "dict":
            observation = observation["observation"]
        if not isinstance(observation, dict):
            return [observation]
        if self.keys:
            observation = {key: observation[key] for key in self.keys}
        return [value for _, value in sorted(flatten_tree(observation).items())]

    def state(self, observation: Any, batched: bool = False) -> np.ndarray:
        """The state part as float32, flattened to (N, d) when ``batched``, else (d,)."""
        leaves = [np.asarray(leaf, np.float32) for leaf in self._leaves(observation)]
        leaves = [leaf.reshape(len(leaf), -1) if batched else leaf.reshape(-1) for leaf in leaves]
        return leaves[0] if len(leaves) == 1 else np.concatenate(leaves, axis=-1)

    def pixel_columns(self, observations: Any) -> np.ndarray:
        """Which columns of ``state(observations, batched=True)`` are pixels (uint8 leaves, images)."""
        masks = [np.full(int(np.prod(np.shape(leaf)[1:])), np.dtype(leaf.dtype) == np.uint8)
                 for leaf in self._leaves(observations)]
        return np.concatenate(masks)

    def achieved(self, observation: Any) -> np.ndarray | None:
        if self.goal_mode == "dict":
            return np.asarray(observation["achieved_goal"], np.float32)
        if self.goal_mode == "observation":
            return np.asarray(observation, np.float32)
        return None

    def dataset_goal(self, observation: Any) -> np.ndarray | None:
        """Goals stored in the data (dict envs); None when the data has none (OGBench)."""
        if self.goal_mode == "dict":
            return np.asarray(observation["desired_goal"], np.float32)
        return None

    def goal_after_reset(self, observation: Any, info: dict[str, Any]) -> np.ndarray | None:
        if self.goal_mode == "dict":
            return np.asarray(observation["desired_goal"], np.float32)
        if self.goal_mode == "observation":
            return np.asarray(info["goal"], np.float32)
        return None

    # -- rewards and episodes -----------------------------------------------------------------------
    def goal_reward(self, env: gym.Env):
        """The reward of relabeled goals: the env's ``compute_reward``, or ``"index"`` (OGBench)."""
        if self.goal_mode == "observation":
            return "index"
        if self.goal_mode != "dict":
            return None
        unwrapped = env.unwrapped

        def reward(achieved: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            r = np.asarray(unwrapped.compute_reward(achieved, goal, {}), dtype=np.float32)
            # Goal-reaching without termination, as HER and Gymnasium-Robotics' goal envs.
            return r, np.zeros_like(r)

        return reward

    def reset_options(self, episode: int) -> dict[str, Any] | None:
        if self.goal_mode == "observation":
            return {"task_id": 1 + episode % OGBENCH_TASKS}
        return None


def observation_at(observations: Any, row: int) -> Any:
    """One row of a dataset's observations, in the shape the environment returns (a dict stays a dict)."""
    if isinstance(observations, dict):
        return {key: observation_at(value, row) for key, value in observations.items()}
    return observations[row]


def success_of(info: dict[str, Any]) -> bool | None:
    """The step's success flag; None where the environment reports none (locomotion: there is no success)."""
    flag = info.get("success", info.get("is_success"))
    return None if flag is None else bool(flag)

