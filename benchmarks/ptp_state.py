"""PTP's planner on states: ptp-state against the model-free gc-iql-state on OGBench scene-play, offline then after practice.

    python benchmarks/ptp_state.py [--home DIR] [--episodes 100] [--seeds 3] [--write-docs]

Builds ``ogbench/scene/play`` in the registry at ``home`` if it has none, runs both algorithms
(identical goal-conditioned IQL; one plans subgoals, one follows the final goal) for every seed
at the budget below, one run per core, and prints JSON: per algorithm the success rate over
OGBench's five evaluation tasks after the offline phase and after online practice, per seed.
``--write-docs`` puts the table into docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pixel_matrix import ROOT, bench, ensure_dataset, home_env, runs_env, write_marked_block  # noqa: E402

ALGORITHMS = ("ptp-state", "gc-iql-state")
DATASET = "ogbench/scene/play"
# The CPU budget (OGBench trains GCIQL for 1M updates; docs/algorithms.md lists the reductions).
BUDGET = {"offline_steps": 10000, "online_steps": 3000, "eval_every": 5000, "eval_episodes": 10}
MARKER = "ptp-state-benchmark"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=str(ROOT / ".bench-ptp-state"))
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    env = home_env(args.home)
    ensure_dataset(env, DATASET, args.episodes)
    parallel = os.cpu_count() or 1
    run_env = runs_env(env, parallel)
    started = time.perf_counter()

    def run_one(algorithm: str, seed: int) -> dict:
        out = bench(run_env, "evaluate", algorithm, DATASET, "--seed-list", str(seed),
                    *[item for key, value in BUDGET.items() for item in (f"--{key.replace('_', '-')}", str(value))],
                    "--json")
        run = json.loads(out)["runs"][0]
        if run["status"] != "completed":
            raise SystemExit(f"{algorithm}, seed {seed}: run {run['run_id']} {run['status']}: {run['error']}")
        shown = json.loads(bench(env, "runs", "show", run["run_id"], "--json"))["results"]
        return {"algorithm": algorithm, "seed": seed, "run": run["run_id"],
                "offline": shown["offline"]["final"]["success_rate"], "online": shown["online"]["final"]["success_rate"],
                "seconds_per_plan": shown.get("seconds_per_plan")}

    with ThreadPoolExecutor(parallel) as pool:
        runs = list(pool.map(lambda job: run_one(*job), [(a, s) for a in ALGORITHMS for s in range(args.seeds)]))
    report = {"dataset": DATASET, "budget": BUDGET, "episodes": args.episodes, "seeds": args.seeds,
              "minutes": round((time.perf_counter() - started) / 60, 1), "results": {}}
    for algorithm in ALGORITHMS:
        mine = [r for r in runs if r["algorithm"] == algorithm]
        report["results"][algorithm] = {
            "offline": sum(r["offline"] for r in mine) / len(mine), "online": sum(r["online"] for r in mine) / len(mine),
            "offline_per_seed": [r["offline"] for r in mine], "online_per_seed": [r["online"] for r in mine],
            "runs": [r["run"] for r in mine]}
    print(json.dumps(report, indent=2))
    if args.write_docs:
        write_docs(report)


def write_docs(report: dict) -> None:
    budget = report["budget"]
    rows = "".join(f"| {a} | {c['offline']:.2f} -> {c['online']:.2f} | "
                   f"{', '.join(f'{x:.1f}' for x in c['offline_per_seed'])} -> "
                   f"{', '.join(f'{x:.1f}' for x in c['online_per_seed'])} |\n" for a, c in report["results"].items())
    block = (f"| method | success offline -> online | per seed |\n|---|---|---|\n{rows}\n"
             f"{report['dataset']} ({report['episodes']} episodes), {budget['offline_steps']} offline updates, then "
             f"{budget['online_steps']} online steps; {budget['eval_episodes']} evaluation episodes per seed over "
             f"OGBench's five tasks; {report['seeds']} seeds; {report['minutes']:.0f} min on this machine.")
    write_marked_block(MARKER, block)


if __name__ == "__main__":
    main()
