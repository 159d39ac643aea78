"""Dissertation ch. 4, Figs. 14-17: DDPG + HER with and without demonstrations on Fetch, learning curves over seeds.

    python benchmarks/demos_her.py [--home DIR] [--tasks pick-and-place,push] [--seeds 3]
                                   [--online-steps 20000] [--write-docs]
    python benchmarks/demos_her.py --home .bench-stack --tasks stack2 --figure fig15 --write-docs
    python benchmarks/demos_her.py --home .bench-stack --tasks stack2 --figure ablations --write-docs

``--figure`` picks the methods: ``fig14`` (the default: ddpg-her, ddpg-demos, bc-her), ``fig15``
(Fig. 15's columns: ddpg-demos "Ours", ddpg-demos+resets "Ours, Resets", bc, ddpg-her, bc-her) or
``ablations`` (Figs. 16-17: ddpg-demos without the BC loss, without the Q-filter, without HER, with
resets). A method is an algorithm or an algorithm with overrides (``VARIANTS``).

Builds ``fetch/TASK/demos`` (100 scripted demonstrations, as the chapter's 100) in the registry at
``home`` if it has none, then runs ``bench evaluate ALGO fetch/TASK/demos --seed-list S`` for
``ddpg-her`` (no demonstrations: HER's baseline), ``ddpg-demos`` (a demonstration buffer in every
batch, BC loss, Q-filter) and ``bc-her`` (the actor cloned from the demonstrations for 5,000 updates,
then DDPG + HER without them), two runs at a time, one thread each. The DDPG runs are online from
their first step (they have no offline phase). The report keeps each run in
``home/report.json`` as it finishes, so an interrupted sweep continues where it stopped.

``bc`` learns offline only: its curve is its offline evaluations (5,000 updates).

Reports per algorithm and task: the success rate at each evaluation (mean over seeds), the final
one per seed, and the last three evaluations pooled with a Wilson 95% interval. The chapter's
claim: with demonstrations the method learns pick-and-place, where HER alone stays near zero,
and learns push faster than HER; Fig. 15 adds that BC+HER is no better than BC alone.
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

from bench.leaderboards.statistics import wilson_interval

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pixel_matrix import bench, ensure_dataset, home_env, runs_env, write_marked_block  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {
    "fig14": ("ddpg-her", "ddpg-demos", "bc-her"),
    "fig15": ("ddpg-demos", "ddpg-demos+resets", "bc", "ddpg-her", "bc-her"),
    "ablations": ("ddpg-demos", "ddpg-demos-no-bc", "ddpg-demos-no-q-filter", "ddpg-demos-no-her", "ddpg-demos+resets"),
}
# Methods that are an algorithm with overrides: label -> (algorithm, --set values).
VARIANTS = {
    "ddpg-demos+resets": ("ddpg-demos", ["demo_resets=true"]),     # "Ours, Resets" (ch. 4.4.4)
    "ddpg-demos-no-bc": ("ddpg-demos", ["bc_loss=false", "q_filter=false"]),  # Fig. 16 "No BC"
    "ddpg-demos-no-q-filter": ("ddpg-demos", ["q_filter=false"]),  # Fig. 16 "No Q-Filter"
    "ddpg-demos-no-her": ("ddpg-demos", ["her=false"]),             # Fig. 16 "No HER"
}
# bc-her's offline phase: behaviour cloning of the demonstrations before practice (Fig. 15's BC
# initialisation; the text gives no length). Algorithms without an offline phase ignore it.
BC_PRETRAINING_STEPS = 5000
DEMONSTRATIONS = 100  # dissertation ch. 4.5.2: "We use 100 demonstrations to initialize R_D"
POOLED_EVALUATIONS = 3  # the last evaluations pooled for the interval


def run_sweep(home: str, algorithms: list[str], tasks: list[str], seeds: int, budget: dict[str, int],
              overrides: list[str], parallel: int = 2) -> dict:
    """Every (method, task, seed) run once; ``budget["demonstrations"]`` episodes of each task's recipe
    (a home holds one size: a second size would be a second version of the same dataset)."""
    env = home_env(home)
    for task in tasks:
        ensure_dataset(env, f"fetch/{task}/demos", budget.get("demonstrations", DEMONSTRATIONS))
    run_env = runs_env(env, parallel)
    saved_path = Path(home) / "report.json"
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
    same = saved.get("budget") == budget and saved.get("overrides") == overrides
    runs: dict[str, dict] = saved.get("runs", {}) if same else {}
    spent = saved.get("seconds", 0.0) if same else 0.0
    started, lock = time.perf_counter(), threading.Lock()

    def run_one(method: str, task: str, seed: int) -> None:
        t0 = time.perf_counter()
        algorithm, extra = VARIANTS.get(method, (method, []))
        out = bench(run_env, "evaluate", algorithm, f"fetch/{task}/demos", "--seed-list", str(seed),
                    "--offline-steps", str(BC_PRETRAINING_STEPS), "--online-steps", str(budget["online_steps"]), "--eval-every", str(budget["eval_every"]),
                    "--eval-episodes", str(budget["eval_episodes"]),
                    *[item for o in [*overrides, *extra] for item in ("--set", o)], "--json")
        run = json.loads(out)["runs"][0]
        if run["status"] != "completed":
            raise SystemExit(f"{method} on {task}, seed {seed}: run {run['run_id']} {run['status']}: {run['error']}")
        shown = json.loads(bench(env, "runs", "show", run["run_id"], "--json"))
        # Online evaluations; an algorithm that learns offline only (bc) has its offline ones.
        phase = "online" if any(c["phase"] == "online" for c in shown["curves"] if c["kind"] == "eval") else "offline"
        curve = {c["step"]: c["success_rate"] for c in shown["curves"] if c["kind"] == "eval" and c["phase"] == phase}
        record = {"run": run["run_id"], "curve": curve, "episodes_per_evaluation": budget["eval_episodes"],
                  "seconds": round(time.perf_counter() - t0, 1),
                  "env_steps_per_second": shown["timings"].get("online_env_steps_per_second")}
        with lock:
            runs[f"{method}|{task}|{seed}"] = record
            print(json.dumps({"algorithm": method, "task": task, "seed": seed, "run": run["run_id"],
                              "final": curve[max(curve)], "seconds": record["seconds"]}), file=sys.stderr)
            saved_path.write_text(json.dumps({"budget": budget, "overrides": overrides, "runs": runs,
                                              "seconds": spent + time.perf_counter() - started}))

    jobs = [(a, t, s) for t in tasks for a in algorithms for s in range(seeds) if f"{a}|{t}|{s}" not in runs]
    with ThreadPoolExecutor(parallel) as pool:
        for future in [pool.submit(run_one, *job) for job in jobs]:
            future.result()
    return summarize(home, {"budget": budget, "overrides": overrides, "runs": runs, "seeds": seeds,
                            "seconds": spent + time.perf_counter() - started}, algorithms, tasks)


def before_practice(home: str, run_id: str) -> float | None:
    """The success rate of the run's last evaluation before practice: bc-her's cloned actor, the untrained DDPG."""
    shown = json.loads(bench(home_env(home), "runs", "show", run_id, "--json"))
    return ((shown["results"].get("offline") or {}).get("final") or {}).get("success_rate")


def summarize(home: str, report: dict, algorithms: list[str], tasks: list[str]) -> dict:
    """Per algorithm and task: the mean curve over seeds, each seed's final rate, the last evaluations pooled,
    and the rate before practice."""
    results: dict[str, dict] = {}
    for algorithm in algorithms:
        for task in tasks:
            records = [report["runs"][f"{algorithm}|{task}|{s}"] for s in range(report["seeds"])]
            offline = [before_practice(home, r["run"]) for r in records]
            curves = [{int(step): rate for step, rate in r["curve"].items()} for r in records]
            steps = sorted(set.intersection(*(set(c) for c in curves)))
            episodes = records[0]["episodes_per_evaluation"]
            pooled_steps = steps[-POOLED_EVALUATIONS:]
            successes = sum(round(c[step] * episodes) for c in curves for step in pooled_steps)
            trials = episodes * len(pooled_steps) * len(curves)
            results.setdefault(algorithm, {})[task] = {
                "curve": {step: sum(c[step] for c in curves) / len(curves) for step in steps},
                "before_practice": sum(offline) / len(offline) if None not in offline else None,
                "final_per_seed": [c[steps[-1]] for c in curves],
                # Fig. 15's statistic: the median over seeds of each run's best success rate, its
                # evaluation before practice included (BC+HER's best is its cloned actor).
                "median_best": statistics.median(max([*c.values(), *([o] if o is not None else [])])
                                                 for c, o in zip(curves, offline)),
                "pooled_last": wilson_interval(successes, trials), "runs": [r["run"] for r in records]}
    return {**report, "results": results}


MARKERS = {"fig14": "demos-her-benchmark", "fig15": "demos-stack-fig15", "ablations": "demos-stack-ablations"}


def marker_for(figure: str, budget: dict) -> str:
    """The docs block of a figure; a run with fewer demonstrations writes its own."""
    return MARKERS[figure] + (f"-{budget['demonstrations']}-demos" if "demonstrations" in budget else "")


def write_docs(report: dict, tasks: list[str], figure: str, block: str | None = None) -> None:
    budget = report["budget"]
    lines = ["| method, task | before practice | final success per seed | last 3 evaluations pooled [95% CI] "
             "| median of best (Fig. 15's statistic) |", "|---|---|---|---|---|"]
    for algorithm, per_task in report["results"].items():
        for task in tasks:
            cell = per_task[task]
            pooled = cell["pooled_last"]
            before = "-" if cell["before_practice"] is None else f"{cell['before_practice']:.2f}"
            lines.append(f"| {algorithm}, {task} | {before} | {', '.join(f'{v:.2f}' for v in cell['final_per_seed'])} | "
                         f"{pooled['successes']}/{pooled['trials']} = {pooled['rate']:.2f} "
                         f"[{pooled['ci95'][0]:.2f}, {pooled['ci95'][1]:.2f}] | {cell['median_best']:.2f} |")
    steps = sorted({int(s) for per_task in report["results"].values() for cell in per_task.values()
                    for s in cell["curve"]})
    shown = steps[::max(1, len(steps) // 10)]  # about ten columns, and always the last evaluation
    if steps and shown[-1] != steps[-1]:
        shown.append(steps[-1])
    curve = ["| method, task | " + " | ".join(str(s) for s in shown) + " |", "|---|" + "---|" * len(shown)]
    for algorithm, per_task in report["results"].items():
        for task in tasks:
            values = per_task[task]["curve"]
            points = {int(step): rate for step, rate in values.items()}
            curve.append(f"| {algorithm}, {task} | " + " | ".join(
                f"{points[s]:.2f}" if s in points else "-" for s in shown) + " |")
    overrides = ", ".join(report["overrides"]) or "none"
    # The cost of this figure's runs (a home's report holds every figure run in it, so not its total time).
    run_minutes = sum(report["runs"][f"{a}|{t}|{s}"]["seconds"] for a in report["results"] for t in tasks
                      for s in range(report["seeds"])) / 60
    body = ("\n".join(lines) + f"\n\nBefore practice: the last evaluation of the offline phase, mean over seeds (bc-her: "
            f"after {BC_PRETRAINING_STEPS} behaviour-cloning updates; the DDPG runs: the untrained policy). "
            f"Success rate after {budget['online_steps']} online steps, {report['seeds']} seeds x "
            f"{budget['eval_episodes']} evaluation episodes every {budget['eval_every']} steps; "
            f"{budget.get('demonstrations', DEMONSTRATIONS)} scripted demonstrations; overrides {overrides}; "
            f"the runs took {run_minutes:.0f} min of one core each, summed (two at a time on this 2-core machine)."
            "\n\n" + "\n".join(curve)
            + "\n\nLearning curves: success rate at each evaluation (environment steps; bc: its updates), "
            "mean over seeds.\n")
    write_marked_block(block or marker_for(figure, budget), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=str(ROOT / ".bench-demos"))
    parser.add_argument("--tasks", default="pick-and-place,push")
    parser.add_argument("--figure", choices=sorted(FIGURES), default="fig14")
    parser.add_argument("--algorithms", default=None, help="methods (default: the figure's)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--online-steps", type=int, default=20000)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--demonstrations", type=int, default=DEMONSTRATIONS,
                        help="episodes of each task's recipe (one size per home)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="a config override for every run")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--docs-block", default=None, help="the marked block of docs/results.md to write "
                                                           "(default: the figure's)")
    args = parser.parse_args()
    budget = {"online_steps": args.online_steps, "eval_every": args.eval_every, "eval_episodes": args.eval_episodes}
    if args.demonstrations != DEMONSTRATIONS:  # the default stays out, so earlier reports keep matching
        budget["demonstrations"] = args.demonstrations
    tasks = args.tasks.split(",")
    algorithms = args.algorithms.split(",") if args.algorithms else list(FIGURES[args.figure])
    report = run_sweep(args.home, algorithms, tasks, args.seeds, budget, args.overrides)
    print(json.dumps(report, indent=2))
    if args.write_docs:
        write_docs(report, tasks, args.figure, args.docs_block)


if __name__ == "__main__":
    main()
