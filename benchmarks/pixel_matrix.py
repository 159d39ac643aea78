"""Shared by benchmarks/val.py and benchmarks/ptp.py: algorithms x tasks x seeds on the tabletop, offline then online, into a docs table.

Builds ``tabletop/prior`` in the registry at ``home`` if it has none, runs ``bench evaluate ALGO
tabletop/prior --online-env held-out --task TASK --seed-list S`` for every algorithm, task and
seed at a fixed budget (one run per core at a time), and reports per algorithm and task the mean
success rate over seeds after the offline phase and after online practice, with each seed's
values and the run ids.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.platform.envs.tabletop import MULTI_STAGE_TASKS

ROOT = Path(__file__).resolve().parents[1]


def bench(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "bench.cli", *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout


def home_env(home: str) -> dict[str, str]:
    """This process's environment with the registry at ``home`` and no other BENCH_ setting."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BENCH_")}
    env["BENCH_HOME"] = home
    return env


def runs_env(env: dict[str, str], parallel: int) -> dict[str, str]:
    """``env`` for one of ``parallel`` concurrent runs: the cores shared out, so torch does not oversubscribe them."""
    threads = str(max(1, (os.cpu_count() or 1) // parallel))
    return {**env, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def ensure_dataset(env: dict[str, str], recipe: str, episodes: int) -> None:
    """Build ``recipe`` into the registry unless a version of it is there."""
    if not any(item["id"].startswith(f"{recipe}-") for item in json.loads(bench(env, "datasets", "list", "--json"))):
        bench(env, "datasets", "build", recipe, "--episodes", str(episodes))


def overrides_for(overrides: list[str] | dict[str, list[str]], algorithm: str) -> list[str]:
    """The ``--set`` values of one algorithm: a list is everyone's; a dict maps an algorithm (or "*", everyone) to its own."""
    if isinstance(overrides, list):
        return overrides
    return [*overrides.get("*", []), *overrides.get(algorithm, [])]


def describe_overrides(overrides: list[str] | dict[str, list[str]]) -> str:
    if isinstance(overrides, list):
        return ", ".join(overrides) or "none"
    return "; ".join(f"{'all' if who == '*' else who}: {', '.join(values)}" for who, values in overrides.items() if values)


def run_matrix(home: str, episodes: int, algorithms: list[str], tasks: list[str], seeds: int, budget: dict[str, int],
               overrides: list[str] | dict[str, list[str]], figure: str, parallel: int | None = None,
               online_env: str = "held-out") -> tuple[dict, dict[str, str]]:
    """The report, and per algorithm the path of seed 0's ``figure`` artifact on the first task.

    Every (algorithm, task, seed) is one ``bench evaluate`` run; ``parallel`` of them (default: one
    per core, one thread each) run at once, so no core idles while an odd seed finishes. The
    report so far is kept in ``home/report.json`` after every run, and a rerun with the same home,
    budget and overrides skips the runs it holds: a long sweep can stop and continue.
    """
    parallel = parallel or os.cpu_count() or 1
    env = home_env(home)
    ensure_dataset(env, "tabletop/prior", episodes)
    run_env = runs_env(env, parallel)
    saved_path = Path(home) / "report.json"
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
    same = (saved.get("budget") == budget and saved.get("overrides") == overrides and "seed_runs" in saved
            and saved.get("online_env", "held-out") == online_env)
    seed_runs: dict[str, dict] = saved.get("seed_runs", {}) if same else {}
    spent = saved.get("seconds", 0.0) if same else 0.0
    started = time.perf_counter()
    lock = threading.Lock()

    def run_one(algorithm: str, task: str, seed: int) -> None:
        t0 = time.perf_counter()
        out = bench(run_env, "evaluate", algorithm, "tabletop/prior", "--online-env", online_env, "--task", task,
                    "--seed-list", str(seed), "--offline-steps", str(budget["offline_steps"]),
                    "--online-steps", str(budget["online_steps"]), "--eval-every", str(budget["eval_every"]),
                    "--eval-episodes", str(budget["eval_episodes"]),
                    *[item for o in overrides_for(overrides, algorithm) for item in ("--set", o)], "--json")
        run = json.loads(out)["runs"][0]
        if run["status"] != "completed":
            raise SystemExit(f"{algorithm} on {task}, seed {seed}: run {run['run_id']} {run['status']}: {run['error']}")
        record = {"run": run["run_id"], "offline": (run["offline"] or {}).get("success_rate"),
                  "online": (run["online"] or {}).get("success_rate"), "seconds": round(time.perf_counter() - t0, 1)}
        with lock:
            seed_runs[f"{algorithm}|{task}|{seed}"] = record
            print(json.dumps({"algorithm": algorithm, "task": task, "seed": seed, **record}), file=sys.stderr)
            saved_path.write_text(json.dumps({**report_of(budget, overrides, episodes, seeds, {},
                                                          spent + time.perf_counter() - started, online_env),
                                              "seed_runs": seed_runs}))

    jobs = [(a, t, s) for a in algorithms for t in tasks for s in range(seeds) if f"{a}|{t}|{s}" not in seed_runs]
    with ThreadPoolExecutor(parallel) as pool:
        for future in [pool.submit(run_one, *job) for job in jobs]:
            future.result()
    results: dict[str, dict[str, dict]] = {}
    for algorithm in algorithms:
        for task in tasks:
            records = [seed_runs[f"{algorithm}|{task}|{s}"] for s in range(seeds)]
            offline = [r["offline"] for r in records if r["offline"] is not None]
            online = [r["online"] for r in records if r["online"] is not None]
            results.setdefault(algorithm, {})[task] = {
                "offline": sum(offline) / len(offline) if offline else None,
                "online": sum(online) / len(online) if online else None,
                "offline_per_seed": offline, "online_per_seed": online, "runs": [r["run"] for r in records],
                "seconds": round(sum(r["seconds"] for r in records), 1)}
    report = report_of(budget, overrides, episodes, seeds, results, spent + time.perf_counter() - started, online_env)
    return add_run_details(report, home, figure)


def report_of(budget: dict, overrides: list[str] | dict[str, list[str]], episodes: int, seeds: int, results: dict, seconds: float,
              online_env: str = "held-out") -> dict:
    return {"budget": budget, "overrides": overrides, "episodes": episodes, "seeds": seeds, "results": results,
            "seconds": round(seconds, 1), "online_env": online_env}


def add_run_details(report: dict, home: str, figure: str) -> tuple[dict, dict[str, str]]:
    """Per cell and phase the mean over seeds of the final evaluation's stage progress (the fraction of a
    multi-stage task's stages done at the episode's end) and latent distance to the goal (finer signals
    than success when success is rare; distances compare within an algorithm, not across representations);
    per algorithm the path of its first run's ``figure``."""
    env = home_env(home)
    figures: dict[str, str] = {}
    for algorithm, per_task in report["results"].items():
        for task, cell in per_task.items():
            measured: dict[str, list[float]] = {f"{phase}_{key}": [] for phase in ("offline", "online")
                                                for key in ("distance", "stages")}
            curves: dict[int, list[float]] = {}
            stage_curves: dict[int, list[float]] = {}
            for run_id in cell["runs"]:
                shown = json.loads(bench(env, "runs", "show", run_id, "--json"))
                results = shown["results"]
                for point in shown["curves"]:
                    if point["kind"] == "eval" and point["phase"] == "online" and point.get("success_rate") is not None:
                        curves.setdefault(point["step"], []).append(point["success_rate"])
                        if point.get("stage_progress") is not None:
                            stage_curves.setdefault(point["step"], []).append(point["stage_progress"])
                for phase in ("offline", "online"):
                    final = (results.get(phase) or {}).get("final") or {}
                    for key, field in (("distance", "final_latent_distance"), ("stages", "stage_progress")):
                        if final.get(field) is not None:
                            measured[f"{phase}_{key}"].append(final[field])
                for artifact in results.get("artifacts", []):
                    if artifact.endswith(figure) and algorithm not in figures:
                        figures[algorithm] = str(Path(home) / "datasets" / artifact)
            for name, values in measured.items():
                cell[name] = sum(values) / len(values) if values else None
            # The online learning curve: mean success over seeds at each evaluation of the practice phase.
            cell["online_curve"] = {step: sum(v) / len(v) for step, v in sorted(curves.items())}
            cell["online_stage_curve"] = {step: sum(v) / len(v) for step, v in sorted(stage_curves.items())}
    return report, figures


def write_docs(report: dict, figures: dict[str, str], marker: str, image_prefix: str, caption: str) -> None:
    """Put the table (rows: algorithms; cells: offline -> online success) between ``<!-- marker:begin/end -->`` in docs/results.md."""
    images = ROOT / "docs" / "images"
    images.mkdir(parents=True, exist_ok=True)
    for algorithm, path in figures.items():
        shutil.copyfile(path, images / f"{image_prefix}_{algorithm}.png")
    tasks = list(next(iter(report["results"].values())))
    header = "| method | " + " | ".join(tasks) + " |\n|---|" + "---|" * len(tasks) + "\n"

    def table(text_of) -> str:
        return header + "".join(f"| {algorithm} | " + " | ".join(text_of(per_task[t]) for t in tasks) + " |\n"
                                for algorithm, per_task in report["results"].items())

    def success(cell: dict) -> str:
        text = f"{cell['offline']:.2f} -> {cell['online']:.2f}"
        if cell.get("offline_distance") is not None and cell.get("online_distance") is not None:
            text += f" (d {cell['offline_distance']:.2f} -> {cell['online_distance']:.2f})"
        return text

    budget = report["budget"]
    where = ("a held-out scene (one per seed)" if report.get("online_env", "held-out") == "held-out"
             else "training-split scenes (a new one every episode)")
    block = (f"{table(success)}\nSuccess rate offline -> after {budget['online_steps']} online steps in "
             f"{where}, mean of {report['seeds']} seeds x {budget['eval_episodes']} evaluation episodes "
             "(d: mean latent distance of the last state to the goal, in each algorithm's own latent space); "
             f"prior data {report['episodes']} episodes; overrides {describe_overrides(report['overrides'])}; "
             f"{report['seconds'] / 60:.0f} min on this machine. {caption}\n\n")
    cells = [cell for per_task in report["results"].values() for cell in per_task.values()]
    if all(cell.get("offline_stages") is not None and cell.get("online_stages") is not None for cell in cells):
        block += (table(lambda cell: f"{cell['offline_stages']:.2f} -> {cell['online_stages']:.2f}")
                  + "\nStage progress offline -> online: the fraction of the task's stages done at the "
                  "episode's last step (privileged state), mean over the same episodes.\n\n")
    def curve_table(name: str) -> str:
        steps = sorted({int(step) for cell in cells for step in cell[name]})
        return ("| method, task | " + " | ".join(str(step) for step in steps) + " |\n|---|" + "---|" * len(steps) + "\n"
                + "".join(f"| {algorithm}, {task} | " + " | ".join(
                    f"{cell[name].get(step, cell[name].get(str(step), float('nan'))):.2f}" for step in steps) + " |\n"
                    for algorithm, per_task in report["results"].items() for task, cell in per_task.items()))

    if all(cell.get("online_curve") for cell in cells):
        block += (curve_table("online_curve") + "\nOnline learning curves: success rate at each evaluation during "
                  "practice (environment steps), mean over seeds.\n\n")
    multi_stage = any(task in MULTI_STAGE_TASKS for per_task in report["results"].values() for task in per_task)
    if multi_stage and all(cell.get("online_stage_curve") for cell in cells):
        block += (curve_table("online_stage_curve") + "\nThe same evaluations' stage progress: partial solutions "
                  "of the multi-stage tasks during practice.\n\n")
    block += "".join(f"![{a}](images/{image_prefix}_{a}.png) " for a in figures)
    write_marked_block(marker, block)


def write_marked_block(marker: str, body: str) -> None:
    """Put ``body`` between ``<!-- marker:begin -->`` and ``<!-- marker:end -->`` in docs/results.md,
    replacing what was there, or append the marked block when the markers are not there yet."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    block = f"{begin}\n{body}\n{end}"
    path = ROOT / "docs" / "results.md"
    text = path.read_text()
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    path.write_text(text)


def main(doc: str, algorithms: tuple[str, ...], tasks: tuple[str, ...], budget: dict[str, int],
         overrides: list[str] | dict[str, list[str]], figure: str, marker: str, image_prefix: str, caption: str,
         default_home: str, episodes: int = 200) -> None:
    """The command line both scripts share; ``--from-report`` rewrites the docs from a saved JSON report."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--home", default=str(ROOT / default_home))
    parser.add_argument("--episodes", type=int, default=episodes)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(tasks))
    parser.add_argument("--algorithms", default=",".join(algorithms))
    parser.add_argument("--online-env", default="held-out", choices=("held-out", "dataset"),
                        help="practise and evaluate in held-out scenes (one per seed) or in training-split scenes")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--from-report", help="a JSON report this script printed before (its runs are in --home)")
    args = parser.parse_args()
    if args.from_report:
        report, figures = add_run_details(json.loads(Path(args.from_report).read_text()), args.home, figure)
    else:
        report, figures = run_matrix(args.home, args.episodes, args.algorithms.split(","), args.tasks.split(","),
                                     args.seeds, budget, overrides, figure, online_env=args.online_env)
    print(json.dumps(report, indent=2))
    if args.write_docs:
        suffix = ("" if args.online_env == "held-out" else f"-{args.online_env}") + \
            ("" if args.episodes == 200 else f"-{args.episodes}-episodes")
        write_docs(report, figures, marker + suffix, image_prefix + suffix.replace("-", "_"), caption)
