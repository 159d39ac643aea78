"""What every request handler works with: the registry, accounts, runs, suites, and the caller."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from bench.datasets import Registry
from bench.errors import Unauthorized
from bench.leaderboards.suites import Suites
from bench.platform.accounts import Accounts, Principal
from bench.platform.runs import RunStore


@dataclass
class Services:
    registry: Registry
    accounts: Accounts
    runs: RunStore
    suites: Suites
    # Computed leaderboards by (name, fingerprint of the runs they read): bootstraps take ~1 s.
    board_cache: dict[tuple[str, Any], dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)

    @classmethod
    def open(cls, registry: Registry) -> "Services":
        return cls(registry, Accounts(registry.engine), RunStore(registry.engine), Suites(registry.engine))


def fast_json(payload: Any) -> JSONResponse:
    """Send plain JSON data as it is: FastAPI's generic encoder walks every value in Python and costs
    as much as the query behind a page of results; these payloads are JSON types already."""
    return JSONResponse(payload)


def services(request: Request) -> Services:
    return request.app.state.services


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def principal(request: Request) -> Principal:
    """The caller, authenticated once per request (the rate limiter may already have done it)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    found = services(request).accounts.authenticate(bearer_token(request))
    request.state.principal = found
    return found


def scrub_paths(message: str, replacements: dict) -> str:
    """A message with server paths replaced: longest first, each by what the caller knows it as."""
    for path, shown in sorted(((str(k), v) for k, v in replacements.items()), key=lambda kv: -len(kv[0])):
        if path:
            message = message.replace(path + "/", "").replace(path, shown)
    return message
