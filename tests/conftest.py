"""Fixtures: registries on every backend (SQLite or PostgreSQL x local disk or S3), and small data.

PostgreSQL 15 and the S3 server are real servers started by bench.testing.services, once per
test session (per xdist worker), and only when a test asks for them.
"""

from __future__ import annotations

import os

# Tests run two at a time (pytest -n 2) on two cores: one torch thread each, or OpenMP's spinning
# threads oversubscribe the cores and every update slows down many times. Subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from bench.datasets import Registry
from bench.platform.environments import env_reference
from bench.platform.settings import Settings
from bench.testing import services
from bench.testing.data import gym_random_rollouts

S3_BUCKET = "bench-test"
BACKENDS = ["sqlite-local", "postgres-local", "sqlite-s3", "postgres-s3"]


def pytest_collection_modifyitems(items):
    """Mark tests by the servers they start, so `pytest -m "not postgres and not s3"` is the fast unit suite:
    a test whose parameters name a backend with PostgreSQL or S3 (or that asks for the servers) is marked.
    Tests marked ``gpu`` are skipped where torch sees no CUDA GPU."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        values = [str(value) for value in callspec.params.values()] if callspec else []
        names = set(getattr(item, "fixturenames", ()))
        if "pg_server" in names or any(value.startswith("postgres") for value in values):
            item.add_marker(pytest.mark.postgres)
        if "s3_server" in names or any(value.endswith("-s3") for value in values):
            item.add_marker(pytest.mark.s3)
        if item.get_closest_marker("gpu") is not None and not _cuda_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="session")
def pg_server():
    with services.postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def s3_server():
    with services.moto_s3_server() as endpoint:
        saved = {key: os.environ.get(key) for key in services.s3_env(endpoint)}
        os.environ.update(services.s3_env(endpoint))
        services.create_bucket(endpoint, S3_BUCKET)
        yield endpoint
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def make_settings(request, tmp_path: Path, backend: str) -> Settings:
    database, storage = backend.split("-")
    home = tmp_path / "home"
    overrides = {"home": home}
    if database == "postgres":
        server = request.getfixturevalue("pg_server")
        overrides["database_url"] = services.create_database(server, f"t_{uuid.uuid4().hex[:16]}")
    else:
        overrides["database_url"] = f"sqlite:///{home / 'bench.db'}"
    if storage == "s3":
        endpoint = request.getfixturevalue("s3_server")
        overrides["storage_url"] = f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:12]}"
        overrides["storage_options"] = {"client_kwargs": {"endpoint_url": endpoint}}
    else:
        overrides["storage_url"] = str(home / "datasets")
    return Settings.load(**overrides)


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that make a `bench` subprocess use these settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BENCH_")}
    env.update(BENCH_HOME=str(settings.home), BENCH_DATABASE_URL=settings.database_url,
               BENCH_STORAGE_URL=settings.storage_url)
    endpoint = settings.storage_options.get("client_kwargs", {}).get("endpoint_url")
    if endpoint:
        env.update(services.s3_env(endpoint))
    return env


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def settings(request, tmp_path, backend) -> Settings:
    return make_settings(request, tmp_path, backend)


@pytest.fixture
def local_settings(request, tmp_path) -> Settings:
    return make_settings(request, tmp_path, "sqlite-local")


@pytest.fixture
def registry(settings):
    registry = Registry.open(settings)
    yield registry
    registry.close()


@pytest.fixture
def local_registry(local_settings):
    registry = Registry.open(local_settings)
    yield registry
    registry.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# -- helpers several test modules share --------------------------------------------------------------------
RANDOM, EXPERT = -1200.0, -150.0  # the Pendulum reference scores publish_pendulum registers


def publish_pendulum(registry: Registry, dataset_id: str = "test/pendulum") -> str:
    """Random Pendulum episodes with a catalogue environment that has reference scores."""
    registry.environments.register("test/pendulum", "Pendulum-v1", {}, family="test", description="Pendulum")
    registry.environments.set_reference("test/pendulum", "bench", "random", RANDOM, 1, "test value")
    registry.environments.set_reference("test/pendulum", "bench", "expert", EXPERT, 1, "test value")
    data = gym_random_rollouts("Pendulum-v1", episodes=4, seed=0)
    env = {**env_reference("Pendulum-v1"), "name": "test/pendulum"}
    return registry.publish(data, dataset_id, env=env).id


def interrupted_evaluation(settings: Settings, env, args, ready, timeout: float = 300) -> subprocess.CompletedProcess:
    """`bench evaluate ARGS --json` in a subprocess, sent a real SIGINT as soon as ``ready(store, run_id)`` holds for
    its run. The run's rows are watched in the store directly: a CLI call per poll takes seconds on a loaded
    machine, long enough for a short run to finish before the signal."""
    import signal
    import time

    from bench.evaluation.store import RunStore

    process = subprocess.Popen([sys.executable, "-m", "bench.cli", "evaluate", *map(str, args), "--json"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               # A suite started in the background by a shell without job control (nohup
                               # cmd &) inherits SIGINT ignored, and so would the CLI: give it the default.
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    registry = Registry.open(settings)
    store = RunStore(registry.engine)
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = store.list()
        if runs and runs[0].status == "running" and ready(store, runs[0].id):
            break
        time.sleep(0.05)
    registry.close()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_bench(env, *args, check=True):
    """`bench ARGS` in a subprocess with the given environment; a non-zero exit fails the test (unless check=False)."""
    result = subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], env=env, capture_output=True,
                            text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"bench {' '.join(map(str, args))} exited with {result.returncode}:\n"
                             f"stderr: {result.stderr[-3000:]}\nstdout: {result.stdout[-3000:]}")
    return result


@pytest.fixture
def pendulum_env(request, tmp_path):
    """A local registry (SQLite, local disk) holding test/pendulum-v1, and the environment variables that open it."""
    settings = make_settings(request, tmp_path, "sqlite-local")
    registry = Registry.open(settings)
    publish_pendulum(registry)
    registry.close()
    return settings, settings_env(settings)


@pytest.fixture(scope="module")
def tabletop_registry(tmp_path_factory):
    class Request:  # make_settings only needs getfixturevalue for PostgreSQL / S3
        def getfixturevalue(self, name):
            raise AssertionError(name)

    settings = make_settings(Request(), tmp_path_factory.mktemp("tabletop"), "sqlite-local")
    env = settings_env(settings)
    run_bench(env, "datasets", "build", "tabletop/prior", "--episodes", "12", "--workers", "1")
    return settings, env


PIXEL_TINY = ["--offline-steps", "40", "--online-steps", "60", "--eval-every", "60", "--eval-episodes", "1",
        "--log-every", "20", "--set", "representation_steps=30", "--set", "proposer_steps=20",
        "--set", "hidden_dims=32x32", "--set", "batch_size=32", "--set", "proposals_per_episode=2",
        "--set", "calibration_attempts=4"]
