"""How well does each tabletop camera show where the gripper is? A conv probe reads its xyz from 48x48 images.

    python benchmarks/camera_probe.py [--episodes 60] [--steps 3000] [--cameras front,steep,overhead]

For every camera: the same episodes (the prior data's scripted primitives in training-split
scenes, 51 frames each) rendered from that camera; a conv probe (the
pixel probe of benchmarks/latent_probe.py) is trained on 80% of the episodes to predict the
gripper's xyz and tested on the other 20% and on episodes in held-out scenes (new shapes and
colours). Prints JSON: R^2 over xyz and per axis, and the mean error in cm. Pixels bound what any
representation of them can carry: a camera whose pixels hide the gripper's position cannot give
a policy a latent that shows it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from latent_probe import fit, pixel_probe, r2_and_error  # noqa: E402

from bench.algorithms.representations import to_float_images  # noqa: E402
from bench.datasets.recipes.tabletop import collect  # noqa: E402
from bench.platform.envs.tabletop import CAMERAS, TabletopEnv  # noqa: E402
from bench.platform.envs.tabletop_layout import GRIP  # noqa: E402


def frames(camera: str, split: str, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Episodes of the prior data's recipe (scripted primitives, noise) seen from ``camera``: the same
    trajectories for every camera, since the camera does not touch the dynamics."""
    env = TabletopEnv(scene_split=split, camera=camera)
    rng = np.random.default_rng(seed)
    images, grips = [], []
    for episode in range(episodes):
        record = collect(env, "prior", seed * 10_000 + episode, rng)
        images.append(record.observations["image"])
        grips.append(record.observations["state"][:, GRIP])
    env.close()
    return np.concatenate(images), np.concatenate(grips).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--cameras", default=",".join(CAMERAS))
    args = parser.parse_args()
    report = {"episodes": args.episodes, "probe_steps": args.steps, "cameras": {}}
    for camera in args.cameras.split(","):
        torch.manual_seed(0)
        images, grips = frames(camera, "train", args.episodes, seed=1)
        held_images, held_grips = frames(camera, "held-out", max(5, args.episodes // 6), seed=2)
        train = torch.from_numpy(np.repeat(np.arange(args.episodes) < int(0.8 * args.episodes), len(images) // args.episodes))
        # Pixels standardized per pixel with the training frames' statistics (as latent_probe does), so
        # the static table and fixtures cancel and what moves stands out.
        pixels = to_float_images(torch.from_numpy(images)).flatten(1)
        mean, std = pixels[train].mean(0), pixels[train].std(0) + 1e-3
        inputs = (pixels - mean) / std
        targets = torch.from_numpy(grips)
        probe = pixel_probe()
        fit(probe, inputs, targets, train, args.steps)
        held = (to_float_images(torch.from_numpy(held_images)).flatten(1) - mean) / std
        with torch.no_grad():
            test_r2, test_cm, test_axes = r2_and_error(probe(inputs[~train]), targets[~train])
            held_r2, held_cm, held_axes = r2_and_error(probe(held), torch.from_numpy(held_grips))
        report["cameras"][camera] = {
            "held_out_episodes": {"r2": round(test_r2, 3), "r2_xyz": test_axes, "error_cm": round(test_cm, 2)},
            "held_out_scenes": {"r2": round(held_r2, 3), "r2_xyz": held_axes, "error_cm": round(held_cm, 2)}}
        print(json.dumps({camera: report["cameras"][camera]}), file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
