"""Updates per second of VAL's AWAC on full VQ-VAE latents vs their pooled view (``policy_view``).

    python benchmarks/latent_updates.py [--updates 300] [--threads 2]

pi and Q see (z, z_g): 2 x 288 = 576 inputs with the full 12x12x2 grid, 2 x 72 = 144 with the
grid averaged over 2x2 cells. Synthetic batches of VAL's size (128) through the same AWAC update
the harness runs; prints JSON. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench.algorithms import Batch, build_algorithm, make_config


def updates_per_second(view: str, updates: int, hidden: str) -> float:
    config = make_config("val", None, {"policy_view": view, "hidden_dims": hidden})
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    full = updates_per_second("full", args.updates, args.hidden)
    pooled = updates_per_second("pooled", args.updates, args.hidden)
    print(json.dumps({"threads": args.threads, "hidden_dims": args.hidden, "batch": 128,
                      "full_576_inputs_updates_per_second": round(full, 1),
                      "pooled_144_inputs_updates_per_second": round(pooled, 1), "speedup": round(pooled / full, 2)}))


if __name__ == "__main__":
    main()
