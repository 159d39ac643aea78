"""Where the time of one training-loop step goes (sampling + update), by kind of operation; prints JSON.

    .venv/bin/python benchmarks/update_profile.py [--algorithms bc,iql,awac,cql] [--compiled]

torch.profiler (CPU) over N loop steps of bench's algorithms at CORL's sizes (benchmarks/throughput.py's
CORL_SIZES; batch 256, obs 17, action 6, 1M transitions). Each aten operation's self time is put in
one bucket: matrix products (mm, addmm, bmm, baddbmm, linear), the optimizer (Adam's step and
zero_grad), sampling (randint, index_select on the replay, the batch's concatenations), element-wise
and reductions (everything else that computes, inductor's fused kernels included), autograd's
bookkeeping, compiled code's dispatch, views/copies/allocation, and the rest. The ideal
line is the update's FLOPs at the matmul peak measured in the same process: what a step would cost
if it were nothing but matrix products at full speed. It also counts the aten calls a step makes
(nested ones included) and what one call costs before any arithmetic (a 4-element add): the floor
that per-operation overhead puts under a step, whatever its arithmetic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput  # noqa: E402

from bench.algorithms import build_algorithm, make_config  # noqa: E402

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::linear", "aten::matmul"}
SAMPLING = {"aten::randint", "aten::random_", "aten::index_select", "aten::cat"}
VIEWS = {"aten::t", "aten::transpose", "aten::as_strided", "aten::view", "aten::reshape", "aten::expand",
         "aten::unsqueeze", "aten::squeeze", "aten::select", "aten::slice", "aten::permute", "aten::detach",
         "aten::copy_", "aten::_to_copy", "aten::to", "aten::empty", "aten::empty_like", "aten::empty_strided",
         "aten::zeros", "aten::zeros_like", "aten::ones_like", "aten::fill_", "aten::zero_", "aten::alias",
         "aten::_unsafe_view", "aten::contiguous", "aten::clone", "aten::result_type", "aten::lift_fresh",
         "detach", "aten::resolve_conj", "aten::resolve_neg"}
STEPS = {"bc": 300, "iql": 100, "awac": 60, "cql": 6}


def bucket(event) -> str:
    name = event.key
    if name.startswith("## Call CompiledFxGraph"):  # inductor's fused kernels run inside this event
        return "element-wise and reductions"
    if name in ("CompiledFunction", "CompiledFunctionBackward", "TorchDynamo Cache Lookup") or \
            name.startswith("Torch-Compiled Region"):
        return "compiled code's dispatch"
    if name.startswith("autograd::") or "Backward" in name or "AccumulateGrad" in name:
        return "autograd bookkeeping"
    if name in MATMUL:
        return "matrix products"
    if name.startswith("Optimizer.") or "adam" in name.lower():
        return "optimizer"
    if name in SAMPLING:
        return "sampling"
    if name in VIEWS:
        return "views, copies, allocation"
    if name.startswith("aten::"):
        return "element-wise and reductions"
    return "other"


def profile_algorithm(name: str, replay, compiled: bool, peak: float) -> dict:
    throughput.HIDDEN[name] = throughput.CORL_SIZES[name]
    torch.manual_seed(0)
    algorithm = build_algorithm(name, make_config(name, None, {"hidden_dims": throughput.CORL_SIZES[name]}),
                                throughput.OBS, throughput.ACT)
    if compiled:
        algorithm.compile_losses()
    steps = STEPS[name]
    for _ in range(max(5, steps // 5)):
        algorithm.update(replay.sample(throughput.BATCH))
    started = time.perf_counter()
    for _ in range(steps):
        algorithm.update(replay.sample(throughput.BATCH))
    step_ms = 1000 * (time.perf_counter() - started) / steps
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            algorithm.update(replay.sample(throughput.BATCH))
    totals: dict[str, float] = {}
    calls = sum(event.count for event in profiler.key_averages() if event.key.startswith("aten::")) / steps
    for event in profiler.key_averages():
        kind = bucket(event)
        totals[kind] = totals.get(kind, 0.0) + event.self_cpu_time_total / 1000 / steps
    profiled = sum(totals.values())
    gflop = throughput.flops_per_update(name, replay.sample(throughput.BATCH)) / 1e9
    return {"hidden": list(throughput.CORL_SIZES[name]), "compiled": compiled, "step_ms": step_ms,
            "aten_calls_per_step": calls,
            "steps_per_second": 1000 / step_ms,
            "share": {kind: value / profiled for kind, value in sorted(totals.items(), key=lambda kv: -kv[1])},
            "gflop_per_update": gflop, "ideal_ms_at_matmul_peak": 1000 * gflop / peak}


def call_floor_us() -> float:
    """What one aten call costs before any arithmetic: a 4-element add, in microseconds."""
    x = torch.randn(4)
    for _ in range(500):
        x.add(1.0)
    started = time.perf_counter()
    for _ in range(20_000):
        x.add(1.0)
    return 1e6 * (time.perf_counter() - started) / 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", default="bc,iql,awac,cql")
    parser.add_argument("--compiled", action="store_true", help="with the losses through torch.compile")
    args = parser.parse_args()
    peak = throughput.matmul_peaks()["256x256x256"]
    replay = throughput.replay_of_random_data(np.random.default_rng(0))
    report = {"matmul_peak_gflops_256": peak, "torch_threads": torch.get_num_threads(),
              "microseconds_per_aten_call": call_floor_us(),
              "algorithms": {name: profile_algorithm(name, replay, args.compiled, peak)
                             for name in args.algorithms.split(",")}}
    print(json.dumps(throughput._rounded(report), indent=2))


if __name__ == "__main__":
    main()
