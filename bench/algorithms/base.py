"""What every algorithm is: a config, networks, ``losses(batch)``, ``act(obs)``, checkpoints; the shared update step.

Algorithms see flat float tensors only. The harness turns observations (flat, dict, goal-
conditioned) into ``obs`` = normalized state, concatenated with the goal when there is one,
and actions into [-1, 1]; an algorithm never knows about environments, storage or databases.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from bench.algorithms.config import AlgorithmConfig
from bench.algorithms.devices import PRECISIONS
from bench.algorithms.networks import start_near_zero
from bench.errors import InvalidInput


@dataclass
class Batch:
    """A minibatch of transitions as tensors. ``done`` is 1 where the episode terminated (not truncated);
    ``demo`` is 1 on rows drawn from the dataset (the demonstrations of ch. 4.4), 0 on the agent's own."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    done: torch.Tensor
    demo: torch.Tensor | None = None


class Algorithm(nn.Module):
    """Base class: subclasses build networks and optimizers in ``__init__`` and implement ``losses``."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[AlgorithmConfig]] = AlgorithmConfig
    # Whether the online phase trains this algorithm (BC only imitates the data it was given).
    learns_online: ClassVar[bool] = True
    # Whether it trains on the dataset before the online phase (DDPG with demonstrations replays
    # them online instead: its runs get no offline updates, only the untrained policy's evaluation).
    learns_offline: ClassVar[bool] = True
    # Which kind of evaluation run drives it (bench.evaluation.kinds.RUN_KINDS): "states" (observations as
    # they are), "pixels" (images and imagined goals), "planning" or "state-planning" (subgoal plans).
    run_kind: ClassVar[str] = "states"

    def __init__(self, config: AlgorithmConfig, obs_dim: int, action_dim: int):
        super().__init__()
        self.config = config
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.updates = 0
        self.autocast_dtype: torch.dtype | None = None  # set_precision
        self._compiled_losses = None
        self.optimizer: torch.optim.Optimizer  # one optimizer; parameter groups where learning rates differ

    @property
    def device(self) -> torch.device:
        """Where the networks are (the CPU for an algorithm without any)."""
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    def set_precision(self, precision: str) -> None:
        """``fp32``, or ``bf16``: each update's losses computed under bfloat16 autocast (the weights, their
        gradients and the optimizer's state stay fp32; acting stays fp32)."""
        self.autocast_dtype = PRECISIONS[precision]

    def autocast(self) -> contextlib.AbstractContextManager:
        """The precision the losses are computed in (nothing for fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # -- what a subclass writes: its losses (the algorithm box) and what follows a step ------------
    def losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The sum of this step's losses and the detached metrics to log.

        Subclasses arrange their losses to touch disjoint parameters (targets and weights are
        constants), so one backward pass and one optimizer step equal a separate step per network.
        """
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after each optimizer step (target-network updates)."""

    # -- what the harness calls ---------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step; returns detached scalar tensors (converted to floats only when logged)."""
        with self.autocast():
            loss, metrics = (self._compiled_losses or self.losses)(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.after_step()
        self.updates += 1
        return metrics

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        raise NotImplementedError

    def compile_losses(self) -> None:
        """Run ``losses`` through torch.compile: fused elementwise kernels and no per-op Python overhead.

        It pays on long runs (about +20% updates/s for IQL at 2x256 on a 2-core CPU, +65% at 2x64)
        and costs ~15 s of compilation once per process.
        """
        self._compiled_losses = torch.compile(self.losses)

    # -- optional hooks ---------------------------------------------------------------------------
    @classmethod
    def select_episodes(cls, config: AlgorithmConfig, returns: np.ndarray) -> np.ndarray | None:
        """A boolean mask of dataset episodes to train on (BC-x%), from their returns; None keeps all."""
        return None

    def start_near_zero(self) -> None:
        """Residual RL (ch. 5.3): the policy's last layer starts near zero, so that its first actions add
        almost nothing to the controller's and learning starts from the controller."""
        policy = getattr(self, "policy", None)
        if policy is None or not hasattr(policy, "net"):
            raise InvalidInput(f"{self.name} has no policy network to learn a residual with")
        start_near_zero(policy.net)

    def begin_online(self) -> None:
        """Called once between the offline and the online phase."""

    # -- checkpoints ------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        return {"modules": self.state_dict(), "updates": self.updates, "optimizer": self.optimizer.state_dict()}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["modules"])
        self.updates = state["updates"]
        self.optimizer.load_state_dict(state["optimizer"])


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    description: str
    algorithm_class: type[Algorithm]
    config_class: type[AlgorithmConfig]
    defaults: dict[str, Any]  # overrides this registered variant applies over the config's defaults
    paper: str


REGISTRY: dict[str, AlgorithmSpec] = {}


def register(name: str, description: str, paper: str, **defaults: Any):
    """Class decorator: make an algorithm available under ``name`` (call again for variants like bc-10%)."""

    def decorate(cls: type[Algorithm]) -> type[Algorithm]:
        REGISTRY[name] = AlgorithmSpec(name, description, cls, cls.config_class, defaults, paper)
        return cls

    return decorate
