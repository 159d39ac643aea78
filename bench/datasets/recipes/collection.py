"""Collecting a recipe's episodes, in this process or across a pool of worker processes, with the same result.

Workers receive a recipe's name, not the recipe (recipes hold lambdas, which do not pickle), and look
it up in the catalogue; so this module sits above both the recipe definitions and the catalogue.
"""

from __future__ import annotations

import collections
import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Iterator

import numpy as np

from bench.datasets.recipes import get_recipe
from bench.datasets.recipes.base import EpisodeRecord, Policy, Recipe, episode_seeds, rollout


def _collect(recipe_name: str, seed: int, indices: list[int], total: int, kind: str | None,
             evaluate: bool = False) -> list[EpisodeRecord]:
    recipe = get_recipe(recipe_name)
    custom = recipe.collect_episode is not None and not evaluate
    env = recipe.make_collection_env() if custom and recipe.make_collection_env else recipe.env.make()
    policies: dict[str, Policy] = {}
    records = []
    try:
        for index in indices:
            episode_kind = kind or recipe.episode_kind(index, total)
            reset_seed, rng = episode_seeds(seed, index)
            if custom:
                records.append(recipe.collect_episode(env, episode_kind, reset_seed, rng))
                records[-1].attrs["policy"] = episode_kind
                continue
            if episode_kind not in policies:
                policies[episode_kind] = recipe.make_policy(episode_kind, env)
            record = rollout(env, policies[episode_kind], reset_seed, rng, recipe.max_episode_steps, recipe.success_rule,
                             state_of=env.unwrapped.sim_state if recipe.record_sim_state else None)
            record.attrs["policy"] = episode_kind
            records.append(record)
    finally:
        env.close()
    return records


def worker_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """Processes for collection; reuse one across calls, since each worker imports the simulators once."""
    workers = max(1, workers or os.cpu_count() or 1)
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))


def record_bytes(record: EpisodeRecord) -> int:
    observations = record.observations.values() if isinstance(record.observations, dict) else [record.observations]
    arrays = [*observations, record.actions, record.rewards, record.success,
              *([record.states] if record.states is not None else [])]
    return sum(np.asarray(array).nbytes for array in arrays)


def collect_in_parts(recipe: Recipe, episodes: int, seed: int, pool: ProcessPoolExecutor | None,
                     part_bytes: int) -> Iterator[list[EpisodeRecord]]:
    """Episodes 0..n-1 in order, in lists of about ``part_bytes``: the episodes ``collect_episodes`` gives,
    never all in memory at once. With a pool, at most two chunks per worker are collected ahead of the
    consumer (the version writer), so finished episodes wait in bounded memory."""
    chunk = 16
    starts = list(range(0, episodes, chunk))
    collect = functools.partial(_collect, recipe.name, seed, total=episodes, kind=None)
    if pool is None:
        results: Iterator[list[EpisodeRecord]] = (collect(list(range(s, min(s + chunk, episodes)))) for s in starts)
    else:
        results = _bounded(pool, collect, [list(range(s, min(s + chunk, episodes))) for s in starts],
                           ahead=2 * pool._max_workers)
    part: list[EpisodeRecord] = []
    filled = 0
    for records in results:
        for record in records:
            part.append(record)
            filled += record_bytes(record)
            if filled >= part_bytes:
                yield part
                part, filled = [], 0
    if part:
        yield part


def _bounded(pool: ProcessPoolExecutor, fn, jobs: list, ahead: int) -> Iterator:
    """``fn`` over ``jobs`` on the pool, results in order, with at most ``ahead`` jobs submitted and not yet consumed."""
    waiting: collections.deque = collections.deque()
    for job in jobs:
        waiting.append(pool.submit(fn, job))
        if len(waiting) >= ahead:
            yield waiting.popleft().result()
    while waiting:
        yield waiting.popleft().result()


def collect_episodes(recipe: Recipe, episodes: int, seed: int, pool: ProcessPoolExecutor | None = None,
                     kind: str | None = None, evaluate: bool = False) -> list[EpisodeRecord]:
    """Collect episodes 0..n-1 (all with policy ``kind`` if given), in episode order.

    ``evaluate`` runs the policy step by step on the evaluation environment (the reference's)
    instead of the recipe's own collection loop: that is how reference scores are measured.
    With a pool, episodes are collected in small chunks across its workers; the result is the
    same as collecting them one by one in this process.
    """
    if pool is None:
        return _collect(recipe.name, seed, list(range(episodes)), episodes, kind, evaluate)
    workers = pool._max_workers
    # Small chunks keep every worker busy when episode lengths differ.
    chunk = max(1, min(16, episodes // (workers * 4) or 1))
    futures = [pool.submit(_collect, recipe.name, seed, list(range(start, min(start + chunk, episodes))), episodes, kind,
                           evaluate)
               for start in range(0, episodes, chunk)]
    return [record for future in futures for record in future.result()]
