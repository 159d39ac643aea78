"""CQL: conservative Q-learning on top of SAC (Kumar et al., 2020), the dissertation's baseline.

    for each gradient step:
        a' ~ pi(s');  y = r + gamma (1 - d) min_j Q_target_j(s', a')
        penalty_j = logsumexp over sampled actions of [ Q_j(s, a_rand) - log U(a_rand),
                                                       Q_j(s, a_pi(s)) - log pi(a_pi(s)|s),
                                                       Q_j(s, a_pi(s')) - log pi(a_pi(s')|s') ]
                    - Q_j(s, a_data)                     (CQL(H) with importance sampling)
        L_Q = sum_j E[(Q_j(s, a) - y)^2] + alpha_cql * E[penalty_j]
              (Lagrange variant: alpha' adapts so that E[penalty] stays at target_action_gap)
        L_pi = E[ alpha log pi(a|s) - min_j Q_j(s, a) ], a ~ pi(s);  alpha tuned to entropy -|A|
The sampled-action passes dominate the cost: the Q-ensemble sees 3N+1 actions per state, and
they run as one batched pass here.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from bench.algorithms.base import Algorithm, Batch, register
from bench.algorithms.config import AlgorithmConfig, param
from bench.algorithms.networks import Critic, TanhGaussianPolicy, polyak_update
from bench.algorithms.sac import actor_and_temperature_losses


@dataclass
class CQLConfig(AlgorithmConfig):
    hidden_dims: tuple[int, ...] = param((256, 256, 256), "CQL paper / CORL: 3x256 for Q and policy")
    actor_learning_rate: float = param(1e-4, "CQL paper (1e-4; CORL uses 3e-5)")
    critic_learning_rate: float = param(3e-4, "CQL paper / CORL")
    alpha_learning_rate: float = param(1e-4, "CORL (SAC temperature)")
    polyak: float = param(5e-3, "SAC / CORL")
    num_sampled_actions: int = param(10, "CQL paper, N=10 actions per state for the logsumexp")
    cql_alpha: float = param(5.0, "CQL paper: 5.0 for Gym (d3rlpy default); CORL uses 10.0")
    lagrange: bool = param(False, "CQL paper: the Lagrange variant adapts alpha' to a target gap")
    target_action_gap: float = param(5.0, "CQL paper: tau = 5 (Lagrange threshold)")
    temperature: float = param(1.0, "CQL paper: logsumexp temperature")

    PRESETS = {"maze": {"lagrange": True, "target_action_gap": 0.8, "reward_transform": "minus_one"}}
    PRESET_SOURCES = {"maze": "CQL paper, AntMaze settings (Lagrange, tau 0.8; CORL's reward - 1)"}


@register("cql", "Conservative Q-learning (SAC + logsumexp penalty on sampled actions; fixed alpha or Lagrange)",
          paper="Kumar et al., 2020 (baseline in dissertation ch. 7-8)")
@register("cql-lagrange", "CQL with the Lagrange-tuned penalty weight", paper="Kumar et al., 2020", lagrange=True)
class CQL(Algorithm):
    name = "cql"
    config_class = CQLConfig

    def __init__(self, config: CQLConfig, obs_dim: int, action_dim: int):
        super().__init__(config, obs_dim, action_dim)
        self.policy = TanhGaussianPolicy(obs_dim, action_dim, config.hidden_dims)
        self.critic = Critic(obs_dim, action_dim, config.hidden_dims)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.nn.Parameter(torch.zeros(()))
        self.log_alpha_prime = torch.nn.Parameter(torch.zeros(()))
        self.target_entropy = -float(action_dim)
        self.optimizer = torch.optim.Adam([
            {"params": self.policy.parameters(), "lr": config.actor_learning_rate},
            {"params": self.critic.parameters(), "lr": config.critic_learning_rate},
            {"params": [self.log_alpha], "lr": config.alpha_learning_rate},
            {"params": [self.log_alpha_prime], "lr": config.critic_learning_rate}], fused=True)

    def losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        b, n = batch.obs.shape[0], c.num_sampled_actions

        # Policy and temperature (SAC). The critic is read with detached weights, so the policy
        # loss moves only the policy.
        policy_loss, alpha_loss, _ = actor_and_temperature_losses(self.policy, self.critic, self.log_alpha,
                                                                  self.target_entropy, batch.obs)
        alpha = self.log_alpha.exp()

        # Sampled actions for the penalty: N per state from the policy at s and at s' (one policy
        # pass over both), and N uniform.
        with torch.no_grad():
            both_obs = torch.cat([batch.obs, batch.next_obs]).repeat_interleave(n, 0)
            sampled, sampled_log_prob = self.policy.sample(both_obs)
            current_actions, next_actions = sampled.view(2, b * n, -1)
            current_log_prob, next_log_prob = sampled_log_prob.view(2, b * n)
            random_actions = torch.empty_like(current_actions).uniform_(-1.0, 1.0)
            # TD target with one a' ~ pi(s') per transition (the first of its N samples).
            next_q = self.target_critic(batch.next_obs, next_actions.view(b, n, -1)[:, 0]).min(0).values
            target = batch.reward + c.discount * (1.0 - batch.done) * next_q

        # Every Q-value the critic loss needs, in one ensemble pass: 3N sampled actions and the data's.
        repeated_obs = batch.obs.repeat_interleave(n, 0)
        q_all = self.critic(torch.cat([repeated_obs, repeated_obs, repeated_obs, batch.obs]),
                            torch.cat([random_actions, current_actions, next_actions, batch.action]))
        q_random, q_current, q_next = q_all[:, :3 * b * n].reshape(-1, 3, b, n).unbind(1)
        q_data = q_all[:, 3 * b * n:]
        log_uniform = self.action_dim * math.log(0.5)
        importance = torch.cat([q_random - log_uniform, q_current - current_log_prob.view(b, n),
                                q_next - next_log_prob.view(b, n)], dim=-1)
        penalty = (torch.logsumexp(importance / c.temperature, dim=-1) * c.temperature - q_data).mean(-1)
        td_loss = (q_data - target).pow(2).mean(-1).sum()
        if c.lagrange:
            # alpha' rises while the penalty exceeds the target gap, and falls once it is below.
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            conservative_loss = (alpha_prime.detach() * c.cql_alpha * (penalty - c.target_action_gap)).sum()
            alpha_prime_loss = -(alpha_prime * c.cql_alpha * (penalty.detach() - c.target_action_gap)).sum()
        else:
            conservative_loss = c.cql_alpha * penalty.sum()
            alpha_prime_loss = torch.zeros(())
        metrics = {"critic_loss": td_loss.detach(), "cql_penalty": penalty.detach().mean(),
                   "policy_loss": policy_loss.detach(), "alpha": alpha.detach(), "q": q_data.detach().mean()}
        return policy_loss + alpha_loss + td_loss + conservative_loss + alpha_prime_loss, metrics

    def after_step(self) -> None:
        polyak_update(self.target_critic, self.critic, self.config.polyak)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self.policy.act(obs, deterministic)
