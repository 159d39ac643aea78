"""How long one PTP plan takes: Algorithm 9 at bench's CPU default and at the dissertation's sizes.

    python benchmarks/planner.py [--repeats 3]

Times ``plan`` (generators untrained: the cost does not depend on their weights) with a value
network of the policy's size as the feasibility term, on latents of the CPU default (288-D) and
the dissertation's (720-D), and prints JSON: seconds per plan (median of the repeats).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from bench.algorithms.networks import ValueFunction
from bench.algorithms.subgoals import PlannerSettings, SubgoalGenerator, plan

CASES = {
    "bench default (L 2, K 4, N 256, 288-D)": (288, PlannerSettings(levels=2, subgoals=4, samples=256)),
    "dissertation (L 3, K 8, N 1024, 720-D)": (720, PlannerSettings(levels=3, subgoals=8, samples=1024)),
    "no hierarchy (L 1, K 8, N 256, 288-D)": (288, PlannerSettings(levels=1, subgoals=8, samples=256)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    report = {"torch_threads": torch.get_num_threads(), "seconds_per_plan": {}}
    for name, (dim, settings) in CASES.items():
        generators = [SubgoalGenerator(dim, 8, (256, 256)) for _ in range(settings.levels)]
        value = ValueFunction(2 * dim, (256, 256))
        feasibility = lambda s, g: value(torch.cat([s, g], 1))  # noqa: E731
        times = []
        for repeat in range(args.repeats):
            started = time.perf_counter()
            plan(torch.randn(dim), torch.randn(dim), generators, settings, feasibility,
                 rng=torch.Generator().manual_seed(repeat))
            times.append(time.perf_counter() - started)
        report["seconds_per_plan"][name] = round(statistics.median(times), 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
