"""AWAC: advantage-weighted actor-critic (dissertation ch. 7, Algorithm 5; Nair et al., 2020).

    initialize buffer beta = D
    for each iteration:
        (s, a, s', r) ~ beta
        y = r + gamma * E_{a' ~ pi(s')} [ min_j Q_target_j(s', a') ]           (line 6, twin Q)
        phi   <- argmin E[(Q_phi(s, a) - y)^2]                                    (line 7)
        theta <- argmax E[ log pi_theta(a | s) * exp(A(s, a) / lambda) ]          (line 8, eq. 42)
                 with A(s, a) = Q(s, a) - E_{a~pi(s)} Q(s, a), one policy sample
        online: add the policy's trajectories to beta                             (lines 9-11)
No behaviour model is fit: the dataset's actions are weighted directly.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from bench.algorithms.base import Algorithm, Batch, register
from bench.algorithms.config import AlgorithmConfig, param
from bench.algorithms.networks import Critic, GaussianPolicy, polyak_update


@dataclass
class AWACConfig(AlgorithmConfig):
    awac_lambda: float = param(1.0, "AWAC paper / CORL awac_lambda for D4RL (the temperature lambda of eq. 42)")
    actor_learning_rate: float = param(3e-4, "AWAC paper, appendix")
    critic_learning_rate: float = param(3e-4, "AWAC paper, appendix")
    polyak: float = param(5e-3, "soft target update rate (AWAC paper, appendix)")
    max_weight: float = param(100.0, "CORL: clip exp(A / lambda) at 100 so one sample cannot dominate")


@register("awac", "Advantage-weighted actor-critic: TD twin critic, actor by exp(A/lambda)-weighted likelihood",
          paper="dissertation ch. 7 (Nair et al., 2020)")
class AWAC(Algorithm):
    name = "awac"
    config_class = AWACConfig

    def __init__(self, config: AWACConfig, obs_dim: int, action_dim: int,
                 trunk: Callable[[], nn.Module] | None = None):
        """``trunk``: a factory of the module that reads observations first (a conv over latent grids), one
        per network; None reads them with the MLPs alone."""
        super().__init__(config, obs_dim, action_dim)
        self.policy = GaussianPolicy(obs_dim, action_dim, config.hidden_dims, trunk=trunk() if trunk else None)
        self.critic = Critic(obs_dim, action_dim, config.hidden_dims, trunk=trunk() if trunk else None)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        # One optimizer, two parameter groups: the critic and actor losses touch disjoint
        # parameters (the weights are constants), so one backward pass and one step do both.
        self.optimizer = torch.optim.Adam([
            {"params": self.critic.parameters(), "lr": config.critic_learning_rate},
            {"params": self.policy.parameters(), "lr": config.actor_learning_rate}], fused=True)

    def losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        with torch.no_grad():
            # Line 6: the TD target with the current policy's next action, clipped double Q.
            next_action = self.policy.act(batch.next_obs, deterministic=False)
            next_q = self.target_critic(batch.next_obs, next_action).min(0).values
            target = batch.reward + c.discount * (1.0 - batch.done) * next_q
            # A(s, a) = Q(s, a) - E_{a'~pi(s)} Q(s, a'), one sample; both Q values in one critic pass.
            policy_action = self.policy.act(batch.obs, deterministic=False)
            both = self.critic(torch.cat([batch.obs, batch.obs]), torch.cat([policy_action, batch.action]))
            value, q_data = both.min(0).values.chunk(2)
            advantage = q_data - value
            weight = torch.exp(advantage / c.awac_lambda).clamp(max=c.max_weight)

        # Line 7: regress both critics on the target.
        q = self.critic(batch.obs, batch.action)
        critic_loss = (q - target).pow(2).mean(1).sum()
        # Line 8 (eq. 42): advantage-weighted maximum likelihood of the buffer's actions.
        policy_loss = -(weight * self.policy.log_prob(batch.obs, batch.action)).mean()

        metrics = {"critic_loss": critic_loss.detach(), "policy_loss": policy_loss.detach(),
                   "q": q.detach().mean(), "advantage": advantage.mean()}
        return critic_loss + policy_loss, metrics

    def after_step(self) -> None:
        polyak_update(self.target_critic, self.critic, self.config.polyak)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self.policy.act(obs, deterministic)
