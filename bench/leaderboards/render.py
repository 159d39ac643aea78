"""Leaderboards as text: one row per algorithm, one column per dataset, then the suite's mean and IQM.

Cells read like the dissertation's tables, "offline -> online", each with its 95% interval.
Normalized scores and returns show the mean over seeds with its bootstrap interval; success
rates show the rate pooled over all evaluation episodes with its Wilson interval. A dagger marks
entries with fewer seeds than the suite's minimum.
"""

from __future__ import annotations

from typing import Any

from bench.leaderboards.board import phases_shown
from bench.leaderboards.suites import LeaderboardSpec

MARK = "†"


def _format(value: float, metric: str) -> str:
    return f"{100 * value:.1f}%" if metric == "success_rate" else f"{value:.1f}"


def phase_stat(entry: dict[str, Any], phase: str, metric: str) -> tuple[float, list[float] | None] | None:
    """An entry's headline in one phase and its 95% interval: the pooled success rate (Wilson) for success
    rates, else the mean over seeds (bootstrap); None where the phase has no result."""
    if metric == "success_rate" and entry.get(f"{phase}_success"):
        stat = entry[f"{phase}_success"]
        return stat["rate"], stat["ci95"]
    if entry.get(phase):
        return entry[phase]["mean"], entry[phase]["ci95"]
    return None


def phase_cell(entry: dict[str, Any], phase: str, metric: str, intervals: bool = True) -> str:
    stat = phase_stat(entry, phase, metric)
    if stat is None:
        return "-"
    value, interval = stat
    text = _format(value, metric)
    if intervals and interval:
        text += f" [{_format(interval[0], metric).rstrip('%')}, {_format(interval[1], metric)}]"
    return text


def entry_cell(entry: dict[str, Any] | None, spec: LeaderboardSpec, intervals: bool = True) -> str:
    if entry is None:
        return "-"
    text = " -> ".join(phase_cell(entry, phase, spec.metric, intervals) for phase in phases_shown(spec))
    return text + (f" {MARK}" if entry["marked"] else "") + f" (n={entry['n']})"


def aggregate_cell(row: dict[str, Any] | None, spec: LeaderboardSpec, which: str, intervals: bool = True) -> str:
    if row is None:
        return "-"
    parts = []
    for phase in phases_shown(spec):
        stat = (row.get(phase) or {}).get(which)
        if not stat:
            parts.append("-")
            continue
        text = _format(stat["value"], spec.metric)
        if intervals:
            text += f" [{_format(stat['ci95'][0], spec.metric).rstrip('%')}, {_format(stat['ci95'][1], spec.metric)}]"
        parts.append(text)
    return " -> ".join(parts) + (f" {MARK}" if row.get("marked") else "")


def table_rows(board: dict[str, Any], intervals: bool = True) -> tuple[list[str], list[list[str]]]:
    """Header and rows: algorithm, one cell per dataset, then mean and IQM when the suite aggregates."""
    spec = LeaderboardSpec.from_dict({k: v for k, v in board["leaderboard"].items() if k not in {"source", "owner"}},
                                     source=board["leaderboard"].get("source", "user"))
    headline: dict[tuple[str, str], dict[str, Any]] = {}
    algorithms: list[str] = []
    for block in board["datasets"]:
        for entry in block["entries"]:
            key = (block["dataset"], entry["algorithm"])
            newest = lambda e: (e["n"], max(e["runs"], default=""))  # noqa: E731
            if key not in headline or newest(entry) > newest(headline[key]):
                headline[key] = entry
            if entry["algorithm"] not in algorithms:
                algorithms.append(entry["algorithm"])
    aggregate = {row["algorithm"]: row for row in (board.get("aggregate") or {}).get("algorithms", [])}
    order = [row["algorithm"] for row in (board.get("aggregate") or {}).get("algorithms", [])]
    algorithms = order + sorted(a for a in algorithms if a not in order)
    first = "policy" if board["leaderboard"].get("kind") == "robot" else "algorithm"
    header = [first, *[block["dataset"] for block in board["datasets"]]]
    if board.get("aggregate"):
        header += [which.upper() if which == "iqm" else which for which in spec.aggregation]
    rows = []
    for algorithm in algorithms:
        row = [algorithm] + [entry_cell(headline.get((block["dataset"], algorithm)), spec, intervals)
                             for block in board["datasets"]]
        if board.get("aggregate"):
            row += [aggregate_cell(aggregate.get(algorithm), spec, which, intervals) for which in spec.aggregation]
        rows.append(row)
    return header, rows


def to_markdown(board: dict[str, Any]) -> str:
    spec = board["leaderboard"]
    header, rows = table_rows(board)
    lines = [f"### {spec.get('title') or spec['name']}", ""]
    if spec.get("description"):
        lines += [spec["description"], ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * len(header)) + "|")
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    lines += ["", footnote(board)]
    return "\n".join(lines) + "\n"


def footnote(board: dict[str, Any]) -> str:
    spec = board["leaderboard"]
    if spec.get("kind") == "robot":
        return ("success rate over real-robot trials (bench robot-evals), offline -> online after fine-tuning, "
                f"Wilson 95% interval; n = trials per phase. {MARK} fewer than {spec['min_seeds']} trials.")
    phases = "offline -> online" if spec["phase"] == "both" else spec["phase"]
    interval = ("success rate over all evaluation episodes of all seeds, Wilson 95% interval"
                if spec["metric"] == "success_rate" else "mean over seeds, 95% bootstrap interval")
    text = (f"{spec['metric']} ({spec['point']} evaluation), {phases}; {interval}. Mean and IQM across datasets "
            f"with stratified-bootstrap 95% intervals (rliable). {MARK} fewer than {spec['min_seeds']} seeds.")
    incomplete = (board.get("aggregate") or {}).get("incomplete") or {}
    if incomplete:
        text += " Not aggregated (missing datasets): " + "; ".join(
            f"{algorithm}: {', '.join(missing)}" for algorithm, missing in sorted(incomplete.items())) + "."
    return text
