"""Real-robot evaluation routes: record trials with success labels, read success rates offline -> online."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from bench.leaderboards.robot_evals import RobotEvals
from bench.platform.accounts import Principal, require_user
from bench.web.api.datasets import readable
from bench.web.api.services import Services, fast_json, principal, services

router = APIRouter(prefix="/api/v1/robot-evals", tags=["robot evaluations"])
ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Principal, Depends(principal)]


class Trial(BaseModel):
    success: bool | str
    trial: int | None = Field(default=None, ge=1, le=10**6)
    task: str | None = Field(default=None, max_length=300)
    judge: str | None = Field(default=None, max_length=100)
    notes: str | None = Field(default=None, max_length=2000)


class TrialsAdd(BaseModel):
    dataset: str = Field(max_length=400, description="the robot log (namespace/name) the trials belong to")
    policy: str = Field(min_length=1, max_length=100)
    phase: str = Field(pattern="^(offline|online)$")
    task: str | None = Field(default=None, max_length=300)
    judge: str | None = Field(default=None, max_length=100)
    trials: list[Trial] = Field(min_length=1, max_length=10_000)


@router.post("", status_code=201, summary="Record trials of a policy on a robot log's task (its namespace's owners)")
def add(body: TrialsAdd, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    require_user(caller)
    info = readable(svc, caller, body.dataset)
    svc.accounts.require_write(caller, info.namespace)
    count = RobotEvals(svc.registry.engine).add(f"{info.namespace}/{info.name}", body.policy, body.phase,
                                                [t.model_dump() for t in body.trials], body.task, body.judge,
                                                owner=caller.name)
    return {"recorded": count, "dataset": f"{info.namespace}/{info.name}"}


@router.get("", summary="Success rates per task and policy (offline -> online, Wilson intervals) and the trials")
def show(svc: ServicesDep, caller: CallerDep, dataset: Annotated[str, Query(max_length=400)]):
    info = readable(svc, caller, dataset)
    evals = RobotEvals(svc.registry.engine)
    name = f"{info.namespace}/{info.name}"
    return fast_json({"dataset": name, "summary": evals.summary([name]), "trials": evals.trials(name)})
