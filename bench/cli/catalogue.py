"""`bench recipes`, `bench envs`, `bench algorithms`: what can be built, evaluated and trained."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.table import Table

from bench.cli.common import open_registry, out, print_json, user_errors


recipes_app = typer.Typer(no_args_is_help=True, help="Recipes that regenerate benchmark datasets deterministically.")
envs_app = typer.Typer(no_args_is_help=True, help="Environments (tasks) and their reference scores.")
algorithms_app = typer.Typer(no_args_is_help=True, help="Learning algorithms and their configs.")


@recipes_app.command("list")
def recipes_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every recipe: its environment, collecting policy and default size."""
    from bench.datasets.recipes import all_recipes

    with user_errors():
        recipes = all_recipes()
        if as_json:
            print_json([recipe.to_json() for recipe in recipes])
            return
        table = Table("recipe", "environment", "episodes", "policy", box=None)
        table.columns[0].no_wrap = True
        table.columns[1].no_wrap = True
        table.columns[3].overflow = "fold"
        for recipe in recipes:
            table.add_row(recipe.name, recipe.env.name, str(recipe.default_episodes), recipe.policy)
        out.print(table)


def _environments(registry):
    """The catalogue, with every recipe's environment registered (published references included)."""
    from bench.datasets.recipes.build import register_recipe_environments

    register_recipe_environments(registry)
    return registry.environments


def _reference_text(info) -> str:
    pair = info.reference_pair()
    return "-" if pair is None else f"{pair[0]:.1f} / {pair[1]:.1f} ({pair[2]})"


@envs_app.command("list")
def envs_list(family: Optional[str] = typer.Option(None, "--family"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Environments with their reference scores (random / expert return used for normalization)."""
    with user_errors():
        infos = _environments(open_registry()).list(family=family)
        if as_json:
            print_json([info.to_json() for info in infos])
            return
        table = Table("environment", "gymnasium id", "random / expert", box=None)
        for info in infos:
            table.add_row(info.name, info.gym_id, _reference_text(info))
        out.print(table)


@envs_app.command("show")
def envs_show(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """One environment: how it is built and every reference score with its source and method."""
    with user_errors():
        info = _environments(open_registry()).get(name)
        if as_json:
            print_json(info.to_json())
            return
        out.print(f"{info.name}: {info.gym_id} {json.dumps(info.kwargs)}", highlight=False)
        out.print(info.description or "", highlight=False)
        table = Table("source", "kind", "return", "episodes", "how", box=None)
        table.columns[-1].overflow = "fold"
        for score in info.references:
            table.add_row(score.source, score.kind, f"{score.value:.3f}", str(score.episodes or "-"), score.method or "-")
        out.print(table)
        out.print(f"normalization: {_reference_text(info)}", highlight=False)


# -- algorithms, evaluation and runs -----------------------------------------------------------------
@algorithms_app.command("list")
def algorithms_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """The registered algorithms, with a one-line description each."""
    from bench.algorithms import list_algorithms

    specs = list_algorithms()
    if as_json:
        print_json([{"name": s.name, "description": s.description, "paper": s.paper,
                      "learns_online": s.algorithm_class.learns_online} for s in specs])
        return
    table = Table("algorithm", "description", "paper", box=None)
    for spec in specs:
        table.add_row(spec.name, spec.description, spec.paper)
    out.print(table)


@algorithms_app.command("show")
def algorithms_show(name: str = typer.Argument(...),
                    dataset: Optional[str] = typer.Option(None, "--dataset",
                                                          help="resolve the config for this dataset's domain"),
                    as_json: bool = typer.Option(False, "--json")) -> None:
    """An algorithm's config fields: default, where the default comes from, and per-domain presets.

    With --dataset: the config `bench evaluate` would use on that dataset, each value with its origin."""
    from bench.algorithms import get_algorithm, make_config
    from bench.algorithms.config import DOMAINS, config_to_json, describe_fields, domain_of, family_of, value_origins

    with user_errors():
        spec = get_algorithm(name)
        if dataset is not None:
            registry = open_registry()
            env_name = (registry.manifest(registry.show(dataset).id).get("env") or {}).get("name")
            domain = domain_of(family_of(env_name))
            values = config_to_json(make_config(name, domain))
            origins = value_origins(spec.config_class, domain, spec.name, spec.defaults)
            if as_json:
                print_json({"name": spec.name, "dataset": dataset, "environment": env_name, "domain": domain,
                            "config": values, "origins": origins})
                return
            out.print(f"{spec.name} on {dataset} (environment {env_name or 'none'}, domain {domain or 'none'}):",
                      highlight=False)
            table = Table("field", "value", "from", box=None)
            table.columns[2].overflow = "fold"
            for key, value in values.items():
                table.add_row(key, json.dumps(value), origins[key])
            out.print(table)
            return
        rows = describe_fields(spec.config_class)
        for row in rows:
            if row["name"] in spec.defaults:
                row["default"], row["source"] = spec.defaults[row["name"]], f"{spec.name} variant"
        presets = {domain: {"values": values, "source": spec.config_class.PRESET_SOURCES.get(domain, "")}
                   for domain, values in spec.config_class.PRESETS.items()}
        if as_json:
            print_json({"name": spec.name, "description": spec.description, "paper": spec.paper,
                         "learns_online": spec.algorithm_class.learns_online, "fields": rows, "presets": presets,
                         "domains": DOMAINS})
            return
        out.print(f"{spec.name}: {spec.description} ({spec.paper})", highlight=False)
        table = Table("field", "type", "default", "source", "per-domain presets", box=None)
        table.columns[3].overflow = "fold"
        for row in rows:
            table.add_row(row["name"], row["type"], json.dumps(row["default"]), row["source"],
                          ", ".join(f"{d}={json.dumps(v)}" for d, v in row["presets"].items()))
        out.print(table)
        for domain, preset in presets.items():
            families = ", ".join(f for f, d in DOMAINS.items() if d == domain)
            out.print(f"preset {domain} ({families}): {json.dumps(preset['values'])} - {preset['source']}",
                      highlight=False)
