"""Account routes: who am I, users (admins), tokens, groups and namespaces."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from bench.errors import Forbidden
from bench.platform.accounts import Principal, require_user
from bench.web.api.services import Services, principal, services

router = APIRouter(prefix="/api/v1", tags=["accounts"])
ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Principal, Depends(principal)]


@router.get("/me", summary="The signed-in user, their groups and the namespaces they may publish in")
def me(svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    require_user(caller)
    writable = svc.accounts.writable_namespaces(caller)
    return {**svc.accounts.get_user(caller.name), "namespaces": None if writable is None else sorted(writable)}


class UserCreate(BaseModel):
    name: str = Field(max_length=64)
    admin: bool = False


@router.post("/users", status_code=201, summary="Create a user and their namespace (admins)")
def create_user(body: UserCreate, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    require_user(caller)
    if not caller.is_admin:
        raise Forbidden("only admins create users")
    return svc.accounts.create_user(body.name, body.admin)


@router.get("/users", summary="Every user (admins)")
def list_users(svc: ServicesDep, caller: CallerDep) -> list[dict[str, Any]]:
    require_user(caller)
    if not caller.is_admin:
        raise Forbidden("only admins list users")
    return svc.accounts.list_users()


class TokenCreate(BaseModel):
    name: str = Field(max_length=64)
    user: str | None = Field(default=None, max_length=64, description="admins only: create it for this user")


@router.post("/tokens", status_code=201, summary="Create an API token; the response is the only time it is shown")
def create_token(body: TokenCreate, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    require_user(caller)
    token, info = svc.accounts.create_token(body.user or caller.name, body.name, by=caller)
    return {**info, "token": token}


@router.get("/tokens", summary="Your tokens (never the tokens themselves)")
def list_tokens(svc: ServicesDep, caller: CallerDep) -> list[dict[str, Any]]:
    require_user(caller)
    return svc.accounts.list_tokens(caller.name)


@router.delete("/tokens/{token_id}", summary="Revoke a token")
def revoke_token(token_id: Annotated[int, Path(ge=1, le=2**62)], svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    require_user(caller)
    return svc.accounts.revoke_token(token_id, by=caller)


class GroupCreate(BaseModel):
    name: str = Field(max_length=64)


@router.post("/groups", status_code=201, summary="Create a group and its namespace; you are its first member")
def create_group(body: GroupCreate, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    return svc.accounts.create_group(body.name, caller)


class MemberAdd(BaseModel):
    user: str = Field(max_length=64)


@router.post("/groups/{group}/members", summary="Add a user to a group (its members and admins)")
def add_member(group: Annotated[str, Path(max_length=64)], body: MemberAdd, svc: ServicesDep,
               caller: CallerDep) -> dict[str, Any]:
    return svc.accounts.add_member(group, body.user, caller)


class NamespaceCreate(BaseModel):
    name: str = Field(max_length=64)
    group: str | None = Field(default=None, max_length=64, description="owning group (default: you, admins only)")


@router.post("/namespaces", status_code=201, summary="Create a namespace owned by a group (members) or by you (admins)")
def create_namespace(body: NamespaceCreate, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    return svc.accounts.create_namespace(body.name, caller, body.group)


@router.get("/environments", tags=["environments"], summary="Environments and their reference scores")
def environments(svc: ServicesDep, family: Annotated[str | None, Query(max_length=64)] = None) -> list[dict[str, Any]]:
    return [info.to_json() for info in svc.registry.environments.list(family=family)]


@router.get("/environments/{name:path}", tags=["environments"], summary="One environment with every reference score")
def environment(name: str, svc: ServicesDep) -> dict[str, Any]:
    return svc.registry.environments.get(name).to_json()
