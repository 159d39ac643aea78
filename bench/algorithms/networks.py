"""Network builders shared by the algorithms: MLPs, fused critic ensembles, and policy heads.

Twin critics are one ensemble whose layers are batched matrix multiplies (``baddbmm``), so
the two Q-functions cost one kernel per layer instead of two; on a CPU at batch 256 that is
most of the difference between a fast and a slow critic update.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, dropout: float = 0.0,
        layer_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    dim = in_dim
    for width in hidden:
        layers.append(nn.Linear(dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        dim = width
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """``members`` independent linear layers applied in one batched matmul: (E, B, in) -> (E, B, out)."""

    def __init__(self, members: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim))
        # nn.Linear's initialisation, per member.
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """E MLPs evaluated together. Input (B, in) is shared by all members; output is (E, B, out)."""

    def __init__(self, members: int, in_dim: int, hidden: tuple[int, ...], out_dim: int, layer_norm: bool = False):
        super().__init__()
        self.members = members
        dims = [in_dim, *hidden]
        self.hidden = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(nn.LayerNorm(b) for b in hidden) if layer_norm else None
        self.out = EnsembleLinear(members, dims[-1], out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            # The first layer sees the same input for every member: one matmul against the
            # members' weights laid side by side, then split, instead of E copies of the input.
            first = self.hidden[0]
            e, d_in, d_out = first.weight.shape
            h = (x @ first.weight.permute(1, 0, 2).reshape(d_in, e * d_out)).view(x.shape[0], e, d_out)
            h = h.transpose(0, 1) + first.bias
        else:
            h = self.hidden[0](x)
        h = self._activate(h, 0)
        for index, layer in enumerate(list(self.hidden)[1:], start=1):
            h = self._activate(layer(h), index)
        return self.out(h)

    def _activate(self, h: torch.Tensor, index: int) -> torch.Tensor:
        if self.norms is not None:
            h = self.norms[index](h)
        return F.relu(h)


RESIDUAL_INIT = 3e-3  # rlkit's last-layer initialisation (the code ch. 5-6 used), uniform in +-3e-3


def start_near_zero(net: nn.Sequential) -> None:
    """Re-initialise an MLP's last layer uniformly in +-RESIDUAL_INIT: outputs start near zero.

    Residual RL (ch. 5.3) wants the policy's first actions to add nothing to the controller's."""
    last = [module for module in net.modules() if isinstance(module, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.uniform_(-RESIDUAL_INIT, RESIDUAL_INIT)
        last.bias.uniform_(-RESIDUAL_INIT, RESIDUAL_INIT)


class GridTrunk(nn.Module):
    """Flat observations made of ``parts`` spatial grids (e.g. a VQ-VAE latent and its goal) -> conv features.

    Input (B, parts * channels * grid * grid), each part channel-major as the representation lays
    it out; the parts are stacked as channels, so the first 3x3 conv compares z and z_g cell by
    cell. Two convs (the second with stride 2) keep where things are, which an MLP over the
    flattened grid must learn from scratch (latent_probe: R^2 of the gripper's position 0.63 by a
    conv, 0.41 by an MLP of the policy's size).
    """

    def __init__(self, parts: int, channels: int, grid: int, width: int = 32):
        super().__init__()
        self.shape = (parts * channels, grid, grid)
        self.net = nn.Sequential(nn.Conv2d(parts * channels, width, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        self.out_dim = width * ((grid + 1) // 2) ** 2

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.reshape(-1, *self.shape))


class KeypointTrunk(nn.Module):
    """Flat observations made of ``parts`` spatial grids -> the expected (x, y) of ``keypoints`` feature maps per part.

    Each part (z, then z_g) goes through the same two 3x3 convs; a softmax over each output map's
    cells (with a learned temperature) gives a distribution whose mean position is a keypoint
    (the spatial soft-argmax of Levine, Finn et al., "End-to-End Training of Deep Visuomotor
    Policies", 2016). The policy then reads where things are in z and in z_g as coordinates, the
    form in which the state learner reads the gripper. Why: an MLP over the flattened VQ grid
    memorizes the 200 training scenes (a probe reads the gripper's goal displacement at
    R^2 0.98 on them and 0.41 on held-out episodes); keypoints read it at 0.59 (direction cosine
    0.80 against 0.62; docs/results.md, "Learning from pixels").
    """

    def __init__(self, parts: int, channels: int, grid: int, keypoints: int = 16, width: int = 32, kernel: int = 3):
        super().__init__()
        self.shape = (channels, grid, grid)
        self.net = nn.Sequential(nn.Conv2d(channels, width, kernel, padding=kernel // 2), nn.ReLU(),
                                 nn.Conv2d(width, keypoints, kernel, padding=kernel // 2))
        self.log_temperature = nn.Parameter(torch.zeros(()))
        coordinates = torch.linspace(-1.0, 1.0, grid)
        self.register_buffer("cell_x", coordinates.repeat(grid), persistent=False)
        self.register_buffer("cell_y", coordinates.repeat_interleave(grid), persistent=False)
        self.out_dim = parts * keypoints * 2

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:-1]
        maps = self.net(obs.reshape(-1, *self.shape)).flatten(2)  # (B * parts, K, cells)
        weights = (maps / self.log_temperature.exp()).softmax(-1)
        points = torch.cat([weights @ self.cell_x, weights @ self.cell_y], -1)  # (B * parts, 2K)
        return points.reshape(*lead, self.out_dim)


class Critic(nn.Module):
    """Q-ensemble (twin Q by default): Q(s, a) for each member, shape (E, B); ``trunk`` reads s first."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], members: int = 2,
                 trunk: nn.Module | None = None):
        super().__init__()
        self.trunk = trunk if trunk is not None else nn.Identity()
        self.net = EnsembleMLP(members, (trunk.out_dim if trunk is not None else obs_dim) + action_dim, hidden, 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([self.trunk(obs), action], dim=-1)).squeeze(-1)


class ValueFunction(nn.Module):
    """V(s), shape (B,)."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp(obs_dim, hidden, 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


class DeterministicPolicy(nn.Module):
    """a = tanh(f(s)): actions in [-1, 1] (the harness rescales to the environment's bounds)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], dropout: float = 0.0):
        super().__init__()
        self.net = mlp(obs_dim, hidden, action_dim, dropout=dropout)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self(obs)


class GaussianPolicy(nn.Module):
    """N(tanh(f(s)), diag(exp(log_std))) with a state-independent log-std, as IQL's and AWAC's code use.

    Dataset actions are scored under the unsquashed Gaussian, so log-likelihoods of actions at
    the bounds stay finite (a tanh-squashed density diverges there).
    """

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], dropout: float = 0.0,
                 trunk: nn.Module | None = None):
        super().__init__()
        head = mlp(trunk.out_dim if trunk is not None else obs_dim, hidden, action_dim, dropout=dropout)
        self.net = nn.Sequential(trunk, head) if trunk is not None else head
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tanh(self.net(obs))
        std = self.log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX).exp()
        return mean, std

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        mean, std = self(obs)
        # Diagonal Gaussian log-density, written out (cheaper than torch.distributions per update).
        z = (action - mean) / std
        return (-0.5 * z.pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        mean, std = self(obs)
        if deterministic:
            return mean
        return (mean + std * torch.randn_like(mean)).clamp(-1.0, 1.0)


class TanhGaussianPolicy(nn.Module):
    """SAC's policy: a = tanh(u), u ~ N(mu(s), sigma(s)), with the change-of-variables log-density."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * action_dim)
        self.action_dim = action_dim

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX).exp()

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterized action and its log-probability, for each row of obs."""
        mean, std = self.distribution(obs)
        u = mean + std * torch.randn_like(mean)
        action = torch.tanh(u)
        log_prob = (-0.5 * ((u - mean) / std).pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log |d tanh(u) / du| = 2 (log 2 - u - softplus(-2u)), the numerically stable form.
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return action, log_prob

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        mean, std = self.distribution(obs)
        action = action.clamp(-1 + 1e-6, 1 - 1e-6)
        u = torch.atanh(action)
        log_prob = (-0.5 * ((u - mean) / std).pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        return log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        if deterministic:
            return torch.tanh(self.distribution(obs)[0])
        return self.sample(obs)[0]


def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau source, for all parameters in one fused call."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)
