"""IQL: implicit Q-learning (dissertation ch. 8, Algorithm 6; Kostrikov et al., 2021).

    for each gradient step:
        L_V(psi)   = E_{(s,a)~D} [ L2_tau( min_j Q_target_j(s, a) - V_psi(s) ) ]             (eq. 47)
                     with the expectile loss L2_tau(u) = |tau - 1(u < 0)| u^2
        L_Q(theta) = E_{(s,a,s')~D} [ (r + gamma V_psi(s') - Q_theta_j(s, a))^2 ], j = 1, 2   (eq. 48)
        theta_target <- (1 - alpha) theta_target + alpha theta
        L_pi(phi)  = -E_{(s,a)~D} [ exp(beta (min_j Q_target_j(s, a) - V_psi(s))) log pi_phi(a|s) ]  (eq. 49)
No loss ever evaluates Q on an action outside the data. The policy is extracted concurrently
with value learning (the same step, as the IQL code does), which is also how it keeps learning
online. All three losses are computed from the networks before the step (V(s') in the TD target
included, as in CORL), then one backward pass and one optimizer step update all three.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch

from bench.algorithms.base import Algorithm, Batch, register
from bench.algorithms.config import AlgorithmConfig, param
from bench.algorithms.networks import Critic, DeterministicPolicy, GaussianPolicy, ValueFunction, polyak_update


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric squared loss |tau - 1(u < 0)| u^2: tau = 0.5 is MSE, tau -> 1 approaches a max."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return weight * diff.pow(2)


@dataclass
class IQLConfig(AlgorithmConfig):
    expectile: float = param(0.7, "IQL paper: 0.7 for locomotion and Kitchen/Adroit, 0.9 for AntMaze")
    temperature: float = param(3.0, "IQL paper: inverse temperature beta, 3 for locomotion, 10 for AntMaze")
    learning_rate: float = param(3e-4, "IQL paper, appendix (all networks)")
    polyak: float = param(5e-3, "IQL paper, appendix (alpha in Algorithm 6)")
    max_weight: float = param(100.0, "IQL code: exp(beta A) clipped at 100")
    policy: str = param("gaussian", "IQL paper: Gaussian with state-independent std; 'deterministic' for MSE-AWR")
    policy_dropout: float = param(0.0, "IQL paper: 0.1 on Kitchen/Adroit policies, none elsewhere")

    PRESETS: ClassVar[dict] = {
        "locomotion": {"expectile": 0.7, "temperature": 3.0, "reward_transform": "returns"},
        "maze": {"expectile": 0.9, "temperature": 10.0, "reward_transform": "minus_one"},
        "kitchen-adroit": {"expectile": 0.7, "temperature": 0.5, "policy_dropout": 0.1},
        "goal-reaching": {"expectile": 0.9, "temperature": 3.0},
    }
    PRESET_SOURCES: ClassVar[dict] = {
        "locomotion": "IQL paper, D4RL MuJoCo settings",
        "maze": "IQL paper, AntMaze settings (mazes need stitching)",
        "kitchen-adroit": "IQL paper, Kitchen/Adroit settings",
        "goal-reaching": "OGBench GCIQL (expectile 0.9, AWR temperature 3 on manipulation)",
    }


@register("iql", "Implicit Q-learning: expectile V, TD Q on dataset actions only, AWR policy extraction",
          paper="dissertation ch. 8 (Kostrikov et al., 2021)")
class IQL(Algorithm):
    name = "iql"
    config_class = IQLConfig

    def __init__(self, config: IQLConfig, obs_dim: int, action_dim: int):
        super().__init__(config, obs_dim, action_dim)
        policy_class = GaussianPolicy if config.policy == "gaussian" else DeterministicPolicy
        self.policy = policy_class(obs_dim, action_dim, config.hidden_dims, dropout=config.policy_dropout)
        self.critic = Critic(obs_dim, action_dim, config.hidden_dims)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = ValueFunction(obs_dim, config.hidden_dims)
        # One optimizer for the three networks: their losses touch disjoint parameters, so one
        # backward pass and one fused Adam step equal three separate ones, at a third of the overhead.
        self.optimizer = torch.optim.Adam([*self.value.parameters(), *self.critic.parameters(),
                                           *self.policy.parameters()], lr=config.learning_rate, fused=True)

    def losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        with torch.no_grad():
            target_q = self.target_critic(batch.obs, batch.action).min(0).values
            td_target = batch.reward + c.discount * (1.0 - batch.done) * self.value(batch.next_obs)

        # Eq. 47: V towards an upper expectile of the target Q over dataset actions.
        value = self.value(batch.obs)
        advantage = target_q - value
        value_loss = expectile_loss(advantage, c.expectile).mean()

        # Eq. 48: both Q-functions towards r + gamma V(s'); the clipped double Q enters through V's target.
        q = self.critic(batch.obs, batch.action)
        critic_loss = (q - td_target).pow(2).mean(1).sum()

        # Eq. 49: advantage-weighted regression onto the dataset's actions (the advantage is a constant here).
        weight = torch.exp(c.temperature * advantage.detach()).clamp(max=c.max_weight)
        if isinstance(self.policy, GaussianPolicy):
            policy_loss = -(weight * self.policy.log_prob(batch.obs, batch.action)).mean()
        else:
            policy_loss = (weight * (self.policy(batch.obs) - batch.action).pow(2).sum(-1)).mean()

        metrics = {"value_loss": value_loss.detach(), "critic_loss": critic_loss.detach(),
                   "policy_loss": policy_loss.detach(), "v": value.detach().mean(), "q": q.detach().mean()}
        return value_loss + critic_loss + policy_loss, metrics

    def after_step(self) -> None:
        polyak_update(self.target_critic, self.critic, self.config.polyak)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        self.policy.eval()
        action = self.policy.act(obs, deterministic)
        self.policy.train()
        return action
