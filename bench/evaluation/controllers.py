"""Hand-designed controllers pi_H (dissertation ch. 5-6): named, with parameters, acting on an environment's raw observations.

Residual RL executes u = pi_H(s) + pi_theta(s) (eq. 23) and learns only pi_theta; every controller is
also evaluated alone, as the "controller only" baseline. A controller is built for an environment
(``make_controller(name, env_name, **parameters)``) and returns actions in the environment's units.

  p-controller  u = -k_p (x - x*) (ch. 6.3, k_p = [1, 1, 0.3]): moves the end effector x toward its
                target x*. On Fetch x is the gripper and x* the desired goal; Fetch moves the gripper
                5 cm per unit of action, so the position error is scaled by 1 / 0.05 (``units``)
                before the gains, and the fingers are left closed.
  scripted      the scripted expert bench's recipes use for the environment: Meta-World's own policy
                for the task, Fetch's pick-and-place, push, slide and stacking controllers
                (bench.datasets.recipes.fetch). No parameters.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from bench.datasets.recipes import fetch
from bench.errors import InvalidInput

Controller = Callable[[Any], np.ndarray]

P_GAINS = (1.0, 1.0, 0.3)  # ch. 6.3's k_p
FETCH_UNITS = 1.0 / 0.05  # Fetch: one unit of action moves the gripper 5 cm


def p_controller(gains: tuple[float, ...] = P_GAINS, units: float = FETCH_UNITS) -> Controller:
    """u = -k_p (x - x*) on Fetch's dict observations (gripper at observation[0:3], target the desired goal)."""
    k_p = np.asarray(gains, np.float64)
    if k_p.shape != (3,) or np.any(k_p < 0):
        raise InvalidInput(f"p-controller gains are three non-negative numbers (k_p), not {list(gains)}")

    def act(observation: dict[str, np.ndarray]) -> np.ndarray:
        x, target = observation["observation"][0:3], observation["desired_goal"][0:3]
        action = np.zeros(4)
        action[:3] = -k_p * units * (x - target)
        action[3] = -1.0  # fingers closed
        return np.clip(action, -1.0, 1.0)

    return act


def scripted_controller(env_name: str) -> Controller:
    """The scripted expert of ``env_name`` (a catalogue name such as metaworld/peg-insert-side or fetch/push)."""
    family, _, task = env_name.partition("/")
    if family == "metaworld":
        from bench.platform.envs.metaworld import scripted_policy

        try:
            policy = scripted_policy(task)
        except AttributeError:
            raise InvalidInput(f"Meta-World has no scripted policy for {task!r}") from None
        return lambda observation: np.clip(policy.get_action(np.asarray(observation, np.float64)), -1.0, 1.0)
    if family == "fetch" and (task in fetch.TASKS or task in fetch.STACKS):
        return fetch.scripted_action(task)
    raise InvalidInput(f"no scripted controller for environment {env_name!r} (Meta-World tasks and fetch/*)")


def _p_controller_for(env_name: str, **parameters: Any) -> Controller:
    if not env_name.startswith("fetch/"):
        raise InvalidInput(f"p-controller reads a gripper position and a goal: it runs on fetch/* environments, "
                           f"not {env_name!r}")
    return p_controller(**parameters)


def _scripted_for(env_name: str, **parameters: Any) -> Controller:
    if parameters:
        raise InvalidInput(f"the scripted controller takes no parameters, got {', '.join(sorted(parameters))}")
    return scripted_controller(env_name)


# name -> (environment name, parameters) -> controller
CONTROLLERS: dict[str, Callable[..., Controller]] = {"p-controller": _p_controller_for, "scripted": _scripted_for}


def make_controller(name: str, env_name: str, **parameters: Any) -> Controller:
    """The controller ``name`` for the environment ``env_name``, with its parameters."""
    if name not in CONTROLLERS:
        raise InvalidInput(f"unknown controller {name!r}; choose one of {', '.join(sorted(CONTROLLERS))}")
    try:
        return CONTROLLERS[name](env_name, **parameters)
    except TypeError as exc:  # a parameter the controller does not have
        raise InvalidInput(f"controller {name}: {exc}") from None
