"""Class 6 of the security review: the rate limit cannot be dodged with made-up tokens.

Only a token that has authenticated gets a window of its own; anonymous requests and requests with
unknown tokens (a fresh random one each time, malformed headers) count against the client address,
which also bounds the database lookups invalid tokens cost.
"""

from __future__ import annotations

import dataclasses
import secrets
import time

import pytest

from tests.api_helpers import make_api
from tests.conftest import make_settings

LIMIT = 20


@pytest.fixture(autouse=True)
def one_window():
    """The limit counts per wall-clock minute: start each test with 20 s or more left in its minute, so that
    its requests fall in one window (a test that straddled two saw its count reset: 401 where 429 was due)."""
    left = 60 - time.time() % 60
    if left < 20:
        time.sleep(left + 0.1)


@pytest.fixture
def api(request, tmp_path):
    settings = dataclasses.replace(make_settings(request, tmp_path, "sqlite-local"), rate_limit_per_minute=LIMIT)
    api = make_api(settings, tmp_path)
    yield api
    api.client.__exit__(None, None, None)
    api.registry.close()


def _statuses(api, headers_of, count: int, path: str = "/api/v1/me") -> list[int]:
    return [api.client.get(path, headers=headers_of(i)).status_code for i in range(count)]


@pytest.mark.parametrize("made_up", [
    lambda i: {"Authorization": f"Bearer {secrets.token_urlsafe(24)}"},
    lambda i: {"Authorization": f"Bearer bench_{i}"},
    lambda i: {"Authorization": f"Basic {secrets.token_hex(8)}"},
    lambda i: {"Authorization": "x" * (i + 1)},
])
def test_a_fresh_invalid_token_per_request_is_limited_by_address(api, made_up):
    statuses = _statuses(api, made_up, 2 * LIMIT)
    assert statuses[:LIMIT] == [401] * LIMIT
    assert statuses[LIMIT:] == [429] * LIMIT
    # The address's window is spent for anonymous callers too.
    assert api.client.get("/api/v1/datasets").status_code == 429


def test_anonymous_requests_are_limited_per_address(api):
    statuses = _statuses(api, lambda i: {}, LIMIT + 5, "/api/v1/datasets")
    assert statuses.count(200) == LIMIT and statuses[LIMIT:] == [429] * 5
    assert api.client.get("/api/v1/datasets").headers.get("retry-after")


def test_a_real_token_gets_its_own_window_once_it_has_authenticated(api):
    owner = api.headers["owner"]
    assert api.client.get("/api/v1/me", headers=owner).status_code == 200  # counted on the address, then known
    spent = _statuses(api, lambda i: {"Authorization": f"Bearer {secrets.token_urlsafe(24)}"}, LIMIT)
    assert spent.count(429) >= 1  # the address is spent
    assert _statuses(api, lambda i: owner, LIMIT) == [200] * LIMIT  # the token's own window
    assert api.client.get("/api/v1/me", headers=owner).status_code == 429


def test_tokens_in_urls_are_refused_and_never_logged(api, caplog):
    import logging

    from bench.web.api.app import RedactTokens

    token = api.headers["owner"]["Authorization"].split()[1]
    for query in ({"token": token}, {"access_token": "x"}, {"q": token}):
        response = api.client.get("/api/v1/datasets", params=query)
        assert response.status_code == 400 and "Authorization header" in response.json()["detail"]
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1", "GET", f"/api/v1/datasets?token={token}", "1.1", 400), None)
    RedactTokens().filter(record)
    assert token not in record.getMessage() and "bench_***" in record.getMessage()
