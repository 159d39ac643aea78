"""Run records in SQL: create planned runs, record progress, curves, checkpoints and results, read them back.

Workers report through a recorder. ``RunStore`` writes each event to the database as it happens
(in-process and process-pool executors); ``EventLog`` keeps the events in memory so a remote
worker (Ray) can return them to the driver, which replays them into its ``RunStore``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

import math

import numpy as np
import sqlalchemy as sa

from bench.errors import Conflict, InvalidInput, NotFound
from bench.platform import db
from bench.platform.db import RunMetricRow, RunRow, RunState

METRICS = ("return", "normalized_score", "success_rate")


class Recorder(Protocol):
    def started(self, run_id: str, host: str) -> None: ...
    def progress(self, run_id: str, phase: str, step: int, total: int) -> None: ...
    def metrics(self, run_id: str, kind: str, phase: str, step: int, values: dict[str, Any]) -> None: ...
    def checkpoint(self, run_id: str, path: str) -> None: ...
    def resumed(self, run_id: str, phase: str, step: int) -> None: ...
    def finished(self, run_id: str, status: str, results: dict[str, Any], timings: dict[str, Any],
                 error: str | None = None) -> None: ...


@dataclass
class EventLog:
    """A recorder that only remembers: ``events`` replay onto another recorder with ``replay``."""

    events: list[tuple[str, tuple]] = field(default_factory=list)

    def started(self, *args) -> None:
        self.events.append(("started", args))

    def progress(self, *args) -> None:
        pass  # progress is live information; a replay after the fact has no use for it

    def metrics(self, *args) -> None:
        self.events.append(("metrics", args))

    def checkpoint(self, *args) -> None:
        self.events.append(("checkpoint", args))

    def resumed(self, *args) -> None:
        self.events.append(("resumed", args))

    def finished(self, *args, **kwargs) -> None:
        self.events.append(("finished", (*args, kwargs.get("error"))))

    @staticmethod
    def replay(events: list[tuple[str, tuple]], recorder: Recorder) -> None:
        for name, args in events:
            getattr(recorder, name)(*args)


@dataclass(frozen=True)
class RunInfo:
    id: str
    sweep_id: str
    algorithm: str
    dataset_id: str
    dataset_content_sha256: str
    env_name: str | None
    seed: int
    status: str
    config: dict[str, Any]
    config_hash: str
    plan: dict[str, Any]
    code_version: str | None
    host: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    progress: dict[str, Any] | None
    timings: dict[str, Any] | None
    results: dict[str, Any] | None
    checkpoint: str | None
    error: str | None
    owner: str | None = None

    @classmethod
    def from_row(cls, row: RunRow) -> "RunInfo":
        iso = lambda value: value.isoformat() if value else None  # noqa: E731
        return cls(row.id, row.sweep_id, row.algorithm, row.dataset_id, row.dataset_content_sha256, row.env_name,
                   row.seed, row.status, row.config, row.config_hash, row.plan, row.code_version, row.host,
                   iso(row.created_at), iso(row.started_at), iso(row.finished_at), row.progress, row.timings,
                   row.results, row.checkpoint, row.error, row.owner)

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


class RunStore:
    """The runs table: one writer per run at a time (its worker or the driver)."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.session = db.make_sessionmaker(engine)

    # -- planning ---------------------------------------------------------------------------------
    def create(self, rows: list[dict[str, Any]]) -> None:
        with self.session.begin() as session:
            for values in rows:
                session.add(RunRow(status=RunState.PENDING, **values))

    # -- recorder interface -------------------------------------------------------------------------
    def started(self, run_id: str, host: str) -> None:
        with self.session.begin() as session:
            row = self._row(session, run_id)
            row.status, row.host, row.error = RunState.RUNNING, host, None
            row.started_at = row.started_at or db.utcnow()

    def progress(self, run_id: str, phase: str, step: int, total: int) -> None:
        with self.session.begin() as session:
            self._row(session, run_id).progress = {"phase": phase, "step": step, "total": total}

    def metrics(self, run_id: str, kind: str, phase: str, step: int, values: dict[str, Any]) -> None:
        with self.session.begin() as session:
            session.add(RunMetricRow(run_id=run_id, kind=kind, phase=phase, step=step, values=values))

    def checkpoint(self, run_id: str, path: str) -> None:
        with self.session.begin() as session:
            self._row(session, run_id).checkpoint = path

    def mark_failed(self, run_id: str, reason: str) -> None:
        """A run whose worker died (killed, machine lost) stays "running"; this frees it for ``resume``."""
        with self.session.begin() as session:
            row = self._row(session, run_id)
            if row.status not in (RunState.RUNNING, RunState.PENDING):
                raise InvalidInput(f"run {run_id} is {row.status}: only running or pending runs can be marked failed")
            row.status, row.error, row.finished_at = RunState.FAILED, f"marked failed: {reason}", db.utcnow()

    def finished(self, run_id: str, status: str, results: dict[str, Any], timings: dict[str, Any],
                 error: str | None = None) -> None:
        with self.session.begin() as session:
            row = self._row(session, run_id)
            row.status, row.results, row.timings, row.error = status, results, timings, error
            row.finished_at = db.utcnow()

    def mark(self, run_id: str, status: str, error: str | None = None) -> None:
        with self.session.begin() as session:
            row = self._row(session, run_id)
            row.status, row.error = status, error

    # -- reading --------------------------------------------------------------------------------------
    def get(self, run_id: str) -> RunInfo:
        with self.session() as session:
            return RunInfo.from_row(self._row(session, run_id))

    def list(self, algorithm: str | None = None, dataset: str | None = None, status: str | None = None,
             sweep_id: str | None = None, limit: int | None = None) -> list[RunInfo]:
        query = sa.select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id)
        if algorithm:
            query = query.where(RunRow.algorithm == algorithm)
        if dataset:
            # A dataset name without a version matches all its versions.
            query = query.where(sa.or_(RunRow.dataset_id == dataset, RunRow.dataset_id.like(f"{dataset}-v%")))
        if status:
            query = query.where(RunRow.status == status)
        if sweep_id:
            query = query.where(RunRow.sweep_id == sweep_id)
        if limit:
            query = query.limit(limit)
        with self.session() as session:
            return [RunInfo.from_row(row) for row in session.scalars(query)]

    def for_datasets(self, datasets: list[str], status: str = RunState.COMPLETED) -> list[RunInfo]:
        """Runs on any of the datasets (a name without a version matches all its versions)."""
        matches = []
        for dataset in datasets:
            matches += [RunRow.dataset_id == dataset, RunRow.dataset_id.like(f"{dataset}-v%")]
        query = sa.select(RunRow).where(RunRow.status == status, sa.or_(*matches)).order_by(RunRow.id)
        with self.session() as session:
            return [RunInfo.from_row(row) for row in session.scalars(query)]

    def page(self, algorithm: str | None = None, dataset: str | None = None, status: str | None = None,
             owner: str | None = None, limit: int = 50, offset: int = 0) -> tuple[int, list[RunInfo]]:
        """One page of runs, newest first, and how many match in all (for the API)."""
        query = sa.select(RunRow)
        for column, value in ((RunRow.algorithm, algorithm), (RunRow.status, status), (RunRow.owner, owner)):
            if value:
                query = query.where(column == value)
        if dataset:
            query = query.where(sa.or_(RunRow.dataset_id == dataset, RunRow.dataset_id.like(f"{dataset}-v%")))
        with self.session() as session:
            total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
            rows = session.scalars(query.order_by(RunRow.created_at.desc(), RunRow.id).limit(limit).offset(offset))
            return int(total or 0), [RunInfo.from_row(row) for row in rows]

    def import_run(self, run: dict[str, Any], curves: list[dict[str, Any]], owner: str) -> RunInfo:
        """Store a finished run made elsewhere (``bench results push``) with its curve, as one transaction."""
        def when(key: str) -> dt.datetime | None:
            value = run.get(key)
            if not value:
                return None
            try:
                if not isinstance(value, str) or len(value) > 64:
                    raise ValueError
                return dt.datetime.fromisoformat(value)
            except ValueError:
                raise InvalidInput(f"run {key} must be an ISO 8601 time such as 2026-01-31T12:00:00+00:00") from None

        created_at, started_at, finished_at = when("created_at"), when("started_at"), when("finished_at")
        for key, value in (("seed", run["seed"]), *((f"curve step {p['step']}", p["step"]) for p in curves)):
            if not -2**31 <= value < 2**31:
                raise InvalidInput(f"run {key} is outside the 32-bit integers the database stores")
        try:
            return self._insert_run(run, curves, owner, created_at, started_at, finished_at)
        except sa.exc.IntegrityError:
            raise Conflict(f"run {run['id']} already exists on this server") from None
        except sa.exc.DataError:  # e.g. NaN in a JSON column of PostgreSQL
            raise InvalidInput("the run holds values the database cannot store (NaN or infinity in JSON, "
                               "numbers out of range)") from None

    def _insert_run(self, run, curves, owner, created_at, started_at, finished_at) -> RunInfo:
        with self.session.begin() as session:
            row = RunRow(
                id=run["id"], sweep_id=run["sweep_id"], algorithm=run["algorithm"], config=run["config"],
                config_hash=run["config_hash"], seed=run["seed"], dataset_id=run["dataset_id"],
                dataset_content_sha256=run["dataset_content_sha256"], env_name=run.get("env_name"),
                plan=run["plan"], status=run["status"], code_version=run.get("code_version"), host=run.get("host"),
                created_at=created_at or db.utcnow(), started_at=started_at, finished_at=finished_at, progress=run.get("progress"), timings=run.get("timings"),
                results=run.get("results"), checkpoint=None, error=run.get("error"), owner=owner)
            session.add(row)
            for point in curves:
                values = {k: v for k, v in point.items() if k not in {"kind", "phase", "step"}}
                session.add(RunMetricRow(run_id=row.id, kind=point["kind"], phase=point["phase"], step=point["step"],
                                         values=values))
            session.flush()
            return RunInfo.from_row(row)

    def delete(self, run_id: str) -> None:
        with self.session.begin() as session:
            session.delete(self._row(session, run_id))

    def curves(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(RunMetricRow).where(RunMetricRow.run_id == run_id).order_by(RunMetricRow.id)
        if kind:
            query = query.where(RunMetricRow.kind == kind)
        with self.session() as session:
            self._row(session, run_id)
            return [{"kind": m.kind, "phase": m.phase, "step": m.step, **m.values} for m in session.scalars(query)]

    def resumed(self, run_id: str, phase: str, step: int) -> None:
        """A run continues from its checkpoint at (phase, step): points recorded after it will come again."""
        phases = ["offline", "online"]
        later = phases[phases.index(phase) + 1:]
        with self.session.begin() as session:
            session.execute(sa.delete(RunMetricRow).where(
                RunMetricRow.run_id == run_id,
                sa.or_(sa.and_(RunMetricRow.phase == phase, RunMetricRow.step > step),
                       RunMetricRow.phase.in_(later))))

    @staticmethod
    def _row(session, run_id: str) -> RunRow:
        row = session.get(RunRow, run_id)
        if row is None:
            raise NotFound(f"no run {run_id!r}")
        return row


# -- summaries ---------------------------------------------------------------------------------------------
def mean_ci(values: list[float], bounds: tuple[float, float] | None = None) -> dict[str, Any] | None:
    """Mean and 95% Student-t interval over seeds (no interval from a single seed), clipped to ``bounds``."""
    values = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    mean = float(np.mean(values))
    if len(values) < 2:
        return {"mean": mean, "ci95": None, "n": 1}
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values)))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "ci95": [low, high], "n": len(values)}


def phase_values(results: dict[str, Any] | None, phase: str, which: str = "final") -> dict[str, Any] | None:
    summary = (results or {}).get(phase)
    if not summary:
        return None
    point = summary[which]
    return {metric: point.get(metric) for metric in METRICS}


def summarize(runs: list[RunInfo]) -> dict[str, Any]:
    """Across the seeds of a sweep: mean and 95% CI of each phase's final return, score and success rate."""
    out: dict[str, Any] = {}
    completed = [run for run in runs if run.status == RunState.COMPLETED]
    for phase in ("offline", "online"):
        points = [phase_values(run.results, phase) for run in completed]
        points = [p for p in points if p]
        out[phase] = {metric: mean_ci([p[metric] for p in points if p[metric] is not None],
                                      (0.0, 1.0) if metric == "success_rate" else None)
                      for metric in METRICS} if points else None
    out["seeds"] = len(runs)
    out["completed"] = len(completed)
    return out


def run_json(run: RunInfo) -> dict[str, Any]:
    return {"run_id": run.id, "seed": run.seed, "status": run.status, "error": run.error,
            "offline": phase_values(run.results, "offline"), "online": phase_values(run.results, "online")}
