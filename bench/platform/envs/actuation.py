"""Actuation noise and bias (dissertation ch. 5.4.2, eq. 24): the robot executes u' = u + N(mu, sigma^2), not u.

Residual RL's claim is that a learned residual corrects what a hand-designed controller gets wrong when
its actions do not land where it sends them; this wrapper is how an environment is made so. The noise
is drawn per action dimension and step from a generator seeded by each reset's seed, so an episode
with a seed is the same episode every time. Executed actions are clipped to the action space.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class ActuationNoise(gym.ActionWrapper):
    """u' = clip(u + eps), eps ~ N(mu, sigma^2) per dimension (eq. 24); ``mu`` is a bias, ``sigma`` the noise."""

    def __init__(self, env: gym.Env, mu: float | np.ndarray = 0.0, sigma: float | np.ndarray = 0.0):
        super().__init__(env)
        shape = env.action_space.shape
        self.mu = np.broadcast_to(np.asarray(mu, np.float64), shape).copy()
        self.sigma = np.broadcast_to(np.asarray(sigma, np.float64), shape).copy()
        if np.any(self.sigma < 0):
            raise ValueError("sigma, the actuation noise's standard deviation, must be >= 0")
        self._noise = np.random.default_rng(0)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:  # the noise follows the episode's seed; unseeded resets continue the stream
            self._noise = np.random.default_rng(np.random.SeedSequence([seed, 24]))
        return self.env.reset(seed=seed, options=options)

    def action(self, action: np.ndarray) -> np.ndarray:
        noisy = np.asarray(action, np.float64) + self.mu + self.sigma * self._noise.standard_normal(self.mu.shape)
        space = self.action_space
        return np.clip(noisy, space.low, space.high).astype(space.dtype)
