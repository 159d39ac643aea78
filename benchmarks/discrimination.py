"""Which shipped datasets tell BC, AWAC, IQL and CQL apart: per dataset, do the methods' 95% intervals separate? JSON.

    .venv/bin/python benchmarks/discrimination.py [--suites families,pointmaze,...] [--datasets A,B] [--seeds 3]
        [--offline-steps 20000] [--eval-episodes 10] [--home benchmarks/.scores-home] [--report-only] [--markdown]

The acceptance instrument of issue 24. For every dataset of the chosen shipped suites (default: all of
them), it runs the four offline methods x ``--seeds`` seeds through the harness (offline only: the
claims of ch. 7-8 are about offline learning), reusing completed runs of the same config and budget
in ``--home`` (shared with benchmarks/scores.py), so an interrupted measurement continues. Per dataset
and method: the suite's metric at the final offline evaluation, its mean over seeds and the 95%
percentile-bootstrap interval over seeds (the leaderboards' cell). Per dataset: the pairs of methods
whose intervals do not overlap ("separated"), and the flags ``ceiling`` (every method above 90%
success) and ``floor`` (every method below 10%): a dataset where nothing separates, or that sits at
the ceiling or the floor, ranks nothing. Issue 24 is done when every dataset of the HEADLINE suites
discriminates, or is one of the datasets KEPT_ON_PURPOSE, with its reason ("headline_unmet" lists the others).

Budget (the papers' values in brackets): benchmarks/scores.py's networks (2x128 [2x256]; CQL 2x64 with
4 sampled actions [3x256, 10]), ``--offline-steps`` updates [1M for IQL/CQL], batch 256, evaluation on
``--eval-episodes`` fixed episodes; every other setting is the algorithm's default with its domain preset,
except FAMILY_OVERRIDES: on the mazes IQL and CQL train on the rewards as they are (0/1), not the AntMaze
preset's reward - 1. Under r - 1 every value must first descend from 0 to about -1/(1 - gamma) = -100,
which 20k updates (2% of the papers' 1M) do not finish: IQL's V stayed flat along the path from start to
goal, where with 0/1 rewards it rises towards the goal (the measurement: docs/results.md, "What the
redesign measured on the way", item 3).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scores  # noqa: E402

from bench.datasets import Registry  # noqa: E402
from bench.datasets.recipes.build import build  # noqa: E402
from bench.errors import NotFound  # noqa: E402
from bench.evaluation.executors import execute_sweep  # noqa: E402
from bench.evaluation.store import RunStore  # noqa: E402
from bench.evaluation.sweeps import Budget, plan_sweep  # noqa: E402
from bench.leaderboards.statistics import bootstrap_mean  # noqa: E402
from bench.leaderboards.suites import shipped_suites  # noqa: E402

ALGORITHMS = scores.ALGORITHMS
EPISODES = {"ogbench/cube-single/play": 40}  # recipe -> episodes where the default is beyond a CPU session
CEILING, FLOOR = 0.9, 0.1
# Config overrides per dataset family and algorithm, over BUDGET_OVERRIDES (why: the docstring).
FAMILY_OVERRIDES = {"pointmaze": {"iql": {"reward_transform": "none"}, "cql": {"reward_transform": "none"}}}


def overrides_for(algorithm: str, dataset: str) -> dict[str, str]:
    """The config overrides a run of ``algorithm`` on ``dataset`` gets at this budget."""
    family = dataset.split("/")[0]
    return {**scores.BUDGET_OVERRIDES[algorithm], **FAMILY_OVERRIDES.get(family, {}).get(algorithm, {})}


# The suites a reader ranks methods by; the others (goal-conditioned mazes, AWAC-style mixed data,
# Fetch, OGBench, locomotion) are measured too, but not held to separating the methods.
HEADLINE = ("families", "pointmaze", "sawyer", "sawyer-success")
# Datasets of headline suites kept although they do not separate the methods at the measured budget, and why.
KEPT_ON_PURPOSE: dict[str, str] = {}


def datasets_of(suites: list[str]) -> dict[str, str]:
    """dataset -> the metric its (first) suite ranks it by."""
    known = shipped_suites()
    unknown = [name for name in suites if name not in known]
    if unknown:
        raise SystemExit(f"unknown suites {unknown}; shipped: {sorted(known)}")
    out: dict[str, str] = {}
    for name in suites:
        spec = known[name]
        if spec.kind != "runs":
            continue
        for dataset in spec.datasets:
            out.setdefault(dataset, spec.metric)
    return out


def headline_datasets() -> set[str]:
    known = shipped_suites()
    return {dataset for name in HEADLINE for dataset in known[name].datasets}


def ensure(registry: Registry, recipe: str) -> str:
    try:
        return registry.show(recipe).id
    except NotFound:
        print(f"building {recipe}", file=sys.stderr)
        return build(registry, recipe, episodes=EPISODES.get(recipe), previews=False).id


def separation(stats: dict[str, dict | None]) -> list[str]:
    """'A > B' for every pair of methods whose 95% intervals do not overlap."""
    pairs = []
    for a, b in itertools.combinations([m for m in ALGORITHMS if stats.get(m) and stats[m]["ci95"]], 2):
        (a_low, a_high), (b_low, b_high) = stats[a]["ci95"], stats[b]["ci95"]
        if a_low > b_high:
            pairs.append(f"{a} > {b}")
        elif b_low > a_high:
            pairs.append(f"{b} > {a}")
    return pairs


def report(store: RunStore, run_ids: dict[tuple[str, str], list[str]], metrics: dict[str, str]) -> dict:
    out = {}
    for dataset, metric in metrics.items():
        stats, success = {}, {}
        for algorithm in ALGORITHMS:
            runs = [store.get(run_id) for run_id in run_ids.get((algorithm, dataset), [])]
            finals = [((r.results or {}).get("offline") or {}).get("final") or {} for r in runs if r.status == "completed"]
            stats[algorithm] = bootstrap_mean([f.get(metric) for f in finals])
            success[algorithm] = bootstrap_mean([f.get("success_rate") for f in finals])
        rates = [s["mean"] for s in success.values() if s]
        complete = len(rates) == len(ALGORITHMS)
        out[dataset] = {
            "metric": metric,
            "methods": {m: (None if s is None else {"mean": s["mean"], "ci95": s["ci95"], "seeds": s["n"]})
                        for m, s in stats.items()},
            "separated": separation(stats),
            "ceiling": complete and min(rates) > CEILING,
            "floor": complete and max(rates) < FLOOR,
        }
        out[dataset]["discriminates"] = bool(out[dataset]["separated"]) and not (out[dataset]["ceiling"] or
                                                                                 out[dataset]["floor"])
    return out


def markdown(datasets: dict) -> str:
    """One row per dataset: each method's metric, mean over seeds [95% interval] (success rates in %), the
    separated pairs and the ceiling/floor flags."""
    def cell(stats: dict | None, metric: str) -> str:
        if stats is None:
            return "-"
        scale = 100.0 if metric == "success_rate" else 1.0
        interval = "" if stats["ci95"] is None else f" [{stats['ci95'][0] * scale:.0f}, {stats['ci95'][1] * scale:.0f}]"
        return f"{stats['mean'] * scale:.0f}{interval}" + ("" if stats["seeds"] >= 3 else f" (n={stats['seeds']})")

    lines = ["| dataset | metric | BC | AWAC | IQL | CQL | separated | flag |", "|---|---|---|---|---|---|---|---|"]
    for name, row in datasets.items():
        metric = row["metric"]
        flag = "ceiling" if row["ceiling"] else "floor" if row["floor"] else ""
        lines.append(f"| {name} | {metric.replace('_', ' ').replace('success rate', 'success %')} | "
                     + " | ".join(cell(row["methods"].get(m), metric) for m in ALGORITHMS)
                     + f" | {', '.join(row['separated']) or 'none'} | {flag} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default=",".join(sorted(shipped_suites())))
    parser.add_argument("--datasets", default=None, help="only these datasets of the suites (comma-separated)")
    parser.add_argument("--home", default=str(scores.ROOT / "benchmarks" / ".scores-home"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--offline-steps", type=int, default=20_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--executor", default="process")
    parser.add_argument("--report-only", action="store_true", help="run nothing: report the completed runs")
    parser.add_argument("--markdown", action="store_true", help="print the table of docs/results.md, not JSON")
    args = parser.parse_args()
    settings, registry, store = scores.open_home(Path(args.home))
    metrics = datasets_of(args.suites.split(","))
    if args.datasets:
        chosen = args.datasets.split(",")
        unknown = [name for name in chosen if name not in metrics]
        if unknown:
            raise SystemExit(f"{unknown} are not in the suites {args.suites}")
        metrics = {name: metrics[name] for name in chosen}
    budget = Budget(args.offline_steps, 0, args.offline_steps, args.eval_episodes, log_every=1000)
    started = time.perf_counter()
    run_ids: dict[tuple[str, str], list[str]] = {}
    specs = []
    for recipe in metrics:
        dataset_id = recipe if args.report_only else ensure(registry, recipe)
        for algorithm in ALGORITHMS:
            overrides = overrides_for(algorithm, recipe)
            try:
                done = scores.completed_runs(store, algorithm, registry.show(dataset_id).id, overrides, budget,
                                             args.seeds)
            except NotFound:  # --report-only before the dataset was built
                done = {}
            missing = [] if args.report_only else [seed for seed in range(args.seeds) if seed not in done]
            planned = plan_sweep(registry, store, algorithm, dataset_id, missing, budget, overrides,
                                 args.executor) if missing else []
            run_ids[(algorithm, recipe)] = [*done.values(), *(spec.run_id for spec in planned)]
            specs += planned
    for spec in specs:
        spec.torch_threads = 1  # one process per core
    if specs:
        execute_sweep(specs, settings, store, args.executor)
    datasets = report(store, run_ids, metrics)
    registry.close()
    if args.markdown:
        print(markdown(datasets))
        return
    print(json.dumps({
        "command": "python benchmarks/discrimination.py" + "".join(
            f" --{name.replace('_', '-')} {getattr(args, name)}" for name in ("suites", "datasets", "seeds",
                                                                              "offline_steps", "eval_episodes")
            if getattr(args, name) is not None),
        "seconds": time.perf_counter() - started,
        "budget": {"offline_steps": args.offline_steps, "eval_episodes": args.eval_episodes, "seeds": args.seeds,
                   "networks": scores.BUDGET_OVERRIDES, "family_overrides": FAMILY_OVERRIDES},
        "datasets": datasets,
        "not_discriminating": sorted(name for name, row in datasets.items() if not row["discriminates"]),
        "headline_unmet": sorted(name for name in headline_datasets() if name in datasets
                                 and not datasets[name]["discriminates"] and name not in KEPT_ON_PURPOSE),
        "kept_on_purpose": KEPT_ON_PURPOSE,
    }, indent=2))


if __name__ == "__main__":
    main()
