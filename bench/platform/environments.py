"""Environments: references that rebuild them, and the catalogue of tasks with their reference scores.

A reference is plain JSON kept in a dataset's manifest: ``{"id", "kwargs", "packages"}`` (plus
``"name"`` when the task is in the catalogue), where packages maps the distributions that define
the environment to the versions the data was made with. Reference scores (random and expert
returns) belong to the task, not to a dataset, so they live in the database's catalogue.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io
import sys
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import sqlalchemy as sa

from bench.errors import InvalidInput, NotFound, did_you_mean
from bench.platform.db import EnvironmentRow, ReferenceScoreRow


def _distribution_of(entry_point: Any) -> str | None:
    module = entry_point.split(":")[0] if isinstance(entry_point, str) else getattr(entry_point, "__module__", "")
    top = module.split(".")[0]
    for distribution in importlib.metadata.packages_distributions().get(top, []):
        return distribution
    return None


def import_environment_module(module: str):
    """Import a package that registers environments, without the notices some print on import.

    (gymnasium_robotics prints a notice about Adroit reward changes to stderr on every import.)
    """
    if module in sys.modules:
        return sys.modules[module]
    with contextlib.redirect_stderr(io.StringIO()):
        return importlib.import_module(module)


def import_registering_module(module: str | None) -> None:
    import bench.platform.envs  # noqa: F401  (registers bench's own environment ids)

    if module:
        try:
            import_environment_module(module)
        except ImportError as exc:
            raise InvalidInput(f"environment module {module!r} is not installed ({exc})") from exc


def env_reference(env_id: str, kwargs: dict[str, Any] | None = None, distributions: tuple[str, ...] = (),
                  module: str | None = None) -> dict[str, Any]:
    """Describe a registered gymnasium environment; fails clearly if it is unknown.

    ``module`` is imported first when the environment is registered by importing it (OGBench).
    """
    import_registering_module(module)
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise InvalidInput(f"unknown environment {env_id!r}: {exc}") from exc
    packages = {"gymnasium": importlib.metadata.version("gymnasium")}
    distribution = _distribution_of(spec.entry_point)
    for name in (distribution, *distributions):
        if name:
            packages[name] = importlib.metadata.version(name)
    reference = {"id": env_id, "kwargs": dict(kwargs or {}), "packages": packages}
    if module:
        reference["module"] = module
    return reference


# Options every environment takes, applied by a wrapper rather than by the environment itself:
# eq. 24's actuation bias mu and noise sigma (dissertation ch. 5.5.3), in the action space's units.
ACTUATION_OPTIONS = ("actuation_bias", "actuation_noise")


def make_env(reference: dict[str, Any], **overrides: Any) -> gym.Env:
    """Rebuild the environment a reference names, with ``overrides`` over its keyword arguments.

    ``actuation_bias`` and ``actuation_noise`` wrap it in eq. 24's noise (``envs.actuation.ActuationNoise``)."""
    if not reference or not reference.get("id"):
        raise InvalidInput("this dataset has no environment reference (e.g. real-robot logs); import it with "
                           "--env NAME to tie it to one (`bench envs list`)")
    import_registering_module(reference.get("module"))
    kwargs = {**reference.get("kwargs", {}), **overrides}
    actuation = {key: kwargs.pop(key) for key in ACTUATION_OPTIONS if key in kwargs}
    try:
        env = gym.make(reference["id"], **kwargs)
    except (gym.error.Error, TypeError, ValueError) as exc:
        raise InvalidInput(f"cannot build environment {reference['id']} with {kwargs}: {exc}") from exc
    if any(actuation.values()):
        # Imported when used, as import_registering_module imports bench.platform.envs: the package picks
        # MuJoCo's OpenGL backend on import.
        from bench.platform.envs.actuation import ActuationNoise

        try:
            env = ActuationNoise(env, mu=actuation.get("actuation_bias", 0.0), sigma=actuation.get("actuation_noise", 0.0))
        except (TypeError, ValueError) as exc:
            env.close()
            raise InvalidInput(f"actuation_bias and actuation_noise are numbers (sigma >= 0): {exc}") from exc
    return env


def spaces_of(reference: dict[str, Any]) -> tuple[gym.Space, gym.Space]:
    env = make_env(reference)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


@dataclass(frozen=True)
class ReferenceScore:
    source: str
    kind: str
    value: float
    episodes: int | None
    method: str | None


@dataclass(frozen=True)
class EnvironmentInfo:
    name: str
    gym_id: str
    kwargs: dict[str, Any]
    family: str | None
    description: str | None
    references: tuple[ReferenceScore, ...]

    def reference_pair(self) -> tuple[float, float, str] | None:
        """(random, expert, source) for normalization: bench's own if it has both, else a published pair."""
        by_source: dict[str, dict[str, float]] = {}
        for score in self.references:
            by_source.setdefault(score.source, {})[score.kind] = score.value
        for source in ["bench", *sorted(s for s in by_source if s != "bench")]:
            pair = by_source.get(source, {})
            if "random" in pair and "expert" in pair:
                return pair["random"], pair["expert"], source
        return None

    def to_json(self) -> dict[str, Any]:
        pair = self.reference_pair()
        return {
            "name": self.name, "gym_id": self.gym_id, "kwargs": self.kwargs, "family": self.family,
            "description": self.description,
            "references": [asdict(score) for score in self.references],
            "normalization": None if pair is None else {"random": pair[0], "expert": pair[1], "source": pair[2]},
        }


class EnvironmentCatalogue:
    """Environments (tasks) and their reference scores, kept in the database beside the datasets."""

    def __init__(self, session_factory):
        self.session = session_factory

    def register(self, name: str, gym_id: str, kwargs: dict[str, Any], family: str | None = None,
                 description: str | None = None) -> None:
        for _ in range(3):
            try:
                with self.session.begin() as session:
                    row = session.scalar(sa.select(EnvironmentRow).where(EnvironmentRow.name == name))
                    if row is None:
                        session.add(EnvironmentRow(name=name, gym_id=gym_id, kwargs=kwargs, family=family,
                                                   description=description))
                    else:
                        row.gym_id, row.kwargs, row.family, row.description = gym_id, kwargs, family, description
                return
            except sa.exc.IntegrityError:  # registered concurrently; update on the next pass
                continue

    def set_reference(self, name: str, source: str, kind: str, value: float, episodes: int | None = None,
                      method: str | None = None) -> None:
        if kind not in ("random", "expert"):
            raise InvalidInput(f"reference kind must be 'random' or 'expert', not {kind!r}")
        with self.session.begin() as session:
            env = session.scalar(sa.select(EnvironmentRow).where(EnvironmentRow.name == name))
            if env is None:
                raise NotFound(f"environment {name!r} is not registered")
            row = session.scalar(sa.select(ReferenceScoreRow).where(
                ReferenceScoreRow.environment_id == env.id, ReferenceScoreRow.source == source,
                ReferenceScoreRow.kind == kind))
            if row is None:
                session.add(ReferenceScoreRow(environment_id=env.id, source=source, kind=kind, value=float(value),
                                              episodes=episodes, method=method))
            else:
                row.value, row.episodes, row.method = float(value), episodes, method

    def get(self, name: str) -> EnvironmentInfo:
        with self.session() as session:
            row = session.scalar(sa.select(EnvironmentRow).where(EnvironmentRow.name == name))
            if row is None:
                known = session.scalars(sa.select(EnvironmentRow.name)).all()
                raise NotFound(f"environment {name!r} not found{did_you_mean(name, known)}")
            return _info(row)

    def list(self, family: str | None = None) -> list[EnvironmentInfo]:
        query = sa.select(EnvironmentRow).order_by(EnvironmentRow.name)
        if family:
            query = query.where(EnvironmentRow.family == family)
        with self.session() as session:
            return [_info(row) for row in session.scalars(query).all()]


def _info(row) -> EnvironmentInfo:
    return EnvironmentInfo(
        name=row.name, gym_id=row.gym_id, kwargs=row.kwargs, family=row.family, description=row.description,
        references=tuple(ReferenceScore(r.source, r.kind, r.value, r.episodes, r.method) for r in row.references),
    )
