"""Updates per second of VAL's AWAC on full VQ-VAE latents vs their pooled view (``policy_view``), read by MLPs, a conv trunk or keypoints (``policy_trunk``).

    python benchmarks/latent_updates.py [--updates 300] [--threads 2] [--embedding-dim 2]

pi and Q see (z, z_g): 2 x 288 = 576 inputs with the full 12x12x2 grid, 2 x 72 = 144 with the
grid averaged over 2x2 cells (x 2.5 at --embedding-dim 5, the dissertation's 720-D). Synthetic
batches of VAL's size (128) through the same AWAC update the harness runs; prints JSON. Run it
on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench.algorithms import Batch, build_algorithm, make_config


def updates_per_second(view: str, updates: int, hidden: str, trunk: str = "mlp", embedding_dim: int = 2) -> float:
    config = make_config("val", None, {"policy_view": view, "hidden_dims": hidden, "policy_trunk": trunk,
                                       "vq_embedding_dim": embedding_dim})
    algorithm = build_algorithm("val", config, 0, 4)
    obs_dim = 2 * algorithm.view_dim
    generator = torch.Generator().manual_seed(0)
    batch = Batch(*(torch.randn(config.batch_size, d, generator=generator) for d in (obs_dim, 4)),
                  torch.randn(config.batch_size, generator=generator),
                  torch.randn(config.batch_size, obs_dim, generator=generator),
                  torch.zeros(config.batch_size))
    for _ in range(20):
        algorithm.update(batch)
    started = time.perf_counter()
    for _ in range(updates):
        algorithm.update(batch)
    return updates / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hidden", default="256x256")
    parser.add_argument("--embedding-dim", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rates = {f"{view}_{trunk}": round(updates_per_second(view, args.updates, args.hidden, trunk, args.embedding_dim), 1)
             for view in ("full", "pooled") for trunk in ("mlp", "conv", "keypoints")}
    print(json.dumps({"threads": args.threads, "hidden_dims": args.hidden, "batch": 128,
                      "inputs": {"full": 2 * 144 * args.embedding_dim, "pooled": 2 * 36 * args.embedding_dim},
                      "updates_per_second": rates, "pooled_speedup": round(rates["pooled_mlp"] / rates["full_mlp"], 2)}))


if __name__ == "__main__":
    main()
