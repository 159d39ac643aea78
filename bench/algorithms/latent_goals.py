"""RIG, CC-RIG and VAL: goal-conditioned RL in a learned latent space, with goals the generative model imagines.

All three follow one recipe (dissertation Algorithms 1, 2 and 7) and differ in their parts:

                 representation (phase A)   goal proposals (affordances)      reward             relabeling
    rig   ch. 2  beta-VAE                   z_g ~ N(0, I)                     -||z' - z_g||      50% future, 50% proposals
    ccrig ch. 3  CC-VAE, z = (mu, z_c)      (z ~ N(0, I), z_c of s_0)         -||z' - z_g||      50% future, 50% proposals
    val   ch. 9  VQ-VAE                     conditional PixelCNN p(z_t|z_0)   -1[||z'-z_g||>eps]  20% kept, 40% future, 40% proposals
    val-state    the privileged state       states of D (uniform)             -1[||s'-g||>eps]    as VAL
                 (bench's diagnostic: VAL's learner without pictures; not in the dissertation)

    1. learn the encoder phi by the generative model of D's images            (Alg. 1 l.2, Alg. 2 l.1, Alg. 7 l.1)
    2. learn the goal proposer from D (VAL's PixelCNN on pairs (z_0, z_t))    (Alg. 7 l.2)
    3. encode D into the replay buffer; train pi(a | z, z_g), Q offline       (Alg. 7 l.3-4)
    4. in a new environment: each episode, encode s_0, propose z_g, act, store, relabel, update
       (Alg. 7 l.5-19); RIG also fine-tunes its VAE every K episodes on D plus new images (Alg. 1 l.16)
    test: the goal is an image, encoded by phi

The RL algorithm is AWAC (ch. 7) for all three. The dissertation's RIG and CC-RIG used TD3 and
learned online only; in the offline-then-online setting of ch. 9 the comparison needs an
algorithm that pretrains offline and fine-tunes (AWAC, as VAL), so the three differ only in their
representation, goal proposals, reward and relabeling. This module holds the learner; the
harness (bench/evaluation/pixels.py) feeds it images, episodes and environments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from bench.algorithms.awac import AWAC, AWACConfig
from bench.algorithms.base import Algorithm, Batch, register
from bench.algorithms.config import param
from bench.algorithms.devices import random_rows
from bench.algorithms.networks import GridTrunk, KeypointTrunk
from bench.algorithms.representations import CCVAE, VQVAE, BetaVAE, PixelCNN, Representation, StateIdentity
from bench.errors import InvalidInput


@dataclass
class LatentGoalConfig(AWACConfig):
    representation: str = param("vae", "rig: beta-VAE (ch. 2); ccrig: CC-VAE (ch. 3); val: VQ-VAE (ch. 9.5.1); "
                                "state: the privileged state (bench's diagnostic)")
    goal_proposal: str = param("prior", "rig: N(0, I); ccrig: (N(0, I), z_c); val: conditional PixelCNN; "
                               "data: latents of D's observations, uniformly")
    # Sizes: the dissertation's appendices with RIG's and CC-RIG's VAE sizes are not in the text;
    # VAL's VQ-VAE is 512 codes on a 12x12 grid of 5-D embeddings (720-D latents, ch. 10.6.2).
    latent_dim: int = param(16, "bench: VAE / CC-VAE z_t size (the dissertation's appendix value is not in its text)")
    context_dim: int = param(16, "bench: CC-VAE z_c size")
    beta: float = param(1.0, "bench: the beta of eq. 2 / eq. 7")
    channels: int = param(16, "bench, CPU: conv channels (the dissertation's networks are larger; 32 costs 2.3x per step)")
    vq_codes: int = param(128, "bench, CPU: VQ-VAE codes (dissertation / VAL code: 512)")
    vq_embedding_dim: int = param(2, "bench, CPU: 12x12x2 = 288-D latents (dissertation ch. 10.6.2: 12x12x5 = 720-D; AWAC on 2x720 inputs runs 15 updates/s here)")
    pixelcnn_channels: int = param(32, "bench, CPU: PixelCNN channels (VAL's code: larger gated PixelCNN)")
    pixelcnn_layers: int = param(4, "bench, CPU: PixelCNN gated layers")
    representation_steps: int = param(2000, "bench, CPU: gradient steps of phase A (the dissertation trains to convergence)")
    representation_batch_size: int = param(32, "bench, CPU")
    representation_learning_rate: float = param(1e-3, "bench")
    proposer_steps: int = param(1500, "bench, CPU: PixelCNN gradient steps (VAL only)")
    proposer_batch_size: int = param(32, "bench, CPU")
    proposer_learning_rate: float = param(1e-3, "bench")
    # Rewards on latents: RIG / CC-RIG the latent distance (ch. 2, eq. 3 with A = I); VAL the sparse
    # -1[||z - z_g|| > eps] (ch. 9.5.2). eps = 0 means "calibrate from the data": the median latent
    # distance between states 5 steps apart in D (the dissertation fixes eps by hand: 3 on PTP's 720-D).
    reward: str = param("distance", "rig/ccrig: latent distance (ch. 2.4.2); val: sparse (ch. 9.5.2)")
    reward_epsilon: float = param(0.0, "0 = calibrate (epsilon_calibration); PTP ch. 10.6.2: 3 by hand")
    # How eps is calibrated when reward_epsilon is 0. "scripted": the threshold on ||z - z_g|| that best
    # tells scripted attempts that reached a posed goal from their nearest misses (balanced accuracy),
    # in training-split scenes; "median-5-step": the median ||z_t - z_(t+5)|| in the data, which
    # fires on gripper motion alone (measured: benchmarks/latent_geometry.py).
    epsilon_calibration: str = param("scripted", "bench: the dissertation sets eps by hand")
    calibration_attempts: int = param(30, "bench: scripted attempts for epsilon_calibration=scripted")
    relabel_keep: float = param(0.0, "RIG: goals are relabeled; VAL: 20% kept (ch. 9.5.2)")
    relabel_future: float = param(0.5, "RIG ch. 2.4.3: half future; VAL: 40%")
    relabel_final: float = param(0.0, "unused")
    relabel_random: float = param(0.0, "unused")
    relabel_proposal: float = param(0.5, "RIG ch. 2.4.3: half from the prior; VAL: 40% affordance samples")
    proposals_per_episode: int = param(4, "bench: proposals drawn once per episode and reused for relabeling")
    finetune_every_episodes: int = param(0, "RIG Alg. 1 l.16: fine-tune the VAE every K episodes (0 = never)")
    finetune_steps: int = param(200, "bench: VAE steps per fine-tuning")
    normalize_observations: bool = param(True, "bench: standardize latents with the data's mean/std for pi and Q")
    # What pi and Q see of (z, z_g): the full latents, or "pooled" (VQ-VAE: the 12x12 grid averaged
    # over 2x2 cells, 4x smaller); rewards and relabeling always use the full latents.
    policy_view: str = param("full", "the dissertation: full latents; 'pooled' is bench's CPU reduction")
    # How pi and Q read that view: MLPs on the flattened latents (the dissertation's); or first a small
    # conv over the VQ grid with z and z_g stacked as channels (networks.GridTrunk); or keypoints, the
    # spatial soft-argmax of a conv over each grid (networks.KeypointTrunk).
    policy_trunk: str = param("mlp", "the dissertation: MLPs on the latents; 'conv' and 'keypoints' are bench's "
                                     "(VQ-VAE only)")
    batch_size: int = param(128, "bench, CPU (AWAC: 1024)")
    compile: str = param("off", "bench: latent runs are short; compilation would dominate")

    # The offline phase sees eps, not how it was calibrated; RIG's fine-tuning is online.
    OFFLINE_INDEPENDENT = ("finetune_every_episodes", "finetune_steps", "epsilon_calibration", "calibration_attempts")


# What the models learned from the data alone depend on, besides the data, the seed and the models
# they train on: the keys of their cache entries (bench.evaluation.model_cache).
REPRESENTATION_FIELDS = ("representation", "latent_dim", "context_dim", "beta", "channels", "vq_codes",
                         "vq_embedding_dim", "representation_steps", "representation_batch_size",
                         "representation_learning_rate")
PROPOSER_FIELDS = ("goal_proposal", "pixelcnn_channels", "pixelcnn_layers", "proposer_steps", "proposer_batch_size",
                   "proposer_learning_rate")


def _validate(c: LatentGoalConfig) -> None:
    if c.representation not in ("vae", "ccvae", "vqvae", "state"):
        raise InvalidInput(f"representation must be vae, ccvae, vqvae or state, not {c.representation!r}")
    if c.goal_proposal not in ("prior", "context-prior", "pixelcnn", "data", "none"):
        raise InvalidInput(f"goal_proposal must be prior, context-prior, pixelcnn, data or none, "
                           f"not {c.goal_proposal!r}")
    if c.representation == "state" and c.goal_proposal == "prior":
        raise InvalidInput("N(0, I) goals mean nothing in state space: use goal_proposal=data with representation=state")
    if c.goal_proposal == "none" and c.relabel_proposal > 0:
        raise InvalidInput("relabel_proposal needs a goal proposer (goal_proposal is none)")
    if c.goal_proposal == "pixelcnn" and c.representation != "vqvae":
        raise InvalidInput("the PixelCNN proposes VQ-VAE codes: use representation=vqvae")
    if c.goal_proposal == "context-prior" and c.representation != "ccvae":
        raise InvalidInput("context-prior proposals need representation=ccvae")
    if c.finetune_every_episodes and c.representation != "vae":
        raise InvalidInput("fine-tuning the representation online is RIG's (Algorithm 1 l.16): representation=vae only")
    if c.reward not in ("distance", "sparse"):
        raise InvalidInput(f"reward must be distance or sparse, not {c.reward!r}")
    if c.policy_view not in ("full", "pooled"):
        raise InvalidInput(f"policy_view must be full or pooled, not {c.policy_view!r}")
    if c.policy_trunk not in ("mlp", "conv", "keypoints"):
        raise InvalidInput(f"policy_trunk must be mlp, conv or keypoints, not {c.policy_trunk!r}")
    if c.policy_trunk != "mlp" and c.representation != "vqvae":
        raise InvalidInput(f"policy_trunk={c.policy_trunk} reads the VQ-VAE's grid: use representation=vqvae")
    if c.epsilon_calibration not in ("scripted", "median-5-step"):
        raise InvalidInput(f"epsilon_calibration must be scripted or median-5-step, not {c.epsilon_calibration!r}")


def separating_threshold(reached: torch.Tensor, missed: torch.Tensor) -> tuple[float, float]:
    """The distance threshold that best tells ``reached`` distances from ``missed`` ones, and its balanced accuracy.

    Candidates are the midpoints between consecutive sorted distances; the accuracy is the mean of
    the share of reached below it and the share of missed above it (1.0: the distance separates them)."""
    values = torch.cat([reached, missed]).sort().values
    candidates = torch.cat([values[:1] - 1e-6, (values[1:] + values[:-1]) / 2, values[-1:] + 1e-6])
    hit = (reached[None, :] <= candidates[:, None]).float().mean(1)
    reject = (missed[None, :] > candidates[:, None]).float().mean(1)
    accuracy = (hit + reject) / 2
    best = int(accuracy.argmax())
    return float(candidates[best]), float(accuracy[best])


def _part_state(module: nn.Module, optimizer: torch.optim.Optimizer, updates: int) -> dict[str, Any]:
    """A part trained on its own (the representation, the PixelCNN): weights, optimizer, steps taken."""
    return {"modules": module.state_dict(), "optimizer": optimizer.state_dict(), "updates": updates}


def _load_part_state(module: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> int:
    module.load_state_dict(state["modules"])
    optimizer.load_state_dict(state["optimizer"])
    return state["updates"]


class LatentGoalAlgorithm(Algorithm):
    """A representation, a goal proposer and AWAC on (z, z_g); see the module docstring."""

    run_kind = "pixels"  # images in, latents to the learner (bench.evaluation.pixels)
    config_class = LatentGoalConfig

    def __init__(self, config: LatentGoalConfig, obs_dim: int, action_dim: int):
        super().__init__(config, obs_dim, action_dim)
        _validate(config)
        c = config
        self.representation: Representation = {
            "vae": lambda: BetaVAE(c.latent_dim, c.beta, c.channels),
            "ccvae": lambda: CCVAE(c.latent_dim, c.context_dim, c.beta, c.channels),
            "vqvae": lambda: VQVAE(c.vq_codes, c.vq_embedding_dim, c.channels),
            "state": lambda: StateIdentity(obs_dim),  # obs_dim: the state vector's size (the harness passes it)
        }[c.representation]()
        self.latent_dim = self.representation.latent_dim
        self.representation_optimizer = (torch.optim.Adam(self.representation.parameters(),
                                                          lr=c.representation_learning_rate)
                                         if self.representation.trainable else None)
        self.proposer = (PixelCNN(c.vq_codes, c.pixelcnn_channels, c.pixelcnn_layers)
                         if c.goal_proposal == "pixelcnn" else None)
        self.proposer_optimizer = (torch.optim.Adam(self.proposer.parameters(), lr=c.proposer_learning_rate)
                                   if self.proposer is not None else None)
        # pi(a | z, z_g) and Q(z, a, z_g): an RL algorithm on the concatenation of their views.
        self.view_dim = self.representation.pooled_dim() if c.policy_view == "pooled" else self.latent_dim
        self.rl = self.build_rl(c, 2 * self.view_dim, action_dim)
        self.optimizer = self.rl.optimizer
        self.reward_epsilon = float(c.reward_epsilon)
        self.data_goals: torch.Tensor | None = None  # goal_proposal=data: the latents of D (set by the harness)
        self.representation_updates = 0
        self.proposer_updates = 0

    def build_rl(self, config: LatentGoalConfig, obs_dim: int, action_dim: int) -> Algorithm:
        """The goal-conditioned learner on (z, z_g): AWAC for RIG, CC-RIG and VAL."""
        return AWAC(config, obs_dim, action_dim, trunk=self.trunk())

    def trunk(self) -> Callable[[], nn.Module] | None:
        """``policy_trunk=conv`` or ``keypoints``: a factory of trunks over the (z, z_g) grids of the policy's view."""
        if self.config.policy_trunk == "mlp":
            return None
        vq: VQVAE = self.representation
        grid = vq.grid // 2 if self.config.policy_view == "pooled" else vq.grid
        if self.config.policy_trunk == "keypoints":
            return lambda: KeypointTrunk(2, vq.embedding_dim, grid)
        return lambda: GridTrunk(2, vq.embedding_dim, grid)

    # -- phase A: representation and affordances --------------------------------------------------
    def update_representation(self, images: torch.Tensor, initial: torch.Tensor | None) -> dict[str, torch.Tensor]:
        with self.autocast():
            loss, metrics = self.representation.loss(images, initial)
        self.representation_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.representation_optimizer.step()
        self.representation_updates += 1
        return {"representation_loss": loss.detach(), **metrics}

    def update_proposer(self, initial_codes: torch.Tensor, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """One step of max log p(codes_t | codes_0) (VAL's affordance model)."""
        with self.autocast():
            loss = self.proposer.nll(codes, initial_codes).mean()
        self.proposer_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.proposer_optimizer.step()
        self.proposer_updates += 1
        return {"proposer_nll": loss.detach()}

    @torch.no_grad()
    def encode(self, images: torch.Tensor, initial: torch.Tensor | None = None, batch: int = 512) -> torch.Tensor:
        """Images (uint8, N x 48 x 48 x 3) -> latents, in batches; ``initial`` is each image's s_0."""
        self.representation.eval()
        parts = [self.representation.encode(images[i:i + batch], None if initial is None else initial[i:i + batch])
                 for i in range(0, len(images), batch)]
        self.representation.train()
        return torch.cat(parts) if parts else torch.zeros(0, self.latent_dim, device=self.device)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.representation.decode(latents)

    @torch.no_grad()
    def propose(self, initial_latents: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One imagined goal per row of z_0 (Alg. 1 l.4, Alg. 2 l.3, Alg. 7 l.8). ``generator`` is a CPU one:
        its numbers are drawn on the CPU and moved, so a seed imagines the same goals on any device."""
        n, device = initial_latents.shape[0], initial_latents.device
        if self.config.goal_proposal == "none":
            raise ValueError(f"{self.name} proposes no goals (goal_proposal is none)")
        if self.config.goal_proposal == "prior":
            return torch.randn(n, self.latent_dim, generator=generator).to(device)
        if self.config.goal_proposal == "data":
            return self.data_goals[random_rows(0, len(self.data_goals), n, generator, device)]
        if self.config.goal_proposal == "context-prior":
            z = torch.randn(n, self.representation.z_dim, generator=generator).to(device)
            return torch.cat([z, initial_latents[:, self.representation.z_dim:]], 1)
        vq: VQVAE = self.representation
        codes = self.proposer.sample(vq.codes_of_latents(initial_latents), generator=generator)
        return vq.latents_of_codes(codes)

    def view(self, latents: torch.Tensor) -> torch.Tensor:
        """What pi and Q see of (normalized) latents: all of them, or their pooled view (``policy_view``)."""
        return self.representation.pooled(latents) if self.config.policy_view == "pooled" else latents

    # -- phases B and C: goal-conditioned AWAC in latent space ---------------------------------------
    def reward(self, achieved: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        distance = (achieved - goal).norm(dim=-1)
        if self.config.reward == "distance":
            return -distance
        return -(distance > self.reward_epsilon).float()

    def losses(self, batch: Batch):
        return self.rl.losses(batch)

    def after_step(self) -> None:
        self.rl.after_step()

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self.rl.act(obs, deterministic)

    # -- the parts a later run may reuse (bench.evaluation.model_cache) ---------------------------------
    def representation_state(self) -> dict[str, Any]:
        return _part_state(self.representation, self.representation_optimizer, self.representation_updates)

    def load_representation_state(self, state: dict[str, Any]) -> None:
        self.representation_updates = _load_part_state(self.representation, self.representation_optimizer, state)

    def proposer_state(self) -> dict[str, Any]:
        return _part_state(self.proposer, self.proposer_optimizer, self.proposer_updates)

    def load_proposer_state(self, state: dict[str, Any]) -> None:
        self.proposer_updates = _load_part_state(self.proposer, self.proposer_optimizer, state)

    def learner_state(self) -> dict[str, Any]:
        """The goal-conditioned learner (pi, Q, their optimizer) and the update count: the offline policy."""
        return {"rl": self.rl.checkpoint_state(), "updates": self.updates}

    def load_learner_state(self, state: dict[str, Any]) -> None:
        self.rl.load_checkpoint_state(state["rl"])
        self.updates = state["updates"]

    # -- checkpoints --------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        state = super().checkpoint_state()
        state.update(representation_optimizer=None if self.representation_optimizer is None
                     else self.representation_optimizer.state_dict(),
                     proposer_optimizer=None if self.proposer_optimizer is None else self.proposer_optimizer.state_dict(),
                     reward_epsilon=self.reward_epsilon, representation_updates=self.representation_updates,
                     proposer_updates=self.proposer_updates)
        return state

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        super().load_checkpoint_state(state)
        if self.representation_optimizer is not None:
            self.representation_optimizer.load_state_dict(state["representation_optimizer"])
        if self.proposer_optimizer is not None:
            self.proposer_optimizer.load_state_dict(state["proposer_optimizer"])
        self.reward_epsilon = state["reward_epsilon"]
        self.representation_updates = state["representation_updates"]
        self.proposer_updates = state["proposer_updates"]


@register("rig", "RIG: beta-VAE latents, goals imagined from the prior, latent-distance reward (AWAC offline->online)",
          paper="dissertation ch. 2, Algorithm 1 (Nair et al., 2018)",
          representation="vae", goal_proposal="prior", reward="distance", relabel_keep=0.0, relabel_future=0.5,
          relabel_proposal=0.5, finetune_every_episodes=5)
class RIG(LatentGoalAlgorithm):
    name = "rig"


@register("ccrig", "CC-RIG: context-conditioned VAE, goals (z ~ N(0, I), z_c of s_0), latent-distance reward",
          paper="dissertation ch. 3, Algorithm 2 (Nair et al., 2019)",
          representation="ccvae", goal_proposal="context-prior", reward="distance", relabel_keep=0.0,
          relabel_future=0.5, relabel_proposal=0.5)
class CCRIG(LatentGoalAlgorithm):
    name = "ccrig"


@register("val", "VAL: VQ-VAE latents, affordances from a conditional PixelCNN, sparse latent reward, AWAC",
          paper="dissertation ch. 9, Algorithm 7 (Khazatsky, Nair et al., 2021)",
          representation="vqvae", goal_proposal="pixelcnn", reward="sparse", relabel_keep=0.2, relabel_future=0.4,
          relabel_proposal=0.4)
class VAL(LatentGoalAlgorithm):
    name = "val"


@register("val-state", "VAL's learner on the privileged state: no representation to learn, goals from D's states "
          "(bench's diagnostic: does goal reaching work before pictures?)",
          paper="bench; the learner of dissertation ch. 9, Algorithm 7",
          representation="state", goal_proposal="data", reward="sparse", relabel_keep=0.2, relabel_future=0.4,
          relabel_proposal=0.4, representation_steps=0, proposer_steps=0)
class VALOnStates(LatentGoalAlgorithm):
    name = "val-state"
