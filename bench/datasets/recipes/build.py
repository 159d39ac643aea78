"""Build a recipe into a published dataset version, registering its environment and reference scores."""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import os
from typing import Any, Callable

import numpy as np

import bench
from bench.datasets.catalogue import register_catalogue_entry
from bench.datasets.recipes import all_recipes, get_recipe
from bench.datasets.recipes.base import Recipe, to_trajectories
from bench.datasets.recipes.collection import collect_episodes, collect_in_parts, worker_pool
from bench.datasets.recipes.preview import preview_frames
from bench.datasets.trajectories import EpisodeParts, Trajectories

# Reference scores are measured on episodes whose seeds no dataset build uses by default.
REFERENCE_SEED = 1_000_003
REFERENCE_EPISODES = 20


def register_environment(registry, recipe: Recipe) -> None:
    register_catalogue_entry(registry.environments, recipe.env)


# What kind of data a recipe makes, by the last part of its name: a tag users filter on.
KIND_TAGS = {"expert": "demos", "demos": "demos", "medium": "mixed", "mixed": "mixed", "random": "random",
             "play": "play", "prior": "play", "noisy": "play", "navigate": "play", "stitch": "play"}


def kind_tag(recipe_name: str) -> str | None:
    return KIND_TAGS.get(recipe_name.rsplit("/", 1)[-1])


def register_recipe_environments(registry) -> None:
    """Every recipe's environment in the catalogue, with its published reference scores."""
    seen = set()
    for recipe in all_recipes():
        if recipe.env.name not in seen:
            register_environment(registry, recipe)
            seen.add(recipe.env.name)


def calibrate(registry, recipe: Recipe, episodes: int = REFERENCE_EPISODES, pool=None,
              force: bool = False) -> dict[str, float]:
    """Measure the environment's random and expert returns with the recipe's reference policies."""
    register_environment(registry, recipe)
    existing = {(r.source, r.kind) for r in registry.environments.get(recipe.env.name).references}
    measured = {}
    for kind, policy in recipe.reference_policies.items():
        if not force and ("bench", kind) in existing:
            continue
        records = collect_episodes(recipe, episodes, REFERENCE_SEED, pool, kind=policy, evaluate=True)
        value = float(np.mean([record.rewards.sum(dtype=np.float64) for record in records]))
        success = float(np.mean([record.attrs["success"] for record in records]))
        registry.environments.set_reference(
            recipe.env.name, "bench", kind, value, episodes,
            f"mean undiscounted return of policy '{policy}' over {episodes} episodes "
            f"(reset seeds from SeedSequence([{REFERENCE_SEED}, i])); success rate {success:.2f}",
        )
        measured[kind] = value
    return measured


def build(registry, name: str, episodes: int | None = None, seed: int = 0, workers: int | None = None,
          reference_episodes: int = REFERENCE_EPISODES, previews: bool = True,
          progress: Callable[[str], None] | None = None):
    """Generate a recipe's dataset and publish it as the next version of its name.

    Episodes are written as they are collected, in parts of about BENCH_IMPORT_PART_BYTES (an import's
    memory budget): a dataset larger than memory builds in bounded memory, and one that fits in a part is
    published whole, exactly as before (the same files, the same content_sha256 either way).
    """
    report = progress or (lambda stage: None)
    recipe = get_recipe(name)
    episodes = episodes or recipe.default_episodes
    parallel = (workers or os.cpu_count() or 1) > 1
    media = {}
    if previews:
        report("rendering preview frames")
        media = preview_frames(recipe, seed)
    reference = recipe.env.reference()
    # The notes are completed once every episode has been collected: the manifest is written after that.
    notes: list[str] = []
    provenance: dict[str, Any] = {
        "source_format": "recipe",
        "recipe": recipe.to_json(),
        "seed": seed,
        "episodes": episodes,
        "importer": f"bench {bench.__version__} recipe builder",
        "packages": {dist: _version(dist) for dist in ("gymnasium", "mujoco", "metaworld", "numpy")},
        "notes": notes,
    }
    env = recipe.env.make()
    with worker_pool(workers) if parallel else contextlib.nullcontext() as pool, contextlib.closing(env):
        report("reference scores")
        calibrate(registry, recipe, reference_episodes, pool)
        report(f"collecting {episodes} episodes")
        records = collect_in_parts(recipe, episodes, seed, pool, registry.settings.import_part_bytes)
        first = to_trajectories(next(records), env)
        second = next(records, None)
        successes = [first.episode_attrs["success"]]

        def parts():
            yield first
            for part in itertools.chain([second], records):
                data = to_trajectories(part, env)
                successes.append(data.episode_attrs["success"])
                yield data
            notes.append(f"success rate in the data: {float(np.mean(np.concatenate(successes))):.3f}")

        if second is None:
            notes.append(f"success rate in the data: {float(np.mean(first.episode_attrs['success'])):.3f}")
            data: Trajectories | EpisodeParts = first
        else:
            data = EpisodeParts(parts)  # read once, by the writer
        return registry.publish(data, recipe.name, description=f"{recipe.description}; policy: {recipe.policy}",
                                license="CC-BY-4.0", env=reference, provenance=provenance, media=media,
                                progress=progress, tags=[tag for tag in (kind_tag(recipe.name), "simulated") if tag])


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
