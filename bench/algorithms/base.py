"""What every algorithm is: a config, networks, ``update(batch) -> metrics``, ``act(obs)``, state dicts.

Algorithms see flat float tensors only. The harness turns observations (flat, dict, goal-
conditioned) into ``obs`` = normalized state, concatenated with the goal when there is one,
and actions into [-1, 1]; an algorithm never knows about environments, storage or databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from bench.algorithms.config import AlgorithmConfig


@dataclass
class Batch:
    """A minibatch of transitions as tensors. ``done`` is 1 where the episode terminated (not truncated)."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    done: torch.Tensor


class Algorithm(nn.Module):
    """Base class: subclasses build networks and optimizers in ``__init__`` and implement ``update``."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[AlgorithmConfig]] = AlgorithmConfig
    # Whether the online phase trains this algorithm (BC only imitates the data it was given).
    learns_online: ClassVar[bool] = True

    def __init__(self, config: AlgorithmConfig, obs_dim: int, action_dim: int):
        super().__init__()
        self.config = config
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.updates = 0

    # -- the two things the harness calls ---------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step; returns detached scalar tensors (converted to floats only when logged)."""
        raise NotImplementedError

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        raise NotImplementedError

    # -- optional hooks ---------------------------------------------------------------------------
    @classmethod
    def select_episodes(cls, config: AlgorithmConfig, returns: np.ndarray) -> np.ndarray | None:
        """A boolean mask of dataset episodes to train on (BC-x%), from their returns; None keeps all."""
        return None

    def begin_online(self) -> None:
        """Called once between the offline and the online phase."""

    # -- checkpoints ------------------------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {name: value for name, value in vars(self).items() if isinstance(value, torch.optim.Optimizer)}

    def checkpoint_state(self) -> dict[str, Any]:
        return {"modules": self.state_dict(), "updates": self.updates,
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers().items()}}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["modules"])
        self.updates = state["updates"]
        for name, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    description: str
    algorithm_class: type[Algorithm]
    config_class: type[AlgorithmConfig]
    defaults: dict[str, Any]  # overrides this registered variant applies over the config's defaults
    paper: str


_REGISTRY: dict[str, AlgorithmSpec] = {}


def register(name: str, description: str, paper: str, **defaults: Any):
    """Class decorator: make an algorithm available under ``name`` (call again for variants like bc-10%)."""

    def decorate(cls: type[Algorithm]) -> type[Algorithm]:
        _REGISTRY[name] = AlgorithmSpec(name, description, cls, cls.config_class, defaults, paper)
        return cls

    return decorate
