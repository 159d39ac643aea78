"""Normalized scores: 100 * (return - random) / (expert - random), with the environment's reference scores."""

from __future__ import annotations

from bench.datasets import Registry
from bench.errors import NotFound
from bench.platform.environments import EnvironmentInfo


def normalized_score(env: EnvironmentInfo | str, episode_return: float, catalogue=None) -> float:
    """D4RL's normalization: 0 is the random policy's return, 100 the expert's.

    ``env`` is an EnvironmentInfo, or a catalogue name looked up in ``catalogue`` (default: the
    registry the settings describe).
    """
    if isinstance(env, str):
        if catalogue is None:
            catalogue = Registry.open().environments
        env = catalogue.get(env)
    pair = env.reference_pair()
    if pair is None:
        raise NotFound(f"environment {env.name!r} has no random and expert reference scores from one source")
    random, expert, _ = pair
    return 100.0 * (episode_return - random) / (expert - random)
