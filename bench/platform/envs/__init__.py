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
    _REGISTERED = True


register_all()
