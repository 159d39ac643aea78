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


def dataset_card(registry, dataset_id: str) -> str:
    info = registry.show(dataset_id)
    manifest = registry.manifest(info.id)
    dataset = registry.load(info.id)
    table = dataset.episode_table
    returns = table.column("return").to_numpy()
    lengths = table.column("length").to_numpy()
    provenance: dict[str, Any] = manifest.get("provenance") or {}
    lines = [f"# {info.id}", ""] + ([info.description, ""] if info.description else [])
    lines += [
        "| | |", "| --- | --- |",
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
    lines += ["", "## Returns and lengths", "", f"- return: {_stats(returns)}", f"- length: {_stats(lengths)}"]
    if "success" in table.column_names:
        success = table.column("success").to_numpy(zero_copy_only=False).astype(float)
        lines.append(f"- success rate: {success.mean():.3f} ({int(success.sum())} of {len(success)} episodes)")
    if "policy" in table.column_names:
        kinds, counts = np.unique(table.column("policy").to_numpy(zero_copy_only=False).astype(str), return_counts=True)
        lines.append("- episodes by policy: " + ", ".join(f"{k} {c}" for k, c in zip(kinds, counts)))
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
