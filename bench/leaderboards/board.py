"""Compute a leaderboard from completed runs: per dataset and algorithm, then across the suite.

An *entry* is one algorithm with one config and one budget (offline and online steps, how often
and on how many episodes it is evaluated) on one dataset version: the completed seeds of it, their
mean and 95% bootstrap interval per phase, the pooled success rate with its Wilson interval, and links to everything that made the numbers (run ids, config, code versions, the
dataset's content hash). Entries with fewer seeds than the suite asks for are marked, not hidden.

Across the suite, each algorithm is represented on each dataset by its entry with the most seeds
(never the best-scoring one: choosing the best of several configs after the fact is optimistic);
mean and IQM over (seeds x datasets) come with stratified-bootstrap intervals (rliable), and
the performance profile gives the fraction of runs above each score threshold.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import numpy as np

from bench.evaluation.store import RunInfo, RunStore
from bench.leaderboards.robot_evals import RobotEvals
from bench.leaderboards.statistics import bootstrap_mean, suite_aggregates, wilson_interval
from bench.leaderboards.suites import LeaderboardSpec

PHASES = ("offline", "online")


def phases_shown(spec: LeaderboardSpec) -> tuple[str, ...]:
    return PHASES if spec.phase == "both" else (spec.phase,)


def _dataset_of(run_dataset: str, spec: LeaderboardSpec) -> str | None:
    """The suite dataset a run's dataset version belongs to (exact version or any version of a name)."""
    for dataset in spec.datasets:
        if run_dataset == dataset or run_dataset.rsplit("-v", 1)[0] == dataset:
            return dataset
    return None


def _point(run: RunInfo, phase: str, point: str) -> dict[str, Any] | None:
    summary = (run.results or {}).get(phase)
    return summary.get(point) if summary else None


BUDGET_FIELDS = ("offline_steps", "online_steps", "eval_every", "eval_episodes")


def budget_of(run: RunInfo) -> tuple[int, ...]:
    """What a run was given to train and be scored with: runs of one config at different budgets are not
    seeds of one experiment."""
    return tuple(int((run.plan or {}).get(field) or 0) for field in BUDGET_FIELDS)


def _entry(spec: LeaderboardSpec, runs: list[RunInfo]) -> dict[str, Any]:
    runs = sorted(runs, key=lambda r: (r.seed, r.id))
    first = runs[0]
    entry: dict[str, Any] = {
        "dataset": first.dataset_id,
        "dataset_content_sha256": first.dataset_content_sha256,
        "algorithm": first.algorithm,
        "config_hash": first.config_hash,
        "config": first.config,
        "budget": dict(zip(BUDGET_FIELDS, budget_of(first))),
        "code_versions": sorted({r.code_version for r in runs if r.code_version}),
        "owners": sorted({r.owner for r in runs if getattr(r, "owner", None)}),
        "runs": [r.id for r in runs],
        "seeds": [r.seed for r in runs],
        "n": len(runs),
        "marked": len(runs) < spec.min_seeds,
    }
    for phase in phases_shown(spec):
        points = [_point(run, phase, spec.point) for run in runs]
        values = [p.get(spec.metric) if p else None for p in points]
        entry[phase] = bootstrap_mean([v for v in values if v is not None])
        trials = [int(run.plan.get("eval_episodes", 0)) for run, p in zip(runs, points)
                  if p and p.get("success_rate") is not None]
        successes = sum(p["success_rate"] * int(run.plan.get("eval_episodes", 0)) for run, p in zip(runs, points)
                        if p and p.get("success_rate") is not None)
        entry[f"{phase}_success"] = wilson_interval(successes, sum(trials)) if trials else None
    return entry


def _headline_value(entry: dict[str, Any], spec: LeaderboardSpec) -> float:
    """What ranks an entry: its last phase shown, or its offline result for algorithms that do not
    learn online (BC's final policy is its offline one)."""
    for phase in reversed(phases_shown(spec)):
        if entry.get(phase):
            return entry[phase]["mean"]
    return float("-inf")


def compute_leaderboard(spec: LeaderboardSpec, runs: list[RunInfo]) -> dict[str, Any]:
    groups: dict[tuple[Any, ...], list[RunInfo]] = defaultdict(list)
    for run in runs:
        dataset = _dataset_of(run.dataset_id, spec)
        if dataset is None or run.status != "completed" or not run.results:
            continue
        groups[(dataset, run.dataset_id, run.algorithm, run.config_hash, budget_of(run))].append(run)
    per_dataset: dict[str, list[dict[str, Any]]] = {dataset: [] for dataset in spec.datasets}
    for (dataset, *_), members in groups.items():
        per_dataset[dataset].append(_entry(spec, members))
    for entries in per_dataset.values():
        entries.sort(key=lambda e: (-_headline_value(e, spec), e["algorithm"], e["config_hash"]))
        for rank, entry in enumerate(entries, 1):
            entry["rank"] = rank
    return {
        "leaderboard": spec.to_json(),
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "runs_considered": sum(len(v) for v in groups.values()),
        "datasets": [{"dataset": dataset, "entries": per_dataset[dataset]} for dataset in spec.datasets],
        "aggregate": _aggregate(spec, per_dataset) if spec.aggregation else None,
    }


def _aggregate(spec: LeaderboardSpec, per_dataset: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    algorithms = sorted({e["algorithm"] for entries in per_dataset.values() for e in entries})
    rows, incomplete = [], {}
    for algorithm in algorithms:
        chosen = {}
        for dataset, entries in per_dataset.items():
            candidates = [e for e in entries if e["algorithm"] == algorithm]
            if candidates:
                # Most seeds first, then the newest runs: never the best score (that would be selection).
                chosen[dataset] = max(candidates, key=lambda e: (e["n"], max(e["runs"])))
        missing = [d for d in spec.datasets if d not in chosen]
        if missing:
            incomplete[algorithm] = missing
            continue
        row: dict[str, Any] = {"algorithm": algorithm, "entries": {d: (e["dataset"], e["config_hash"]) for d, e in chosen.items()}}
        for phase in phases_shown(spec):
            values = [(e.get(phase) or {}).get("values", []) for e in chosen.values()]  # ordered by seed
            seeds = min(len(v) for v in values) if values else 0
            if seeds == 0:
                row[phase] = None
                continue
            scores = np.array([v[:seeds] for v in values], dtype=np.float64).T  # (seeds x datasets)
            top = 1.0 if spec.metric == "success_rate" else max(100.0, float(scores.max()))
            taus = np.linspace(0.0, top, 21)
            row[phase] = {"seeds": seeds, **suite_aggregates(scores, taus)}
        row["marked"] = any(e["marked"] for e in chosen.values())
        rows.append(row)
    def rank_value(row: dict[str, Any]) -> float:
        for phase in reversed(phases_shown(spec)):
            if row.get(phase):
                return row[phase]["iqm"]["value"]
        return float("-inf")

    rows.sort(key=lambda r: -rank_value(r))
    return {"algorithms": rows, "incomplete": incomplete}


def robot_leaderboard(spec: LeaderboardSpec, summary: list[dict[str, Any]]) -> dict[str, Any]:
    """A "robot success rate" leaderboard from real-robot trials (bench.leaderboards.robot_evals.summary):
    one entry per log, task and policy, success offline -> online with Wilson intervals."""
    per_dataset: dict[str, list[dict[str, Any]]] = {dataset: [] for dataset in spec.datasets}
    for item in summary:
        if item["dataset"] not in per_dataset:
            continue
        trials = [item["trials"][phase] for phase in phases_shown(spec) if item["trials"][phase]]
        entry = {"dataset": item["dataset"], "task": item["task"], "algorithm": item["policy"], "config_hash": "",
                 "runs": [], "n": min(trials) if trials else 0, "trials": item["trials"],
                 "marked": any(0 < t < spec.min_seeds for t in trials) or not trials}
        for phase in phases_shown(spec):
            stat = item[f"{phase}_success"]
            entry[f"{phase}_success"] = stat
            entry[phase] = {"mean": stat["rate"], "ci95": stat["ci95"], "n": stat["trials"]} if stat else None
        per_dataset[item["dataset"]].append(entry)
    for entries in per_dataset.values():
        entries.sort(key=lambda e: (-_headline_value(e, spec), e["algorithm"], e["task"]))
        for rank, entry in enumerate(entries, 1):
            entry["rank"] = rank
    return {"leaderboard": spec.to_json(), "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "runs_considered": sum(sum(e["trials"].values()) for v in per_dataset.values() for e in v),
            "datasets": [{"dataset": d, "entries": per_dataset[d]} for d in spec.datasets], "aggregate": None}


def build_leaderboard(spec: LeaderboardSpec, engine) -> dict[str, Any]:
    """The leaderboard a spec describes, from the runs (or robot trials) in the database."""
    if spec.kind == "robot":
        return robot_leaderboard(spec, RobotEvals(engine).summary(list(spec.datasets)))
    return compute_leaderboard(spec, RunStore(engine).for_datasets(list(spec.datasets)))
