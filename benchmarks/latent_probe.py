"""Is the gripper's position in a finished pixel run's latents? A supervised probe, privileged labels, no RL.

    python benchmarks/latent_probe.py --home DIR RUN_ID [--steps 3000] [--features latent|prequantized] [--probe mlp|conv]

Loads the run's representation from its checkpoint, encodes the prior data's images, and trains
an MLP (2x256, the policy's size) to predict the gripper's xyz from the latent (the run's
``policy_view`` of it: pooled or full; ``--features prequantized``: a VQ-VAE's encoder output
before quantization; ``--probe conv``: two convolutions over the VQ-VAE's 12x12 grid before the
MLP, a probe with the translation structure an MLP lacks), on 80% of the episodes; prints JSON with R^2 and the
mean error in centimetres on the other 20% and on images of the run's held-out scene. When the
probe reads the gripper well but the policy does not move it to a goal, the break is in the RL,
not in the representation (docs/results.md, "Goal reaching on states first").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from bench.algorithms import build_algorithm, get_algorithm
from bench.algorithms.config import config_from_json
from bench.algorithms.networks import mlp
from bench.algorithms.representations import to_float_images
from bench.datasets import Registry
from bench.platform.envs.tabletop import TabletopEnv
from bench.platform.envs.tabletop_layout import GRIP
from bench.platform.settings import Settings


def r2_and_error(predicted: torch.Tensor, target: torch.Tensor) -> tuple[float, float, list[float]]:
    """R^2 over xyz together, the mean error in cm, and R^2 per axis."""
    residual = (predicted - target).pow(2)
    total = (target - target.mean(0)).pow(2)
    per_axis = [round(float(1 - residual[:, i].sum() / total[:, i].sum()), 3) for i in range(3)]
    return float(1 - residual.sum() / total.sum()), float((predicted - target).norm(dim=1).mean() * 100), per_axis


def conv_probe(latent_dim: int) -> torch.nn.Module:
    """(N, D*144) -> xyz through convolutions over the 12x12 grid of D-vectors, then an MLP."""
    channels = latent_dim // 144
    return torch.nn.Sequential(
        torch.nn.Unflatten(1, (channels, 12, 12)), torch.nn.Conv2d(channels, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        mlp(32 * 36, (256,), 3))


def pixel_probe() -> torch.nn.Module:
    """(N, 3*48*48) -> xyz: three strided convolutions down to 6x6, then an MLP."""
    return torch.nn.Sequential(
        torch.nn.Unflatten(1, (3, 48, 48)), torch.nn.Conv2d(3, 32, 4, 2, 1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 4, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 4, 2, 1), torch.nn.ReLU(),
        torch.nn.Flatten(), mlp(32 * 36, (256,), 3))


def fit(probe: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, train: torch.Tensor, steps: int) -> None:
    """Regress ``targets`` on ``inputs`` over the ``train`` rows: Adam 1e-3, batches of 256, MSE."""
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-3)
    rows = torch.nonzero(train).squeeze(1)
    for _ in range(steps):
        batch = rows[torch.randint(len(rows), (256,))]
        loss = (probe(inputs[batch]) - targets[batch]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("run_id")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--features", choices=("latent", "prequantized", "pixels"), default="latent")
    parser.add_argument("--probe", choices=("mlp", "conv"), default="mlp")
    args = parser.parse_args()
    os.environ["BENCH_HOME"] = args.home
    shown = json.loads(subprocess.run([sys.executable, "-m", "bench.cli", "runs", "show", args.run_id, "--json"],
                                      capture_output=True, text=True, check=True).stdout)
    config = config_from_json(get_algorithm(shown["algorithm"]).config_class, shown["config"])
    algorithm = build_algorithm(shown["algorithm"], config, 0, 4)
    checkpoint = Path(args.home) / "datasets" / "_runs" / args.run_id / "checkpoint.pt"
    algorithm.load_checkpoint_state(torch.load(checkpoint, weights_only=False)["algorithm"])
    version = Registry.open(Settings.load()).load(shown["dataset_id"])
    observations = version.data.observations

    @torch.no_grad()
    def features(images: np.ndarray) -> torch.Tensor:
        images = torch.from_numpy(np.ascontiguousarray(images))
        if args.features == "latent":
            return algorithm.encode(images)
        if args.features == "pixels":  # the images themselves: what any representation can keep at best
            return to_float_images(images).flatten(1)
        return torch.cat([algorithm.representation.encoder(to_float_images(images[i:i + 512])).flatten(1)
                          for i in range(0, len(images), 512)])

    latents = features(observations["image"])
    mean, std = latents.mean(0), latents.std(0) + 1e-3
    policy_view = args.features == "latent" and args.probe == "mlp"  # the conv probe reads the whole grid
    view = algorithm.view if policy_view else (lambda x: x)
    inputs = view((latents - mean) / std)
    targets = torch.from_numpy(np.ascontiguousarray(observations["state"][:, GRIP]))
    lengths = np.asarray(version.data.lengths) + 1
    episode = torch.from_numpy(np.repeat(np.arange(len(lengths)), lengths))
    train = episode % 5 != 0
    torch.manual_seed(0)
    probe = (mlp(inputs.shape[1], (256, 256), 3) if args.probe == "mlp"
             else pixel_probe() if args.features == "pixels" else conv_probe(inputs.shape[1]))
    fit(probe, inputs, targets, train, args.steps)
    env = TabletopEnv(**shown["plan"]["env_overrides"])
    images, grips = [], []
    rng = np.random.default_rng(0)
    for seed in range(5):
        observation, _ = env.reset(seed=seed, options={"pose_task": False})
        for _ in range(40):
            images.append(observation["image"])
            grips.append(observation["state"][GRIP])
            observation, *_ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
    env.close()
    held_out = view((features(np.asarray(images)) - mean) / std)
    with torch.no_grad():
        test_r2, test_cm, test_axes = r2_and_error(probe(inputs[~train]), targets[~train])
        held_r2, held_cm, held_axes = r2_and_error(probe(held_out), torch.from_numpy(np.asarray(grips)))
    print(json.dumps({"run": args.run_id, "algorithm": shown["algorithm"], "features": args.features,
                      "probe": args.probe,
                      "view": config.policy_view if policy_view else "full",
                      "input_dim": int(inputs.shape[1]), "probe_steps": args.steps,
                      "held_out_episodes_r2": round(test_r2, 3), "held_out_episodes_r2_xyz": test_axes,
                      "held_out_episodes_error_cm": round(test_cm, 2),
                      "held_out_scene_r2": round(held_r2, 3), "held_out_scene_r2_xyz": held_axes,
                      "held_out_scene_error_cm": round(held_cm, 2)},
                     indent=2))


if __name__ == "__main__":
    main()
