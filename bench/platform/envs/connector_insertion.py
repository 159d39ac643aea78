"""Connector insertion (dissertation ch. 6.3): a tight-clearance peg into a socket, with sparse, dense or image rewards.

bench's own low-poly MuJoCo scene (boxes only), after the chapter's real-robot USB task:
  robot    a gripper under Cartesian position control holding the connector, a 1 x 1 x 3 cm peg: a mocap
           target moved by at most STEP (1 cm) per unit of action and axis, followed through a soft weld
  socket   a 1.1 x 1.1 cm hole, 1.5 cm deep, in a block on the table: 0.5 mm of clearance per side
  start    the peg's tip 5 cm above the socket, up to 5 mm aside (uniform), every reset (ch. 6.4.3)
  goal     x*, the peg's position when inserted; the robot is told x* plus goal noise, uniform in
           [-goal_noise, goal_noise] per horizontal axis (Fig. 27's noisy goals: +-1 mm), drawn per reset
  rewards  "sparse"  eq. 25: 1 when the connector is inserted, else 0
           "dense"   eq. 26: -alpha ||x - x*||_1 - beta / (||x - x*||_2 + eps) - phi f_z with alpha 100,
                     beta 0.002, eps 0.01 (the chapter: 0 < eps << 1) and phi 0.1, -0.1 once inserted;
                     distances in metres to the true x*, f_z the upward contact force on the peg (N)
           "visual"  ch. 6.3.2.1: minus the mean absolute difference between the 32 x 32 grayscale image
                     (in [0, 1]) and the goal image (the peg inserted, rendered once per environment)
  success  inserted: the peg's tip 8 mm or more into the hole
  length   30 steps
  max_lead an option (metres, off by default): the arm's anti-windup, the mocap target kept within max_lead of
           the peg per axis, as impedance controllers clip their position error to bound the force. Off,
           a peg stuck on the socket's edge is pressed with up to ~300 N (the target winds up ~2 cm below
           it), which dominates eq. 26's force term; on, the force is bounded but free motion is slowed
           (measured by benchmarks/insertion_controllers.py, "dense_windup").
Observation: ``observation_mode="state"`` (flat, 7): the peg's position x (3), f_z (1) and the
commanded goal (3); ``"image"``: a dict with ``image`` (32 x 32 grayscale, uint8, the policy's input)
and ``state`` (the same 7 numbers, which the P-controller reads). Action: 3-D motion in [-1, 1].
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from bench.platform.envs.mocap_scene import P_GAINS, mocap_gripper_scene, p_control

STEP = 0.01  # metres of mocap motion per unit of action and step
SUBSTEPS = 20  # 2 ms physics steps: 40 ms per environment step
PEG = np.array([0.005, 0.005, 0.015])  # half-extents
HOLE = 0.00525  # half-width of the socket's hole: 0.25 mm of clearance per side
SOCKET_DEPTH, SOCKET_WIDTH = 0.015, 0.03
GOAL = np.array([0.0, 0.0, PEG[2]])  # x*: the peg's centre with its tip at the hole's bottom
START_ABOVE = 0.05 + SOCKET_DEPTH  # the tip starts 5 cm above the socket's top
START_SPREAD = 0.005
INSERTED_DEPTH = 0.008
MAX_EPISODE_STEPS = 30
ALPHA, BETA, EPSILON, PHI = 100.0, 0.002, 0.01, 0.1  # eq. 26
REWARDS = ("sparse", "dense", "visual")
OBSERVATION_MODES = ("state", "image")
IMAGE_SIZE = 32
CAMERA_LOOKAT, CAMERA_DISTANCE, CAMERA_AZIMUTH, CAMERA_ELEVATION = (0.0, 0.0, 0.025), 0.09, 45.0, -40.0


def scene_xml() -> str:
    wall = (SOCKET_WIDTH - HOLE) / 2  # half-extent of a wall's thickness
    offset = HOLE + wall
    walls = []
    for name, (x, y, sx, sy) in {"east": (offset, 0, wall, SOCKET_WIDTH), "west": (-offset, 0, wall, SOCKET_WIDTH),
                                 "north": (0, offset, HOLE, wall), "south": (0, -offset, HOLE, wall)}.items():
        walls.append(f'<geom name="socket_{name}" type="box" pos="{x} {y} {SOCKET_DEPTH / 2}" '
                     f'size="{sx} {sy} {SOCKET_DEPTH / 2}" rgba="0.3 0.3 0.3 1" solref="0.004 1" solimp="0.99 0.999 0.001"/>')
    gripper = (f'<geom name="peg" type="box" size="{PEG[0]} {PEG[1]} {PEG[2]}" mass="0.1" rgba="0.9 0.9 0.9 1" '
               f'solref="0.004 1" solimp="0.99 0.999 0.001"/>'
               f'<geom name="hand" type="box" pos="0 0 {PEG[2] + 0.01}" size="0.015 0.015 0.01" mass="0.2" '
               f'rgba="0.2 0.2 0.2 1" contype="0" conaffinity="0"/>')
    # Stiff contacts and a weld soft enough to give before the socket does: a misaligned peg stops on the
    # socket's edge instead of being pushed through it.
    return mocap_gripper_scene("connector_insertion", 'size="0.3 0.3 0.01" rgba="0.75 0.75 0.75 1"',
                               GOAL[2] + START_ABOVE, gripper, "".join(walls), 'solref="0.02 1" torquescale="20"')


class ConnectorInsertionEnv(gym.Env):
    """See the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(self, reward: str = "sparse", observation_mode: str = "state", goal_noise: float = 0.0,
                 max_lead: float | None = None, render_mode: str | None = None, width: int = 64, height: int = 64):
        if reward not in REWARDS:
            raise ValueError(f"reward is one of {', '.join(REWARDS)}, not {reward!r}")
        if observation_mode not in OBSERVATION_MODES:
            raise ValueError(f"observation_mode is one of {', '.join(OBSERVATION_MODES)}, not {observation_mode!r}")
        if not 0.0 <= float(goal_noise) <= 0.01:
            raise ValueError(f"goal_noise is a distance in [0, 0.01] metres, not {goal_noise}")
        if max_lead is not None and not 0.0 < float(max_lead) <= 0.05:
            raise ValueError(f"max_lead is a distance in (0, 0.05] metres or None, not {max_lead}")
        self.reward_kind, self.observation_mode, self.goal_noise = reward, observation_mode, float(goal_noise)
        self.max_lead = None if max_lead is None else float(max_lead)
        self.model = mujoco.MjModel.from_xml_string(scene_xml())
        self.data = mujoco.MjData(self.model)
        state = gym.spaces.Box(-np.inf, np.inf, (7,), np.float32)
        if observation_mode == "image":
            self.observation_space = gym.spaces.Dict({
                "image": gym.spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE), np.uint8), "state": state})
        else:
            self.observation_space = state
        self.action_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.render_mode, self.width, self.height = render_mode, width, height
        self._renderer = self._view = None
        self._gripper = self.model.body("gripper").id
        self._peg = self.model.geom("peg").id
        self._qpos = self.model.jnt_qposadr[self.model.joint("gripper").id]
        self._goal_image: np.ndarray | None = None
        self.commanded_goal = GOAL.copy()

    # -- state ----------------------------------------------------------------------------------
    def peg_position(self) -> np.ndarray:
        return self.data.xpos[self._gripper].copy()

    def vertical_force(self) -> float:
        """f_z: the upward force (N) the peg's contacts exert on it."""
        total, wrench = 0.0, np.zeros(6)
        for i in range(self.data.ncon):
            contact = self.data.contact[i]
            if self._peg not in (contact.geom1, contact.geom2):
                continue
            mujoco.mj_contactForce(self.model, self.data, i, wrench)
            world = contact.frame.reshape(3, 3).T @ wrench[:3]  # the force on geom2, in world coordinates
            total += world[2] if contact.geom2 == self._peg else -world[2]
        return float(total)

    def inserted(self, position: np.ndarray | None = None) -> bool:
        x = self.peg_position() if position is None else position
        tip_depth = SOCKET_DEPTH - (x[2] - PEG[2])
        return bool(tip_depth >= INSERTED_DEPTH and np.all(np.abs(x[:2]) < HOLE))

    def _state(self, force: float) -> np.ndarray:
        return np.concatenate([self.peg_position(), [force], self.commanded_goal]).astype(np.float32)

    def _observation(self, force: float):
        state = self._state(force)
        if self.observation_mode == "image":
            return {"image": self.image(), "state": state}
        return state

    def dense_reward(self, position: np.ndarray, force: float, inserted: bool) -> float:
        """Eq. 26 to the true x*."""
        error = position - GOAL
        phi = -PHI if inserted else PHI
        return float(-ALPHA * np.abs(error).sum() - BETA / (np.linalg.norm(error) + EPSILON) - phi * force)

    # -- images ----------------------------------------------------------------------------------
    def image(self) -> np.ndarray:
        """The 32 x 32 grayscale view of the socket, close, from above and diagonally (uint8)."""
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, IMAGE_SIZE, IMAGE_SIZE)
        rgb = self._camera_view(self._renderer).astype(np.float32)
        return (rgb @ np.array([0.299, 0.587, 0.114], np.float32)).clip(0, 255).astype(np.uint8)

    def _camera_view(self, renderer: mujoco.Renderer) -> np.ndarray:
        # Close on the socket (as the chapter's Fig. 25) and diagonal to both axes: a peg 1 mm off in x or in y
        # changes the 32 x 32 image about equally, ~4x more than a distant front view would.
        camera = mujoco.MjvCamera()
        camera.lookat[:] = CAMERA_LOOKAT
        camera.distance, camera.azimuth, camera.elevation = CAMERA_DISTANCE, CAMERA_AZIMUTH, CAMERA_ELEVATION
        renderer.update_scene(self.data, camera)
        return renderer.render()

    def goal_image(self) -> np.ndarray:
        """The image of the peg inserted at x* (rendered once, with the simulator restored afterwards)."""
        if self._goal_image is None:
            qpos, qvel, mocap = self.data.qpos.copy(), self.data.qvel.copy(), self.data.mocap_pos.copy()
            self.data.qpos[self._qpos:self._qpos + 3] = GOAL
            self.data.qpos[self._qpos + 3:self._qpos + 7] = [1.0, 0.0, 0.0, 0.0]
            mujoco.mj_forward(self.model, self.data)
            self._goal_image = self.image()
            self.data.qpos[:], self.data.qvel[:], self.data.mocap_pos[:] = qpos, qvel, mocap
            mujoco.mj_forward(self.model, self.data)
        return self._goal_image

    def visual_reward(self, image: np.ndarray) -> float:
        """Minus the mean pixelwise L1 distance to the goal image, pixels in [0, 1]."""
        return -float(np.abs(image.astype(np.float32) - self.goal_image().astype(np.float32)).mean() / 255.0)

    # -- gymnasium ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        rng = self.np_random
        start = np.array([*rng.uniform(-START_SPREAD, START_SPREAD, 2), GOAL[2] + START_ABOVE])
        self.data.qpos[self._qpos:self._qpos + 3] = start
        self.data.mocap_pos[0] = start
        self.commanded_goal = GOAL.copy()
        if self.goal_noise:
            self.commanded_goal[:2] += rng.uniform(-self.goal_noise, self.goal_noise, 2)
        mujoco.mj_forward(self.model, self.data)
        self._steps = 0
        return self._observation(0.0), {"success": self.inserted(), "distance": self._distance()}

    def _distance(self) -> float:
        return float(np.linalg.norm(self.peg_position() - GOAL))

    def step(self, action: np.ndarray):
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        target = np.clip(self.data.mocap_pos[0] + STEP * action, [-0.05, -0.05, PEG[2] - 0.005], [0.05, 0.05, 0.15])
        if self.max_lead is not None:
            peg = self.peg_position()
            target = peg + np.clip(target - peg, -self.max_lead, self.max_lead)
        self.data.mocap_pos[0] = target
        mujoco.mj_step(self.model, self.data, nstep=SUBSTEPS)
        self._steps += 1
        force = self.vertical_force()
        inserted = self.inserted()
        observation = self._observation(force)
        if self.reward_kind == "sparse":
            reward = float(inserted)
        elif self.reward_kind == "dense":
            reward = self.dense_reward(self.peg_position(), force, inserted)
        else:
            reward = self.visual_reward(observation["image"] if isinstance(observation, dict) else self.image())
        info = {"success": inserted, "distance": self._distance(), "f_z": force}
        return observation, reward, False, self._steps >= MAX_EPISODE_STEPS, info

    def render(self):
        """The same view in colour, at the environment's ``width`` x ``height`` (previews, videos)."""
        if self._view is None:
            self._view = mujoco.Renderer(self.model, self.height, self.width)
        return self._camera_view(self._view)

    def close(self):
        for renderer in (self._renderer, self._view):
            if renderer is not None:
                renderer.close()
        self._renderer = self._view = None


def p_controller_view(observation: Any) -> tuple[np.ndarray, np.ndarray]:
    """(x, x*) as the P-controller reads them: the peg's position and the commanded goal."""
    state = observation["state"] if isinstance(observation, dict) else observation
    state = np.asarray(state, np.float64)
    return state[0:3], state[4:7]


def hand_designed_action(observation: Any, gains: tuple[float, ...] = P_GAINS) -> np.ndarray:
    """Ch. 6's hand-designed controller, the P-controller of eq. 29: u = -k_p (x - x*), errors in action units
    (1 cm), clipped to [-1, 1]. Centres the peg over the commanded goal and lowers it in about 10 steps."""
    return p_control(*p_controller_view(observation), gains, STEP)
