"""Block insertion (dissertation ch. 5.4.1): put a held block down between two standing blocks without knocking them over.

bench's own low-poly MuJoCo scene (boxes only), after the chapter's simulated Sawyer task:
  robot    a gripper under Cartesian position control: a mocap target moved by at most STEP (2 cm)
           per unit of action and axis, which the gripper follows through a soft weld, so that
           contacts push back; the gripper holds the block to insert (4 x 8 x 6 cm)
  blocks   two standing blocks (2 x 10 x 10 cm, 200 g, free to slide and tip) with a 4.8 cm gap
           between their inner faces (4 mm of clearance on each side of the held block); at every
           reset each is rotated about the vertical by an angle drawn from U[-r, r] (ch. 5.5.2,
           ``rotation_range`` r, default 0): a rotated block's corner reaches into the gap
  start    the held block 25 cm above the table, up to 6 cm aside of the gap (uniform), every reset
  reward   eq. 22, r = f(s_m) + g(s_o):
             f = -10 ||x - x*||              the held block's distance (m) to its place between the blocks
             g = -sum_i (10 ||p_i - p_i0|| + tilt_i)   each standing block's displacement (m) from where it
                                             stood and its tilt (rad, the angle of its vertical axis)
           The chapter gives the form, not the weights. These make hovering 10 cm above the gap cost
           about as much per step as a block knocked over (1 per step against 1.6 plus its displacement),
           so that waiting above the blocks is no safe haven. With f unweighted, residual TD3 learned
           to hover at r = 0.3 (return about -12 of 50 steps, 0 insertions in 20) rather than insert.
  success  the held block within 1.5 cm of its place and both standing blocks upright (tilt < 0.2 rad)
  length   50 steps
Observation (flat, 17): the held block's position (3), then each standing block's position (3) and
orientation quaternion (4). Action: 3-D motion of the gripper in [-1, 1]. The hand-designed
controller (``hand_designed_action``) is a Cartesian P-controller toward x*.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from bench.platform.envs.mocap_scene import P_GAINS, mocap_gripper_scene, p_control

STEP = 0.02  # metres of mocap motion per unit of action and step
SUBSTEPS = 25  # 2 ms physics steps: 50 ms per environment step
HELD = np.array([0.02, 0.04, 0.03])  # the held block's half-extents
STANDING = np.array([0.01, 0.05, 0.05])  # the standing blocks' half-extents
GAP = 0.048  # between the standing blocks' inner faces: 4 mm of clearance on each side
TABLE_HEIGHT = 0.0
PLACE = np.array([0.0, 0.0, TABLE_HEIGHT + HELD[2] + 0.002])  # x*: the held block's centre, inserted
START_HEIGHT = 0.25
START_SPREAD = 0.06
SUCCESS_DISTANCE, UPRIGHT_TILT = 0.015, 0.2
MAX_EPISODE_STEPS = 50
DISTANCE_WEIGHT, DISPLACEMENT_WEIGHT = 10.0, 10.0  # eq. 22's terms per metre; tilt counts 1 per radian
WORKSPACE_LOW, WORKSPACE_HIGH = np.array([-0.2, -0.2, PLACE[2] - 0.01]), np.array([0.2, 0.2, 0.3])


def scene_xml() -> str:
    x = GAP / 2 + STANDING[0]  # standing blocks' centres on the x axis
    standing = "\n".join(f"""
    <body name="standing{i}" pos="{sign * x} 0 {STANDING[2]}">
      <freejoint name="standing{i}"/>
      <geom type="box" size="{STANDING[0]} {STANDING[1]} {STANDING[2]}" mass="0.2" rgba="0.8 0.4 0.2 1"
            friction="1 0.005 0.0001"/>
    </body>""" for i, sign in enumerate((-1, 1)))
    return mocap_gripper_scene(
        "block_insertion", 'size="0.5 0.5 0.01" rgba="0.6 0.6 0.6 1" friction="0.6 0.005 0.0001"', START_HEIGHT,
        f'<geom name="held" type="box" size="{HELD[0]} {HELD[1]} {HELD[2]}" mass="0.5" rgba="0.2 0.4 0.8 1"/>',
        standing)


def tilt_of(quaternion: np.ndarray) -> float:
    """The angle (rad) between a body's vertical axis and the world's, from its (w, x, y, z) quaternion."""
    w, x, y, _ = quaternion
    # z-component of the rotated z axis: 1 - 2 (x^2 + y^2)
    return float(np.arccos(np.clip(1.0 - 2.0 * (x * x + y * y), -1.0, 1.0)))


class BlockInsertionEnv(gym.Env):
    """See the module docstring. ``rotation_range`` is r of ch. 5.5.2 (radians)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, rotation_range: float = 0.0, render_mode: str | None = None, width: int = 64, height: int = 64):
        if not 0.0 <= float(rotation_range) <= np.pi / 2:
            raise ValueError(f"rotation_range is an angle in [0, pi/2] radians, not {rotation_range}")
        self.rotation_range = float(rotation_range)
        self.model = mujoco.MjModel.from_xml_string(scene_xml())
        self.data = mujoco.MjData(self.model)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (17,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.render_mode, self.width, self.height = render_mode, width, height
        self._renderer = None
        self._gripper = self.model.body("gripper").id
        self._standing = [self.model.body(f"standing{i}").id for i in range(2)]
        self._standing_qpos = [self.model.jnt_qposadr[self.model.joint(f"standing{i}").id] for i in range(2)]
        self._gripper_qpos = self.model.jnt_qposadr[self.model.joint("gripper").id]
        self.initial_standing = np.zeros((2, 3))

    # -- state ----------------------------------------------------------------------------------
    def held_position(self) -> np.ndarray:
        return self.data.xpos[self._gripper].copy()

    def standing_poses(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(self.data.xpos[b].copy(), self.data.xquat[b].copy()) for b in self._standing]

    def _observation(self) -> np.ndarray:
        parts = [self.held_position()]
        for position, quaternion in self.standing_poses():
            parts += [position, quaternion]
        return np.concatenate(parts).astype(np.float32)

    def reward_terms(self) -> dict[str, float]:
        """eq. 22's f(s_m) and g(s_o), and what success is decided from."""
        distance = float(np.linalg.norm(self.held_position() - PLACE))
        displacements, tilts = [], []
        for (position, quaternion), start in zip(self.standing_poses(), self.initial_standing):
            displacements.append(float(np.linalg.norm(position - start)))
            tilts.append(tilt_of(quaternion))
        return {"distance": distance, "displacement": sum(displacements), "max_tilt": max(tilts),
                "f": -DISTANCE_WEIGHT * distance, "g": -(DISPLACEMENT_WEIGHT * sum(displacements) + sum(tilts))}

    # -- gymnasium ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        rng = self.np_random
        x = GAP / 2 + STANDING[0]
        for i, (sign, address) in enumerate(zip((-1, 1), self._standing_qpos)):
            angle = rng.uniform(-self.rotation_range, self.rotation_range) if self.rotation_range else 0.0
            self.data.qpos[address:address + 3] = [sign * x, 0.0, STANDING[2]]
            self.data.qpos[address + 3:address + 7] = [np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)]
        start = np.array([*rng.uniform(-START_SPREAD, START_SPREAD, 2), START_HEIGHT])
        self.data.qpos[self._gripper_qpos:self._gripper_qpos + 3] = start
        self.data.mocap_pos[0] = start
        mujoco.mj_forward(self.model, self.data)
        self.initial_standing = np.stack([p for p, _ in self.standing_poses()])
        self._steps = 0
        return self._observation(), self._info()

    def step(self, action: np.ndarray):
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        self.data.mocap_pos[0] = np.clip(self.data.mocap_pos[0] + STEP * action, WORKSPACE_LOW, WORKSPACE_HIGH)
        mujoco.mj_step(self.model, self.data, nstep=SUBSTEPS)
        self._steps += 1
        terms = self.reward_terms()
        reward = terms["f"] + terms["g"]
        return self._observation(), float(reward), False, self._steps >= MAX_EPISODE_STEPS, self._info(terms)

    def _info(self, terms: dict[str, float] | None = None) -> dict[str, Any]:
        terms = terms or self.reward_terms()
        success = terms["distance"] < SUCCESS_DISTANCE and terms["max_tilt"] < UPRIGHT_TILT
        return {"success": bool(success), **terms}

    def render(self):
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
        camera = mujoco.MjvCamera()
        camera.lookat[:] = [0.0, 0.0, 0.05]
        camera.distance, camera.azimuth, camera.elevation = 0.5, 90.0, -25.0
        self._renderer.update_scene(self.data, camera)
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def p_controller_view(observation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, x*): the held block's position and its place between the blocks."""
    return np.asarray(observation[0:3], np.float64), PLACE


def hand_designed_action(observation: np.ndarray, gains: tuple[float, ...] = P_GAINS) -> np.ndarray:
    """Ch. 5's hand-engineered controller, a Cartesian P-controller toward x* (eq. 29, errors in units of 2 cm).

    With k_p = [1, 1, 0.3] it is over the gap within 3 steps from the start, long before the held block
    reaches the standing blocks' tops, and lowers it straight down: it succeeds when the blocks stand
    straight and bumps into a rotated block's corner, which reaches into the gap, otherwise. A residual
    r shifts where it settles smoothly (by r / k_p units), so a learner can correct it."""
    return p_control(*p_controller_view(observation), gains, STEP)
