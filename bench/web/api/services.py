"""What every request handler works with: the registry, accounts, runs, suites, and the caller."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from bench.datasets import Registry
from bench.errors import Unauthorized
from bench.evaluation.store import RunStore
from bench.leaderboards.suites import Suites
from bench.platform.accounts import Accounts, Principal


class ByteBoundedCache:
    """Least recently used values, bounded by their total bytes (a value's size is given when it is stored).

    One value larger than the bound is handed out but not kept, so no request can pin more memory.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes = max_bytes, 0
        self.entries: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any], size_of: Callable[[Any], int]) -> Any:
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key][0]
        value = make()
        size = size_of(value)
        with self.lock:
            if size <= self.max_bytes and key not in self.entries:
                self.entries[key] = (value, size)
                self.bytes += size
                while self.bytes > self.max_bytes:
                    _, (_, dropped) = self.entries.popitem(last=False)
                    self.bytes -= dropped
        return value


class SceneWorker:
    """One thread that owns every environment the API renders episodes in, with the last few kept open.

    A GL context belongs to the thread that made it, and request handlers run on a pool of threads, so
    every build, replay and render goes through this one thread; it also keeps renders from piling up on
    the cores. A scene that could not be built is kept as its error, so asking again costs nothing.
    """

    def __init__(self, keep: int = 4):
        self.keep = keep
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-render")
        self.scenes: OrderedDict[Any, Any] = OrderedDict()

    def run(self, key: Any, build: Callable[[], Any], use: Callable[[Any], Any]) -> Any:
        """``use(scene)`` for the scene under ``key``, built by ``build()`` when not open; in the render thread."""
        return self.executor.submit(self._run, key, build, use).result()

    def _run(self, key: Any, build: Callable[[], Any], use: Callable[[Any], Any]) -> Any:
        if key in self.scenes:
            self.scenes.move_to_end(key)
        else:
            try:
                self.scenes[key] = build()
            except Exception as exc:  # noqa: BLE001 (kept and raised again for each asker)
                self.scenes[key] = exc
            while len(self.scenes) > self.keep:
                _, dropped = self.scenes.popitem(last=False)
                if not isinstance(dropped, Exception):
                    dropped.close()
        scene = self.scenes[key]
        if isinstance(scene, Exception):
            raise scene.with_traceback(None)  # not each asker's frames onto one kept exception
        return use(scene)


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
    # Episodes and decoded camera videos that viewers asked for, bounded by bytes (settings.api_cache_bytes).
    episodes: ByteBoundedCache = field(default_factory=lambda: ByteBoundedCache(0))
    # Simulated episodes put back into their environments to draw frames (bench.datasets.rendering).
    scenes: SceneWorker = field(default_factory=SceneWorker)

    @classmethod
    def open(cls, registry: Registry) -> "Services":
        return cls(registry, Accounts(registry.engine), RunStore(registry.engine), Suites(registry.engine),
                   episodes=ByteBoundedCache(registry.settings.api_cache_bytes))


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
    token = bearer_token(request)
    found = services(request).accounts.authenticate(token)
    if token is not None:  # it authenticated: from now on it is rate-limited on its own window
        known = getattr(request.app.state, "known_tokens", None)
        if known is not None:
            known.remember(token)
    request.state.principal = found
    return found


def scrub_paths(message: str, replacements: dict) -> str:
    """A message with server paths replaced: longest first, each by what the caller knows it as."""
    for path, shown in sorted(((str(k), v) for k, v in replacements.items()), key=lambda kv: -len(kv[0])):
        if path:
            message = message.replace(path + "/", "").replace(path, shown)
    return message
