"""Gymnasium environments that bench registers itself (ids under the ``bench/`` namespace).

Importing this package registers them; ``bench.platform.environments.make_env`` does so
before building any environment, so a dataset's environment reference always resolves.
"""

import gymnasium as gym

_REGISTERED = False


def register_all() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    gym.register(id="bench/MetaWorld-v0", entry_point="bench.platform.envs.metaworld:MetaWorldTask")
    _REGISTERED = True


register_all()
