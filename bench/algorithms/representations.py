"""Image representations and goal proposers for learning from pixels: beta-VAE, CC-VAE, VQ-VAE, conditional PixelCNN.

Each representation turns 48x48 RGB images into a latent vector z (deterministic: a Gaussian
encoder's mean, or a VQ-VAE's quantized grid, flattened) and decodes latents back to images.
Each goal proposer samples latent goals, possibly conditioned on the latent of an episode's
first image z_0:

    beta-VAE (RIG, ch. 2, eq. 2):  max E_q[log p(s|z)] - beta KL(q(z|s) || N(0, I)); Bernoulli
        decoder (cross-entropy on pixel values in [0, 1]); goals z_g ~ N(0, I)
    CC-VAE (CC-RIG, ch. 3, eq. 7): L_CVAE(s_t | s_0) + log p(s_0 | z_c): q(z_t | s_t, s_0) is a
        bottleneck, z_c = e_0(s_0) is deterministic and unpenalized, d(z_t, z_c) reconstructs s_t and
        d_0(z_c) reconstructs s_0; the representation is (mu(s_t, s_0), z_c); goals (z ~ N(0, I), z_c)
    VQ-VAE (VAL, ch. 9.5.1): an encoder to a grid of vectors, each replaced by its nearest code
        (straight-through gradient, codebook + commitment losses); the latent is the quantized grid
    conditional PixelCNN (VAL, ch. 9.5.1): p(codes_t | codes_0), an autoregressive model over the
        grid's code indices in raster order with masked convolutions, conditioned on the initial
        image's code grid at every layer; goals are its samples, decoded through the codebook
    state (bench's diagnostic, issue "pixels on a CPU", rung 1): the identity on the environment's
        privileged state vector, nothing to learn; the same RL, relabeling, rewards and practice
        then show whether a failure lies in the pictures or in everything after them

Networks are small convolutional stacks sized for a CPU (configurable); sizes live in the
algorithm configs (bench/algorithms/latent_goals.py) with the dissertation's values beside them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8_images(images: torch.Tensor) -> torch.Tensor:
    """float (N, 3, H, W) in [0, 1] -> uint8 (N, H, W, 3)."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


class ConvEncoder(nn.Module):
    """48x48x(3k) -> 6x6 features -> a vector of ``out_dim``."""

    def __init__(self, in_channels: int, channels: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, 4, 2, 1), nn.ReLU(),  # 24
            nn.Conv2d(channels, 2 * channels, 4, 2, 1), nn.ReLU(),  # 12
            nn.Conv2d(2 * channels, 2 * channels, 4, 2, 1), nn.ReLU(),  # 6
            nn.Flatten(), nn.Linear(2 * channels * 36, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """A vector -> 6x6 features -> 48x48x3 logits (Bernoulli per pixel value)."""

    def __init__(self, in_dim: int, channels: int):
        super().__init__()
        self.channels = channels
        self.fc = nn.Linear(in_dim, 2 * channels * 36)
        self.net = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(2 * channels, 2 * channels, 4, 2, 1), nn.ReLU(),  # 12
            nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1), nn.ReLU(),  # 24
            nn.ConvTranspose2d(channels, 3, 4, 2, 1))  # 48

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, 2 * self.channels, 6, 6))


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log p(s | z) per image, summed over pixels (eq. 2's Bernoulli decoder)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


class Representation(nn.Module):
    """What RIG, CC-RIG and VAL need of a representation."""

    latent_dim: int
    conditional: bool = False  # whether encoding needs the episode's first image
    reads: str = "image"  # the observation key it encodes
    trainable: bool = True  # whether phase A trains it

    def pooled_dim(self) -> int:
        """The size of ``pooled`` latents (the full size where there is nothing to pool)."""
        return self.latent_dim

    def pooled(self, latents: torch.Tensor) -> torch.Tensor:
        """A compact, fixed view of latents (..., latent_dim) for the policy and critics; the identity here."""
        return latents

    def loss(self, images: torch.Tensor, initial: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def encode(self, images: torch.Tensor, initial: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> float images in [0, 1]."""
        raise NotImplementedError


class StateIdentity(Representation):
    """z = s: the privileged state as its own latent (float vectors in, the same vectors out)."""

    reads = "state"
    trainable = False

    def __init__(self, state_dim: int):
        super().__init__()
        if state_dim <= 0:
            raise ValueError("the state representation needs observations with a 'state' vector")
        self.latent_dim = state_dim

    def encode(self, states, initial=None):
        return states.float()


class BetaVAE(Representation):
    def __init__(self, latent_dim: int, beta: float, channels: int):
        super().__init__()
        self.latent_dim, self.beta = latent_dim, beta
        self.encoder = ConvEncoder(3, channels, 2 * latent_dim)
        self.decoder = ConvDecoder(latent_dim, channels)

    def _posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_var = self.encoder(x).chunk(2, dim=1)
        return mu, log_var.clamp(-10, 5)

    def loss(self, images, initial=None):
        x = to_float_images(images)
        mu, log_var = self._posterior(x)
        z = mu + torch.randn_like(mu) * (0.5 * log_var).exp()
        reconstruction = bernoulli_nll(self.decoder(z), x).mean()
        kl = (0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var)).sum(1).mean()
        return reconstruction + self.beta * kl, {"reconstruction": reconstruction.detach(), "kl": kl.detach()}

    def encode(self, images, initial=None):
        return self._posterior(to_float_images(images))[0]  # z = e(s) = mu(s), ch. 2.4

    def decode(self, latents):
        return torch.sigmoid(self.decoder(latents))


class CCVAE(Representation):
    """Context-conditioned VAE (eq. 7); latents are (z_t, z_c) concatenated."""

    conditional = True

    def __init__(self, latent_dim: int, context_dim: int, beta: float, channels: int):
        super().__init__()
        self.z_dim, self.context_dim, self.beta = latent_dim, context_dim, beta
        self.latent_dim = latent_dim + context_dim
        self.encoder = ConvEncoder(6, channels, 2 * latent_dim)  # q(z_t | s_t, s_0)
        self.context_encoder = ConvEncoder(3, channels, context_dim)  # e_0(s_0), not shared with e
        self.decoder = ConvDecoder(latent_dim + context_dim, channels)  # d(z_t, z_c)
        self.context_decoder = ConvDecoder(context_dim, channels)  # d_0(z_c)

    def _posterior(self, x, x0):
        mu, log_var = self.encoder(torch.cat([x, x0], dim=1)).chunk(2, dim=1)
        return mu, log_var.clamp(-10, 5)

    def loss(self, images, initial):
        x, x0 = to_float_images(images), to_float_images(initial)
        mu, log_var = self._posterior(x, x0)
        z_c = self.context_encoder(x0)
        z = mu + torch.randn_like(mu) * (0.5 * log_var).exp()
        reconstruction = bernoulli_nll(self.decoder(torch.cat([z, z_c], 1)), x).mean()
        kl = (0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var)).sum(1).mean()
        context = bernoulli_nll(self.context_decoder(z_c), x0).mean()  # log p(s_0 | z_c), no bottleneck
        return reconstruction + self.beta * kl + context, {"reconstruction": reconstruction.detach(),
                                                           "kl": kl.detach(), "context": context.detach()}

    def encode(self, images, initial):
        x, x0 = to_float_images(images), to_float_images(initial)
        return torch.cat([self._posterior(x, x0)[0], self.context_encoder(x0)], 1)

    def decode(self, latents):
        return torch.sigmoid(self.decoder(latents))


class VQVAE(Representation):
    """48x48 -> a ``grid`` x ``grid`` map of ``embedding_dim`` vectors quantized to ``codes`` codes."""

    def __init__(self, codes: int, embedding_dim: int, channels: int, grid: int = 12, commitment: float = 0.25):
        super().__init__()
        if grid != 12:
            raise ValueError("the VQ-VAE's grid is 12x12 (the dissertation's, 48 / 4)")
        self.codes, self.embedding_dim, self.grid, self.commitment = codes, embedding_dim, grid, commitment
        self.latent_dim = embedding_dim * grid * grid
        self.encoder = nn.Sequential(
            nn.Conv2d(3, channels, 4, 2, 1), nn.ReLU(), nn.Conv2d(channels, 2 * channels, 4, 2, 1), nn.ReLU(),
            _Residual(2 * channels), nn.Conv2d(2 * channels, embedding_dim, 1))
        self.codebook = nn.Embedding(codes, embedding_dim)
        self.codebook.weight.data.uniform_(-1.0 / codes, 1.0 / codes)
        self.decoder = nn.Sequential(
            nn.Conv2d(embedding_dim, 2 * channels, 3, 1, 1), _Residual(2 * channels),
            nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(channels, 3, 4, 2, 1))

    def quantize(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D, 12, 12) -> (quantized vectors, code indices (N, 12, 12))."""
        flat = features.permute(0, 2, 3, 1).reshape(-1, self.embedding_dim)
        distances = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.weight.t()
                     + self.codebook.weight.pow(2).sum(1))
        indices = distances.argmin(1)
        quantized = self.codebook(indices).view(features.shape[0], self.grid, self.grid, -1).permute(0, 3, 1, 2)
        return quantized, indices.view(features.shape[0], self.grid, self.grid)

    def loss(self, images, initial=None):
        x = to_float_images(images)
        features = self.encoder(x)
        quantized, _ = self.quantize(features)
        codebook_loss = F.mse_loss(quantized, features.detach())
        commitment_loss = F.mse_loss(features, quantized.detach())
        straight_through = features + (quantized - features).detach()
        # A Gaussian decoder in VQ-VAE's paper; here the same Bernoulli likelihood as the VAEs, so
        # reconstruction numbers compare across representations.
        reconstruction = bernoulli_nll(self.decoder(straight_through), x).mean()
        loss = reconstruction + 100.0 * (codebook_loss + self.commitment * commitment_loss)
        return loss, {"reconstruction": reconstruction.detach(), "codebook": codebook_loss.detach()}

    def encode(self, images, initial=None):
        return self.quantize(self.encoder(to_float_images(images)))[0].flatten(1)

    def codes_of(self, images: torch.Tensor) -> torch.Tensor:
        return self.quantize(self.encoder(to_float_images(images)))[1]

    def latents_of_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codebook(codes).permute(0, 3, 1, 2).flatten(1)

    def codes_of_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return self.quantize(latents.view(-1, self.embedding_dim, self.grid, self.grid))[1]

    def decode(self, latents):
        return torch.sigmoid(self.decoder(latents.view(-1, self.embedding_dim, self.grid, self.grid)))

    def pooled_dim(self) -> int:
        return self.embedding_dim * (self.grid // 2) ** 2

    def pooled(self, latents: torch.Tensor) -> torch.Tensor:
        """The 12x12 grid averaged over 2x2 cells: 6x6 vectors (72-D at 2-D codes instead of 288-D)."""
        lead = latents.shape[:-1]
        grid = latents.reshape(-1, self.embedding_dim, self.grid, self.grid)
        return F.avg_pool2d(grid, 2).flatten(1).reshape(*lead, self.pooled_dim())


class _Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(),
                                 nn.Conv2d(channels, channels, 1))

    def forward(self, x):
        return x + self.net(x)


class _MaskedConv(nn.Conv2d):
    """A convolution that sees only positions before the centre in raster order (and the centre for type B)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, mask_type: str):
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2)
        mask = torch.ones_like(self.weight)
        centre = kernel // 2
        mask[:, :, centre, centre + (mask_type == "B"):] = 0
        mask[:, :, centre + 1:] = 0
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """p(codes_t | codes_0) over a grid of code indices; ``conditional=False`` gives the unconditional model."""

    def __init__(self, codes: int, channels: int, layers: int, conditional: bool = True):
        super().__init__()
        self.codes, self.conditional = codes, conditional
        self.embed = nn.Embedding(codes, channels)
        self.first = _MaskedConv(channels, channels, 7, "A")
        self.layers = nn.ModuleList(_MaskedConv(channels, 2 * channels, 3, "B") for _ in range(layers))
        if conditional:
            # The conditioning grid is fully known, so it is seen without a mask, at every layer.
            self.condition_embed = nn.Embedding(codes, channels)
            self.condition = nn.ModuleList(nn.Conv2d(channels, 2 * channels, 3, padding=1)
                                           for _ in range(layers + 1))
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, codes, 1))

    def logits(self, codes: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        h = self.first(self.embed(codes).permute(0, 3, 1, 2))
        c = self.condition_embed(condition).permute(0, 3, 1, 2) if self.conditional else None
        for i, layer in enumerate(self.layers):
            gates = layer(torch.relu(h))
            if c is not None:
                gates = gates + self.condition[i](c)
            a, b = gates.chunk(2, dim=1)
            h = h + torch.tanh(a) * torch.sigmoid(b)  # gated residual unit
        return self.out(h)

    def nll(self, codes: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        """-log p(codes | condition) per grid, in nats."""
        return F.cross_entropy(self.logits(codes, condition), codes, reduction="none").flatten(1).sum(1)

    @torch.no_grad()
    def sample(self, condition: torch.Tensor | None, count: int | None = None,
               generator: torch.Generator | None = None, grid: int = 12) -> torch.Tensor:
        n = condition.shape[0] if condition is not None else count
        device = self.embed.weight.device
        codes = torch.zeros(n, grid, grid, dtype=torch.long, device=device)
        # A CPU generator draws on the CPU (one small copy per cell on a GPU): the same seed samples the same
        # codes on any device.
        on_host = generator is not None and generator.device != device
        for i in range(grid):
            for j in range(grid):
                probabilities = torch.softmax(self.logits(codes, condition)[:, :, i, j], dim=1)
                if on_host:
                    probabilities = probabilities.cpu()
                codes[:, i, j] = torch.multinomial(probabilities, 1, generator=generator).squeeze(1).to(device)
        return codes
