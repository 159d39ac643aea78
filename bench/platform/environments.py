"""Environment references: which gymnasium environment evaluates a dataset, and rebuilding it.

A reference is plain JSON kept in the manifest: ``{"id", "kwargs", "packages"}`` where packages
maps the distributions that define the environment to the versions the data was made with.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import gymnasium as gym

from bench.errors import InvalidInput


def _distribution_of(entry_point: Any) -> str | None:
    module = entry_point.split(":")[0] if isinstance(entry_point, str) else getattr(entry_point, "__module__", "")
    top = module.split(".")[0]
    for distribution in importlib.metadata.packages_distributions().get(top, []):
        return distribution
    return None


def env_reference(env_id: str, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Describe a registered gymnasium environment; fails clearly if it is unknown."""
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise InvalidInput(f"unknown environment {env_id!r}: {exc}") from exc
    packages = {"gymnasium": importlib.metadata.version("gymnasium")}
    distribution = _distribution_of(spec.entry_point)
    if distribution:
        packages[distribution] = importlib.metadata.version(distribution)
    return {"id": env_id, "kwargs": dict(kwargs or {}), "packages": packages}


def make_env(reference: dict[str, Any], **overrides: Any) -> gym.Env:
    """Rebuild the environment a reference names."""
    if not reference or not reference.get("id"):
        raise InvalidInput("this dataset has no environment reference (e.g. real-robot logs)")
    return gym.make(reference["id"], **{**reference.get("kwargs", {}), **overrides})


def spaces_of(reference: dict[str, Any]) -> tuple[gym.Space, gym.Space]:
    env = make_env(reference)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()
