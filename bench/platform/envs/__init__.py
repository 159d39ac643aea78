"""Gymnasium environments that bench registers itself (ids under the ``bench/`` namespace).

Importing this package registers them; ``bench.platform.environments.make_env`` does so
before building any environment, so a dataset's environment reference always resolves.
"""

import os

import gymnasium as gym

# MuJoCo picks its OpenGL backend when it is first imported: headless EGL unless the user chose.
os.environ.setdefault("MUJOCO_GL", "egl")

_REGISTERED = False


def register_all() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    gym.register(id="bench/MetaWorld-v0", entry_point="bench.platform.envs.metaworld:MetaWorldTask")
    # The pixel tabletop counts its own steps (``max_episode_steps``), so no TimeLimit wrapper.
    gym.register(id="bench/Tabletop-v0", entry_point="bench.platform.envs.tabletop:TabletopEnv")
    # Fetch block stacking (ch. 4.7), 50 (N - 1) steps for N blocks.
    for blocks in (2, 3, 4):
        gym.register(id=f"bench/FetchStack{blocks}-v0", entry_point="bench.platform.envs.fetch_stack:FetchStackEnv",
                     kwargs={"blocks": blocks}, max_episode_steps=50 * (blocks - 1))
    # Block insertion (ch. 5.4.1); it ends its episodes itself (50 steps).
    gym.register(id="bench/BlockInsertion-v0", entry_point="bench.platform.envs.block_insertion:BlockInsertionEnv")
    # Connector insertion (ch. 6.3); 30 steps, counted by the environment.
    gym.register(id="bench/ConnectorInsertion-v0",
                 entry_point="bench.platform.envs.connector_insertion:ConnectorInsertionEnv")
    # PointMaze as one task (AntMaze's setting, ch. 8): fixed start and goal, the goal not observed; the time
    # limit is the task's, given as max_episode_steps in its environment reference.
    gym.register(id="bench/PointMazeSingleTask-v0", entry_point="bench.platform.envs.pointmaze_single:SingleTaskPointMaze")
    _REGISTERED = True


register_all()
