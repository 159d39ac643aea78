"""Dissertation ch. 7 (AWAC), the switch from offline to online: learning curves dense around it, over seeds.

    python benchmarks/switch_curves.py [--home DIR] [--seeds 3] [--offline-steps 4000] [--online-steps 4000]
                                       [--write-docs]

The claim (ch. 7, Fig. 20-21): methods that pretrain offline and then fine-tune online differ most
right after the switch. AWAC keeps what it learned offline and improves from there; SACfD (SAC with
the prior data in its replay, trained on it first) drops when it starts online, because its critic,
fitted off-policy to the data, overestimates the actions its own actor then takes; SAC from scratch
starts from nothing. IQL (ch. 8) is the other method built to fine-tune.

For each dataset x algorithm x seed: ``bench evaluate ALGO DATASET --offline-steps N --online-steps M
--online-evals-at 250,500,...``: the offline phase is evaluated every ``--eval-every`` updates, the
online phase at the dense points plus every ``--eval-every`` steps. ``sac`` has no offline phase
(it learns from scratch), so its curve starts at the switch. Runs two at a time, one thread each;
the report keeps each run in ``home/report.json`` as it finishes, so an interrupted sweep continues.

Reported per algorithm and dataset: the mean normalized score (and success rate) over seeds at the
last offline evaluation, at each online point, the largest drop below the offline score in the
first 1,000 online steps (the "dip"), and the final online score, each with its per-seed values.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pixel_matrix import bench, ensure_dataset, home_env, runs_env, write_marked_block  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"metaworld/drawer-open/mixed": 255, "fetch/pick-and-place/demos": 100}  # recipe -> episodes (the recipes' defaults)
ALGORITHMS = ("awac", "iql", "sacfd", "sac")
# The same CPU reduction as benchmarks/scores.py (2x128 networks; the papers: 2x256); SAC and SACfD alike.
OVERRIDES = ["hidden_dims=128x128"]
DENSE = (250, 500, 750, 1000, 1500, 2000, 3000)  # online steps evaluated besides every --eval-every
DIP_WINDOW = 1000  # the "dip" is measured over the first online steps up to here


def run_sweep(home: str, seeds: int, budget: dict, parallel: int = 2) -> dict:
    env = home_env(home)
    for recipe, episodes in DATASETS.items():
        ensure_dataset(env, recipe, episodes)
    run_env = runs_env(env, parallel)
    path = Path(home) / "report.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    runs: dict[str, dict] = saved.get("runs", {}) if saved.get("budget") == budget else {}
    lock, started = threading.Lock(), time.perf_counter()
    spent = saved.get("seconds", 0.0) if runs else 0.0

    def run_one(algorithm: str, dataset: str, seed: int) -> None:
        t0 = time.perf_counter()
        dense = [s for s in DENSE if s <= budget["online_steps"]]
        out = bench(run_env, "evaluate", algorithm, dataset, "--seed-list", str(seed),
                    "--offline-steps", str(budget["offline_steps"]), "--online-steps", str(budget["online_steps"]),
                    "--eval-every", str(budget["eval_every"]), "--eval-episodes", str(budget["eval_episodes"]),
                    "--online-evals-at", ",".join(map(str, dense)),
                    *[item for o in OVERRIDES for item in ("--set", o)], "--json")
        run = json.loads(out)["runs"][0]
        if run["status"] != "completed":
            raise SystemExit(f"{algorithm} on {dataset}, seed {seed}: run {run['run_id']} {run['status']}: {run['error']}")
        shown = json.loads(bench(env, "runs", "show", run["run_id"], "--json"))
        curve = {f"{c['phase']}|{c['step']}": {"score": c.get("normalized_score"), "success": c.get("success_rate")}
                 for c in shown["curves"] if c["kind"] == "eval"}
        with lock:
            runs[f"{algorithm}|{dataset}|{seed}"] = {"run": run["run_id"], "curve": curve,
                                                     "seconds": round(time.perf_counter() - t0, 1)}
            print(json.dumps({"algorithm": algorithm, "dataset": dataset, "seed": seed, "run": run["run_id"],
                              "seconds": runs[f"{algorithm}|{dataset}|{seed}"]["seconds"]}), file=sys.stderr)
            path.write_text(json.dumps({"budget": budget, "runs": runs,
                                        "seconds": spent + time.perf_counter() - started}))

    jobs = [(a, d, s) for d in DATASETS for a in ALGORITHMS for s in range(seeds) if f"{a}|{d}|{s}" not in runs]
    with ThreadPoolExecutor(parallel) as pool:
        for future in [pool.submit(run_one, *job) for job in jobs]:
            future.result()
    return summarize({"budget": budget, "runs": runs, "seeds": seeds,
                      "seconds": spent + time.perf_counter() - started})


def summarize(report: dict) -> dict:
    """Per algorithm and dataset: the mean curve over seeds, the offline end point, the dip and the final score."""
    results: dict[str, dict] = {}
    for dataset in DATASETS:
        for algorithm in ALGORITHMS:
            curves = [report["runs"][f"{algorithm}|{dataset}|{s}"]["curve"] for s in range(report["seeds"])]
            online_steps = sorted({int(k.split("|")[1]) for c in curves for k in c if k.startswith("online|")})
            offline_steps = sorted({int(k.split("|")[1]) for c in curves for k in c if k.startswith("offline|")})
            cell: dict = {"curve": {}}
            for metric in ("score", "success"):
                at_switch = [c[f"offline|{offline_steps[-1]}"][metric] for c in curves] if offline_steps else None
                points = {step: [c[f"online|{step}"][metric] for c in curves] for step in online_steps}
                if None in (at_switch or []) or any(None in v for v in points.values()):
                    continue
                early = [step for step in online_steps if step <= DIP_WINDOW]
                cell[metric] = {
                    "offline_end": at_switch,
                    "final": points[online_steps[-1]],
                    # Per seed: how far the policy fell below its offline end point in the first online steps.
                    "dip": ([max(0.0, at_switch[i] - min(points[s][i] for s in early)) for i in range(len(curves))]
                            if at_switch is not None and early else None),
                }
                cell["curve"][metric] = {step: statistics.mean(v) for step, v in points.items()}
            results.setdefault(dataset, {})[algorithm] = cell
    return {**report, "results": results}


def _mean(values) -> str:
    return "-" if values is None else f"{statistics.mean(values):.1f}"


def _rate(values) -> str:
    return f"{statistics.mean(values):.2f}"


def write_docs(report: dict) -> None:
    budget = report["budget"]
    lines = ["| dataset | method | score at the switch (offline end) | largest dip in the first 1,000 online steps "
             "(per seed) | final online score | success: offline end -> final |", "|---|---|---|---|---|---|"]
    for dataset, per_algorithm in report["results"].items():
        for algorithm, cell in per_algorithm.items():
            score, success = cell.get("score"), cell.get("success")
            if not score:
                continue
            dip = "-" if score["dip"] is None else f"{_mean(score['dip'])} ({', '.join(f'{d:.0f}' for d in score['dip'])})"
            lines.append(f"| {dataset} | {algorithm} | {_mean(score['offline_end'])} | {dip} | "
                         f"{_mean(score['final'])} | {_rate(success['offline_end']) if success else '-'} -> "
                         f"{_rate(success['final']) if success else '-'} |")
    curve_lines = []
    for dataset, per_algorithm in report["results"].items():
        for metric, label, digits in (("score", "mean normalized score", 1), ("success", "mean success rate", 2)):
            steps = sorted({int(s) for cell in per_algorithm.values() for s in cell["curve"].get(metric, {})})
            curve_lines += [f"\n{dataset}, {label} over seeds at each online step (0 = the offline end):\n",
                            "| method | 0 | " + " | ".join(map(str, steps)) + " |", "|---|---|" + "---|" * len(steps)]
            for algorithm, cell in per_algorithm.items():
                values = {int(k): v for k, v in cell["curve"].get(metric, {}).items()}
                start = (f"{statistics.mean(cell[metric]['offline_end']):.{digits}f}" if cell.get(metric) else "-")
                curve_lines.append(f"| {algorithm} | {start} | " + " | ".join(
                    f"{values[s]:.{digits}f}" if s in values else "-" for s in steps) + " |")
    body = (f"`python benchmarks/switch_curves.py --home .bench-switch --write-docs`: {budget['offline_steps']} offline "
            f"updates, then {budget['online_steps']} online steps with one update each; evaluations every "
            f"{budget['eval_every']} steps and online at {', '.join(map(str, DENSE))}; {budget['eval_episodes']} "
            f"episodes each; {report['seeds']} seeds; {', '.join(OVERRIDES)}; "
            f"{report['seconds'] / 60:.0f} min on this machine, two runs at a time.\n\n" + "\n".join(lines) + "\n" + "\n".join(curve_lines)
            + "\n")
    write_marked_block("switch-curves", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=str(ROOT / ".bench-switch"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--offline-steps", type=int, default=4000)
    parser.add_argument("--online-steps", type=int, default=4000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    budget = {"offline_steps": args.offline_steps, "online_steps": args.online_steps, "eval_every": args.eval_every,
              "eval_episodes": args.eval_episodes}
    report = run_sweep(args.home, args.seeds, budget)
    print(json.dumps(report, indent=2))
    if args.write_docs:
        write_docs(report)


if __name__ == "__main__":
    main()
