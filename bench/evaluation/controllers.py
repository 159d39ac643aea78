"""Hand-designed controllers pi_H (dissertation ch. 5-6): named, with parameters, acting on an environment's raw observations.

Residual RL executes u = pi_H(s) + pi_theta(s) (eq. 23) and learns only pi_theta (``ResidualComposition``;
any algorithm config names its controller: ``--set controller=p-controller``); every controller is also
evaluated alone, as the "controller only" baseline (the ``controller`` algorithm: a zero residual). A
controller is built for an environment (``make_controller(name, env_name, **parameters)``) and returns
actions in the environment's units.

  p-controller  u = -k_p (x - x*) (eq. 29, ch. 6.3, k_p = [1, 1, 0.3]; ``mocap_scene.p_control``): moves the
                end effector x toward its target x*, the position error counted in action units. On
                Fetch x is the gripper and x* the desired goal, 5 cm per unit, fingers left closed; on
                block insertion the held block toward its place (2 cm per unit); on connector insertion
                the peg toward the commanded goal (1 cm per unit).
  scripted      the hand-designed expert of the environment: Meta-World's own policy for the task,
                Fetch's pick-and-place, push, slide and stacking controllers (bench.datasets.recipes.fetch),
                and on the insertion scenes their P-controllers (ch. 5 and 6's hand-designed
                controllers). No parameters.
  run:ID        the deterministic policy of a finished run on the same environment (ch. 5.5.4: a policy
                trained before, in simulation, as the controller a residual improves on the robot).
                Resolved when a sweep is planned (``bench.evaluation.sweeps``) and built by the state
                run (``bench.evaluation.states.RunPolicy``), which can rebuild a run's policy.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from bench.datasets.recipes import fetch
from bench.errors import InvalidInput
from bench.platform.envs import block_insertion, connector_insertion
from bench.platform.envs.mocap_scene import P_GAINS, p_control

Controller = Callable[[Any], np.ndarray]

FETCH_STEP = 0.05  # Fetch: one unit of action moves the gripper 5 cm
# Environments whose P-controller is their own (bench's insertion scenes): name -> the module that has it.
INSERTION = {"insertion/blocks": block_insertion, "insertion/connector": connector_insertion,
             "insertion/connector-visual": connector_insertion}


def checked_gains(gains: tuple[float, ...]) -> tuple[float, ...]:
    k_p = np.asarray(gains, np.float64)
    if k_p.shape != (3,) or np.any(k_p < 0):
        raise InvalidInput(f"p-controller gains are three non-negative numbers (k_p), not {list(gains)}")
    return tuple(k_p)


def fetch_p_controller(gains: tuple[float, ...] = P_GAINS) -> Controller:
    """Eq. 29 on Fetch's dict observations: the gripper (observation[0:3]) toward the desired goal, fingers closed."""
    k_p = checked_gains(gains)

    def act(observation: dict[str, np.ndarray]) -> np.ndarray:
        motion = p_control(observation["observation"][0:3], observation["desired_goal"][0:3], k_p, FETCH_STEP)
        return np.append(motion, -1.0)

    return act


def scripted_controller(env_name: str) -> Controller:
    """The scripted expert of ``env_name`` (a catalogue name such as metaworld/push or fetch/push)."""
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
    if env_name in INSERTION:  # ch. 5's and ch. 6's hand-designed controllers are P-controllers
        return INSERTION[env_name].hand_designed_action
    raise InvalidInput(f"no scripted controller for environment {env_name!r} (Meta-World tasks, fetch/* and "
                       f"insertion/*)")


def _p_controller_for(env_name: str, gains: tuple[float, ...] = P_GAINS) -> Controller:
    if env_name in INSERTION:  # the scene's own P-controller, with these gains
        k_p, module = checked_gains(gains), INSERTION[env_name]
        return lambda observation: module.hand_designed_action(observation, k_p)
    if not env_name.startswith("fetch/"):
        raise InvalidInput(f"p-controller reads a gripper position and a goal: it runs on fetch/* environments "
                           f"and insertion/*, not {env_name!r}")
    return fetch_p_controller(gains)


def _scripted_for(env_name: str, **parameters: Any) -> Controller:
    if parameters:
        raise InvalidInput(f"the scripted controller takes no parameters, got {', '.join(sorted(parameters))}")
    return scripted_controller(env_name)


# name -> (environment name, parameters) -> controller
CONTROLLERS: dict[str, Callable[..., Controller]] = {"p-controller": _p_controller_for, "scripted": _scripted_for}


RUN_PREFIX = "run:"


def source_run(name: str) -> str | None:
    """The run id of a ``run:ID`` controller; None for a named one."""
    return name[len(RUN_PREFIX):] if name.startswith(RUN_PREFIX) else None


def controller_for(config, env_name: str) -> Controller | None:
    """The named controller an algorithm config names (``controller``, ``controller_gains``) for ``env_name``;
    None for none. (``run:ID`` is no name: the state run builds it from the run's spec.)"""
    if config.controller == "none":
        return None
    parameters = {"gains": tuple(config.controller_gains)} if config.controller_gains else {}
    return make_controller(config.controller, env_name, **parameters)


class ResidualComposition:
    """Eq. 23 in an environment's units: the executed action is pi_H(s) plus the policy's residual.

    Policies act in [-1, 1]; a residual r in [-1, 1] counts ``half_range`` environment units per unit,
    so a residual can move the executed action across the whole action space. The sum is clipped to
    the space. Stored transitions keep r (Algorithm 3, line 8): the replay learns the residual.
    """

    def __init__(self, controller: Controller, action_space):
        self.controller = controller
        self.low = np.asarray(action_space.low, np.float64)
        self.high = np.asarray(action_space.high, np.float64)
        self.half_range = 0.5 * (self.high - self.low)
        self.dtype = action_space.dtype

    def execute(self, observation: Any, residual: np.ndarray) -> np.ndarray:
        """u = clip(pi_H(s) + r * half_range): what the robot is sent."""
        u = np.asarray(self.controller(observation), np.float64) + np.asarray(residual, np.float64) * self.half_range
        return np.clip(u, self.low, self.high).astype(self.dtype)

    def residual_of(self, observation: Any, action: np.ndarray) -> np.ndarray:
        """The residual in [-1, 1] that, added to pi_H(s), gives ``action`` (clipped): how a dataset's actions
        become residual targets."""
        controller = np.asarray(self.controller(observation), np.float64)
        return np.clip((np.asarray(action, np.float64) - controller) / self.half_range, -1.0, 1.0)


def make_controller(name: str, env_name: str, **parameters: Any) -> Controller:
    """The controller ``name`` for the environment ``env_name``, with its parameters."""
    if name not in CONTROLLERS:
        raise InvalidInput(f"unknown controller {name!r}; choose one of {', '.join(sorted(CONTROLLERS))}, or "
                           f"{RUN_PREFIX}ID (a finished run's policy)")
    try:
        return CONTROLLERS[name](env_name, **parameters)
    except TypeError as exc:  # a parameter the controller does not have
        raise InvalidInput(f"controller {name}: {exc}") from None
