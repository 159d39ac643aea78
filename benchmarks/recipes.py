"""Recipe generation speed and the statistics docs/datasets.md reports; prints JSON.

    .venv/bin/python benchmarks/recipes.py [--episodes 30] [--recipes metaworld/drawer-open/expert ...]

Speed, per recipe family: each recipe's collection steps/s with all workers (episode
bookkeeping, process pool and result transfer included) next to a bare single-process loop of
the same (collection) environment stepped with uniform random actions, times the number of
workers. For ``random`` recipes the gap is the collector's overhead; for scripted ones it also
holds the policy's own cost. Statistics, per recipe:
success rate and return of the data at the given size.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np

from bench.datasets.recipes import all_recipes, get_recipe
from bench.datasets.recipes.base import to_trajectories
from bench.datasets.recipes.collection import collect_episodes, worker_pool


def raw_step_rate(recipe, steps: int = 5000) -> float:
    """A bare loop: the environment stepped with uniform random actions, nothing recorded."""
    env = recipe.make_collection_env() if recipe.make_collection_env else recipe.env.make()
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(low, high).astype(np.float32))
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--recipes", nargs="*", help="default: every recipe")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    recipes = [get_recipe(name) for name in args.recipes] if args.recipes else all_recipes()
    per_recipe, families, bare_rates = [], {}, {}
    with worker_pool(args.workers) as pool:
        collect_episodes(recipes[0], args.workers, 0, pool)  # start the workers before timing
        for recipe in recipes:
            start = time.perf_counter()
            data = to_trajectories(collect_episodes(recipe, args.episodes, 0, pool)).validate()
            seconds = time.perf_counter() - start
            returns = data.episode_returns()
            per_recipe.append({
                "recipe": recipe.name, "episodes": data.num_episodes, "steps": data.num_steps,
                "success_rate": round(float(np.mean(data.episode_attrs["success"])), 3),
                "return_mean": round(float(returns.mean()), 2), "return_std": round(float(returns.std()), 2),
                "steps_per_s": round(data.num_steps / seconds),
            })
            if recipe.env.name not in bare_rates:
                bare_rates[recipe.env.name] = raw_step_rate(recipe) * args.workers
            ideal = bare_rates[recipe.env.name]
            # For random recipes the gap is the collector's overhead; otherwise it includes the policy's cost.
            families.setdefault(recipe.env.family, []).append(
                {"recipe": recipe.name, "collect_steps_per_s": round(data.num_steps / seconds),
                 "bare_loop_steps_per_s_x_workers": round(ideal),
                 "gap": round(1 - data.num_steps / seconds / ideal, 3),
                 "gap_is_collector_overhead": recipe.name.endswith("/random")})
            print(json.dumps(per_recipe[-1]), flush=True)
    speed = {}
    for name, entries in families.items():
        overheads = [e["gap"] for e in entries if e["gap_is_collector_overhead"]]
        speed[name] = {"mean_collector_overhead": round(float(np.mean(overheads)), 3) if overheads else None,
                       "recipes": entries}
    print(json.dumps({"workers": args.workers, "speed": speed, "recipes": per_recipe}, indent=2))


if __name__ == "__main__":
    main()
