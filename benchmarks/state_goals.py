"""Rung 1 of learning from pixels: VAL's learner on the tabletop's privileged state (``val-state``), offline then online.

    python benchmarks/state_goals.py [--home DIR] [--episodes 200] [--seeds 3] [--write-docs]

The same harness, relabeling, sparse reward (eps calibrated from scripted attempts), goal
proposals (states of the data) and online practice in a held-out scene as VAL, with the identity
in place of a learned representation. If goal reaching fails here, the problem is the RL, the
relabeling, the reward or the budget, not the pictures (docs/results.md, "Goal reaching on states").
Prints JSON; ``--write-docs`` puts the table into docs/results.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pixel_matrix  # noqa: E402

ALGORITHMS = ("val-state",)
TASKS = ("reach", "button-press", "drawer-open", "object-in-tray")
# The CPU budget: 20,000 offline updates (the dissertation: 100 epochs of 2,000 = 200,000 before
# fine-tuning), 1,500 online steps = 30 practice episodes, 10 evaluation episodes per checkpoint.
# Relabeling: 20% kept, 70% future, 10% proposals (VAL: 20 / 40 / 40). With VAL's shares the
# relabeled goals are mostly gripper moves and button-press stays near 0 (docs/results.md).
BUDGET = {"offline_steps": 20000, "online_steps": 1500, "eval_every": 500, "eval_episodes": 10}
OVERRIDES = ["hidden_dims=256x256", "relabel_future=0.7", "relabel_proposal=0.1"]


def main() -> None:
    pixel_matrix.main(__doc__, ALGORITHMS, TASKS, BUDGET, OVERRIDES,
                      "none",
                      "state-goals-benchmark",
                      "tabletop_state_goals",
                      "No figures: the state variant has no pictures.",
                      ".bench-state")


if __name__ == "__main__":
    main()
