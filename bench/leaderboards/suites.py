"""Leaderboard suites: a name, datasets, a metric, a phase and an aggregation rule, as small TOML files.

Shipped suites live in ``bench/leaderboards/suites/``; users define more on a server (stored in the
``leaderboards`` table, same fields). ``docs/leaderboards.md`` documents the fields.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from bench.datasets.ids import DatasetId
from bench.errors import Conflict, Forbidden, InvalidInput, NotFound
from bench.platform import db
from bench.platform.accounts import Principal, check_name
from bench.platform.db import LeaderboardRow

METRICS = ("normalized_score", "success_rate", "return")
PHASES = ("offline", "online", "both")
POINTS = ("final", "best")
AGGREGATIONS = ("mean", "iqm")


@dataclass(frozen=True)
class LeaderboardSpec:
    name: str
    datasets: tuple[str, ...]
    metric: str = "normalized_score"
    phase: str = "both"  # which phases the table shows; "both" prints "offline -> online"
    point: str = "final"  # the last evaluation ("final") or the best one ("best", optimistic)
    min_seeds: int = 3  # entries with fewer completed seeds are marked, not hidden
    aggregation: tuple[str, ...] = ("mean", "iqm")
    title: str | None = None
    description: str | None = None
    # "runs": scored from evaluation runs; "robot": success rates of real-robot trials (bench robot-evals),
    # where min_seeds is the minimum number of trials per phase.
    kind: str = "runs"
    source: str = "shipped"  # "shipped" or "user"
    owner: str | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "user", owner: str | None = None) -> "LeaderboardSpec":
        if not isinstance(values, dict):
            raise InvalidInput("a leaderboard spec is a JSON/TOML object")
        known = {f for f in cls.__dataclass_fields__} - {"source", "owner"}
        unknown = set(values) - known
        if unknown:
            raise InvalidInput(f"leaderboard spec: unknown fields {sorted(unknown)}; known: {sorted(known)}")
        for required in ("name", "datasets"):
            if required not in values:
                raise InvalidInput(f"leaderboard spec: {required!r} is required")
        name = check_name("leaderboard", values["name"])
        datasets = values["datasets"]
        if not isinstance(datasets, list) or not datasets or not all(isinstance(d, str) for d in datasets):
            raise InvalidInput("leaderboard spec: 'datasets' must be a non-empty list of dataset ids")
        for dataset in datasets:
            DatasetId.parse(dataset)
        if len(set(datasets)) != len(datasets):
            raise InvalidInput("leaderboard spec: 'datasets' lists a dataset twice")
        spec = cls(name=name, datasets=tuple(datasets), source=source, owner=owner,
                   **{k: v for k, v in values.items() if k not in {"name", "datasets", "aggregation"}},
                   aggregation=tuple(values.get("aggregation", ("mean", "iqm"))))
        spec._check()
        return spec

    def _check(self) -> None:
        for value, allowed, label in ((self.metric, METRICS, "metric"), (self.phase, PHASES, "phase"),
                                      (self.point, POINTS, "point")):
            if value not in allowed:
                raise InvalidInput(f"leaderboard spec: {label} {value!r} is not one of {', '.join(allowed)}")
        if not isinstance(self.min_seeds, int) or isinstance(self.min_seeds, bool) or not 1 <= self.min_seeds <= 100:
            raise InvalidInput("leaderboard spec: min_seeds must be an integer from 1 to 100")
        for aggregation in self.aggregation:
            if aggregation not in AGGREGATIONS:
                raise InvalidInput(f"leaderboard spec: aggregation {aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
        if self.kind not in ("runs", "robot"):
            raise InvalidInput(f"leaderboard spec: kind {self.kind!r} is not one of runs, robot")
        if self.kind == "robot" and (self.metric != "success_rate" or self.aggregation):
            raise InvalidInput("leaderboard spec: a robot leaderboard reports success_rate per log, with aggregation = []")
        if self.aggregation and self.metric == "return":
            raise InvalidInput("leaderboard spec: raw returns are not comparable across datasets; aggregate "
                               "normalized_score or success_rate, or set aggregation = []")
        for text, label in ((self.title, "title"), (self.description, "description")):
            if text is not None and (not isinstance(text, str) or len(text) > 2000):
                raise InvalidInput(f"leaderboard spec: {label} must be text of at most 2000 characters")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "datasets": list(self.datasets), "aggregation": list(self.aggregation)}


@functools.lru_cache(maxsize=1)
def _shipped() -> tuple[LeaderboardSpec, ...]:
    suites = []
    for entry in sorted(resources.files("bench.leaderboards").joinpath("suites").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            suites.append(LeaderboardSpec.from_dict(tomllib.loads(entry.read_text()), source="shipped"))
    return tuple(suites)


def shipped_suites() -> dict[str, LeaderboardSpec]:
    """The suites shipped in bench/leaderboards/suites/, by name (read once per process)."""
    return {spec.name: spec for spec in _shipped()}


def load_spec_file(path) -> LeaderboardSpec:
    try:
        values = tomllib.loads(open(path).read())
    except OSError as exc:
        raise InvalidInput(f"{path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML ({exc})") from None
    return LeaderboardSpec.from_dict(values)


class Suites:
    """Shipped suites plus the user-defined ones in the database; names are unique across both."""

    def __init__(self, engine: sa.Engine):
        self.session = db.make_sessionmaker(engine)

    def list(self) -> list[LeaderboardSpec]:
        with self.session() as session:
            rows = session.scalars(sa.select(LeaderboardRow).order_by(LeaderboardRow.name)).all()
            user = [LeaderboardSpec.from_dict(row.spec, source="user", owner=row.owner) for row in rows]
        return list(shipped_suites().values()) + user

    def get(self, name: str) -> LeaderboardSpec:
        shipped = shipped_suites()
        if name in shipped:
            return shipped[name]
        with self.session() as session:
            row = session.scalar(sa.select(LeaderboardRow).where(LeaderboardRow.name == name))
            if row is None:
                raise NotFound(f"no leaderboard {name!r}; see `bench leaderboard list`")
            return LeaderboardSpec.from_dict(row.spec, source="user", owner=row.owner)

    def create(self, values: dict[str, Any], owner: Principal | None) -> LeaderboardSpec:
        spec = LeaderboardSpec.from_dict(values, owner=owner.name if owner else None)
        if spec.name in shipped_suites():
            raise Conflict(f"leaderboard {spec.name!r} is a shipped suite; choose another name")
        stored = {k: v for k, v in spec.to_json().items() if k not in {"source", "owner"}}
        try:
            with self.session.begin() as session:
                session.add(LeaderboardRow(name=spec.name, spec=stored, owner=spec.owner))
        except SqlIntegrityError:
            raise Conflict(f"leaderboard {spec.name!r} already exists") from None
        return spec

    def delete(self, name: str, by: Principal | None) -> None:
        with self.session.begin() as session:
            row = session.scalar(sa.select(LeaderboardRow).where(LeaderboardRow.name == name))
            if row is None:
                if name in shipped_suites():
                    raise Forbidden(f"leaderboard {name!r} is a shipped suite and cannot be deleted")
                raise NotFound(f"no leaderboard {name!r}")
            if by is not None and not (by.is_admin or by.name == row.owner):
                raise Forbidden(f"only the owner of leaderboard {name!r} and admins may delete it")
            session.delete(row)
