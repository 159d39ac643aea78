"""The FastAPI application: routers, error mapping, rate limiting, and start-up housekeeping.

``create_app()`` reads the settings (env vars / bench.toml) like every other entry point; tests
pass their own. Start-up migrates the database, registers the recipes' environments, removes
what crashed publishes left behind (``gc``), and fails uploads whose completion died with the server.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import bench
from bench.datasets import Registry
from bench.datasets.recipes.build import register_recipe_environments
from bench.errors import (BenchError, Conflict, Forbidden, IntegrityError, InvalidInput, NotFound, PayloadTooLarge,
                          RateLimited, Unauthorized)
from bench.platform import db
from bench.platform.settings import Settings
from bench.web.api import accounts, datasets, episodes, leaderboards, robot, runs, uploads
from bench.web.api.services import Services, scrub_paths
from bench.web.api.streaming import RangeNotSatisfiable

# Most specific first: the first class an error is an instance of decides its status.
STATUS = [
    (RangeNotSatisfiable, 416),
    (uploads.UnprocessableUpload, 422),
    (InvalidInput, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (RateLimited, 429),
    (IntegrityError, 500),  # stored data disagrees with its manifest: the server's problem, said plainly
    (BenchError, 400),
]


def status_of(exc: BenchError) -> int:
    return next(status for kind, status in STATUS if isinstance(exc, kind))


def error_response(status: int, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


_TOKEN_TEXT = re.compile(r"bench_[A-Za-z0-9_\-]{16,}")
_CREDENTIAL_PARAMETERS = {b"token", b"access_token", b"api_key", b"apikey", b"key"}


class RedactTokens(logging.Filter):
    """Masks anything shaped like a bench token in log lines (the access log records query strings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_TEXT.sub("bench_***", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _TOKEN_TEXT.sub("bench_***", record.msg)
        return True


_REDACT_TOKENS = RedactTokens()


class NoTokensInUrls:
    """ASGI middleware: a credential in a query string is refused (400), so nobody gets used to putting one
    where logs, proxies and browser histories keep it. Tokens go in the Authorization header."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            query = scope.get("query_string") or b""
            names = {part.split(b"=", 1)[0].lower() for part in query.split(b"&") if part}
            if names & _CREDENTIAL_PARAMETERS or _TOKEN_TEXT.search(query.decode("latin-1")):
                response = JSONResponse({"detail": "send API tokens in the Authorization header "
                                                   "('Bearer <token>'), never in a URL"}, status_code=400)
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)


class KnownTokens:
    """Hashes of bearer tokens that authenticated recently: only these get a rate-limit window of their own.

    Any other request (anonymous, or with a token nobody has seen succeed) counts against its client
    address, so a fresh random token per request buys no new window, and the database lookups that
    invalid tokens cost are bounded by the address's limit.
    """

    TTL_SECONDS = 600
    MAX_ENTRIES = 100_000

    def __init__(self) -> None:
        self.expires: dict[str, float] = {}
        self.lock = threading.Lock()

    @staticmethod
    def digest(credential: bytes | str) -> str:
        return hashlib.sha256(credential if isinstance(credential, bytes) else credential.encode()).hexdigest()

    def remember(self, credential: str) -> None:
        now = time.time()
        with self.lock:
            if len(self.expires) >= self.MAX_ENTRIES:
                self.expires = {k: v for k, v in self.expires.items() if v > now}
            if len(self.expires) < self.MAX_ENTRIES:
                self.expires[self.digest(credential)] = now + self.TTL_SECONDS

    def known(self, credential: bytes) -> str | None:
        key = self.digest(credential)
        with self.lock:
            return key if self.expires.get(key, 0) > time.time() else None


class RateLimit:
    """ASGI middleware: at most N requests per minute per known token, else per client address.

    Behind a reverse proxy the client address is the proxy's unless uvicorn trusts its
    X-Forwarded-For (``bench serve api --forwarded-allow-ips``); docs/deploy.md, "Security".
    """

    def __init__(self, app, per_minute: int, tokens: KnownTokens):
        self.app, self.per_minute, self.tokens = app, per_minute, tokens
        self.windows: dict[str, tuple[int, int]] = {}
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.per_minute:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        credential = headers.get(b"authorization", b"").partition(b" ")[2].strip()
        token = self.tokens.known(credential) if credential else None
        key = f"token:{token}" if token else f"address:{(scope.get('client') or ('?',))[0]}"
        window = int(time.time() // 60)
        with self.lock:
            start, count = self.windows.get(key, (window, 0))
            if start != window:
                start, count = window, 0
            count += 1
            self.windows[key] = (start, count)
            if len(self.windows) > 100_000:  # forget old windows rather than grow without bound
                self.windows = {k: v for k, v in self.windows.items() if v[0] == window}
        if count > self.per_minute:
            retry = str(60 - int(time.time()) % 60)
            response = JSONResponse({"detail": f"rate limit: at most {self.per_minute} requests per minute; "
                                               f"retry in {retry} s"}, status_code=429, headers={"Retry-After": retry})
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        registry = Registry.open(settings)  # migrates pending schema changes first
        register_recipe_environments(registry)
        registry.gc()
        app.state.services = Services.open(registry)
        uploads.housekeeping(app.state.services)
        # Leaderboards are computed before anyone asks (this also imports rliable, ~2 s, off the request path).
        leaderboards.warm(app.state.services)
        yield
        registry.close()

    app = FastAPI(title="bench", version=bench.__version__, lifespan=lifespan,
                  description="Versioned robot-learning datasets, evaluation runs and leaderboards. "
                              "Send an API token as `Authorization: Bearer <token>` to publish.",
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None)

    # Error details never show where this server keeps its files.
    hidden = {settings.home: "<server>", settings.home.resolve(): "<server>"}
    if "://" not in settings.storage_url:
        hidden[settings.storage_url] = "<storage>"

    @app.exception_handler(BenchError)
    async def bench_error(request: Request, exc: BenchError) -> JSONResponse:
        return error_response(status_of(exc), scrub_paths(str(exc), hidden))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input: logged with its traceback by the server, answered without internals.
        logging.getLogger("bench.api").exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error; the server's log has the details")

    @app.get("/api/v1/health", tags=["service"], summary="Liveness and the database's schema revision")
    def health() -> dict[str, Any]:
        registry = app.state.services.registry
        return {"status": "ok", "version": bench.__version__, "schema": db.current_revision(registry.engine),
                "storage": "local" if registry.storage.is_local else "remote",
                "upload_max_bytes": registry.settings.upload_max_bytes}  # what clients tell users before they send

    # episodes before datasets: its routes are more specific than the dataset catch-all.
    for module in (accounts, episodes, datasets, uploads, runs, leaderboards, robot):
        app.include_router(module.router)
    app.state.known_tokens = KnownTokens()
    app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute, tokens=app.state.known_tokens)
    app.add_middleware(NoTokensInUrls)
    logging.getLogger("uvicorn.access").addFilter(_REDACT_TOKENS)  # one instance: added once however many apps
    return app
