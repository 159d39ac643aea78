"""VAL, CC-RIG and RIG on tabletop tasks: offline success, then success after online practice in held-out scenes.

    python benchmarks/val.py [--home DIR] [--episodes 200] [--seeds 3] [--tasks drawer-open,button-press,object-in-tray]

Builds ``tabletop/prior`` (if the registry at --home has none), then for every algorithm x task
runs ``bench evaluate ALGO tabletop/prior --online-env held-out --task TASK --seeds N`` at the CPU
budget below, and prints JSON: per algorithm and task, the mean success rate over seeds after
the offline phase and after online practice, with each seed's values. ``--write-docs`` puts the
table (the form of the dissertation's Figure 43) and the seed-0 sample grids into docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALGORITHMS = ("val", "ccrig", "rig")
TASKS = ("drawer-open", "button-press", "object-in-tray")
# The CPU budget (dissertation: networks trained to convergence and hours of interaction; see
# docs/algorithms.md for every reduction).
BUDGET = {"offline_steps": 600, "online_steps": 500, "eval_every": 250, "eval_episodes": 5}
OVERRIDES = ["representation_steps=800", "proposer_steps=600", "hidden_dims=128x128", "finetune_steps=50"]
MARK_BEGIN, MARK_END = "<!-- val-benchmark:begin -->", "<!-- val-benchmark:end -->"


def bench(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "bench.cli", *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=str(ROOT / ".bench-val"))
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BENCH_")}
    env["BENCH_HOME"] = args.home
    listed = json.loads(bench(env, "datasets", "list", "--json"))
    if not any(item["id"].startswith("tabletop/prior-") for item in listed):
        bench(env, "datasets", "build", "tabletop/prior", "--episodes", str(args.episodes))
    results: dict[str, dict[str, dict]] = {}
    grids: dict[str, str] = {}
    started = time.perf_counter()
    for algorithm in args.algorithms.split(","):
        for task in args.tasks.split(","):
            t0 = time.perf_counter()
            out = bench(env, "evaluate", algorithm, "tabletop/prior", "--online-env", "held-out", "--task", task,
                        "--seeds", str(args.seeds), "--offline-steps", str(BUDGET["offline_steps"]),
                        "--online-steps", str(BUDGET["online_steps"]), "--eval-every", str(BUDGET["eval_every"]),
                        "--eval-episodes", str(BUDGET["eval_episodes"]), "--executor", "process",
                        *[item for o in OVERRIDES for item in ("--set", o)], "--json")
            sweep = json.loads(out)
            runs = sweep["runs"]
            offline = [r["offline"]["success_rate"] for r in runs if r["offline"]]
            online = [r["online"]["success_rate"] for r in runs if r["online"]]
            results.setdefault(algorithm, {})[task] = {
                "offline": sum(offline) / len(offline) if offline else None,
                "online": sum(online) / len(online) if online else None,
                "offline_per_seed": offline, "online_per_seed": online,
                "runs": [r["run_id"] for r in runs], "seconds": round(time.perf_counter() - t0, 1)}
            if task == args.tasks.split(",")[0]:
                shown = json.loads(bench(env, "runs", "show", runs[0]["run_id"], "--json"))
                for artifact in shown["results"].get("artifacts", []):
                    if artifact.endswith("samples_offline.png"):
                        grids[algorithm] = str(Path(args.home) / "datasets" / artifact)
    report = {"budget": BUDGET, "overrides": OVERRIDES, "episodes": args.episodes, "seeds": args.seeds,
              "results": results, "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(report, indent=2))
    if args.write_docs:
        write_docs(report, grids)


def write_docs(report: dict, grids: dict[str, str]) -> None:
    images = ROOT / "docs" / "images"
    images.mkdir(parents=True, exist_ok=True)
    for algorithm, path in grids.items():
        shutil.copyfile(path, images / f"tabletop_samples_{algorithm}.png")
    tasks = list(next(iter(report["results"].values())))
    header = "| method | " + " | ".join(tasks) + " |\n|---|" + "---|" * len(tasks) + "\n"
    rows = ""
    for algorithm, per_task in report["results"].items():
        cells = []
        for task in tasks:
            r = per_task[task]
            cells.append(f"{r['offline']:.2f} -> {r['online']:.2f}")
        rows += f"| {algorithm} | " + " | ".join(cells) + " |\n"
    budget = report["budget"]
    block = (f"{MARK_BEGIN}\n{header}{rows}\nSuccess rate offline -> after {budget['online_steps']} online steps in a "
             f"held-out scene, mean of {report['seeds']} seeds x {budget['eval_episodes']} evaluation episodes; "
             f"prior data {report['episodes']} episodes; overrides {', '.join(report['overrides'])}; "
             f"{report['seconds'] / 60:.0f} min on this machine.\n\n"
             + "".join(f"![{a} samples](images/tabletop_samples_{a}.png) " for a in grids) + f"\n{MARK_END}")
    path = ROOT / "docs" / "results.md"
    text = path.read_text()
    if MARK_BEGIN in text:
        text = re.sub(re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), lambda m: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
