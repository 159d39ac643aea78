"""Fetch block stacking (dissertation ch. 4.7): N blocks on the pick-and-place table, to be stacked into a tower.

Gymnasium-Robotics has no stacking task, so bench builds one from its Fetch pick-and-place scene
(the same robot, table, 5 cm blocks of 2 kg and 20 MuJoCo substeps a step):
  reset    N blocks at random table positions within 15 cm of the gripper's start, at least 10 cm
           from it and 8 cm from each other (Fetch's own rule for one block, extended to N)
  goals    g_1 = x_1 (the first block starts in place) and g_i = g_(i-1) + (0, 0, 5 cm)   (ch. 4.7.1)
  achieved the N block positions, concatenated; desired: the N goals, concatenated
  reward   "sparse": 0 when every block is within delta = 5 cm of its goal, else -1
                     (eq. 17 minus 1, so that returns lie in [-1/(1-gamma), 0] as HER's target
                     clipping assumes; a constant shift on fixed-length episodes changes no policy)
           "step":   sum_i (1[||x_i - g_i|| < delta] - 1), the sum of eq. 16 over blocks
                     (eq. 18 minus N - 1, for the same reason)
  success  every block within delta of its goal; Fetch scores an episode by its final step
  length   50 (N - 1) steps (ch. 4.7.1), set where the ids are registered
Observation: gripper position (3), then per block its position, position relative to the gripper,
Euler rotation, linear and angular velocity (5 x 3N, grouped by quantity as Fetch groups them), the
finger widths (2), the gripper's velocity (3) and the fingers' velocities (2): 10 + 15N numbers.

``sim_state()`` and ``reset_to(state, goal)`` read and set the simulator (qpos, qvel): what
resets to demonstration states (ch. 4.4.4) need.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
from gymnasium.utils import EzPickle
from gymnasium_robotics.envs.fetch.fetch_env import MujocoFetchEnv
from gymnasium_robotics.utils import rotations

BLOCK = 0.05  # the blocks' edge, and the success threshold delta (ch. 4.7.2: "the size of a block")
OBJECT_RANGE = 0.15  # Fetch pick-and-place's obj_range
MIN_GRIPPER_GAP, MIN_BLOCK_GAP = 0.1, 0.08
REWARDS = ("sparse", "step")


def steps_for(blocks: int) -> int:
    """Ch. 4.7.1: 50 (N - 1) steps for N blocks."""
    return 50 * (blocks - 1)


def _assets() -> str:
    import gymnasium_robotics

    return os.path.join(os.path.dirname(gymnasium_robotics.__file__), "envs", "assets")


def scene_xml(blocks: int) -> str:
    """The pick-and-place scene with ``blocks`` blocks and as many target markers (absolute asset paths)."""
    assets = _assets()
    with open(os.path.join(assets, "fetch", "pick_and_place.xml")) as handle:
        xml = handle.read()
    xml = xml.replace('meshdir="../stls/fetch"', f'meshdir="{assets}/stls/fetch"')
    xml = xml.replace('texturedir="../textures"', f'texturedir="{assets}/textures"')
    xml = re.sub(r'<include file="(\w+\.xml)">', lambda m: f'<include file="{assets}/fetch/{m.group(1)}">', xml)
    block = re.search(r'\s*<body name="object0".*?</body>', xml, re.S).group(0)
    target = re.search(r'\s*<site name="target0"[^>]*></site>', xml).group(0)
    xml = xml.replace(block, "".join(block.replace("object0", f"object{i}") for i in range(blocks)))
    return xml.replace(target, "".join(target.replace("target0", f"target{i}") for i in range(blocks)))


class FetchStackEnv(MujocoFetchEnv, EzPickle):
    """Stack ``blocks`` blocks at the first block's position; see the module docstring."""

    def __init__(self, blocks: int = 2, reward_type: str = "sparse", **kwargs: Any):
        if not 2 <= blocks <= 6:
            raise ValueError("blocks must be between 2 and 6 (ch. 4.7 stacks 2 to 6)")
        if reward_type not in REWARDS:
            raise ValueError(f"reward_type must be one of {REWARDS}, not {reward_type!r}")
        self.blocks = blocks
        initial_qpos = {"robot0:slide0": 0.405, "robot0:slide1": 0.48, "robot0:slide2": 0.0,
                        **{f"object{i}:joint": [1.25, 0.53 + 0.06 * i, 0.4, 1.0, 0.0, 0.0, 0.0]
                           for i in range(blocks)}}
        # model_path only passes the base class's check that the file exists: _initialize_simulation
        # builds the N-block scene instead.
        MujocoFetchEnv.__init__(
            self, model_path="fetch/pick_and_place.xml", has_object=True, block_gripper=False, n_substeps=20,
            gripper_extra_height=0.2, target_in_the_air=False, target_offset=0.0, obj_range=OBJECT_RANGE,
            target_range=OBJECT_RANGE, distance_threshold=BLOCK, initial_qpos=initial_qpos, reward_type=reward_type,
            **kwargs)
        EzPickle.__init__(self, blocks=blocks, reward_type=reward_type, **kwargs)

    def _initialize_simulation(self):
        # As MujocoRobotEnv's, from the generated N-block scene instead of a file of the package's.
        self.model = self._mujoco.MjModel.from_xml_string(scene_xml(self.blocks))
        self.data = self._mujoco.MjData(self.model)
        self._model_names = self._utils.MujocoModelNames(self.model)
        self.model.vis.global_.offwidth = self.width
        self.model.vis.global_.offheight = self.height
        self._env_setup(initial_qpos=self.initial_qpos)
        self.initial_time = self.data.time
        self.initial_qpos = np.copy(self.data.qpos)
        self.initial_qvel = np.copy(self.data.qvel)

    # -- goals and rewards -------------------------------------------------------------------------
    def placed(self, achieved_goal: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Which blocks lie within delta of their goals: (..., N) booleans."""
        shape = np.shape(achieved_goal)[:-1] + (self.blocks, 3)
        distance = np.linalg.norm(np.reshape(achieved_goal, shape) - np.reshape(goal, shape), axis=-1)
        return distance < self.distance_threshold

    def compute_reward(self, achieved_goal, goal, info):
        placed = self.placed(achieved_goal, goal)
        if self.reward_type == "sparse":
            return placed.all(-1).astype(np.float32) - 1.0
        return (placed.sum(-1) - self.blocks).astype(np.float32)

    def _is_success(self, achieved_goal, desired_goal):
        return np.float32(self.placed(achieved_goal, desired_goal).all(-1))

    def _sample_goal(self):
        base = self._block_position(0)
        return np.concatenate([base + np.array([0.0, 0.0, BLOCK * i]) for i in range(self.blocks)])

    # -- simulation ----------------------------------------------------------------------------------
    def _block_position(self, i: int) -> np.ndarray:
        return self._utils.get_site_xpos(self.model, self.data, f"object{i}").copy()

    def _reset_sim(self):
        self._mujoco.mj_resetData(self.model, self.data)
        self.data.time = self.initial_time
        self.data.qpos[:] = np.copy(self.initial_qpos)
        self.data.qvel[:] = np.copy(self.initial_qvel)
        start = self.initial_gripper_xpos[:2]
        positions: list[np.ndarray] = []
        while len(positions) < self.blocks:
            xy = start + self.np_random.uniform(-self.obj_range, self.obj_range, size=2)
            if (np.linalg.norm(xy - start) >= MIN_GRIPPER_GAP
                    and all(np.linalg.norm(xy - other) >= MIN_BLOCK_GAP for other in positions)):
                positions.append(xy)
        for i, xy in enumerate(positions):
            qpos = self._utils.get_joint_qpos(self.model, self.data, f"object{i}:joint")
            qpos[:2], qpos[2], qpos[3:] = xy, self.height_offset, [1.0, 0.0, 0.0, 0.0]
            self._utils.set_joint_qpos(self.model, self.data, f"object{i}:joint", qpos)
        self._mujoco.mj_forward(self.model, self.data)
        return True

    def generate_mujoco_observations(self):
        dt = self.n_substeps * self.model.opt.timestep
        grip_pos = self._utils.get_site_xpos(self.model, self.data, "robot0:grip")
        grip_velp = self._utils.get_site_xvelp(self.model, self.data, "robot0:grip") * dt
        robot_qpos, robot_qvel = self._utils.robot_get_obs(self.model, self.data, self._model_names.joint_names)
        names = [f"object{i}" for i in range(self.blocks)]
        position = np.stack([self._utils.get_site_xpos(self.model, self.data, n) for n in names])
        rotation = np.stack([rotations.mat2euler(self._utils.get_site_xmat(self.model, self.data, n)) for n in names])
        velocity = np.stack([self._utils.get_site_xvelp(self.model, self.data, n) * dt for n in names]) - grip_velp
        spin = np.stack([self._utils.get_site_xvelr(self.model, self.data, n) * dt for n in names])
        # Flat, block after block: Fetch's _get_obs concatenates these, and the achieved goal is ``position``.
        return (grip_pos, position.ravel(), (position - grip_pos).ravel(), robot_qpos[-2:], rotation.ravel(),
                velocity.ravel(), spin.ravel(), grip_velp, robot_qvel[-2:] * dt)

    def _render_callback(self):
        offset = (self.data.site_xpos - self.model.site_pos)[0]
        for i, goal in enumerate(np.reshape(self.goal, (self.blocks, 3))):
            site = self._mujoco.mj_name2id(self.model, self._mujoco.mjtObj.mjOBJ_SITE, f"target{i}")
            self.model.site_pos[site] = goal - offset
        self._mujoco.mj_forward(self.model, self.data)

    # -- resets to recorded states (ch. 4.4.4) ------------------------------------------------------
    def sim_state(self) -> np.ndarray:
        """The simulator's state as one vector: qpos then qvel (the mocap follows the gripper each step)."""
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float64)

    def reset_to(self, state: np.ndarray, goal: np.ndarray) -> dict[str, np.ndarray]:
        """Put the simulator in a recorded ``state`` and pursue ``goal``; returns the observation."""
        state = np.asarray(state, np.float64)
        if state.shape != (self.model.nq + self.model.nv,):
            raise ValueError(f"a state of this scene has {self.model.nq + self.model.nv} numbers, not {state.shape}")
        self.data.qpos[:], self.data.qvel[:] = state[:self.model.nq], state[self.model.nq:]
        self._mujoco.mj_forward(self.model, self.data)
        self.goal = np.asarray(goal, np.float64).reshape(-1).copy()
        return self._get_obs()
