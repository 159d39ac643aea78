"""Behaviour cloning, and BC-x%: cloning only the top x% of episodes by return (as CORL's "10% BC").

    for each gradient step:
        (s, a) ~ D                      (D restricted to the top x% of episodes for BC-x%)
        deterministic policy:  minimize ||pi(s) - a||^2
        Gaussian policy:       maximize log pi(a | s)
BC has no reward or critic, so it does not learn online: its online results equal its offline ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bench.algorithms.base import Algorithm, Batch, register
from bench.algorithms.config import AlgorithmConfig, param
from bench.algorithms.networks import DeterministicPolicy, GaussianPolicy
from bench.errors import InvalidInput


@dataclass
class BCConfig(AlgorithmConfig):
    policy: str = param("deterministic", "CORL any_percent_bc (deterministic, MSE); 'gaussian' maximizes log-likelihood")
    learning_rate: float = param(3e-4, "CORL any_percent_bc")
    top_fraction: float = param(1.0, "1.0 = all episodes; CORL's 10% BC uses 0.1")
    relabel_keep: float = param(1.0, "bench: goal-conditioned BC keeps the data's goals unless told otherwise")
    relabel_future: float = param(0.0, "set > 0 for hindsight-relabeled goal-conditioned BC (GCBC)")
    relabel_random: float = param(0.0, "random goals carry no signal for imitation")


@register("bc", "Behaviour cloning of all episodes (deterministic MSE or Gaussian likelihood)", paper="-")
@register("bc-10%", "Behaviour cloning of the top 10% of episodes by return", paper="CORL (Tarasov et al., 2022)",
          top_fraction=0.1)
class BC(Algorithm):
    name = "bc"
    config_class = BCConfig
    learns_online = False

    def __init__(self, config: BCConfig, obs_dim: int, action_dim: int):
        super().__init__(config, obs_dim, action_dim)
        if config.policy not in ("deterministic", "gaussian"):
            raise InvalidInput(f"bc policy must be 'deterministic' or 'gaussian', got {config.policy!r}")
        if not 0.0 < config.top_fraction <= 1.0:
            raise InvalidInput(f"top_fraction must be in (0, 1], got {config.top_fraction}")
        policy_class = DeterministicPolicy if config.policy == "deterministic" else GaussianPolicy
        self.policy = policy_class(obs_dim, action_dim, config.hidden_dims)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.learning_rate, fused=True)

    @classmethod
    def select_episodes(cls, config: BCConfig, returns: np.ndarray) -> np.ndarray | None:
        if config.top_fraction >= 1.0:
            return None
        keep = max(1, int(np.ceil(config.top_fraction * len(returns))))
        order = np.argsort(-returns, kind="stable")
        mask = np.zeros(len(returns), dtype=bool)
        mask[order[:keep]] = True
        return mask

    def losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.config.policy == "deterministic":
            loss = (self.policy(batch.obs) - batch.action).pow(2).sum(-1).mean()
        else:
            loss = -self.policy.log_prob(batch.obs, batch.action).mean()
        return loss, {"policy_loss": loss.detach()}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self.policy.act(obs, deterministic)
