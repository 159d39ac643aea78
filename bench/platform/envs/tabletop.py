"""A pixel tabletop of bench's own: a gripper, drawers, a button, a tray and one object, seen as 48x48 RGB.

Why it exists: the dissertation's RIG / CC-RIG / VAL experiments (ch. 2, 3, 9) use PyBullet Sawyer
scenes that cannot be installed here, and full MuJoCo robot scenes render at 3-10 frames/s on
this CPU. This scene is low-poly, has no shadows and no anti-aliasing, and renders >= 300 steps/s.

The environment family p(E) (ch. 9.4, 9.7): every *scene* randomizes which fixtures exist (a
drawer with a handle, a button, a tray), where they stand, their colours, the object's shape and
colour and a few static distractors. Shapes and colours are split: ``scene_split="train"`` draws
from the training sets, ``"held-out"`` only from shapes and colours never used for training.
Within a scene each episode jitters the gripper's and the object's start (p_new(s_0)).

Action (ch. 9.6): 4-D in [-1, 1], the gripper's velocity in x, y, z and close (> 0) / open.
Grasping is a proximity attach: closing the fingers around the object (or a drawer's handle)
holds it rigidly until they open, a common simplification of finger contact that keeps scripted
primitives reliable; pushing is real contact between the fingers and the object.

Observation: ``{"image": uint8 (48, 48, 3), "state": float32 (STATE_DIM,)}``. The privileged
``state`` (positions, drawer opening, button) exists for scripted data collection and success
checks; bench's pixel algorithms never read it.

With ``task`` set, every reset also poses an evaluation task: a scripted primitive is run from the
episode's start to a success, its final image becomes ``info["goal_image"]`` (the goal given to
the learner) and its privileged state ``info["goal_state"]``; then the episode starts again from
the same state. ``info["success"]`` compares the current privileged state with the goal's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from bench.platform.envs.tabletop_layout import (BUTTON, BUTTON_XY, DRAWER, DRAWER_TRAVEL, GRIP, HANDLE, OBJECT,  # noqa: F401
                                                 OPEN, PRESENT, STATE_DIM, STEP, TRAY_XY)
from bench.platform.envs.tabletop_primitives import primitives_for_task, run_primitives

IMAGE_SIZE = 48
# Where the images are taken from: "front" (the datasets' camera, ~38 degrees down from behind the
# table), "steep" (~60 degrees) and "overhead" (straight down): the front camera confounds the
# gripper's height with its depth, the others trade that for less of the fixtures' fronts.
CAMERAS = ("front", "steep", "overhead")
SINGLE_STAGE_TASKS = ("reach", "drawer-open", "button-press", "object-in-tray", "object-lift", "drawer-close")
# ``reach``: the goal image shows the gripper at a position at the hover height (11 cm); success is
# the gripper within this distance of it.
REACH_TOLERANCE = 0.04  # metres: two full-speed steps
# Planning to Practice's target tasks (ch. 10.6.1): stages the prior data never shows together in
# one episode (the recipe keeps them apart), each longer than a prior episode.
MULTI_STAGE_TASKS = ("button-then-tray", "tray-then-close-drawer", "drawer-button-tray")
TASKS = SINGLE_STAGE_TASKS + MULTI_STAGE_TASKS
# Episode lengths of the multi-stage tasks (the scripted stages take 25-45 steps each; the
# dissertation's simulated tasks run 400 steps at its slower position control).
TASK_HORIZONS = {"button-then-tray": 100, "tray-then-close-drawer": 100, "drawer-button-tray": 150}
SPLITS = ("train", "held-out")

# Object shapes and colours, split into those seen in training scenes and those held out.
TRAIN_SHAPES = ("box", "cylinder", "sphere", "capsule")
HELD_OUT_SHAPES = ("ellipsoid", "bar")
SHAPES = TRAIN_SHAPES + HELD_OUT_SHAPES
TRAIN_COLOURS = {"red": (0.85, 0.15, 0.15), "green": (0.15, 0.7, 0.2), "blue": (0.15, 0.3, 0.9),
                 "yellow": (0.9, 0.85, 0.1), "purple": (0.6, 0.2, 0.75)}
HELD_OUT_COLOURS = {"orange": (1.0, 0.5, 0.0), "cyan": (0.1, 0.85, 0.85), "pink": (1.0, 0.45, 0.7)}
FIXTURE_COLOURS = {"train": ((0.45, 0.3, 0.15), (0.35, 0.35, 0.4), (0.55, 0.45, 0.3)),
                   "held-out": ((0.2, 0.45, 0.35), (0.5, 0.25, 0.3))}

SUBSTEPS = 5  # 5 x 10 ms physics per environment step (20 Hz control)
TRAY_HALF = 0.065
PARKED = np.array([3.0, 3.0, -1.0])
WORKSPACE_LOW, WORKSPACE_HIGH = np.array([-0.27, -0.22, 0.02]), np.array([0.27, 0.26, 0.22])

_GEOM_OF_SHAPE = {"box": 'type="box" size="0.022 0.022 0.022"', "cylinder": 'type="cylinder" size="0.022 0.022"',
                  "sphere": 'type="sphere" size="0.024"', "capsule": 'type="capsule" size="0.017 0.012" euler="0 90 0"',
                  "ellipsoid": 'type="ellipsoid" size="0.03 0.018 0.022"', "bar": 'type="box" size="0.035 0.013 0.018"'}


def _scene_xml() -> str:
    objects = "\n".join(
        f'<body name="object_{shape}" pos="{3 + i} 3 -1"><freejoint/>'
        f'<geom name="object_{shape}" {_GEOM_OF_SHAPE[shape]} mass="0.05" friction="1 0.05 0.01" contype="1" '
        f'conaffinity="3" rgba="1 0 0 1"/></body>'
        for i, shape in enumerate(SHAPES))
    distractors = "\n".join(f'<geom name="distractor_{i}" type="cylinder" size="0.018 0.03" pos="3 3 -1" '
                            f'rgba="1 1 1 1" contype="1" conaffinity="1"/>' for i in range(2))
    tray_walls = "".join(
        f'<geom name="tray_{n}" type="box" size="{sx} {sy} 0.018" pos="{px} {py} 0.018" contype="1" conaffinity="1"/>'
        for n, (sx, sy, px, py) in enumerate([(TRAY_HALF, 0.006, 0, TRAY_HALF), (TRAY_HALF, 0.006, 0, -TRAY_HALF),
                                              (0.006, TRAY_HALF, TRAY_HALF, 0), (0.006, TRAY_HALF, -TRAY_HALF, 0)]))
    return f"""
<mujoco model="bench-tabletop">
  <option timestep="0.01" gravity="0 0 -9.81"/>
  <visual>
    <quality shadowsize="0" offsamples="0" numslices="10" numstacks="5"/>
    <global offwidth="{IMAGE_SIZE}" offheight="{IMAGE_SIZE}"/>
    <headlight ambient="0.55 0.55 0.55" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
  </visual>
  <worldbody>
    <geom name="table" type="plane" size="2 2 0.02" rgba="0.78 0.74 0.66 1" contype="1" conaffinity="1"/>
    <camera name="front" pos="0 -0.34 0.4" xyaxes="1 0 0 0 0.62 0.78" fovy="48"/>
    <camera name="steep" pos="0 -0.3 0.5" xyaxes="1 0 0 0 0.87 0.5" fovy="48"/>
    <camera name="overhead" pos="0 -0.01 0.6" xyaxes="1 0 0 0 1 0" fovy="52"/>
    <body name="cabinet" pos="3 3 0">
      <geom name="cabinet" type="box" size="0.09 0.07 0.045" pos="0 0.07 0.045" contype="0" conaffinity="0"/>
      <body name="drawer" pos="0 0 0">
        <joint name="drawer" type="slide" axis="0 -1 0" range="0 {DRAWER_TRAVEL}" damping="2"/>
        <geom name="drawer_floor" type="box" size="0.08 0.065 0.004" pos="0 0.07 0.006" mass="0.3"/>
        <geom name="drawer_front" type="box" size="0.085 0.006 0.03" pos="0 0.0 0.03" mass="0.05"/>
        <geom name="drawer_back" type="box" size="0.08 0.005 0.02" pos="0 0.13 0.02" mass="0.05"/>
        <geom name="drawer_left" type="box" size="0.005 0.065 0.02" pos="-0.077 0.07 0.02" mass="0.05"/>
        <geom name="drawer_right" type="box" size="0.005 0.065 0.02" pos="0.077 0.07 0.02" mass="0.05"/>
        <geom name="handle" type="box" size="0.035 0.008 0.007" pos="0 -0.022 0.032" mass="0.01" rgba="0.9 0.9 0.9 1"/>
      </body>
    </body>
    <body name="button" pos="3 3 0">
      <geom name="button_base" type="cylinder" size="0.035 0.012" pos="0 0 0.012" rgba="0.25 0.25 0.25 1"/>
      <body name="button_cap" pos="0 0 0.03">
        <joint name="button" type="slide" axis="0 0 1" range="-0.014 0" damping="1"/>
        <geom name="button_cap" type="cylinder" size="0.024 0.008" mass="0.02" rgba="0.85 0.1 0.1 1"/>
      </body>
    </body>
    <body name="tray" pos="3 3 0">
      <geom name="tray_floor" type="box" size="{TRAY_HALF} {TRAY_HALF} 0.003" pos="0 0 0.003" contype="1" conaffinity="1"/>
      {tray_walls}
    </body>
    {distractors}
    {objects}
    <body name="hand" mocap="true" pos="0 -0.1 0.15">
      <geom name="palm" type="box" size="0.03 0.012 0.008" pos="0 0 0.03" rgba="0.15 0.15 0.15 1" contype="0" conaffinity="0"/>
    </body>
    <body name="finger_left" mocap="true" pos="-0.03 -0.1 0.15">
      <geom name="finger_left" type="box" size="0.005 0.01 0.024" rgba="0.2 0.2 0.2 1" contype="2" conaffinity="0"/>
    </body>
    <body name="finger_right" mocap="true" pos="0.03 -0.1 0.15">
      <geom name="finger_right" type="box" size="0.005 0.01 0.024" rgba="0.2 0.2 0.2 1" contype="2" conaffinity="0"/>
    </body>
  </worldbody>
  <actuator>
    <position name="drawer" joint="drawer" kp="60" ctrlrange="0 {DRAWER_TRAVEL}"/>
    <position name="button" joint="button" kp="40" ctrlrange="-0.014 0"/>
  </actuator>
</mujoco>"""


@dataclass(frozen=True)
class Scene:
    """One environment E ~ p(E): which fixtures exist, where, and in which colours."""

    split: str
    drawer: tuple[float, float] | None
    button: tuple[float, float] | None
    tray: tuple[float, float] | None
    object_shape: str | None
    object_colour: str
    object_xy: tuple[float, float]
    fixture_colour: tuple[float, float, float]
    distractors: tuple[tuple[float, float, tuple[float, float, float]], ...]

    def to_json(self) -> dict[str, Any]:
        return {"split": self.split, "drawer": self.drawer, "button": self.button, "tray": self.tray,
                "object_shape": self.object_shape, "object_colour": self.object_colour}


# Fixture slots: the drawer stands at the back, tray and button in the front corners or the
# other back slot; the object starts in the middle, so no two things overlap.
_BACK_SLOTS = ((-0.13, 0.1), (0.13, 0.1))
_FRONT_SLOTS = ((-0.17, -0.1), (0.17, -0.1))
_TASK_NEEDS = {"drawer-open": ("drawer",), "drawer-close": ("drawer",), "button-press": ("button",),
               "object-in-tray": ("tray", "object"), "object-lift": ("object",),
               "button-then-tray": ("button", "tray", "object"), "tray-then-close-drawer": ("drawer", "tray", "object"),
               "drawer-button-tray": ("drawer", "button", "tray", "object")}


def sample_scene(rng: np.random.Generator, split: str = "train", require: tuple[str, ...] = ()) -> Scene:
    if split not in SPLITS:
        raise ValueError(f"scene_split must be one of {SPLITS}, not {split!r}")
    shapes = TRAIN_SHAPES if split == "train" else HELD_OUT_SHAPES
    colours = TRAIN_COLOURS if split == "train" else HELD_OUT_COLOURS
    present = {name: rng.random() < p or name in require
               for name, p in (("drawer", 0.75), ("button", 0.6), ("tray", 0.6), ("object", 0.9))}
    back = list(_BACK_SLOTS)
    rng.shuffle(back)
    free = [back[1], *_FRONT_SLOTS]
    rng.shuffle(free)
    jitter = lambda xy: (float(xy[0] + rng.uniform(-0.02, 0.02)), float(xy[1] + rng.uniform(-0.015, 0.015)))  # noqa: E731
    drawer = jitter(back[0]) if present["drawer"] else None
    button = jitter(free.pop()) if present["button"] else None
    tray = jitter(free.pop()) if present["tray"] else None
    distractors = []
    for xy in free[: int(rng.integers(0, 2))]:
        distractors.append((*jitter(xy), tuple(float(c) for c in rng.uniform(0.2, 0.8, 3))))
    fixture_colours = FIXTURE_COLOURS[split]
    return Scene(split, drawer, button, tray,
                 str(rng.choice(shapes)) if present["object"] else None, str(rng.choice(sorted(colours))),
                 (float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.1, -0.02))),
                 fixture_colours[int(rng.integers(len(fixture_colours)))], tuple(distractors))


class TabletopEnv(gym.Env):
    """See the module docstring. ``scene_seed`` fixes one scene; without it every reset draws a new one."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, scene_split: str = "train", scene_seed: int | None = None, task: str | None = None,
                 max_episode_steps: int = 50, image_size: int = IMAGE_SIZE, render_mode: str | None = "rgb_array",
                 width: int | None = None, height: int | None = None, camera: str = "front"):
        if scene_split not in SPLITS:
            raise ValueError(f"scene_split must be one of {SPLITS}, not {scene_split!r}")
        if task is not None and task not in TASKS:
            raise ValueError(f"unknown tabletop task {task!r}; known: {', '.join(TASKS)}")
        self.scene_split, self.scene_seed, self.task = scene_split, scene_seed, task
        # A multi-stage task needs longer episodes than the dataset's free play.
        self.max_episode_steps = max(max_episode_steps, TASK_HORIZONS.get(task, 0))
        self.render_mode = render_mode
        if camera not in CAMERAS:
            raise ValueError(f"camera must be one of {', '.join(CAMERAS)}, not {camera!r}")
        self.camera = camera
        # ``render()`` may be asked for larger frames (dataset previews) than the observations.
        self.render_size = (height or image_size, width or image_size)
        largest = max(image_size, *self.render_size)
        self.model = mujoco.MjModel.from_xml_string(_scene_xml().replace(
            f'offwidth="{IMAGE_SIZE}" offheight="{IMAGE_SIZE}"', f'offwidth="{largest}" offheight="{largest}"'))
        self.data = mujoco.MjData(self.model)
        self.image_size = image_size
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.observation_space = gym.spaces.Dict({
            "image": gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
            "state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)})
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        m = self.model
        self._body = {name: m.body(name).id for name in ("cabinet", "button", "tray", "hand", "finger_left",
                                                          "finger_right", *(f"object_{s}" for s in SHAPES))}
        self._mocap = {name: m.body_mocapid[self._body[name]] for name in ("hand", "finger_left", "finger_right")}
        self._object_qpos = {s: m.jnt_qposadr[m.body_jntadr[self._body[f"object_{s}"]]] for s in SHAPES}
        self._object_qvel = {s: m.jnt_dofadr[m.body_jntadr[self._body[f"object_{s}"]]] for s in SHAPES}
        self._drawer_qpos = m.jnt_qposadr[m.joint("drawer").id]
        self._button_qpos = m.jnt_qposadr[m.joint("button").id]
        self._cap_geom = m.geom("button_cap").id
        self._handle_geom = m.geom("handle").id
        self.scene: Scene | None = None
        self._scene_rng = np.random.default_rng(scene_seed)
        self._goal: dict[str, np.ndarray] | None = None

    # -- scene and episode ---------------------------------------------------------------------------
    def _apply_scene(self, scene: Scene) -> None:
        m = self.model
        for name, xy in (("cabinet", scene.drawer), ("button", scene.button), ("tray", scene.tray)):
            m.body_pos[self._body[name]] = PARKED if xy is None else (xy[0], xy[1], 0.0)
        for geom in ("cabinet", "drawer_floor", "drawer_front", "drawer_back", "drawer_left", "drawer_right",
                     "tray_floor", "tray_0", "tray_1", "tray_2", "tray_3", "button_base"):
            m.geom_rgba[m.geom(geom).id] = (*scene.fixture_colour, 1.0)
        for i in range(2):
            geom = m.geom(f"distractor_{i}").id
            if i < len(scene.distractors):
                x, y, colour = scene.distractors[i]
                m.geom_pos[geom], m.geom_rgba[geom] = (x, y, 0.03), (*colour, 1.0)
            else:
                m.geom_pos[geom] = PARKED
        colours = {**TRAIN_COLOURS, **HELD_OUT_COLOURS}
        if scene.object_shape is not None:
            m.geom_rgba[m.geom(f"object_{scene.object_shape}").id] = (*colours[scene.object_colour], 1.0)
        self.scene = scene

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None and self.scene_seed is None:
            self._scene_rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
        if self.scene is None or self.scene_seed is None:
            require = _TASK_NEEDS.get(self.task, ())
            self._apply_scene(sample_scene(self._scene_rng, self.scene_split, require))
        start = self._sample_start()
        self._goal = None
        self._set_start(start)
        info: dict[str, Any] = {"scene": self.scene.to_json()}
        # Practice episodes (``options={"pose_task": False}``) skip the scripted goal: the learner
        # imagines its own.
        if self.task is not None and (options or {}).get("pose_task", True):
            # Kept so that scripted attempts at this episode's task (``goal_examples``) draw the same
            # random targets (a reach pose) as the goal did.
            self._task_rng_state = self.np_random.bit_generator.state
            self._goal = run_primitives(self, primitives_for_task(self.task), self.np_random)
            self._set_start(start)  # back to the episode's start, now with a goal to reach
            info.update(goal_image=self._goal["image"], goal_state=self._goal["state"])
        observation = self._observation()
        info.update(self._task_info(observation["state"]))
        return observation, info

    def _sample_start(self) -> dict[str, Any]:
        rng, scene = self.np_random, self.scene
        drawer = 0.0
        if scene.drawer is not None and self.task is None and rng.random() < 0.3:
            drawer = float(rng.uniform(0.06, DRAWER_TRAVEL))  # prior data starts some drawers open
        if self.task in ("drawer-close", "tray-then-close-drawer"):
            drawer = DRAWER_TRAVEL
        return {"hand": np.array([rng.uniform(-0.08, 0.08), rng.uniform(-0.16, -0.1), rng.uniform(0.12, 0.16)]),
                "object": np.array([scene.object_xy[0] + rng.uniform(-0.02, 0.02),
                                    scene.object_xy[1] + rng.uniform(-0.02, 0.02)]),
                "drawer": drawer}

    def _set_start(self, start: dict[str, Any]) -> None:
        mujoco.mj_resetData(self.model, self.data)
        d, scene = self.data, self.scene
        for shape in SHAPES:
            q = self._object_qpos[shape]
            d.qpos[q:q + 3] = PARKED + (SHAPES.index(shape), 0, 0)
        if scene.object_shape is not None:
            q = self._object_qpos[scene.object_shape]
            half_height = self.model.geom_size[self.model.geom(f"object_{scene.object_shape}").id]
            z = {"sphere": half_height[0], "cylinder": half_height[1], "capsule": half_height[0]}.get(
                scene.object_shape, half_height[2])
            d.qpos[q:q + 3] = (*start["object"], z + 0.001)
            d.qpos[q + 3:q + 7] = (1, 0, 0, 0)
        d.qpos[self._drawer_qpos] = start["drawer"]
        d.ctrl[0], d.ctrl[1] = start["drawer"], 0.0
        self._hand = start["hand"].astype(np.float64)
        self._closed = False
        self._held: str | None = None  # "object" or "drawer"
        self._held_offset = np.zeros(3)
        self._drawer_at_grasp = 0.0
        self._pressed = False
        self.model.geom_rgba[self._cap_geom] = (0.85, 0.1, 0.1, 1.0)
        self._steps = 0
        self._place_hand()
        mujoco.mj_forward(self.model, self.data)

    # -- dynamics --------------------------------------------------------------------------------------
    def _place_hand(self) -> None:
        d = self.data
        width = 0.013 if self._closed else 0.032
        d.mocap_pos[self._mocap["hand"]] = self._hand
        d.mocap_pos[self._mocap["finger_left"]] = self._hand - (width, 0, 0)
        d.mocap_pos[self._mocap["finger_right"]] = self._hand + (width, 0, 0)

    def _object_position(self) -> np.ndarray:
        if self.scene.object_shape is None:
            return PARKED.copy()
        q = self._object_qpos[self.scene.object_shape]
        return self.data.qpos[q:q + 3].copy()

    def _handle_position(self) -> np.ndarray:
        return self.data.geom_xpos[self._handle_geom].copy()

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        self._hand = np.clip(self._hand + STEP * action[:3], WORKSPACE_LOW, WORKSPACE_HIGH)
        closing = action[3] > 0
        if closing and not self._closed:
            self._grasp()
        elif not closing and self._closed:
            self._held = None
        self._closed = bool(closing)
        self._place_hand()
        self._press_button()
        d, scene = self.data, self.scene
        if self._held == "drawer":
            opening = self._drawer_at_grasp - (self._hand[1] - self._held_offset[1])
            d.ctrl[0] = float(np.clip(opening, 0.0, DRAWER_TRAVEL))
        for _ in range(SUBSTEPS):
            if self._held == "object":
                q, v = self._object_qpos[scene.object_shape], self._object_qvel[scene.object_shape]
                d.qpos[q:q + 3] = self._hand + self._held_offset
                d.qvel[v:v + 6] = 0.0
            mujoco.mj_step(self.model, d)
        self._steps += 1
        observation = self._observation()
        info = self._task_info(observation["state"])
        truncated = self._steps >= self.max_episode_steps
        # No reward function: bench's pixel algorithms define their own from the representation.
        # The sparse task reward (0 on success, -1 otherwise) is reported for scripted baselines.
        reward = 0.0 if info["success"] else -1.0
        return observation, reward, False, truncated, info

    def _grasp(self) -> None:
        """Closing the fingers: hold the object, or the drawer's handle, if it is between them."""
        scene = self.scene
        if scene.object_shape is not None:
            offset = self._object_position() - self._hand
            if abs(offset[0]) < 0.03 and abs(offset[1]) < 0.025 and abs(offset[2]) < 0.03:
                self._held, self._held_offset = "object", offset
                return
        if scene.drawer is not None:
            handle = self._handle_position()
            if np.all(np.abs(handle - self._hand) < (0.04, 0.025, 0.025)):
                self._held, self._held_offset = "drawer", self._hand.copy()
                self._drawer_at_grasp = float(self.data.qpos[self._drawer_qpos])

    def _press_button(self) -> None:
        scene = self.scene
        if scene.button is None or self._pressed:
            return
        near = np.hypot(self._hand[0] - scene.button[0], self._hand[1] - scene.button[1]) < 0.03
        if near and self._hand[2] < 0.06:
            self._pressed = True
            self.data.ctrl[1] = -0.014
            self.model.geom_rgba[self._cap_geom] = (0.1, 0.85, 0.2, 1.0)  # a pressed button lights up

    # -- observation, success, rendering -----------------------------------------------------------------
    def _state(self) -> np.ndarray:
        scene = self.scene
        state = np.zeros(STATE_DIM, np.float32)
        state[GRIP] = self._hand
        state[OPEN] = 0.0 if self._closed else 1.0
        state[OBJECT] = self._object_position()
        state[DRAWER] = self.data.qpos[self._drawer_qpos] if scene.drawer is not None else 0.0
        state[BUTTON] = float(self._pressed)
        state[HANDLE] = self._handle_position() if scene.drawer is not None else PARKED
        state[BUTTON_XY] = scene.button if scene.button is not None else PARKED[:2]
        state[TRAY_XY] = scene.tray if scene.tray is not None else PARKED[:2]
        state[PRESENT] = [scene.drawer is not None, scene.button is not None, scene.tray is not None,
                          scene.object_shape is not None]
        return state

    def _observation(self) -> dict[str, np.ndarray]:
        return {"image": self._render((self.image_size, self.image_size)), "state": self._state()}

    def _task_info(self, state: np.ndarray) -> dict[str, Any]:
        """``success``, and ``stage_progress``: the fraction of the task's stages done (when a task is posed)."""
        if self.task is None or self._goal is None:
            return {"success": False}
        stages = task_stages(self.task, state, self._goal["state"])
        return {"success": all(stages), "stage_progress": sum(stages) / len(stages)}

    def goal_examples(self, attempts: int, seed: int = 0, noise: float = 0.1) -> dict[str, dict[str, np.ndarray]]:
        """Observations that do and do not reach a posed goal, for calibrating a goal-reaching threshold.

        Per attempt (a reset with the task posed, then the task's scripted primitives again with action
        noise ``noise``, as the goal was made, and the same settling steps): the goal observation, the
        attempt's final observation when it succeeds (``reached``), and the last observation at which
        the task had not succeeded yet (``missed``: the nearest miss). Failed attempts are left out.
        Returns ``{"goal" | "reached" | "missed": {"image": array, "state": array}}``.
        """
        if self.task is None:
            raise ValueError("goal_examples needs an environment with a task")
        out: dict[str, dict[str, list[np.ndarray]]] = {key: {"image": [], "state": []}
                                                       for key in ("goal", "reached", "missed")}
        seeds = np.random.default_rng(seed)
        for _ in range(attempts):
            observation, info = self.reset(seed=int(seeds.integers(2**31)))
            goal = {"image": info["goal_image"], "state": info["goal_state"]}
            rng = np.random.default_rng()
            rng.bit_generator.state = self._task_rng_state  # the goal's own random targets
            attempt = {"missed": observation, "success": False}

            def observe(observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
                attempt["success"] = info["success"]
                if not info["success"]:
                    attempt["missed"] = observation

            reached = run_primitives(self, primitives_for_task(self.task, noise), rng, observe=observe)
            if attempt["success"]:
                for key, value in (("goal", goal), ("reached", reached), ("missed", attempt["missed"])):
                    out[key]["image"].append(value["image"])
                    out[key]["state"].append(value["state"])
        return {key: {view: np.asarray(values) for view, values in views.items()} for key, views in out.items()}

    def render(self) -> np.ndarray:
        return self._render(self.render_size)

    def _render(self, size: tuple[int, int]) -> np.ndarray:
        renderer = self._renderers.get(size)
        if renderer is None:
            renderer = self._renderers[size] = mujoco.Renderer(self.model, *size)
        renderer.update_scene(self.data, camera=self.camera)
        return renderer.render()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers = {}


def in_tray(state: np.ndarray) -> bool:
    tray = state[TRAY_XY]
    return bool(state[PRESENT][2] and np.all(np.abs(state[OBJECT][:2] - tray) < TRAY_HALF - 0.005)
                and state[OBJECT][2] < 0.05)


def task_stages(task: str, state: np.ndarray, goal: np.ndarray) -> tuple[bool, ...]:
    """Which of ``task``'s conditions ``state`` meets (privileged state; ``goal`` is its scripted success).

    A single-stage task has one condition; a multi-stage task one per stage, in the task's order.
    Success is all of them; the fraction met (``info["stage_progress"]``) shows partial progress on
    a multi-stage task, which the success rate alone hides.
    """
    drawer_open = bool(state[DRAWER] > 0.08)
    if task == "reach":
        return (bool(np.linalg.norm(state[GRIP] - goal[GRIP]) < REACH_TOLERANCE),)
    if task == "drawer-open":
        return (drawer_open and abs(state[DRAWER] - goal[DRAWER]) < 0.03,)
    if task == "drawer-close":
        return (bool(state[DRAWER] < 0.02),)
    if task == "button-press":
        return (bool(state[BUTTON] > 0.5),)
    if task == "object-in-tray":
        return (in_tray(state),)
    if task == "object-lift":
        return (bool(state[OBJECT][2] > 0.08),)
    if task == "button-then-tray":
        return bool(state[BUTTON] > 0.5), in_tray(state)
    if task == "tray-then-close-drawer":
        return in_tray(state), bool(state[DRAWER] < 0.02)
    if task == "drawer-button-tray":
        return drawer_open, bool(state[BUTTON] > 0.5), in_tray(state)
    raise ValueError(f"unknown tabletop task {task!r}")


def task_success(task: str, state: np.ndarray, goal: np.ndarray) -> bool:
    """Whether ``state`` accomplishes the task whose scripted success is ``goal`` (privileged state)."""
    return all(task_stages(task, state, goal))
