"""Gradient updates per second of bench's BC, IQL, AWAC and CQL next to d3rlpy's, on this CPU or a GPU; prints JSON.

    .venv/bin/python benchmarks/throughput.py [--repeats 3] [--no-d3rlpy] [--device cpu|cuda] [--pixels] [--seeds 8]

Sizes as the issue fixes them: batch 256, obs 17, action 6, 2x256 MLPs (3x256 for CQL, as its
reference implementations use), 1M transitions in memory. For each algorithm:
  update_only   updates/s on one batch sampled beforehand
  full_loop     updates/s of sample-from-replay + update, the training loop's real cost
both eager and with ``compile_losses`` (torch.compile). d3rlpy (installed into its own
virtualenv, benchmarks/.venvs/d3rlpy, the first time) is timed the same way in a subprocess:
``update`` on a fixed batch, and ``sample_transition_batch`` + ``update``. The median of
``--repeats`` timings is reported. FLOPs per update are counted with torch's FlopCounterMode,
and the matmul peak of this machine is measured, so each algorithm's achieved GFLOP/s is shown
as a fraction of it (the figure that matters for CQL, whose update is matmul-bound).

``--seeds S`` adds S seeds trained as one batched model (bench.algorithms.seeds, ``bench evaluate
--batch-seeds``): each step samples S batches (one per seed's replay) and makes one vmapped update;
reported as seed-updates per second (S x steps/s), to set beside S separate runs' single-seed rate.
``--device cuda`` puts the replay and the networks on the GPU (timings wait for the GPU to finish);
d3rlpy is then left out (its virtualenv holds torch's CPU wheel). ``--pixels`` adds the pixel
representations' training steps at the tabletop's 48 x 48 x 3 images and the config's defaults: the
beta-VAE (RIG), the VQ-VAE and VAL's conditional PixelCNN on its codes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.algorithms import Batch, build_algorithm, make_config
from bench.algorithms.devices import resolve_device, runtime_of
from bench.algorithms.replay import Replay, TransitionBuffer

OBS, ACT, BATCH, TRANSITIONS = 17, 6, 256, 1_000_000
HIDDEN = {"bc": (256, 256), "iql": (256, 256), "awac": (256, 256), "cql": (256, 256, 256)}
UPDATES = {"bc": 400, "iql": 150, "awac": 150, "cql": 12}
D3RLPY_VERSION = "2.8.1"
VENV = Path(__file__).resolve().parent / ".venvs" / "d3rlpy"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work: a GPU returns from a kernel launch before the kernel is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(device: torch.device) -> float:
    a, b = torch.randn(2048, 256, device=device), torch.randn(256, 256, device=device)
    for _ in range(10):
        a @ b
    best = 0.0
    for _ in range(5):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(100):
            a @ b
        synchronize(device)
        best = max(best, 2 * 2048 * 256 * 256 * 100 / (time.perf_counter() - start) / 1e9)
    return best


def replay_of_random_data(rng: np.random.Generator) -> Replay:
    lengths = np.full(TRANSITIONS // 1000, 1000)
    buffer = TransitionBuffer.from_arrays(
        rng.standard_normal((TRANSITIONS, OBS), dtype=np.float32), rng.standard_normal((TRANSITIONS, OBS), dtype=np.float32),
        rng.uniform(-1, 1, (TRANSITIONS, ACT)).astype(np.float32), rng.standard_normal(TRANSITIONS).astype(np.float32),
        np.zeros(TRANSITIONS, np.float32), lengths)
    return Replay(buffer.to(DEVICE), seed=0)


DEVICE = torch.device("cpu")  # set by --device


def _rate(step, n: int, repeats: int) -> float:
    for _ in range(max(2, n // 20)):
        step()
    rates = []
    for _ in range(repeats):
        synchronize(DEVICE)
        start = time.perf_counter()
        for _ in range(n):
            step()
        synchronize(DEVICE)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def flops_per_update(name: str, batch: Batch) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    algorithm = build_algorithm(name, make_config(name, None, {"hidden_dims": HIDDEN[name]}), OBS, ACT).to(DEVICE)
    with FlopCounterMode(display=False) as counter:
        algorithm.update(batch)
    return float(counter.get_total_flops())


def bench_ours(name: str, replay: Replay, repeats: int) -> dict:
    out = {}
    fixed = replay.sample(BATCH)
    for mode in ("eager", "compiled"):
        torch.manual_seed(0)
        algorithm = build_algorithm(name, make_config(name, None, {"hidden_dims": HIDDEN[name]}), OBS, ACT).to(DEVICE)
        if mode == "compiled":
            started = time.perf_counter()
            algorithm.compile_losses()
            algorithm.update(fixed)
            synchronize(DEVICE)
            compile_seconds = time.perf_counter() - started
        out[mode] = {
            "update_only": _rate(lambda: algorithm.update(fixed), UPDATES[name], repeats),
            "full_loop": _rate(lambda: algorithm.update(replay.sample(BATCH)), UPDATES[name], repeats),
        }
        if mode == "compiled":
            out[mode]["compile_seconds"] = compile_seconds
    return out


def bench_seed_stack(name: str, replay: Replay, seeds: int, repeats: int) -> dict:
    """S seeds as one batched model: seed-updates per second, fixed batches and the full loop."""
    from bench.algorithms.seeds import SeedStack

    members = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        members.append(build_algorithm(name, make_config(name, None, {"hidden_dims": HIDDEN[name]}), OBS, ACT)
                       .to(DEVICE))
    stack = SeedStack(members)
    replays = [Replay(replay.offline, seed=seed) for seed in range(seeds)]  # one stream per seed, shared data
    fixed = [r.sample(BATCH) for r in replays]
    steps = max(2, UPDATES[name] // seeds)
    return {"seeds": seeds,
            "update_only": seeds * _rate(lambda: stack.update(fixed), steps, repeats),
            "full_loop": seeds * _rate(lambda: stack.update([r.sample(BATCH) for r in replays]), steps, repeats)}


def bench_pixels(repeats: int) -> dict:
    """Training steps per second of the pixel representations, at the config's defaults (batch, sizes)."""
    from bench.algorithms.latent_goals import LatentGoalConfig

    config = LatentGoalConfig()
    images = torch.randint(0, 256, (config.representation_batch_size, 48, 48, 3), dtype=torch.uint8, device=DEVICE)
    out = {}
    for name in ("rig", "val"):
        torch.manual_seed(0)
        algorithm = build_algorithm(name, make_config(name), 0, ACT).to(DEVICE)
        kind = algorithm.config.representation
        out[kind] = _rate(lambda: algorithm.update_representation(images, None), 20, repeats)
        if algorithm.proposer is not None:
            codes = algorithm.representation.codes_of(images[:algorithm.config.proposer_batch_size])
            out["pixelcnn"] = _rate(lambda: algorithm.update_proposer(codes, codes), 20, repeats)
    return {"steps_per_second": out, "batch": {"representation": config.representation_batch_size,
                                               "proposer": config.proposer_batch_size}}


D3RLPY_SCRIPT = r'''
import json, statistics, sys, time
import numpy as np, d3rlpy
from d3rlpy.dataset import MDPDataset
OBS, ACT, N, BATCH = 17, 6, 1_000_000, 256
name, updates, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
terminals = np.zeros(N); terminals[999::1000] = 1
dataset = MDPDataset(rng.standard_normal((N, OBS), dtype=np.float32), rng.uniform(-1, 1, (N, ACT)).astype(np.float32),
                     rng.standard_normal(N).astype(np.float32), terminals)
enc = lambda *h: d3rlpy.models.VectorEncoderFactory(list(h))
config = {
    "bc": lambda: d3rlpy.algos.BCConfig(batch_size=BATCH, encoder_factory=enc(256, 256)),
    "iql": lambda: d3rlpy.algos.IQLConfig(batch_size=BATCH, actor_encoder_factory=enc(256, 256),
                                          critic_encoder_factory=enc(256, 256), value_encoder_factory=enc(256, 256)),
    "awac": lambda: d3rlpy.algos.AWACConfig(batch_size=BATCH, actor_encoder_factory=enc(256, 256),
                                            critic_encoder_factory=enc(256, 256)),
    "cql": lambda: d3rlpy.algos.CQLConfig(batch_size=BATCH, actor_encoder_factory=enc(256, 256, 256),
                                          critic_encoder_factory=enc(256, 256, 256)),
}[name]()
algo = config.create(device="cpu:0")
algo.build_with_dataset(dataset)
fixed = dataset.sample_transition_batch(BATCH)
def rate(step):
    for _ in range(max(2, updates // 20)):
        step()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(updates):
            step()
        rates.append(updates / (time.perf_counter() - start))
    return statistics.median(rates)
out = {"update_only": rate(lambda: algo.update(fixed)),
       "full_loop": rate(lambda: algo.update(dataset.sample_transition_batch(BATCH))),
       "sample_only": rate(lambda: dataset.sample_transition_batch(BATCH))}
print(json.dumps(out))
'''


def ensure_d3rlpy() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        # torch pinned exactly: the CPU wheel on this machine (a looser pin pulls a CUDA build).
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "torch==2.13.0", f"d3rlpy=={D3RLPY_VERSION}"],
                       check=True)
    return python


def bench_d3rlpy(python: Path, name: str, repeats: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(D3RLPY_SCRIPT)
    try:
        result = subprocess.run([str(python), handle.name, name, str(UPDATES[name]), str(repeats)], capture_output=True,
                                text=True, check=True)
    finally:
        os.unlink(handle.name)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--algorithms", default="bc,iql,awac,cql")
    parser.add_argument("--no-d3rlpy", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (auto: a GPU when there is one)")
    parser.add_argument("--pixels", action="store_true", help="also the pixel representations' training steps")
    parser.add_argument("--seeds", type=int, default=0, help="also S seeds as one batched model (0: not measured)")
    parser.add_argument("--hidden", default=None, help="every algorithm's hidden sizes, e.g. 64x64 (small networks, "
                                                       "where per-operation overhead rules and batching seeds pays)")
    args = parser.parse_args()
    global DEVICE
    DEVICE = resolve_device(args.device)
    if args.hidden:
        HIDDEN.update({name: tuple(int(n) for n in args.hidden.split("x")) for name in HIDDEN})
    names = args.algorithms.split(",")
    peak = matmul_peak_gflops(DEVICE)
    replay = replay_of_random_data(np.random.default_rng(0))
    python = None if args.no_d3rlpy or DEVICE.type != "cpu" else ensure_d3rlpy()
    report = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "matmul_peak_gflops": round(peak, 1), **runtime_of(DEVICE)},
              "sizes": {"batch": BATCH, "obs": OBS, "action": ACT, "transitions": TRANSITIONS,
                        "hidden": {k: list(v) for k, v in HIDDEN.items()}},
              "algorithms": {}}
    for name in names:
        ours = bench_ours(name, replay, args.repeats)
        gflop = flops_per_update(name, replay.sample(BATCH)) / 1e9
        best = max(ours["eager"]["full_loop"], ours["compiled"]["full_loop"])
        entry = {"bench": ours, "gflop_per_update": round(gflop, 3),
                 "achieved_gflops": round(gflop * max(ours["eager"]["update_only"], ours["compiled"]["update_only"]), 1)}
        entry["fraction_of_matmul_peak"] = round(entry["achieved_gflops"] / peak, 3)
        if python is not None:
            reference = bench_d3rlpy(python, name, args.repeats)
            entry["d3rlpy"] = reference
            entry["speedup_vs_d3rlpy_full_loop"] = round(best / reference["full_loop"], 2)
            entry["speedup_vs_d3rlpy_update_only"] = round(
                max(ours["eager"]["update_only"], ours["compiled"]["update_only"]) / reference["update_only"], 2)
        if args.seeds > 1:
            entry["seeds_batched"] = bench_seed_stack(name, replay, args.seeds, args.repeats)
            entry["seeds_batched"]["speedup_vs_one_seed_full_loop"] = round(
                entry["seeds_batched"]["full_loop"] / ours["eager"]["full_loop"], 2)
        report["algorithms"][name] = entry
        print(f"{name}: {json.dumps(entry)}", file=sys.stderr)
    if args.pixels:
        report["pixels"] = bench_pixels(args.repeats)
    print(json.dumps(_rounded(report), indent=2))


def _rounded(value):
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


if __name__ == "__main__":
    main()
