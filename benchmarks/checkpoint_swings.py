"""Does practice lower success, or does success swing from checkpoint to checkpoint anyway? Finished runs' evaluation curves.

    python benchmarks/checkpoint_swings.py --home DIR "LABEL=RUN,RUN,RUN" ["LABEL=RUN,..." ...]

Comparing the last offline checkpoint with the last online one reads one draw from each side.
Per group of runs (e.g. one method on one task, its seeds), this prints JSON with the mean
success over the last ``--last`` offline checkpoints and over every online checkpoint (pooled
over the runs), and the mean absolute change between consecutive checkpoints in each phase.
A drop from offline to online no larger than the offline swings is instability, not practice.
Runs that loaded their offline policy from the model cache have one offline checkpoint.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from bench.datasets import Registry
from bench.evaluation.store import RunStore
from bench.platform.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--last", type=int, default=5, help="offline checkpoints counted, from the end")
    parser.add_argument("groups", nargs="+", help="LABEL=RUN,RUN,...")
    args = parser.parse_args()
    store = RunStore(Registry.open(Settings.load(home=args.home)).engine)
    report = {}
    for group in args.groups:
        label, _, ids = group.partition("=")
        phases: dict[str, list[float]] = {"offline": [], "online": []}
        changes: dict[str, list[float]] = {"offline": [], "online": []}
        for run_id in ids.split(","):
            for phase in phases:
                curve = [point["success_rate"] for point in store.curves(run_id, kind="eval")
                         if point["phase"] == phase and point.get("success_rate") is not None]
                curve = curve[-args.last:] if phase == "offline" else curve
                phases[phase] += curve
                changes[phase] += list(np.abs(np.diff(curve)))
        report[label] = {f"{phase}_mean": round(float(np.mean(values)), 3) if values else None
                         for phase, values in phases.items()}
        report[label].update({f"{phase}_checkpoints": len(values) for phase, values in phases.items()})
        report[label].update({f"{phase}_mean_change": round(float(np.mean(values)), 3) if values else None
                              for phase, values in changes.items()})
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
