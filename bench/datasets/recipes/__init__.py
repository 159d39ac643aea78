"""Dataset recipes that regenerate benchmark datasets deterministically (``bench recipes list``)."""

from __future__ import annotations

from functools import lru_cache

from bench.datasets.recipes.base import EnvironmentSpec, Recipe
from bench.errors import NotFound, did_you_mean


@lru_cache(maxsize=1)
def _catalogue() -> dict[str, Recipe]:
    # Imported when first needed (start-up time): the recipe modules load MuJoCo, Meta-World and OGBench.
    from bench.datasets.recipes import fetch, insertion, locomotion, metaworld, ogbench, pointmaze, tabletop

    recipes = [*metaworld.recipes(), *ogbench.recipes(), *pointmaze.recipes(), *fetch.recipes(),
               *locomotion.recipes(), *tabletop.recipes(), *insertion.recipes()]
    return {recipe.name: recipe for recipe in recipes}


def all_recipes() -> list[Recipe]:
    return list(_catalogue().values())


def get_recipe(name: str) -> Recipe:
    name = name.split("-v")[0] if name.rsplit("-v", 1)[-1].isdigit() else name
    try:
        return _catalogue()[name]
    except KeyError:
        raise NotFound(f"no recipe named {name!r}{did_you_mean(name, _catalogue())}; `bench recipes list` shows them") from None


def all_environments() -> list[EnvironmentSpec]:
    seen: dict[str, EnvironmentSpec] = {}
    for recipe in all_recipes():
        seen.setdefault(recipe.env.name, recipe.env)
    return list(seen.values())


def get_environment(name: str) -> EnvironmentSpec:
    for env in all_environments():
        if env.name == name:
            return env
    raise NotFound(f"no environment named {name!r}{did_you_mean(name, (env.name for env in all_environments()))}; "
                   "`bench envs list` shows them")


__all__ = ["EnvironmentSpec", "Recipe", "all_environments", "all_recipes", "get_environment", "get_recipe"]
