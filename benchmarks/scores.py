"""Offline -> online scores of BC, AWAC, IQL and CQL on four recipe datasets x 3 seeds at a CPU budget; prints JSON.

    .venv/bin/python benchmarks/scores.py [--home benchmarks/.scores-home] [--seeds 3]
        [--offline-steps 4000] [--online-steps 4000] [--eval-every 2000] [--eval-episodes 5]

Builds the datasets from their recipes (Meta-World drawer-open mixed, PointMaze U-maze stitch,
OGBench cube-single play, Fetch push demos) into its own bench home, runs every algorithm x
dataset x seed through the harness on a process pool (all cores), and writes the table, with
this command and the budget, between the markers in docs/results.md.

The CPU budget (the papers' values in brackets): 2x128 MLPs [2x256], CQL 2x64 [3x256] with 4
sampled actions per state [10], 4,000 offline updates [1M for IQL/CQL,
25k-100k for AWAC] and 4,000 online environment steps with one update each [up to 1M], batch 256.
Every other setting is the algorithm's default with its per-domain preset. Completed runs with
the same algorithm, dataset, config and budget are reused, so an interrupted benchmark continues.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.algorithms import config_to_json, make_config
from bench.algorithms.config import domain_of
from bench.datasets import Registry
from bench.datasets.recipes.build import build
from bench.errors import NotFound
from bench.evaluation.store import RunStore, summarize
from bench.platform.settings import Settings
from bench.evaluation.executors import execute_sweep
from bench.evaluation.sweeps import Budget, plan_sweep
from bench.leaderboards.board import BUDGET_FIELDS, budget_of

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {  # recipe -> episodes (None: the recipe's default)
    "metaworld/drawer-open/mixed": None,
    "pointmaze/umaze/stitch": None,
    "ogbench/cube-single/play": 40,
    "fetch/push/demos": None,
}
ALGORITHMS = ["bc", "awac", "iql", "cql"]
# CQL's update costs ~25x IQL's at equal width (its critic sees 3N+1 action sets per state): to fit
# the same budget on two cores it runs at 2x64 with N=4. That is a handicap; the table says so.
BUDGET_OVERRIDES = {"bc": {"hidden_dims": "128x128"}, "awac": {"hidden_dims": "128x128"},
                    "iql": {"hidden_dims": "128x128"}, "cql": {"hidden_dims": "64x64", "num_sampled_actions": "4"}}
BEGIN, END = "<!-- scores:begin -->", "<!-- scores:end -->"
BOARD_BEGIN, BOARD_END = "<!-- leaderboard:begin -->", "<!-- leaderboard:end -->"


def open_home(home: Path) -> tuple[Settings, Registry, RunStore]:
    """The benchmark's own bench home (SQLite and local files under ``home``): settings, registry and run store."""
    settings = Settings.load(home=home, database_url=f"sqlite:///{home / 'bench.db'}", storage_url=str(home / "datasets"))
    registry = Registry.open(settings)
    return settings, registry, RunStore(registry.engine)


def ensure_datasets(registry: Registry) -> dict[str, str]:
    ids = {}
    for recipe, episodes in DATASETS.items():
        try:
            ids[recipe] = registry.show(recipe).id
        except NotFound:
            print(f"building {recipe}", file=sys.stderr)
            ids[recipe] = build(registry, recipe, episodes=episodes, previews=False).id
    return ids


def budget_key(budget: Budget) -> tuple[int, ...]:
    """A budget as the leaderboards compare runs' budgets (``bench.leaderboards.board.budget_of``)."""
    return tuple(int(getattr(budget, field)) for field in BUDGET_FIELDS)


def completed_runs(store: RunStore, algorithm: str, dataset_id: str, overrides: dict, budget: Budget,
                   seeds: int) -> dict[int, str]:
    """seed -> run id of completed runs with this algorithm, dataset, resolved config and budget."""
    expected = config_to_json(make_config(algorithm, domain_of(dataset_id.split("/")[0]), overrides))
    found = {}
    for run in store.list(algorithm=algorithm, dataset=dataset_id, status="completed"):
        if budget_of(run) == budget_key(budget) and run.config == expected and run.seed < seeds:
            found.setdefault(run.seed, run.id)
    return found


def cell(stat: dict | None, scale: float = 1.0) -> str:
    if not stat:
        return "-"
    mean = stat["mean"] * scale
    few = f" (n={stat['n']})" if stat["n"] < 3 else ""  # fewer seeds than the table's: marked, not hidden
    if stat["ci95"] is None:
        return f"{mean:.1f}{few}"
    half = (stat["ci95"][1] - stat["ci95"][0]) / 2 * scale
    return f"{mean:.1f} ± {half:.1f}{few}"


def table(results: dict, command: str, budget: Budget, seconds: float | None) -> str:
    timing = (f"{seconds / 60:.0f} min on this 2-core machine" if seconds is not None else
              "partial: a report of the runs completed so far; the same command completes the table, reusing them")
    lines = [
        f"Regenerate with `{command}` ({timing}).",
        "",
        f"Budget: {budget.offline_steps} offline updates, then {budget.online_steps} online environment steps "
        f"(one update each); evaluation every {budget.eval_every} steps on {budget.eval_episodes} fixed episodes; "
        f"2x128 networks (CQL: 2x64 with 4 sampled actions); {max(len(r['runs']) for r in results.values())} seeds. "
        "Cells: mean ± half-width of the 95% t-interval over seeds, offline → online; BC has no online phase.",
        "",
        "| dataset | metric | " + " | ".join(ALGORITHMS) + " |",
        "|---|---|" + "---|" * len(ALGORITHMS),
    ]
    datasets = sorted({key.split(" ")[1] for key in results}, key=list(DATASETS).index)
    for dataset in datasets:
        for metric, label, scale in (("normalized_score", "normalized score", 1.0), ("success_rate", "success %", 100.0)):
            cells = []
            for algorithm in ALGORITHMS:
                if f"{algorithm} {dataset}" not in results:
                    cells.append("not run")
                    continue
                summary = results[f"{algorithm} {dataset}"]["summary"]
                offline = cell((summary.get("offline") or {}).get(metric), scale)
                online = cell((summary.get("online") or {}).get(metric), scale)
                cells.append(offline if online == "-" else f"{offline} → {online}")
            if all(c == "-" for c in cells):
                continue
            lines.append(f"| {dataset} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(markdown: str, begin: str = BEGIN, end: str = END) -> None:
    path = ROOT / "docs" / "results.md"
    text = path.read_text() if path.exists() else "# Results\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    before, _, rest = text.partition(begin)
    _, _, after = rest.partition(end)
    path.write_text(f"{before}{begin}\n{markdown}\n{end}{after}")


def leaderboard_markdown(store: RunStore, budget: Budget) -> str:
    """The four datasets above as a leaderboard suite (the shipped "families" suite until issue 24 replaced
    its datasets with ones that separate the methods), as bench leaderboard show prints it."""
    from bench.leaderboards.board import compute_leaderboard
    from bench.leaderboards.render import to_markdown
    from bench.leaderboards.suites import LeaderboardSpec

    spec = LeaderboardSpec.from_dict({
        "name": "scores", "datasets": list(DATASETS), "metric": "success_rate", "phase": "both", "min_seeds": 3,
        "title": "The four datasets of benchmarks/scores.py",
        "description": "Meta-World drawer opening (mixed), PointMaze U-maze stitching (goal-conditioned), Fetch "
                       "push demos, OGBench cube play: success rate offline, then online."}, source="shipped")
    # This benchmark's runs only: the same datasets are trained at other budgets by other benchmarks.
    runs = [run for run in store.for_datasets(list(spec.datasets)) if budget_of(run) == budget_key(budget)]
    board = compute_leaderboard(spec, runs)
    return ("Regenerate with `python benchmarks/scores.py` (the same runs as the table above).\n\n" + to_markdown(board).replace("### ", "#### ", 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=str(ROOT / "benchmarks" / ".scores-home"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--offline-steps", type=int, default=4000)
    parser.add_argument("--online-steps", type=int, default=4000)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--executor", default="process")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/results.md alone")
    parser.add_argument("--report-only", action="store_true", help="run nothing: report the completed runs")
    args = parser.parse_args()
    settings, registry, store = open_home(Path(args.home))
    ids = ensure_datasets(registry)
    budget = Budget(args.offline_steps, args.online_steps, args.eval_every, args.eval_episodes, log_every=1000)
    started = time.perf_counter()
    run_ids, specs = {}, []
    for recipe, dataset_id in ids.items():
        for algorithm in ALGORITHMS:
            done = completed_runs(store, algorithm, dataset_id, BUDGET_OVERRIDES[algorithm], budget, args.seeds)
            missing = [] if args.report_only else [seed for seed in range(args.seeds) if seed not in done]
            planned = plan_sweep(registry, store, algorithm, dataset_id, missing, budget, BUDGET_OVERRIDES[algorithm],
                                 args.executor) if missing else []
            run_ids[f"{algorithm} {recipe}"] = [*done.values(), *(spec.run_id for spec in planned)]
            if not run_ids[f"{algorithm} {recipe}"]:
                del run_ids[f"{algorithm} {recipe}"]
            specs += planned
    # One pool for every run keeps all cores busy; cheap environments first, so an interrupted
    # benchmark has whole rows to report.
    order = ["pointmaze", "fetch", "metaworld", "ogbench"]
    specs.sort(key=lambda s: order.index(s.dataset_id.split("/")[0]) if s.dataset_id.split("/")[0] in order else 9)
    for spec in specs:
        spec.torch_threads = 1
    if specs:
        execute_sweep(specs, settings, store, args.executor)
    seconds = time.perf_counter() - started
    results = {}
    for key, ids_of_sweep in run_ids.items():
        runs = [store.get(run_id) for run_id in ids_of_sweep]
        results[key] = {"runs": [{"run_id": r.id, "status": r.status, "results": r.results, "error": r.error}
                                 for r in runs], "summary": summarize(runs)}
    command = "python benchmarks/scores.py" + "".join(
        f" --{name.replace('_', '-')} {getattr(args, name)}" for name in ("seeds", "offline_steps", "online_steps",
                                                                          "eval_every", "eval_episodes"))
    markdown = table(results, command, budget, None if args.report_only else seconds)
    if not args.no_write:
        write_results(markdown)
        write_results(leaderboard_markdown(store, budget), BOARD_BEGIN, BOARD_END)
    print(json.dumps({"seconds": seconds, "budget": vars(budget), "results": results}, indent=2))


if __name__ == "__main__":
    main()
