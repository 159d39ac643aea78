"""PTP, its ablations and the model-free baseline on the multi-stage tabletop tasks: success offline, then after practice.

    python benchmarks/ptp.py [--home DIR] [--episodes 200] [--seeds 3] [--write-docs]

Runs every algorithm x task (see benchmarks/pixel_matrix.py) at the CPU budget below and prints
JSON; ``--write-docs`` puts the table (the form of the dissertation's Figure 51 / Table 3: offline
success at 0 online steps -> success after fine-tuning) and seed 0's decoded plans into
docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pixel_matrix import ROOT, run_matrix, write_docs  # noqa: E402

ALGORITHMS = ("ptp", "ptp-no-hierarchy", "ptp-no-buffer", "ptp-flat", "gc-iql")
TASKS = ("button-then-tray", "tray-then-close-drawer", "drawer-button-tray")
# The CPU budget (dissertation: 100 offline epochs of 2,000 updates, then 150 online epochs of
# 2,000 steps; docs/algorithms.md lists every reduction).
BUDGET = {"offline_steps": 1000, "online_steps": 1000, "eval_every": 500, "eval_episodes": 5}
OVERRIDES = ["representation_steps=800", "generator_steps=600", "hidden_dims=128x128"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=str(ROOT / ".bench-ptp"))
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    report, figures = run_matrix(args.home, args.episodes, args.algorithms.split(","), args.tasks.split(","),
                                 args.seeds, BUDGET, OVERRIDES, "subgoals_offline.png")
    print(json.dumps(report, indent=2))
    if args.write_docs:
        write_docs(report, figures, "ptp-benchmark", "tabletop_plans",
                   "Each figure row: s_0, the decoded subgoals, the goal image (the dissertation's Figure 52).")


if __name__ == "__main__":
    main()
