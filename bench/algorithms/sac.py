"""SAC (Haarnoja et al., 2018) and SACfD, the off-policy baselines of the dissertation's ch. 7 (AWAC).

    for each gradient step:
        a' ~ pi(s');  y = r + gamma (1 - d) (min_j Q_target_j(s', a') - alpha log pi(a'|s'))
        L_Q     = sum_j E[(Q_j(s, a) - y)^2]
        L_pi    = E[alpha log pi(a|s) - min_j Q_j(s, a)],  a ~ pi(s)   (reparameterized)
        L_alpha = -E[log alpha (log pi(a|s) + target entropy)],  target entropy -|A|
        (with ``actor_warmup`` K, only L_Q for the first K updates)
    sac     online from scratch: no offline phase, and the dataset never enters a batch
    sacfd   the dataset loaded into the replay: trained on it offline, then online on the union
            of the dataset and the agent's own transitions, sampled uniformly (AWAC's "SACfD")
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from bench.algorithms.base import Algorithm, Batch, register
from bench.algorithms.config import AlgorithmConfig, actor_warmup_param, param
from bench.algorithms.networks import Critic, TanhGaussianPolicy, polyak_update
from bench.errors import InvalidInput


def actor_and_temperature_losses(policy: TanhGaussianPolicy, critic: Critic, log_alpha: torch.Tensor,
                                 target_entropy: float, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SAC's L_pi (through the critic's weights held constant: it moves the policy only) and L_alpha;
    and the sampled actions' log-probabilities."""
    action, log_prob = policy.sample(obs)
    alpha = log_alpha.exp()
    constant = {name: p.detach() for name, p in critic.named_parameters()}
    q_policy = torch.func.functional_call(critic, constant, (obs, action)).min(0).values
    policy_loss = (alpha.detach() * log_prob - q_policy).mean()
    alpha_loss = -(log_alpha * (log_prob.detach() + target_entropy)).mean()
    return policy_loss, alpha_loss, log_prob.detach()


@dataclass
class SACConfig(AlgorithmConfig):
    actor_learning_rate: float = param(3e-4, "SAC paper (Haarnoja et al., 2018)")
    critic_learning_rate: float = param(3e-4, "SAC paper")
    alpha_learning_rate: float = param(3e-4, "SAC paper (automatic temperature)")
    polyak: float = param(5e-3, "SAC paper")
    actor_warmup: int = actor_warmup_param()

    def validate(self) -> None:
        super().validate()
        if self.actor_warmup < 0:
            raise InvalidInput("actor_warmup must be >= 0")


class SAC(Algorithm):
    """Twin-Q soft actor-critic with a tuned temperature; see the module docstring."""

    name = "sac"
    config_class = SACConfig
    learns_offline = False  # online from scratch

    def __init__(self, config: SACConfig, obs_dim: int, action_dim: int):
        super().__init__(config, obs_dim, action_dim)
        self.policy = TanhGaussianPolicy(obs_dim, action_dim, config.hidden_dims)
        self.critic = Critic(obs_dim, action_dim, config.hidden_dims)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.nn.Parameter(torch.zeros(()))
        self.target_entropy = -float(action_dim)
        self.optimizer = torch.optim.Adam([
            {"params": self.policy.parameters(), "lr": config.actor_learning_rate},
            {"params": self.critic.parameters(), "lr": config.critic_learning_rate},
            {"params": [self.log_alpha], "lr": config.alpha_learning_rate}], fused=True)

    def losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        policy_loss, alpha_loss, log_prob = actor_and_temperature_losses(
            self.policy, self.critic, self.log_alpha, self.target_entropy, batch.obs)
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_action, next_log_prob = self.policy.sample(batch.next_obs)
            next_q = self.target_critic(batch.next_obs, next_action).min(0).values - alpha * next_log_prob
            target = batch.reward + c.discount * (1.0 - batch.done) * next_q
        q = self.critic(batch.obs, batch.action)
        critic_loss = (q - target).pow(2).mean(1).sum()
        metrics = {"critic_loss": critic_loss.detach(), "policy_loss": policy_loss.detach(), "alpha": alpha,
                   "entropy": -log_prob.mean(), "q": q.detach().mean()}
        # The policy and temperature wait for the critic. Their losses are still computed: they draw the
        # same random numbers, so a run with a warm-up follows the same streams as one without.
        if self.updates < c.actor_warmup:
            return critic_loss, metrics
        return critic_loss + policy_loss + alpha_loss, metrics

    def after_step(self) -> None:
        polyak_update(self.target_critic, self.critic, self.config.polyak)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self.policy.act(obs, deterministic)


@dataclass
class SACOnlineConfig(SACConfig):
    online_fraction: float | None = param(1.0, "SAC from scratch: the agent's own transitions only")


@register("sac", "Soft actor-critic online from scratch: the dataset never enters a batch (ch. 7's baseline)",
          paper="Haarnoja et al., 2018 (baseline in dissertation ch. 7)")
class SACFromScratch(SAC):
    name = "sac"
    config_class = SACOnlineConfig


@register("sacfd", "SAC with the dataset in its replay: trained on it offline, then online on the union "
          "(AWAC's SACfD, ch. 7)", paper="dissertation ch. 7 (Nair et al., 2020), after Vecerik et al., 2017")
class SACFromDemonstrations(SAC):
    name = "sacfd"
    learns_offline = True  # the dataset is its replay from the first update
