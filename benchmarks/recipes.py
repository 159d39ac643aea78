"""Recipe generation speed and the statistics docs/datasets.md reports; prints JSON.

    .venv/bin/python benchmarks/recipes.py [--episodes 30] [--recipes metaworld/drawer-open/expert ...]

Speed, per recipe family: for each ``random`` recipe, collection steps/s with all workers (episode
bookkeeping, process pool and result transfer included) next to a bare single-process loop of
the same environment with the same uniform random actions, times the number of workers; the
overhead is what the collector loses against that ideal. Scripted-policy recipes are slower
because the policy itself costs time; their rates are listed per recipe. Statistics, per recipe:
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
from bench.datasets.recipes.base import collect_episodes, to_trajectories, worker_pool


def raw_step_rate(recipe, steps: int = 5000) -> float:
    """A bare loop: the environment stepped with uniform random actions, nothing recorded."""
    env = recipe.env.make()
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
    per_recipe, families = [], {}
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
            if recipe.name.endswith("/random"):
                ideal = raw_step_rate(recipe) * args.workers
                families.setdefault(recipe.env.family, []).append(
                    {"env": recipe.env.name, "collect_steps_per_s": round(data.num_steps / seconds),
                     "bare_loop_steps_per_s_x_workers": round(ideal),
                     "overhead": round(1 - data.num_steps / seconds / ideal, 3)})
            print(json.dumps(per_recipe[-1]), flush=True)
    speed = {name: {"mean_overhead": round(float(np.mean([e["overhead"] for e in envs])), 3), "envs": envs}
             for name, envs in families.items()}
    print(json.dumps({"workers": args.workers, "speed": speed, "recipes": per_recipe}, indent=2))


if __name__ == "__main__":
    main()
