"""Can a policy's trunk read, from (z, z_g), where the gripper must go? A supervised probe of the goal displacement, no RL.

    python benchmarks/goal_probe.py --home DIR --representation PATH [--dataset tabletop/prior-v1]
        [--trunks mlp,keypoints] [--steps 3000] [--pairs 60]

A goal-conditioned policy on `reach` must turn (z, z_g) into a direction: the gripper's position
in the goal image minus its position now. This probe trains the policy's own readers (the
flattened MLP of the dissertation, `networks.KeypointTrunk` + the same MLP, or `GridTrunk`) to
regress that displacement (privileged labels) from pairs of frames of one episode of the prior
data (``--pairs`` per episode), standardized as the harness standardizes latents. It trains on
80% of the episodes and reports on the other 20% (other scenes): R^2, the mean error in cm, and
the mean cosine between the predicted and the true direction where the gripper must move more
than 3 cm. ``--representation`` is a VQ-VAE from the model cache
(``<home>/datasets/_cache/models/representation/<key>.pt``, e.g. of another home: a VQ-VAE trained
on 200 episodes read on 1,000).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from latent_probe import fit, r2_and_error  # noqa: E402

from bench.algorithms.networks import GridTrunk, KeypointTrunk, mlp  # noqa: E402
from bench.algorithms.representations import VQVAE  # noqa: E402
from bench.datasets import Registry  # noqa: E402
from bench.platform.envs.tabletop_layout import GRIP  # noqa: E402
from bench.platform.settings import Settings  # noqa: E402


def load_vqvae(path: str) -> VQVAE:
    modules = torch.load(path, weights_only=True)["state"]["modules"]
    codes, dim = modules["codebook.weight"].shape
    model = VQVAE(codes, dim, modules["encoder.0.weight"].shape[0])
    model.load_state_dict(modules)
    return model.eval()


def reader(trunk: str, latent_dim: int, embedding_dim: int) -> torch.nn.Module:
    """The policy's reader of (z, z_g) with a 3-D head, as AWAC builds it (2x256 after the trunk)."""
    if trunk == "mlp":
        return mlp(2 * latent_dim, (256, 256), 3)
    bodies = {"keypoints": lambda: KeypointTrunk(2, embedding_dim, 12),
              "keypoints-1x1": lambda: KeypointTrunk(2, embedding_dim, 12, kernel=1),
              "keypoints-narrow": lambda: KeypointTrunk(2, embedding_dim, 12, width=16),
              "keypoints-pooled": lambda: KeypointTrunk(2, embedding_dim, 6),
              "conv": lambda: GridTrunk(2, embedding_dim, 12)}
    if trunk not in bodies:
        raise SystemExit(f"unknown trunk {trunk!r}; known: mlp, {', '.join(bodies)}")
    body = bodies[trunk]()
    if trunk.endswith("-pooled"):  # the policy_view=pooled input: each grid averaged over 2x2 cells
        pool = torch.nn.Sequential(torch.nn.Unflatten(1, (2 * embedding_dim, 12, 12)), torch.nn.AvgPool2d(2),
                                   torch.nn.Flatten())
        return torch.nn.Sequential(pool, body, mlp(body.out_dim, (256, 256), 3))
    return torch.nn.Sequential(body, mlp(body.out_dim, (256, 256), 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--representation", required=True)
    parser.add_argument("--dataset", default="tabletop/prior-v1")
    parser.add_argument("--trunks", default="mlp,keypoints")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--pairs", type=int, default=60)
    args = parser.parse_args()
    os.environ["BENCH_HOME"] = args.home
    version = Registry.open(Settings.load()).load(args.dataset)
    observations = version.data.observations
    images = torch.from_numpy(np.ascontiguousarray(observations["image"]))
    grips = torch.from_numpy(np.ascontiguousarray(observations["state"][:, GRIP])).float()
    lengths = np.asarray(version.data.lengths) + 1
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    model = load_vqvae(args.representation)
    with torch.no_grad():
        latents = torch.cat([model.encode(images[i:i + 1024]) for i in range(0, len(images), 1024)])
    latents = (latents - latents.mean(0)) / (latents.std(0) + 1e-3)  # the harness's normalize_observations
    rng = np.random.default_rng(0)
    episodes = np.repeat(np.arange(len(lengths)), args.pairs)
    now = starts[episodes] + rng.integers(0, lengths[episodes])
    goal = starts[episodes] + rng.integers(0, lengths[episodes])
    inputs = torch.cat([latents[now], latents[goal]], 1)
    targets = grips[goal] - grips[now]
    train = torch.from_numpy(episodes % 5 != 0)
    moves = (~train) & (targets.norm(dim=1) > 0.03)
    report = {"dataset": args.dataset, "episodes": len(lengths), "latent_dim": model.latent_dim,
              "pairs": len(inputs), "probe_steps": args.steps, "trunks": {}}
    for trunk in args.trunks.split(","):
        torch.manual_seed(0)
        probe = reader(trunk, model.latent_dim, model.embedding_dim)
        fit(probe, inputs, targets, train, args.steps)
        with torch.no_grad():
            train_r2, train_cm, _ = r2_and_error(probe(inputs[train]), targets[train])
            test_r2, test_cm, test_axes = r2_and_error(probe(inputs[~train]), targets[~train])
            cosine = F.cosine_similarity(probe(inputs[moves]), targets[moves]).mean()
        report["trunks"][trunk] = {"train_r2": round(train_r2, 3), "train_error_cm": round(train_cm, 2),
                                   "held_out_r2": round(test_r2, 3), "held_out_r2_xyz": test_axes,
                                   "held_out_error_cm": round(test_cm, 2),
                                   "held_out_direction_cosine": round(float(cosine), 3)}
        print(json.dumps({trunk: report["trunks"][trunk]}), file=sys.stderr, flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
