"""Measure every recipe environment's reference scores as `bench datasets build` does; prints JSON.

    .venv/bin/python benchmarks/reference_scores.py [--episodes 20]

Uses a throwaway registry, so it changes nothing of yours; docs/datasets.md quotes its output.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

from bench.datasets import Registry
from bench.datasets.recipes import all_recipes
from bench.datasets.recipes.collection import worker_pool
from bench.datasets.recipes.build import REFERENCE_EPISODES, calibrate
from bench.platform.settings import Settings


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=REFERENCE_EPISODES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        registry = Registry.open(Settings.load(home=home, database_url=f"sqlite:///{home / 'bench.db'}",
                                               storage_url=str(home / "datasets")))
        seen = set()
        with worker_pool() as pool:
            for recipe in all_recipes():
                if recipe.env.name not in seen:
                    seen.add(recipe.env.name)
                    calibrate(registry, recipe, args.episodes, pool)
        print(json.dumps([info.to_json() for info in registry.environments.list()], indent=2))
        registry.close()


if __name__ == "__main__":
    main()
