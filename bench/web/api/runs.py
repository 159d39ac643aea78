"""Run routes: publish finished runs (``bench results push``), list, show, curves, delete.

Runs and results are public: a run may only be pushed for a public dataset the server holds with
the same content hash, so every leaderboard number points at data anyone can download.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from bench.datasets.ids import DatasetId
from bench.errors import Conflict, Forbidden, InvalidInput, NotFound
from bench.platform.accounts import Principal, require_user
from bench.platform.db import RunState
from bench.web.api.leaderboards import warm
from bench.web.api.services import Services, fast_json, principal, services

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Principal, Depends(principal)]

REQUIRED = ("id", "sweep_id", "algorithm", "config", "config_hash", "seed", "dataset_id", "dataset_content_sha256",
            "plan", "status")
PUSHABLE = (RunState.COMPLETED, RunState.FAILED)
# Pixel runs (RIG, CC-RIG, VAL) log their representation's and affordance model's training too.
CURVE_PHASES = ("offline", "online", "representation", "affordances", "subgoals")


class RunPush(BaseModel):
    run: dict[str, Any] = Field(description="the run as `bench runs show --json` prints it (without curves)")
    curves: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)


def _finite(value: Any, depth: int = 0) -> bool:
    """Whether a JSON value holds only finite numbers (Python's parser accepts NaN and Infinity; JSON has neither)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if depth > 32:
        return False
    if isinstance(value, dict):
        return all(_finite(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v, depth + 1) for v in value)
    return True


def _check(run: dict[str, Any], curves: list[dict[str, Any]]) -> None:
    if not _finite(run) or not _finite(curves):
        raise InvalidInput("the run holds NaN or infinity (or nests deeper than 32 levels); send null for "
                           "a missing number")
    missing = [key for key in REQUIRED if key not in run]
    if missing:
        raise InvalidInput(f"the run lacks {', '.join(missing)}")
    if not isinstance(run["id"], str) or not run["id"].isalnum() or len(run["id"]) > 32:
        raise InvalidInput("run id must be up to 32 letters and digits")
    if run["status"] not in PUSHABLE:
        raise InvalidInput(f"only finished runs are published (status {' or '.join(PUSHABLE)}), not {run['status']!r}")
    if not isinstance(run["seed"], int) or not isinstance(run["config"], dict) or not isinstance(run["plan"], dict):
        raise InvalidInput("run seed must be an integer, config and plan objects")
    for key in ("sweep_id", "algorithm", "config_hash", "dataset_id", "dataset_content_sha256"):
        if not isinstance(run[key], str) or not run[key] or len(run[key]) > 400:
            raise InvalidInput(f"run {key} must be non-empty text")
    if run.get("results") is not None and not isinstance(run["results"], dict):
        raise InvalidInput("run results must be an object")
    for point in curves:
        if not (isinstance(point, dict) and point.get("kind") in ("eval", "train")
                and point.get("phase") in CURVE_PHASES and isinstance(point.get("step"), int)):
            raise InvalidInput("each curve point needs kind (eval/train), phase (offline/online, or for pixel runs "
                               "representation/affordances) and an integer step")


@router.post("", status_code=201, summary="Publish a finished run with its curves")
def push(body: RunPush, svc: ServicesDep, caller: CallerDep):
    require_user(caller)
    run = body.run
    _check(run, body.curves)
    dataset = _same_data(svc, run["dataset_id"], run["dataset_content_sha256"])
    if dataset.id != run["dataset_id"]:
        # The same data under another version number (the client's registry counts its own versions):
        # record the server's version, and where the run came from.
        run = {**run, "dataset_id": dataset.id, "plan": {**run["plan"], "client_dataset_id": run["dataset_id"]}}
    try:
        existing = svc.runs.get(run["id"])
    except NotFound:
        existing = None
    if existing is not None:
        if existing.owner == caller.name and existing.config_hash == run["config_hash"] and existing.results == run.get("results"):
            return JSONResponse(existing.to_json(), status_code=200)  # the same push again: nothing to do
        raise Conflict(f"run {run['id']} already exists on this server")
    stored = svc.runs.import_run(run, body.curves, owner=caller.name)
    warm(svc, {dataset.id.rsplit("-v", 1)[0]})  # the boards this run changes, recomputed before they are read
    return stored.to_json()


def _same_data(svc: Services, dataset_id: str, content_sha256: str):
    """The server's public version of the run's dataset with the same content (any version number).

    A missing dataset, a private one and a wrong hash get one and the same answer, so a push cannot
    tell whether a private dataset exists or which content it has.
    """
    target = DatasetId.parse(dataset_id)
    refusal = Conflict(f"this server has no public version of {target.unversioned} with content sha256 "
                       f"{content_sha256[:12]}...; results are public, so upload that data (public) first")
    try:
        versions = svc.registry.versions(target.unversioned)
    except NotFound:
        raise refusal from None
    matching = [v for v in versions if v.content_sha256 == content_sha256 and not v.private]
    if not matching:
        raise refusal
    exact = [v for v in matching if v.id == str(target)]
    return (exact or matching)[-1]


@router.get("", summary="Runs, newest first, one page at a time")
def list_runs(svc: ServicesDep,
              algorithm: Annotated[str | None, Query(max_length=64)] = None,
              dataset: Annotated[str | None, Query(max_length=400)] = None,
              status: Annotated[str | None, Query(max_length=16)] = None,
              owner: Annotated[str | None, Query(max_length=64)] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> dict[str, Any]:
    total, runs = svc.runs.page(algorithm, dataset, status, owner, limit, offset)
    return fast_json({"total": total, "limit": limit, "offset": offset, "items": [_public(run.to_json()) for run in runs]})


def _public(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k != "checkpoint"}  # a path in the server's storage


@router.get("/{run_id}", summary="One run: config, provenance, results")
def show(run_id: str, svc: ServicesDep) -> dict[str, Any]:
    return _public(svc.runs.get(run_id).to_json())


@router.get("/{run_id}/curves", summary="A run's evaluation and training curves")
def curves(run_id: str, svc: ServicesDep,
           kind: Annotated[str | None, Query(pattern="^(eval|train)$")] = None) -> list[dict[str, Any]]:
    return svc.runs.curves(run_id, kind)


@router.get("/{run_id}/artifacts/{name}", summary="An image a run saved (pixel runs: reconstructions, imagined goals)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def artifact(run_id: str, name: str, svc: ServicesDep) -> Response:
    run = svc.runs.get(run_id)
    paths = [path for path in (run.results or {}).get("artifacts") or [] if path.rsplit("/", 1)[-1] == name]
    if not paths or not svc.registry.storage.exists(paths[0]):
        # Runs pushed from elsewhere bring their numbers, not their files.
        raise NotFound(f"run {run_id} has no artifact {name!r} on this server")
    return Response(svc.registry.storage.read_bytes(paths[0]), media_type="image/png",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.delete("/{run_id}", summary="Withdraw a published run (its owner or an admin)")
def delete(run_id: str, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    require_user(caller)
    run = svc.runs.get(run_id)
    if not (caller.is_admin or (run.owner is not None and run.owner == caller.name)):
        raise Forbidden(f"only the owner of run {run_id} and admins may delete it")
    svc.runs.delete(run_id)
    return {"deleted": run_id}
