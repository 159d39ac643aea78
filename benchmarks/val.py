"""VAL, CC-RIG and RIG on tabletop tasks: offline success, then success after online practice in held-out scenes.

    python benchmarks/val.py [--home DIR] [--episodes 200] [--seeds 3] [--tasks drawer-open,button-press,object-in-tray]

Runs every algorithm x task (see benchmarks/pixel_matrix.py) at the CPU budget below and prints
JSON; ``--write-docs`` puts the table (the form of the dissertation's Figure 43) and the seed-0
sample grids into docs/results.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pixel_matrix  # noqa: E402

ALGORITHMS = ("val", "ccrig", "rig")
TASKS = ("drawer-open", "button-press", "object-in-tray")
# The CPU budget (dissertation: networks trained to convergence and hours of interaction; see
# docs/algorithms.md for every reduction).
BUDGET = {"offline_steps": 600, "online_steps": 500, "eval_every": 250, "eval_episodes": 5}
OVERRIDES = ["representation_steps=800", "proposer_steps=600", "hidden_dims=128x128", "finetune_steps=50"]


def main() -> None:
    pixel_matrix.main(__doc__, ALGORITHMS, TASKS, BUDGET, OVERRIDES,
                      "samples_offline.png",
                      "val-benchmark",
                      "tabletop_samples",
                      "Each figure: top row s_0 in the held-out scene, below it goals imagined from it.",
                      ".bench-val")


if __name__ == "__main__":
    main()
