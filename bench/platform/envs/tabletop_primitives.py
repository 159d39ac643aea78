"""Scripted primitives for the tabletop: open / close a drawer, press the button, grasp and lift, place, push.

Each primitive is a small state machine over the privileged state (a scripted expert may look at
it; learners never do): a list of waypoints for the gripper, each with the fingers open or
closed, followed with a proportional controller and optional Gaussian action noise. They make
the prior data (``tabletop/prior``, ch. 9.6: short interactions across many environments) and
the goals of evaluation tasks (a task's goal image is the end of a scripted success).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from bench.platform.envs.tabletop_layout import (BUTTON_XY, DRAWER, DRAWER_TRAVEL, GRIP, HANDLE, OBJECT, PRESENT,
                                                 STEP, TRAY_XY)

PRIMITIVES = ("open-drawer", "close-drawer", "press-button", "grasp-lift", "place-in-tray", "place-in-drawer",
              "push", "reach")
HOVER = 0.11
# ``reach`` targets: gripper positions at the hover height, inside the part of the workspace the camera
# sees. One height, because from the single oblique camera (no shadows) height and depth move the
# gripper alike in the image: a conv net reading xyz from the pixels themselves reaches R^2 0.89 for
# x but 0.80 for y and 0.62 for z (benchmarks/latent_probe.py --features pixels --probe conv).
REACH_LOW, REACH_HIGH = (-0.15, -0.16, HOVER), (0.15, 0.06, HOVER)


def affordances(state: np.ndarray) -> list[str]:
    """The primitives this scene affords from this state (what the prior data may show here)."""
    drawer, button, tray, obj = state[PRESENT] > 0.5
    out = []
    if drawer:
        out.append("open-drawer" if state[DRAWER] < 0.05 else "close-drawer")
    if button:
        out.append("press-button")
    if obj:
        out += ["grasp-lift", "push"]
        if tray:
            out.append("place-in-tray")
        if drawer and state[DRAWER] > 0.09:
            out.append("place-in-drawer")
    return out


class Primitive:
    """Follows waypoints computed from the state at the first call; ``done`` once the last is reached."""

    def __init__(self, name: str, noise: float = 0.0):
        if name not in PRIMITIVES:
            raise ValueError(f"unknown primitive {name!r}; known: {', '.join(PRIMITIVES)}")
        self.name, self.noise = name, noise
        self.waypoints: list[tuple[Callable[[np.ndarray], np.ndarray], bool, float]] | None = None
        self.index = 0
        self.done = False

    def _plan(self, s: np.ndarray, rng: np.random.Generator) -> None:
        """Waypoints as (target(state) -> xyz, fingers closed, tolerance)."""
        hover = lambda xyz: np.array([xyz[0], xyz[1], HOVER])  # noqa: E731
        name = self.name
        if name in ("open-drawer", "close-drawer"):
            handle = lambda st: st[HANDLE] + (0, -0.004, 0)  # noqa: E731
            end = 0.11 if name == "open-drawer" else 0.0
            # Pulling (or pushing) the held handle by the opening still to go, along -y.
            pull = lambda st: st[HANDLE] + (0, -(end - st[DRAWER]) - 0.004, 0)  # noqa: E731
            self.waypoints = [(lambda st: hover(handle(st)), False, 0.015), (handle, False, 0.008),
                              (handle, True, 0.02), (pull, True, 0.006), (lambda st: st[GRIP], False, 1.0),
                              # Back off above the released handle: a fixed point (a target relative
                              # to the gripper itself would recede forever and never finish).
                              (lambda st: hover(st[HANDLE] + (0, -0.03, 0)), False, 0.015)]
        elif name == "reach":
            target = rng.uniform(REACH_LOW, REACH_HIGH)
            self.waypoints = [(lambda st: target, False, 0.008)]
        elif name == "press-button":
            button = lambda st: np.array([*st[BUTTON_XY], 0.045])  # noqa: E731
            self.waypoints = [(lambda st: hover(button(st)), False, 0.015), (button, False, 0.008),
                              (lambda st: hover(button(st)), False, 0.02)]
        elif name == "push":
            angle = rng.uniform(0, 2 * np.pi)
            direction = np.array([np.cos(angle), np.sin(angle), 0.0])
            distance = rng.uniform(0.05, 0.09)
            start = s[OBJECT] - 0.05 * direction
            start[2] = 0.022
            goal = start + (distance + 0.05) * direction
            goal[:2] = np.clip(goal[:2], (-0.2, -0.18), (0.2, 0.05))
            self.waypoints = [(lambda st: hover(start), False, 0.015), (lambda st: start, True, 0.008),
                              (lambda st: goal, True, 0.008), (lambda st: hover(goal), False, 0.02)]
        else:  # grasp first: above the object, down, close
            obj = lambda st: st[OBJECT] + (0, 0, 0.004)  # noqa: E731
            self.waypoints = [(lambda st: hover(obj(st)), False, 0.012), (obj, False, 0.007), (obj, True, 1.0),
                              (lambda st: hover(st[GRIP]), True, 0.015)]
            if name == "place-in-tray":
                tray = lambda st: np.array([*st[TRAY_XY], HOVER])  # noqa: E731
                self.waypoints += [(tray, True, 0.012), (lambda st: np.array([*st[TRAY_XY], 0.06]), True, 0.01),
                                   (lambda st: st[GRIP], False, 1.0),
                                   (lambda st: np.array([*st[TRAY_XY], HOVER]), False, 0.02)]
            elif name == "place-in-drawer":
                # The drawer's interior centre: 7 cm behind the handle.
                inside = lambda st: st[HANDLE] + (0, 0.075, 0)  # noqa: E731
                self.waypoints += [(lambda st: hover(inside(st)), True, 0.012),
                                   (lambda st: inside(st) + (0, 0, 0.04), True, 0.01),
                                   (lambda st: st[GRIP], False, 1.0), (lambda st: hover(inside(st)), False, 0.02)]
            elif name == "grasp-lift":
                self.waypoints += [(lambda st: st[GRIP] * (1, 1, 0) + (0, 0, 0.14), True, 0.015)]

    def __call__(self, observation: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        state = observation["state"]
        if self.waypoints is None:
            self._plan(state, rng)
        hand = state[GRIP]
        target_of, closed, tolerance = self.waypoints[min(self.index, len(self.waypoints) - 1)]
        target = target_of(state)
        if not self.done and np.linalg.norm(target - hand) < tolerance:
            self.index += 1
            if self.index >= len(self.waypoints):
                self.done = True
            else:
                target_of, closed, tolerance = self.waypoints[self.index]
                target = target_of(state)
        move = np.clip((target - hand) / STEP, -1.0, 1.0)
        if self.done:
            move = np.zeros(3)
        action = np.concatenate([move, [1.0 if closed else -1.0]])
        if self.noise > 0:
            action[:3] += rng.normal(0.0, self.noise, 3)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


TASK_PRIMITIVES = {"reach": "reach", "drawer-open": "open-drawer", "drawer-close": "close-drawer", "button-press": "press-button",
                   "object-in-tray": "place-in-tray", "object-lift": "grasp-lift"}
# The stages of the multi-stage tasks, in order (PTP's target tasks).
TASK_STAGES = {"button-then-tray": ("press-button", "place-in-tray"),
               "tray-then-close-drawer": ("place-in-tray", "close-drawer"),
               "drawer-button-tray": ("open-drawer", "press-button", "place-in-tray")}


def primitives_for_task(task: str, noise: float = 0.0) -> list[Primitive]:
    """The scripted primitives that accomplish ``task``, one per stage (with Gaussian action noise ``noise``)."""
    stages = TASK_STAGES[task] if task in TASK_STAGES else (TASK_PRIMITIVES[task],)
    return [Primitive(name, noise) for name in stages]


def completes_a_multi_stage_task(names: list[str]) -> bool:
    """Whether an episode showing these primitives would contain every stage of a multi-stage task.

    The prior data must never show a target task's full sequence (ch. 10.6.1), so the recipe
    avoids any episode whose primitives cover all of a multi-stage task's stages.
    """
    return any(set(stages) <= set(names) for stages in TASK_STAGES.values())


def run_primitives(env, primitives: list[Primitive], rng: np.random.Generator, max_steps: int = 80,
                   observe: Callable[[dict[str, np.ndarray], dict], None] | None = None) -> dict[str, np.ndarray]:
    """Run primitives one after another in ``env`` from its current state; the final image and state.

    ``rng`` draws what a primitive randomizes (a reach target, a push direction, its action noise):
    the episode's own. ``observe(observation, info)`` sees every step, settling steps included."""
    observation = env._observation()

    def step(action: np.ndarray) -> dict[str, np.ndarray]:
        observation, _, _, _, info = env.step(action)
        if observe is not None:
            observe(observation, info)
        return observation

    for primitive in primitives:
        for _ in range(max_steps):
            observation = step(primitive(observation, rng))
            if primitive.done:
                break
    # Let the scene settle (an object dropped into the tray lands) before taking the goal picture.
    closed = primitives[-1].waypoints[-1][1]
    for _ in range(3):
        observation = step(np.array([0, 0, 0, 1 if closed else -1], np.float32))
    return {"image": observation["image"].copy(), "state": observation["state"].copy()}


__all__ = ["DRAWER_TRAVEL", "PRIMITIVES", "TASK_STAGES", "Primitive", "affordances", "completes_a_multi_stage_task",
           "primitives_for_task", "run_primitives"]
