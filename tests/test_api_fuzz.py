"""Fuzzing: schemathesis generates requests from the OpenAPI schema; no input may produce a 5xx.

Bounded (a few examples per operation, derandomized) so it stays a fast part of the suite; signed
in as an admin, so generated requests get past authentication into the deepest code paths.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
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
    registry.publish(random_trajectories(np.random.default_rng(0), episodes=3), "root/sample")
    registry.close()
    return create_app(settings), token


APP, TOKEN = _seeded_app()
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
