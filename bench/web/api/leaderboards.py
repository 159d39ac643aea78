"""Leaderboard routes: list suites, compute one (JSON or Markdown), define and delete user suites."""

from __future__ import annotations

import dataclasses
import threading
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from bench.datasets.ids import DatasetId
from bench.errors import InvalidInput, NotFound
from bench.leaderboards.board import build_leaderboard
from bench.leaderboards.render import to_markdown
from bench.platform.accounts import Principal, require_user
from bench.platform.db import DatasetRow, RobotTrialRow, RunRow
from bench.web.api.datasets import readable
from bench.web.api.services import Services, fast_json, principal, services

router = APIRouter(prefix="/api/v1/leaderboards", tags=["leaderboards"])
ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Principal, Depends(principal)]


def hidden_datasets(svc: Services, caller: Principal, datasets: tuple[str, ...]) -> set[str]:
    """The datasets of a board that the caller may not read (private, outside their namespaces)."""
    private = set()
    with svc.registry.session() as session:
        for namespace, dataset_name in session.execute(
                sa.select(DatasetRow.namespace, DatasetRow.name).where(DatasetRow.private.is_(True))):
            if not svc.accounts.can_read(caller, namespace, True):
                private.add(f"{namespace}/{dataset_name}")
    return {dataset for dataset in datasets if DatasetId.parse(dataset).unversioned in private}


def board(svc: Services, name: str, caller: Principal | None = None) -> dict[str, Any]:
    """The computed leaderboard as the caller may see it, recomputed only when the runs it reads have changed.

    Datasets the caller may not read are left out before anything is computed, aggregates included,
    so a board over someone's private data shows a reader nothing of it. ``caller=None`` is the
    server itself (warming the cache).
    """
    spec = svc.suites.get(name)
    if caller is not None:
        hidden = hidden_datasets(svc, caller, spec.datasets)
        if hidden:
            spec = dataclasses.replace(spec, datasets=tuple(d for d in spec.datasets if d not in hidden))
    with svc.runs.session() as session:
        if spec.kind == "robot":
            fingerprint = tuple(session.execute(sa.select(sa.func.count(), sa.func.max(RobotTrialRow.id))
                                                .where(RobotTrialRow.dataset.in_(spec.datasets))).one())
        elif spec.datasets:
            matches = []
            for dataset in spec.datasets:
                matches += [RunRow.dataset_id == dataset, RunRow.dataset_id.like(f"{dataset}-v%")]
            fingerprint = tuple(session.execute(
                sa.select(sa.func.count(), sa.func.max(RunRow.finished_at), sa.func.max(RunRow.id))
                .where(RunRow.status == "completed", sa.or_(*matches))).one())
        else:
            fingerprint = ()
    key = (name, repr(spec), fingerprint)
    with svc.lock:
        cached = svc.board_cache.get(key)
    if cached is None:
        cached = build_leaderboard(spec, svc.registry.engine)
        with svc.lock:
            if len(svc.board_cache) > 256:
                svc.board_cache.clear()
            svc.board_cache[key] = cached
    return cached


def warm(svc: Services, datasets: set[str] | None = None) -> None:
    """Compute leaderboards ahead of their readers (at start-up, and after runs arrive), in the background:
    a board over thousands of runs takes seconds to compute and no reader should wait for it."""
    def compute() -> None:
        __import__("rliable.library")
        for spec in svc.suites.list():
            if datasets is None or datasets & set(spec.datasets):
                try:
                    board(svc, spec.name)
                except Exception:  # a broken user suite must not stop the others; its readers see the error
                    continue

    threading.Thread(target=compute, daemon=True, name="warm-leaderboards").start()


@router.get("", summary="Leaderboard suites: shipped and user-defined")
def list_leaderboards(svc: ServicesDep, caller: CallerDep) -> list[dict[str, Any]]:
    specs = svc.suites.list()
    hidden = hidden_datasets(svc, caller, tuple({d for spec in specs for d in spec.datasets}))
    return [{**spec.to_json(), "datasets": [d for d in spec.datasets if d not in hidden]} for spec in specs]


@router.get("/{name}", summary="A leaderboard: entries per dataset, aggregates across the suite")
def show(name: str, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    return fast_json(board(svc, name, caller))


@router.get("/{name}/markdown", summary="A leaderboard as a Markdown table", response_class=PlainTextResponse)
def markdown(name: str, svc: ServicesDep, caller: CallerDep) -> PlainTextResponse:
    return PlainTextResponse(to_markdown(board(svc, name, caller)), media_type="text/markdown")


class LeaderboardCreate(BaseModel):
    name: str = Field(max_length=64)
    datasets: list[str] = Field(min_length=1, max_length=200)
    metric: str = "normalized_score"
    phase: str = "both"
    point: str = "final"
    min_seeds: int = Field(default=3, ge=1, le=100)
    aggregation: list[str] = Field(default_factory=lambda: ["mean", "iqm"], max_length=2)
    kind: str = Field(default="runs", description="runs, or robot (success rates of real-robot trials)")
    title: str | None = Field(default=None, max_length=2000)
    description: str | None = Field(default=None, max_length=2000)


@router.post("", status_code=201, summary="Define a leaderboard suite")
def create(body: LeaderboardCreate, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    require_user(caller)
    # A board shows only data its creator can read: a missing dataset and a private one get the same answer.
    for dataset in body.datasets:
        try:
            readable(svc, caller, DatasetId.parse(dataset).unversioned if isinstance(dataset, str) else "")
        except (NotFound, InvalidInput):
            raise NotFound(f"dataset {str(dataset)[:200]} not found; a leaderboard names datasets you can read") from None
    return svc.suites.create(body.model_dump(exclude_none=True), caller).to_json()


@router.delete("/{name}", summary="Delete a user-defined suite (its owner or an admin)")
def delete(name: str, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    require_user(caller)
    svc.suites.delete(name, caller)
    return {"deleted": name}
