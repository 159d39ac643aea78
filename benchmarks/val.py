"""VAL, CC-RIG and RIG on tabletop tasks: offline success, then success after online practice in held-out scenes.

    python benchmarks/val.py [--home DIR] [--episodes 1000] [--seeds 3] [--tasks reach,button-press,drawer-open] [--algorithms val]

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
TASKS = ("reach", "button-press", "drawer-open")
# The CPU budget (the dissertation: networks trained to convergence and hours of interaction; see
# docs/algorithms.md for every reduction): 1,000 prior episodes (the recipe's default, about the
# dissertation's "thousand prior trajectories"), 10,000 offline updates, 5,000 online steps = 100
# practice episodes, 10 evaluation episodes every 1,000 steps. The representation, PixelCNN and
# offline policy are trained once per seed and reused across tasks where their keys allow
# (bench/evaluation/model_cache.py).
EPISODES = 1000
BUDGET = {"offline_steps": 10000, "online_steps": 5000, "eval_every": 1000, "eval_episodes": 10}
# Every method: its representation trained 4,000 steps, pi and Q of 2x256 on the full latents,
# relabeling 20% kept / 70% future / 10% proposals, the shares that made scene-changing tasks
# learnable on states (the papers: VAL 20 / 40 / 40; RIG and CC-RIG 0 / 50 / 50), so that the
# methods differ in what the dissertation compares: representation, goal proposals and reward.
# VAL's VQ-VAE at the dissertation's 720-D (12x12x5), read by the keypoint trunk (bench's CPU
# reduction; the dissertation's MLPs on the latents stayed near 0 here). RIG's and CC-RIG's VAE
# latents are vectors: MLPs read them, as in the dissertation.
OVERRIDES = {"*": ["representation_steps=4000", "policy_view=full", "hidden_dims=256x256",
                   "relabel_keep=0.2", "relabel_future=0.7", "relabel_proposal=0.1"],
             "val": ["vq_embedding_dim=5", "policy_trunk=keypoints"]}


def main() -> None:
    pixel_matrix.main(__doc__, ALGORITHMS, TASKS, BUDGET, OVERRIDES,
                      "samples_offline.png",
                      "val-benchmark",
                      "tabletop_samples",
                      "Each figure: top row s_0 in the evaluation scene, below it goals imagined from it.",
                      ".bench-val", episodes=EPISODES)


if __name__ == "__main__":
    main()
