"""Gradient updates per second of bench's BC, IQL, AWAC and CQL next to d3rlpy's, on this CPU or a GPU; prints JSON.

    .venv/bin/python benchmarks/throughput.py [--repeats 3] [--no-d3rlpy] [--device cpu|cuda] [--pixels] [--seeds 8]
    .venv/bin/python benchmarks/throughput.py --corl-dir PATH [--repeats 3] [--write-docs]   # side by side with CORL

``--corl-dir``: CORL's own algorithm files (a checkout at commit CORL_COMMIT; nothing of CORL is copied
into bench: benchmarks/corl_worker.py imports them), d3rlpy and bench, each timing in a fresh process,
interleaved per repeat, at CORL's default sizes (and bench's where they differ); the matmul peak is
measured in the same run and the load average before and after; on a busy machine (1-minute load
above 0.5 before starting) it refuses, unless ``--allow-busy``, which marks the figures.

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
hidden = [int(n) for n in sys.argv[4].split("x")] if len(sys.argv) > 4 else None
rng = np.random.default_rng(0)
terminals = np.zeros(N); terminals[999::1000] = 1
dataset = MDPDataset(rng.standard_normal((N, OBS), dtype=np.float32), rng.uniform(-1, 1, (N, ACT)).astype(np.float32),
                     rng.standard_normal(N).astype(np.float32), terminals)
enc = lambda *h: d3rlpy.models.VectorEncoderFactory(list(h))
config = {
    "bc": lambda: d3rlpy.algos.BCConfig(batch_size=BATCH, encoder_factory=enc(*(hidden or [256, 256]))),
    "iql": lambda: d3rlpy.algos.IQLConfig(batch_size=BATCH, actor_encoder_factory=enc(*(hidden or [256, 256])),
                                          critic_encoder_factory=enc(*(hidden or [256, 256])),
                                          value_encoder_factory=enc(*(hidden or [256, 256]))),
    "awac": lambda: d3rlpy.algos.AWACConfig(batch_size=BATCH, actor_encoder_factory=enc(*(hidden or [256, 256])),
                                            critic_encoder_factory=enc(*(hidden or [256, 256]))),
    "cql": lambda: d3rlpy.algos.CQLConfig(batch_size=BATCH, actor_encoder_factory=enc(*(hidden or [256, 256, 256])),
                                          critic_encoder_factory=enc(*(hidden or [256, 256, 256]))),
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


def bench_d3rlpy(python: Path, name: str, repeats: int, hidden: tuple[int, ...] | None = None) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(D3RLPY_SCRIPT)
    try:
        sizes = ["x".join(map(str, hidden))] if hidden else []
        result = subprocess.run([str(python), handle.name, name, str(UPDATES[name]), str(repeats), *sizes],
                                capture_output=True, text=True, check=True)
    finally:
        os.unlink(handle.name)
    return json.loads(result.stdout.strip().splitlines()[-1])


# CORL's default network sizes per algorithm (its files: any_percent_bc, iql, awac, cql at commit CORL_COMMIT).
CORL_SIZES = {"bc": (256, 256), "iql": (256, 256), "awac": (256, 256, 256), "cql": (256, 256, 256)}
CORL_COMMIT = "6afec90"
BUSY_LOAD = 0.5  # a 1-minute load average above this before starting means something else is running


def matmul_peaks() -> dict[str, float]:
    """fp32 matmul GFLOP/s at an update's shape (256 x 256 x 256) and at a taller one (2048 x 256 x 256)."""
    out = {}
    for rows in (256, 2048):
        a, b = torch.randn(rows, 256), torch.randn(256, 256)
        for _ in range(20):
            a @ b
        best = 0.0
        for _ in range(5):
            repeats = max(50, 200 * 256 // rows)
            start = time.perf_counter()
            for _ in range(repeats):
                a @ b
            best = max(best, 2 * rows * 256 * 256 * repeats / (time.perf_counter() - start) / 1e9)
        out[f"{rows}x256x256"] = best
    return out


def bench_in_a_fresh_process(name: str, hidden: tuple[int, ...]) -> dict:
    """One timing of bench's loop (eager and compiled) in a process of its own, as CORL's and d3rlpy's are."""
    result = subprocess.run([sys.executable, __file__, "--worker", "--algorithms", name, "--repeats", "1",
                             "--hidden", "x".join(map(str, hidden))], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def corl_in_a_fresh_process(corl_dir: Path, name: str) -> float:
    worker = Path(__file__).resolve().parent / "corl_worker.py"
    result = subprocess.run([sys.executable, str(worker), str(corl_dir), name, str(UPDATES[name])],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["full_loop"]


def compare_with_corl(corl_dir: Path, names: list[str], repeats: int, allow_busy: bool) -> dict:
    """CORL, d3rlpy and bench, each timing in a fresh process, interleaved per repeat; medians over repeats.

    At CORL's sizes for every algorithm, and at bench's own where they differ (AWAC: 2x256 against CORL's
    3x256; CORL's sizes are fixed in its files)."""
    load_before = os.getloadavg()
    if load_before[0] > BUSY_LOAD and not allow_busy:
        raise SystemExit(f"the machine is busy (1-minute load {load_before[0]:.2f} > {BUSY_LOAD}): rerun when it is "
                         f"idle, or pass --allow-busy to report figures marked busy")
    peaks = [matmul_peaks()]
    python = ensure_d3rlpy()
    rows = [(name, CORL_SIZES[name], ("corl", "d3rlpy", "bench")) for name in names]
    rows += [(name, HIDDEN[name], ("d3rlpy", "bench")) for name in names if HIDDEN[name] != CORL_SIZES[name]]
    timings: dict[tuple, dict[str, list]] = {(name, hidden): {} for name, hidden, _ in rows}
    for repeat in range(repeats):
        for name, hidden, implementations in rows:
            cell = timings[(name, hidden)]
            for implementation in implementations:
                if implementation == "corl":
                    cell.setdefault("corl", []).append(corl_in_a_fresh_process(corl_dir, name))
                elif implementation == "d3rlpy":
                    cell.setdefault("d3rlpy", []).append(bench_d3rlpy(python, name, 1, hidden)["full_loop"])
                else:
                    ours = bench_in_a_fresh_process(name, hidden)["algorithms"][name]["bench"]
                    cell.setdefault("bench_eager", []).append(ours["eager"]["full_loop"])
                    cell.setdefault("bench_compiled", []).append(ours["compiled"]["full_loop"])
                    cell.setdefault("compile_seconds", []).append(ours["compiled"]["compile_seconds"])
            print(f"repeat {repeat + 1}/{repeats}, {name} {hidden}: {json.dumps({k: v[-1] for k, v in cell.items()})}",
                  file=sys.stderr)
    peaks.append(matmul_peaks())
    peak = {shape: max(p[shape] for p in peaks) for shape in peaks[0]}
    replay = replay_of_random_data(np.random.default_rng(0))
    report = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                          "matmul_peak_gflops": peak, "matmul_peak_each_measurement": peaks,
                          "load_before": load_before, "load_after": os.getloadavg(),
                          "busy": load_before[0] > BUSY_LOAD},
              "corl_commit": CORL_COMMIT, "repeats": repeats, "rows": []}
    for name, hidden, _ in rows:
        HIDDEN[name] = hidden
        medians = {key: statistics.median(values) for key, values in timings[(name, hidden)].items()}
        best = max(medians["bench_eager"], medians["bench_compiled"])
        gflop = flops_per_update(name, replay.sample(BATCH)) / 1e9
        row = {"algorithm": name, "hidden": list(hidden), **medians, "gflop_per_update": gflop,
               "bench_fraction_of_peak": gflop * best / peak["256x256x256"], "all": timings[(name, hidden)]}
        if "corl" in medians:
            row["bench_vs_corl"] = best / medians["corl"]
        row["bench_vs_d3rlpy"] = best / medians["d3rlpy"]
        report["rows"].append(row)
    return report


def corl_table(report: dict) -> str:
    peak = report["machine"]["matmul_peak_gflops"]["256x256x256"]
    lines = ["| algorithm (sizes) | CORL | d3rlpy | bench eager / compiled | bench / CORL | bench / d3rlpy | "
             "GFLOP per update | bench, of matmul peak |", "|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        sizes = "x".join(map(str, row["hidden"])) if len(set(row["hidden"])) > 1 else \
            f"{len(row['hidden'])}x{row['hidden'][0]}"
        corl = f"{row['corl']:.1f}" if "corl" in row else "-"
        versus = f"{row['bench_vs_corl']:.2f}x" if "bench_vs_corl" in row else "-"
        lines.append(f"| {row['algorithm']} ({sizes}) | {corl} | {row['d3rlpy']:.1f} | {row['bench_eager']:.1f} / "
                     f"{row['bench_compiled']:.1f} | {versus} | {row['bench_vs_d3rlpy']:.2f}x | "
                     f"{row['gflop_per_update']:.3f} | {100 * row['bench_fraction_of_peak']:.0f}% |")
    machine = report["machine"]
    lines.append("")
    lines.append(f"Training-loop updates per second (sample a batch of 256 from 1M transitions + one update), median "
                 f"of {report['repeats']} timings, each in a fresh process, CORL, d3rlpy and bench interleaved per "
                 f"repeat; CORL at commit {report['corl_commit']} (its own files, at its default sizes), d3rlpy "
                 f"{D3RLPY_VERSION}; torch {machine['torch']}, {machine['torch_threads']} threads. Matmul peak "
                 f"measured in the same run: {peak:.0f} GFLOP/s at 256x256x256 "
                 f"({machine['matmul_peak_gflops']['2048x256x256']:.0f} at 2048x256x256). Load average before "
                 f"{machine['load_before'][0]:.2f}, after {machine['load_after'][0]:.2f} (the benchmark's own two "
                 f"threads){'; THE MACHINE WAS BUSY: these figures are not comparable' if machine['busy'] else ''}.")
    return "\n".join(lines)


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
    parser.add_argument("--corl-dir", type=Path, default=None,
                        help=f"a checkout of CORL (commit {CORL_COMMIT}): time CORL, d3rlpy and bench side by side")
    parser.add_argument("--allow-busy", action="store_true", help="with --corl-dir: report even on a busy machine")
    parser.add_argument("--write-docs", action="store_true", help="with --corl-dir: the table into docs/results.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one fresh-process timing
    args = parser.parse_args()
    if args.corl_dir is not None:
        report = compare_with_corl(args.corl_dir, args.algorithms.split(","), args.repeats, args.allow_busy)
        print(json.dumps(_rounded(report), indent=2))
        if args.write_docs:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from pixel_matrix import write_marked_block

            write_marked_block("throughput-corl", corl_table(report))
        return
    global DEVICE
    DEVICE = resolve_device(args.device)
    if args.hidden:
        HIDDEN.update({name: tuple(int(n) for n in args.hidden.split("x")) for name in HIDDEN})
    names = args.algorithms.split(",")
    peak = matmul_peak_gflops(DEVICE)
    replay = replay_of_random_data(np.random.default_rng(0))
    python = None if args.no_d3rlpy or args.worker or DEVICE.type != "cpu" else ensure_d3rlpy()
    report = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "matmul_peak_gflops": round(peak, 1), **runtime_of(DEVICE)},
              "sizes": {"batch": BATCH, "obs": OBS, "action": ACT, "transitions": TRANSITIONS,
                        "hidden": {k: list(v) for k, v in HIDDEN.items()}},
              "algorithms": {}}
    for name in names:
        ours = bench_ours(name, replay, args.repeats)
        if args.worker:
            report["algorithms"][name] = {"bench": ours}
            continue
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
    if args.worker:
        print(json.dumps(report))
        return
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
