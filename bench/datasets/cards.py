"""Dataset cards: a markdown page about one version, computed from its data and the catalogue."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.datasets.catalogue import environment_label
from bench.errors import NotFound


def _stats(values: np.ndarray) -> str:
    return (f"mean {values.mean():.2f} ± {values.std():.2f} (min {values.min():.2f}, median "
            f"{np.median(values):.2f}, max {values.max():.2f})")


def _histogram(values: np.ndarray, bins: int = 10, width: int = 40) -> list[str]:
    counts, edges = np.histogram(values, bins=bins)
    top = max(int(counts.max()), 1)
    return [f"{edges[i]:>10.1f} .. {edges[i + 1]:<10.1f} {'#' * round(width * c / top):<{width}} {c}"
            for i, c in enumerate(counts)]


def _robot_lines(robot: dict[str, Any], table, timed) -> list[str]:
    """Who recorded what, for how long, with which cameras, and how the episodes are labelled (``timed``: the log's
    timestamps in memory, or None)."""
    timestamps = timed.data.infos.get("timestamp") if timed is not None else None
    durations = []
    if timestamps is not None:
        for start, length in zip(timed.data.obs_starts, timed.data.lengths):
            durations.append(float(timestamps[start + length] - timestamps[start]))
    cameras = robot.get("cameras") or {}
    lines = [f"- robot: {robot.get('robot') or 'not stated'}; lab: {robot.get('lab') or 'not stated'}; "
             f"task: {robot.get('task') or 'per episode'}",
             f"- clock: {robot.get('clock') or '-'}" + (f", {robot['fps']:g} frames per second" if robot.get("fps") else "")]
    if durations:
        lines.append(f"- duration: {sum(durations):.1f} s in all; per episode {_stats(np.asarray(durations))} s")
    lines.append("- cameras: " + (", ".join(f"{name} ({c.get('width')}x{c.get('height')}, {c.get('storage')})"
                                            for name, c in cameras.items()) or "none"))
    for column in ("task", "operator"):
        if column in table.column_names:
            values = [v for v in table.column(column).to_pylist() if v]
            if values:
                kinds, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
                lines.append(f"- episodes by {column}: " + ", ".join(f"{k} {c}" for k, c in zip(kinds, counts)))
    if "success" not in table.column_names:
        lines.append("- success labels: none (add a labels.csv with a success column at import)")
    return lines


def dataset_card(registry, dataset_id: str) -> str:
    info = registry.show(dataset_id)
    manifest = registry.manifest(info.id)
    table = registry.episode_table(info.id)  # a card reads the episode table, never the arrays
    returns = table.column("return").to_numpy()
    lengths = table.column("length").to_numpy()
    provenance: dict[str, Any] = manifest.get("provenance") or {}
    lines = [f"# {info.id}", ""] + ([info.description, ""] if info.description else [])
    lines += [
        "| field | value |", "| --- | --- |",
        f"| episodes | {info.episodes} |",
        f"| steps | {info.steps} |",
        f"| size on disk | {info.size_bytes / 1e6:.2f} MB |",
        f"| content sha256 | `{info.content_sha256}` |",
        f"| license | {info.license or 'not stated'} |",
        f"| source | {provenance.get('source_format', '-')} |",
    ]
    recipe = provenance.get("recipe")
    if recipe:
        lines.append(f"| recipe | `{recipe['name']}`, seed {provenance.get('seed')}: {recipe['policy']} |")
        lines.append(f"| rebuild | `bench datasets build {recipe['name']} --episodes {provenance.get('episodes')} "
                     f"--seed {provenance.get('seed')}` |")
    env = manifest.get("env")
    lines.append(f"| environment | {environment_label(env)}{' ' + str(env['kwargs']) if env and env.get('kwargs') else ''} |")
    if env:
        lines.append(f"| packages | {', '.join(f'{k} {v}' for k, v in env.get('packages', {}).items())} |")
    robot = (provenance.get("source_metadata") or {}).get("robot")
    if robot:  # a real-robot log: rewards are zeros, so what describes it is time, cameras and labels
        # Only the timestamps of a log are read (a version read on demand, narrowed to them), not its camera arrays.
        timestamps = (registry.load(info.id, in_memory=False).load(["infos/timestamp"])
                      if "infos/timestamp" in manifest["arrays"] else None)
        lines += ["", "## Robot log", "", *_robot_lines(robot, table, timestamps)]
    else:
        lines += ["", "## Returns and lengths", "", f"- return: {_stats(returns)}", f"- length: {_stats(lengths)}"]
    if "success" in table.column_names:
        success = table.column("success").to_numpy(zero_copy_only=False).astype(float)
        lines.append(f"- success rate: {success.mean():.3f} ({int(success.sum())} of {len(success)} episodes)")
    if "policy" in table.column_names:
        kinds, counts = np.unique(table.column("policy").to_numpy(zero_copy_only=False).astype(str), return_counts=True)
        lines.append("- episodes by policy: " + ", ".join(f"{k} {c}" for k, c in zip(kinds, counts)))
    if not robot:
        lines += ["", "Return histogram:", "", "```", *_histogram(returns), "```"]
    if env and env.get("name"):
        try:
            catalogue_entry = registry.environments.get(env["name"])
        except NotFound:
            catalogue_entry = None
        if catalogue_entry is not None:
            lines += ["", f"## Reference scores ({env['name']})", "", "| source | kind | return | episodes | how |",
                      "| --- | --- | --- | --- | --- |"]
            for score in catalogue_entry.references:
                lines.append(f"| {score.source} | {score.kind} | {score.value:.2f} | {score.episodes or '-'} | "
                             f"{score.method or '-'} |")
            pair = catalogue_entry.reference_pair()
            if pair:
                normalized = 100 * (returns.mean() - pair[0]) / (pair[1] - pair[0])
                lines.append(f"\nNormalized score of the data's mean return ({pair[2]} references): {normalized:.1f}")
    previews = sorted(name for name in manifest["files"] if name.startswith("media/preview_"))
    if previews:
        lines += ["", "## Preview (episode 0)", ""]
        lines += [f"![{name}]({name})" for name in previews]
    notes = provenance.get("notes") or []
    if notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"
