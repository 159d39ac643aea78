"""bench's fast updates equal a straightforward implementation of the same equations, step for step.

bench's update is shaped for speed (twin critics as one batched ensemble, one backward pass and one
fused Adam step over every network, a compiled loss). Each reference here is written the plain way,
as CORL would: one ``nn.Sequential`` per network (Q1 and Q2 apart), one loss per network from its
equation, one non-fused Adam per network, gradients taken loss by loss. Both start from the same
weights, take the same fixed batches, and (where a loss draws noise) draw the same noise in the same
order; after a few updates every weight, and every target weight, must agree to float tolerance.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bench.algorithms import Batch, build_algorithm, make_config
from bench.algorithms.networks import EnsembleMLP

OBS, ACT, BATCH, STEPS = 5, 3, 32, 3
HIDDEN = (16, 16)


def batches(count: int = STEPS) -> list[Batch]:
    g = torch.Generator().manual_seed(7)
    out = []
    for _ in range(count):
        out.append(Batch(obs=torch.randn(BATCH, OBS, generator=g),
                         action=torch.rand(BATCH, ACT, generator=g) * 1.8 - 0.9,
                         reward=torch.randn(BATCH, generator=g),
                         next_obs=torch.randn(BATCH, OBS, generator=g),
                         done=(torch.rand(BATCH, generator=g) < 0.2).float()))
    return out


def member_mlp(ensemble: EnsembleMLP, member: int) -> nn.Sequential:
    """One member of a batched ensemble as the plain MLP it stands for (weights copied)."""
    layers: list[nn.Module] = []
    for layer in [*ensemble.hidden, ensemble.out]:
        weight = layer.weight[member].detach()  # (in, out)
        linear = nn.Linear(weight.shape[0], weight.shape[1])
        with torch.no_grad():
            linear.weight.copy_(weight.T)
            linear.bias.copy_(layer.bias[member, 0])
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def assert_member_equal(ensemble: EnsembleMLP, member: int, reference: nn.Sequential) -> None:
    linears = [m for m in reference if isinstance(m, nn.Linear)]
    for layer, linear in zip([*ensemble.hidden, ensemble.out], linears, strict=True):
        torch.testing.assert_close(layer.weight[member].detach().T, linear.weight.detach(), atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(layer.bias[member, 0].detach(), linear.bias.detach(), atol=2e-5, rtol=1e-4)


def assert_same(module: nn.Module, reference: nn.Module) -> None:
    for (name, ours), (_, theirs) in zip(module.named_parameters(), reference.named_parameters(), strict=True):
        torch.testing.assert_close(ours.detach(), theirs.detach(), atol=2e-5, rtol=1e-4, msg=name)


class PlainTwin:
    """Bench's twin critic as two plain MLPs, each with its own target copy."""

    def __init__(self, critic):
        self.q1, self.q2 = member_mlp(critic.net, 0), member_mlp(critic.net, 1)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)

    def parameters(self) -> list[nn.Parameter]:
        return [*self.q1.parameters(), *self.q2.parameters()]

    def soft_update(self, tau: float) -> None:
        soft_update(self.q1_target, self.q1, tau)
        soft_update(self.q2_target, self.q2, tau)

    def assert_matches(self, algo) -> None:
        for member, (q, q_target) in enumerate([(self.q1, self.q1_target), (self.q2, self.q2_target)]):
            assert_member_equal(algo.critic.net, member, q)
            assert_member_equal(algo.target_critic.net, member, q_target)


def q_of(net: nn.Sequential, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    return net(torch.cat([obs, action], -1)).squeeze(-1)


def step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Gradients of one network's loss w.r.t. that network alone, then its own Adam step."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True)):
        p.grad = g
    optimizer.step()


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.mul_(1 - tau).add_(tau * s)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    std = log_std.clamp(-5.0, 2.0).exp()
    return torch.distributions.Normal(mean, std).log_prob(action).sum(-1)


def build(name: str, compiled: bool = False, **overrides):
    torch.manual_seed(0)
    algo = build_algorithm(name, make_config(name, overrides={"hidden_dims": HIDDEN, **overrides}), OBS, ACT)
    if compiled:
        algo.compile_losses()
    return algo


# -- BC ---------------------------------------------------------------------------------------------
def test_bc_equals_plain_mse_regression():
    algo = build("bc")
    policy = copy.deepcopy(algo.policy.net)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-4)
    for batch in batches():
        algo.update(batch)
        step(optimizer, ((torch.tanh(policy(batch.obs)) - batch.action) ** 2).sum(-1).mean())
    assert_same(algo.policy.net, policy)


# -- IQL --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_iql_equals_plain_implementation(compiled):
    algo = build("iql", compiled=compiled)
    c = algo.config
    critics = PlainTwin(algo.critic)
    q1, q2, q1_target, q2_target = critics.q1, critics.q2, critics.q1_target, critics.q2_target
    value = copy.deepcopy(algo.value.net)
    policy, log_std = copy.deepcopy(algo.policy.net), nn.Parameter(algo.policy.log_std.detach().clone())
    opt_v = torch.optim.Adam(value.parameters(), lr=c.learning_rate)
    opt_q = torch.optim.Adam(critics.parameters(), lr=c.learning_rate)
    opt_pi = torch.optim.Adam([*policy.parameters(), log_std], lr=c.learning_rate)

    for batch in batches():
        algo.update(batch)
        # Every loss from the networks before the step (as bench and CORL do).
        with torch.no_grad():
            target_q = torch.min(q_of(q1_target, batch.obs, batch.action), q_of(q2_target, batch.obs, batch.action))
            next_v = value(batch.next_obs).squeeze(-1)
        v = value(batch.obs).squeeze(-1)
        u = target_q - v
        value_loss = (torch.abs(c.expectile - (u < 0).float()) * u ** 2).mean()                      # eq. 47
        y = batch.reward + c.discount * (1 - batch.done) * next_v
        critic_loss = F.mse_loss(q_of(q1, batch.obs, batch.action), y) + \
            F.mse_loss(q_of(q2, batch.obs, batch.action), y)                                         # eq. 48
        weight = torch.exp(c.temperature * u.detach()).clamp(max=c.max_weight)
        policy_loss = -(weight * gaussian_log_prob(torch.tanh(policy(batch.obs)), log_std, batch.action)).mean()  # eq. 49
        step(opt_v, value_loss)
        step(opt_q, critic_loss)
        step(opt_pi, policy_loss)
        critics.soft_update(c.polyak)

    assert_same(algo.value.net, value)
    assert_same(algo.policy.net, policy)
    torch.testing.assert_close(algo.policy.log_std.detach(), log_std.detach(), atol=2e-5, rtol=1e-4)
    critics.assert_matches(algo)


# -- AWAC -------------------------------------------------------------------------------------------
def test_awac_equals_plain_implementation():
    algo = build("awac")
    c = algo.config
    critics = PlainTwin(algo.critic)
    q1, q2, q1_target, q2_target = critics.q1, critics.q2, critics.q1_target, critics.q2_target
    policy, log_std = copy.deepcopy(algo.policy.net), nn.Parameter(algo.policy.log_std.detach().clone())
    opt_q = torch.optim.Adam(critics.parameters(), lr=c.critic_learning_rate)
    opt_pi = torch.optim.Adam([*policy.parameters(), log_std], lr=c.actor_learning_rate)

    def sample(obs):  # the policy's stochastic action, clipped to the action box
        mean = torch.tanh(policy(obs))
        return (mean + log_std.clamp(-5.0, 2.0).exp() * torch.randn_like(mean)).clamp(-1.0, 1.0)

    def min_q(obs, action):
        return torch.min(q_of(q1, obs, action), q_of(q2, obs, action))

    for index, batch in enumerate(batches()):
        torch.manual_seed(100 + index)
        algo.update(batch)
        torch.manual_seed(100 + index)  # the same noise, drawn in the same order
        with torch.no_grad():
            next_action = sample(batch.next_obs)
            y = batch.reward + c.discount * (1 - batch.done) * torch.min(
                q_of(q1_target, batch.next_obs, next_action), q_of(q2_target, batch.next_obs, next_action))
            advantage = min_q(batch.obs, batch.action) - min_q(batch.obs, sample(batch.obs))
            weight = torch.exp(advantage / c.awac_lambda).clamp(max=c.max_weight)
        critic_loss = F.mse_loss(q_of(q1, batch.obs, batch.action), y) + F.mse_loss(q_of(q2, batch.obs, batch.action), y)
        policy_loss = -(weight * gaussian_log_prob(torch.tanh(policy(batch.obs)), log_std, batch.action)).mean()
        step(opt_q, critic_loss)
        step(opt_pi, policy_loss)
        critics.soft_update(c.polyak)

    assert_same(algo.policy.net, policy)
    critics.assert_matches(algo)


# -- CQL --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lagrange", [False, True], ids=["fixed-alpha", "lagrange"])
def test_cql_equals_plain_implementation(lagrange):
    algo = build("cql", lagrange=lagrange, hidden_dims=HIDDEN)
    c, n = algo.config, algo.config.num_sampled_actions
    critics = PlainTwin(algo.critic)
    q1, q2, q1_target, q2_target = critics.q1, critics.q2, critics.q1_target, critics.q2_target
    policy = copy.deepcopy(algo.policy.net)
    log_alpha, log_alpha_prime = nn.Parameter(torch.zeros(())), nn.Parameter(torch.zeros(()))
    opt_pi = torch.optim.Adam(policy.parameters(), lr=c.actor_learning_rate)
    opt_q = torch.optim.Adam(critics.parameters(), lr=c.critic_learning_rate)
    opt_alpha = torch.optim.Adam([log_alpha], lr=c.alpha_learning_rate)
    opt_alpha_prime = torch.optim.Adam([log_alpha_prime], lr=c.critic_learning_rate)

    def sample(obs):  # tanh-Gaussian: a reparameterized action and its log-density
        mean, log_std = policy(obs).chunk(2, -1)
        std = log_std.clamp(-5.0, 2.0).exp()
        u = mean + std * torch.randn_like(mean)
        log_prob = torch.distributions.Normal(mean, std).log_prob(u).sum(-1)
        # log |d tanh(u)/du| = log(1 - tanh(u)^2), in its stable form.
        return torch.tanh(u), log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)

    for index, batch in enumerate(batches()):
        torch.manual_seed(200 + index)
        algo.update(batch)
        torch.manual_seed(200 + index)
        b = BATCH
        # SAC's actor and temperature losses, the critic held constant.
        action, log_prob = sample(batch.obs)
        q_pi = torch.min(q_of(q1, batch.obs, action), q_of(q2, batch.obs, action))
        policy_loss = (log_alpha.exp().detach() * log_prob - q_pi).mean()
        alpha_loss = -(log_alpha * (log_prob.detach() - ACT)).mean()
        with torch.no_grad():
            # N actions per state at s and at s' (drawn in one pass, s first), then N uniform ones.
            sampled, sampled_log_prob = sample(torch.cat([batch.obs, batch.next_obs]).repeat_interleave(n, 0))
            a_current, a_next = sampled[:b * n].view(b, n, ACT), sampled[b * n:].view(b, n, ACT)
            lp_current, lp_next = sampled_log_prob[:b * n].view(b, n), sampled_log_prob[b * n:].view(b, n)
            a_random = torch.empty(b * n, ACT).uniform_(-1.0, 1.0).view(b, n, ACT)
            next_a = a_next[:, 0]
            y = batch.reward + c.discount * (1 - batch.done) * torch.min(
                q_of(q1_target, batch.next_obs, next_a), q_of(q2_target, batch.next_obs, next_a))
        obs_n = batch.obs.unsqueeze(1).expand(b, n, OBS)
        critic_loss, penalties = 0.0, []
        for q in (q1, q2):
            q_data = q_of(q, batch.obs, batch.action)
            stacked = torch.cat([q_of(q, obs_n, a_random) - ACT * math.log(0.5),
                                 q_of(q, obs_n, a_current) - lp_current,
                                 q_of(q, obs_n, a_next) - lp_next], dim=1)
            penalty = (torch.logsumexp(stacked / c.temperature, dim=1) * c.temperature - q_data).mean()
            penalties.append(penalty)
            critic_loss = critic_loss + F.mse_loss(q_data, y)
        penalties = torch.stack(penalties)
        if lagrange:
            alpha_prime = log_alpha_prime.exp().clamp(0.0, 1e6)
            critic_loss = critic_loss + (alpha_prime.detach() * c.cql_alpha * (penalties - c.target_action_gap)).sum()
            step(opt_alpha_prime, -(alpha_prime * c.cql_alpha * (penalties.detach() - c.target_action_gap)).sum())
        else:
            critic_loss = critic_loss + c.cql_alpha * penalties.sum()
        step(opt_pi, policy_loss)
        step(opt_alpha, alpha_loss)
        step(opt_q, critic_loss)
        critics.soft_update(c.polyak)

    assert_same(algo.policy.net, policy)
    torch.testing.assert_close(algo.log_alpha.detach(), log_alpha.detach(), atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(algo.log_alpha_prime.detach(), log_alpha_prime.detach(), atol=2e-5, rtol=1e-4)
    critics.assert_matches(algo)
