"""Tie data to the environment catalogue: a catalogue name or a gymnasium id, each resolved to the other.

A version's environment reference (platform/environments.py) carries ``"name"`` when the task is a
catalogue entry; runs read that name for the reference scores that normalize returns and for the
family whose algorithm settings apply. An import may name the environment either way
(``--env mujoco/hopper`` or ``--env Hopper-v5``), or the source may name it (a Minari env_spec): all
of them end at the same reference, and the catalogue entry is put into the database with its
published reference scores, so evaluation finds them whether or not a recipe was ever built here.
"""

from __future__ import annotations

from typing import Any

from bench.datasets.recipes import all_environments, get_environment
from bench.datasets.recipes.base import EnvironmentSpec
from bench.errors import InvalidInput, NotFound, did_you_mean
from bench.platform.environments import EnvironmentCatalogue, env_reference


def catalogue_entry_for(gym_id: str, kwargs: dict[str, Any] | None) -> EnvironmentSpec | None:
    """The catalogue entry built from exactly this gymnasium id and these kwargs, if there is one."""
    for spec in all_environments():
        if spec.gym_id == gym_id and spec.kwargs == dict(kwargs or {}):
            return spec
    return None


def resolve_environment(env_id: str, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The environment reference for ``--env``: a catalogue name or a gymnasium id (with kwargs)."""
    by_name = {spec.name: spec for spec in all_environments()}
    if env_id in by_name:
        spec = by_name[env_id]
        if kwargs and {**spec.kwargs, **kwargs} != spec.kwargs:
            raise InvalidInput(f"{env_id} is a catalogue entry with fixed kwargs {spec.kwargs}; pass its gymnasium "
                               f"id {spec.gym_id!r} with --env-kwargs to evaluate on a variant")
        return spec.reference()
    spec = catalogue_entry_for(env_id, kwargs)
    if spec is not None:
        return spec.reference()
    try:
        return env_reference(env_id, kwargs)
    except InvalidInput:
        hint = did_you_mean(env_id, [*by_name, *(spec.gym_id for spec in by_name.values())])
        raise InvalidInput(f"unknown environment {env_id!r}{hint}: --env takes a catalogue name "
                           "(`bench envs list`) or a registered gymnasium id") from None


def tie_to_catalogue(env: dict[str, Any] | None) -> dict[str, Any] | None:
    """A source's own environment (a Minari env_spec, an OGBench file name) as the catalogue's reference where
    one matches (its name, packages and registering module), saying where it came from; else as it was."""
    if not env or env.get("name") or not isinstance(env.get("id"), str):
        return env
    spec = catalogue_entry_for(env["id"], env.get("kwargs"))
    if spec is None:
        return env
    try:
        return {**spec.reference(), "source": env.get("source")}
    except InvalidInput:  # its package is not installed here: keep the source's words, with the name
        return {**env, "name": spec.name}


def register_catalogue_entry(catalogue: EnvironmentCatalogue, spec: EnvironmentSpec) -> None:
    """The entry and its published reference scores in the database (idempotent)."""
    catalogue.register(spec.name, spec.gym_id, spec.kwargs, spec.family, spec.description)
    for source, values in spec.published_references.items():
        for kind in ("random", "expert"):
            if kind in values:
                catalogue.set_reference(spec.name, source, kind, values[kind], None, values.get("note"))


def register_named_environment(catalogue: EnvironmentCatalogue, env: dict[str, Any] | None) -> None:
    """Register the catalogue entry a version's environment names, so that runs find its reference scores."""
    name = (env or {}).get("name")
    if not name:
        return
    try:
        spec = get_environment(name)
    except NotFound:  # a name from another bench's catalogue: nothing to register here
        return
    register_catalogue_entry(catalogue, spec)


def environment_label(env: dict[str, Any] | None) -> str:
    """How every page names a version's environment: ``mujoco/hopper (Hopper-v5)``, a bare gymnasium id, or none."""
    if not env or not env.get("id"):
        return "none"
    return f"{env['name']} ({env['id']})" if env.get("name") else env["id"]
