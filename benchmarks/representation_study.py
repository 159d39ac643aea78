"""Which VQ-VAE settings keep the gripper? Phase A alone, at several sizes and lengths, each checked by a probe before any RL.

    python benchmarks/representation_study.py --home DIR [--dataset tabletop/prior-v1]
        [--settings channels=16,batch=32 channels=32,batch=32 ...] [--steps 4000,8000,16000]

For each setting (any of channels, batch, lr, codes, dim) a VQ-VAE of
bench/algorithms/representations.py is trained on the version's images (Adam, seed 0) and, at
each step count of ``--steps``, measured on the episodes it was not trained on (every fifth):

    reconstruction error    mean |x - x_hat| over all pixels, and over the pixels that move
                            within their episode (|x - the episode's median frame| > 0.1: the
                            gripper, the drawer, objects), which a policy must see
    codes used              distinct codes among the encoded grids
    probe                   an MLP of the policy's size (2x256) regresses the gripper's xyz from the
                            full latent, trained on the training episodes (benchmarks/latent_probe.py's
                            fit); R^2 and the mean error in cm on the held-out episodes

Prints JSON, one object per (setting, steps), with the seconds each setting took to train. The
first-measured break for VAL on pixels was this: a 16-channel VQ-VAE trained 4,000 steps loses the
gripper (docs/results.md, "Learning from pixels").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from latent_probe import fit, r2_and_error  # noqa: E402

from bench.algorithms.networks import mlp  # noqa: E402
from bench.algorithms.representations import VQVAE, to_float_images  # noqa: E402
from bench.datasets import Registry  # noqa: E402
from bench.platform.envs.tabletop_layout import GRIP  # noqa: E402
from bench.platform.settings import Settings  # noqa: E402

DEFAULTS = {"channels": 16, "batch": 32, "lr": 1e-3, "codes": 128, "dim": 5}


def parse_setting(text: str) -> dict:
    setting = dict(DEFAULTS)
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        if name not in DEFAULTS:
            raise SystemExit(f"unknown setting {name!r}; known: {', '.join(DEFAULTS)}")
        setting[name] = type(DEFAULTS[name])(value)
    return setting


@torch.no_grad()
def measure(model: VQVAE, images: torch.Tensor, moving: torch.Tensor, grips: torch.Tensor,
            train: torch.Tensor) -> dict:
    latents, errors = [], []
    for i in range(0, len(images), 512):
        batch = images[i:i + 512]
        latent = model.encode(batch)
        latents.append(latent)
        errors.append((model.decode(latent) - to_float_images(batch)).abs())
    latents, error = torch.cat(latents), torch.cat(errors)
    test = ~train
    codes = model.codes_of_latents(latents[::7]).unique().numel()
    inputs = (latents - latents[train].mean(0)) / (latents[train].std(0) + 1e-3)
    with torch.enable_grad():
        torch.manual_seed(0)
        probe = mlp(inputs.shape[1], (256, 256), 3)
        fit(probe, inputs, grips, train, 2000)
    r2, cm, axes = r2_and_error(probe(inputs[test]), grips[test])
    return {"reconstruction_error": round(float(error[test].mean()), 4),
            "moving_pixels_error": round(float(error[test][moving[test]].mean()), 4),
            "codes_used": int(codes), "probe_r2": round(r2, 3), "probe_r2_xyz": axes, "probe_error_cm": round(cm, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--dataset", default="tabletop/prior-v1")
    parser.add_argument("--settings", nargs="+", default=["channels=16", "channels=32"])
    parser.add_argument("--steps", default="4000,8000")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    os.environ["BENCH_HOME"] = args.home
    if args.threads:
        torch.set_num_threads(args.threads)
    version = Registry.open(Settings.load()).load(args.dataset)
    observations = version.data.observations
    images = torch.from_numpy(np.ascontiguousarray(observations["image"]))
    grips = torch.from_numpy(np.ascontiguousarray(observations["state"][:, GRIP])).float()
    lengths = np.asarray(version.data.lengths) + 1
    episode = np.repeat(np.arange(len(lengths)), lengths)
    train = torch.from_numpy(episode % 5 != 0)
    # Pixels that move within their episode: far from the episode's median frame.
    moving, start = [], 0
    for length in lengths:
        frames = to_float_images(images[start:start + length])
        moving.append((frames - frames.median(0).values).abs() > 0.1)
        start += length
    moving = torch.cat(moving)
    checkpoints = sorted(int(s) for s in args.steps.split(","))
    rows = torch.nonzero(train).squeeze(1)
    for text in args.settings:
        setting = parse_setting(text)
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        model = VQVAE(setting["codes"], setting["dim"], setting["channels"])
        optimizer = torch.optim.Adam(model.parameters(), lr=setting["lr"])
        trained, seconds = 0, 0.0
        for target in checkpoints:
            started = time.perf_counter()
            model.train()
            for _ in range(trained, target):
                batch = images[rows[torch.randint(len(rows), (setting["batch"],), generator=generator)]]
                loss = model.loss(batch)[0]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            seconds += time.perf_counter() - started
            trained = target
            model.eval()
            print(json.dumps({"setting": text, "steps": target, "train_seconds": round(seconds, 1),
                              **measure(model, images, moving, grips, train)}), flush=True)


if __name__ == "__main__":
    main()
