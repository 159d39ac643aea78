"""Learning algorithms, one module each (bc, awac, iql, cql, ...), registered by name.

``get_algorithm("iql")`` returns its spec; ``build_algorithm`` resolves a config (defaults, the
domain's preset, user overrides) and constructs it.
"""

from __future__ import annotations

from typing import Any

from bench.algorithms.base import REGISTRY, Algorithm, AlgorithmSpec, Batch, register
from bench.algorithms.config import AlgorithmConfig, config_hash, config_to_json, resolve_config
from bench.errors import NotFound, did_you_mean

# Importing the modules registers them.
from bench.algorithms import awac, bc, cql, ddpg, iql, latent_goals, ptp, residual, sac  # noqa: E402,F401


def list_algorithms() -> list[AlgorithmSpec]:
    return sorted(REGISTRY.values(), key=lambda spec: spec.name)


def get_algorithm(name: str) -> AlgorithmSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise NotFound(f"unknown algorithm {name!r}{did_you_mean(name, REGISTRY)}; known: "
                       f"{', '.join(sorted(REGISTRY))}") from None


def make_config(name: str, domain: str | None = None, overrides: dict[str, Any] | None = None) -> AlgorithmConfig:
    spec = get_algorithm(name)
    return resolve_config(spec.config_class, domain, {**spec.defaults, **(overrides or {})})


def build_algorithm(name: str, config: AlgorithmConfig, obs_dim: int, action_dim: int) -> Algorithm:
    return get_algorithm(name).algorithm_class(config, obs_dim, action_dim)


__all__ = ["Algorithm", "AlgorithmConfig", "AlgorithmSpec", "Batch", "build_algorithm", "config_hash",
           "config_to_json", "get_algorithm", "list_algorithms", "make_config", "register"]
