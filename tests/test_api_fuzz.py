"""Fuzzing: schemathesis generates requests from the OpenAPI schema; no input may produce a 5xx.

Bounded (a few examples per operation, derandomized) so it stays a fast part of the suite; signed
in as an admin, so generated requests get past authentication into the deepest code paths.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from bench.datasets import Registry
from bench.platform.accounts import Accounts
from bench.platform.settings import Settings
from bench.testing.data import random_trajectories
from bench.web.api import create_app


def _seeded_app():
    """The app in a temporary home with an admin and one dataset; built at import so its schema is known."""
    home = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
    # Built at collection, in every xdist worker whether or not it runs these tests: removed at exit.
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    settings = Settings.load(home=home, database_url=f"sqlite:///{home / 'bench.db'}",
                             storage_url=str(home / "datasets"), rate_limit_per_minute=0)
    registry = Registry.open(settings)
    accounts = Accounts(registry.engine)
    accounts.create_user("root", admin=True)
    token, _ = accounts.create_token("root", "fuzz")
    sample = registry.publish(random_trajectories(np.random.default_rng(0), episodes=3), "root/sample")
    registry.close()
    return create_app(settings), token, home, sample.content_sha256


APP, TOKEN, APP_HOME, SAMPLE_CONTENT = _seeded_app()
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def started_app():
    """Run the app's start-up once (services, migrations); schemathesis then calls it over ASGI."""
    with TestClient(APP) as client:
        yield client


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_no_generated_request_causes_a_server_error(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error])


# -- strategies for the classes of the security review that the schema cannot express -------------------
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
ROUTES = ("", "/-/manifest", "/-/stats", "/-/episodes/0", "/-/episodes/0/frames/observation?t=0",
          "/-/files/episodes.parquet", "/-/episodes?start=0&stop=1")
dataset_ids = st.one_of(
    st.from_regex(r"root/sample-v[0-9]{1,60}", fullmatch=True),  # versions past the database's integers
    st.text(st.characters(min_codepoint=0x21, exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="?#"), max_size=400).map(lambda t: f"root/{t}"),
    st.lists(st.sampled_from(["root", "sample", "..", ".", "-v1", "%2e%2e", "a" * 70]), max_size=12).map("/".join),
)


def _no_server_error(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if "json" in response.headers.get("content-type", "") and response.status_code >= 400:
        assert str(APP_HOME) not in response.text


@given(route=st.sampled_from(ROUTES), dataset_id=dataset_ids)
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_dataset_ids_are_never_a_server_error(started_app, route, dataset_id):
    _no_server_error(started_app.get(f"/api/v1/datasets/{dataset_id}{route}", headers=HEADERS))


@given(header=st.one_of(st.from_regex(r"bytes=[0-9]{0,6000}-[0-9]{0,6000}", fullmatch=True),
                        st.text(max_size=200).map(lambda t: "bytes=" + t)))
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_range_headers_are_never_a_server_error(started_app, header):
    try:
        response = started_app.get("/api/v1/datasets/root/sample-v1/-/files/episodes.parquet",
                                   headers={**HEADERS, "Range": header})
    except UnicodeEncodeError:  # not sendable as an HTTP header at all
        return
    _no_server_error(response)


RUN_TIMES = st.one_of(st.text(max_size=100), st.integers(), st.floats(), st.none(), st.lists(st.integers(), max_size=3))


@given(created_at=RUN_TIMES, seed=st.one_of(st.integers(), st.floats(allow_nan=True)), step=st.integers())
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_run_pushes_are_never_a_server_error(started_app, created_at, seed, step):
    run = {"id": "fuzzrun", "sweep_id": "s", "algorithm": "bc", "config": {"x": float("nan")}, "config_hash": "h",
           "seed": seed, "dataset_id": "root/sample-v1", "dataset_content_sha256": SAMPLE_CONTENT,
           "plan": {}, "status": "completed", "results": {}, "created_at": created_at}
    curves = [{"kind": "eval", "phase": "offline", "step": step}]
    response = started_app.post("/api/v1/runs", content=json.dumps({"run": run, "curves": curves}),
                                headers={**HEADERS, "Content-Type": "application/json"})
    _no_server_error(response)
    if response.status_code in (200, 201):
        started_app.delete("/api/v1/runs/fuzzrun", headers=HEADERS)
