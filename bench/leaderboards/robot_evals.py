"""Real-robot evaluations: trials with a task, a policy, a phase (offline, or online after fine-tuning),
a success label and who judged it; success rates with Wilson intervals, "offline -> online" per policy,
the way the dissertation reports its robot results (e.g. drawer opening 62.5% -> 100%)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.datasets.ids import DatasetId
from bench.datasets.robot_logs import parse_success
from bench.errors import InvalidInput
from bench.leaderboards.statistics import wilson_interval
from bench.platform import db
from bench.platform.db import RobotTrialRow

PHASES = ("offline", "online")


def read_trials_csv(path: Path) -> list[dict[str, Any]]:
    """Trials from a CSV with a ``success`` column and optional ``trial``, ``task``, ``judge``, ``notes``."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise InvalidInput(f"{path}: {exc.strerror}") from None
    if not rows:
        raise InvalidInput(f"{path}: no trials")
    if "success" not in rows[0]:
        raise InvalidInput(f"{path}: needs a 'success' column (true/false, 1/0, success/failure)")
    return rows


class RobotEvals:
    def __init__(self, engine: sa.Engine):
        self.session = db.make_sessionmaker(engine)

    def add(self, dataset: str, policy: str, phase: str, trials: list[dict[str, Any]], task: str | None = None,
            judge: str | None = None, owner: str | None = None) -> int:
        """Record trials (all or none); each needs a success label; trial numbers continue from earlier ones."""
        dataset = DatasetId.parse(dataset).unversioned
        if phase not in PHASES:
            raise InvalidInput(f"phase {phase!r} is not one of {', '.join(PHASES)}")
        if not policy or len(policy) > 100:
            raise InvalidInput("policy must be a name of at most 100 characters")
        rows = []
        for number, trial in enumerate(trials, 1):
            where = f"trial {trial.get('trial') or number}"
            success = parse_success(trial.get("success"), where)
            if success is None:
                raise InvalidInput(f"{where}: no success label")
            trial_task = trial.get("task") or task
            if not trial_task:
                raise InvalidInput(f"{where}: no task; give --task or a task column")
            rows.append(dict(dataset=dataset, task=str(trial_task)[:300], policy=policy, phase=phase, success=success,
                             judge=(trial.get("judge") or judge or None), notes=trial.get("notes") or None, owner=owner,
                             trial=int(trial["trial"]) if str(trial.get("trial") or "").isdigit() else None))
        with self.session.begin() as session:
            last = session.scalar(sa.select(sa.func.max(RobotTrialRow.trial)).where(
                RobotTrialRow.dataset == dataset, RobotTrialRow.policy == policy, RobotTrialRow.phase == phase)) or 0
            for row in rows:
                if row["trial"] is None:
                    last += 1
                    row["trial"] = last
                session.add(RobotTrialRow(**row))
        return len(rows)

    def trials(self, dataset: str) -> list[dict[str, Any]]:
        dataset = DatasetId.parse(dataset).unversioned
        with self.session() as session:
            rows = session.scalars(sa.select(RobotTrialRow).where(RobotTrialRow.dataset == dataset)
                                   .order_by(RobotTrialRow.policy, RobotTrialRow.phase, RobotTrialRow.trial)).all()
            return [{"task": r.task, "policy": r.policy, "phase": r.phase, "trial": r.trial, "success": r.success,
                     "judge": r.judge, "notes": r.notes, "owner": r.owner} for r in rows]

    def summary(self, datasets: list[str]) -> list[dict[str, Any]]:
        """Per dataset, task and policy: success rate with its Wilson interval offline and online."""
        names = [DatasetId.parse(d).unversioned for d in datasets]
        with self.session() as session:
            rows = session.execute(sa.select(RobotTrialRow.dataset, RobotTrialRow.task, RobotTrialRow.policy,
                                             RobotTrialRow.phase, RobotTrialRow.success)
                                   .where(RobotTrialRow.dataset.in_(names))).all()
        counts: dict[tuple[str, str, str], dict[str, list[int]]] = defaultdict(lambda: {p: [0, 0] for p in PHASES})
        for dataset, task, policy, phase, success in rows:
            tally = counts[(dataset, task, policy)][phase]
            tally[0] += int(success)
            tally[1] += 1
        out = []
        for (dataset, task, policy), phases in sorted(counts.items()):
            entry: dict[str, Any] = {"dataset": dataset, "task": task, "policy": policy,
                                     "trials": {p: phases[p][1] for p in PHASES}}
            for phase in PHASES:
                entry[f"{phase}_success"] = wilson_interval(*phases[phase]) if phases[phase][1] else None
            out.append(entry)
        return out


def rate_text(stat: dict[str, Any] | None) -> str:
    if not stat:
        return "-"
    low, high = stat["ci95"]
    return f"{100 * stat['rate']:.1f}% [{100 * low:.1f}, {100 * high:.1f}] ({stat['successes']}/{stat['trials']})"
