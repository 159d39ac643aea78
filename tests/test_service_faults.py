"""Faults and concurrency against a real `bench serve api` process: a client killed mid-upload resumes,
a server killed mid-publish shows the whole version or none, concurrent uploads neither clash nor lose data."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from bench.datasets import Registry
from bench.platform.accounts import Accounts
from bench.platform.db import VersionRow, VersionState
from bench.testing.data import random_trajectories, write_d4rl_file
from bench.testing.services import ApiServer, api_server
from bench.web.client import Client
from conftest import make_settings, settings_env

pytestmark = pytest.mark.slow


def _server_with_alice(request, tmp_path, backend):
    settings = make_settings(request, tmp_path / "server", backend)
    registry = Registry.open(settings)
    accounts = Accounts(registry.engine)
    accounts.create_user("alice")
    token, _ = accounts.create_token("alice", "test")
    return settings, registry, token


def _big_d4rl(path: Path, episodes: int = 250, obs_dim: int = 128) -> Path:
    """~50 MB of incompressible data: big enough to catch an upload or a publish half-way."""
    data = random_trajectories(np.random.default_rng(7), episodes=episodes, obs_dim=obs_dim, min_len=200, max_len=200)
    return write_d4rl_file(path, data)


def test_a_client_killed_mid_upload_resumes_where_it_stopped(request, tmp_path):
    settings, registry, token = _server_with_alice(request, tmp_path, "sqlite-local")
    big = _big_d4rl(tmp_path / "big.hdf5")
    headers = {"Authorization": f"Bearer {token}"}
    with api_server(settings_env(settings)) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env.update(BENCH_HOME=str(tmp_path / "client"), BENCH_SERVER=server.url, BENCH_TOKEN=token)
        command = [sys.executable, "-m", "bench.cli", "datasets", "upload", str(big), "--id", "alice/big"]
        client = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        size, received, deadline = big.stat().st_size, 0, time.monotonic() + 120
        while not 0 < received < size:
            sessions = httpx.get(f"{server.url}/api/v1/uploads", headers=headers).json()
            received = sessions[0]["received"] if sessions else 0
            assert client.poll() is None and time.monotonic() < deadline, "the upload ended before it could be killed"
            time.sleep(0.005)
        client.kill()
        client.wait()
        assert httpx.get(f"{server.url}/api/v1/datasets").json()["total"] == 0  # nothing visible
        stopped_at = httpx.get(f"{server.url}/api/v1/uploads", headers=headers).json()[0]["received"]
        assert 0 < stopped_at < size
        again = subprocess.run(command, env=env, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        sessions = httpx.get(f"{server.url}/api/v1/uploads", headers=headers).json()
        assert len(sessions) == 1 and sessions[0]["state"] == "completed"  # the same session, resumed
        assert sessions[0]["version"] == "alice/big-v1"
    assert registry.verify("alice/big-v1") == []
    registry.close()


@pytest.mark.parametrize("backend", ["sqlite-local", "postgres-s3"])
def test_a_server_killed_mid_publish_shows_the_whole_version_or_none(request, tmp_path, backend):
    settings, registry, token = _server_with_alice(request, tmp_path, backend)
    big = _big_d4rl(tmp_path / "big.hdf5", episodes=150)
    payload = big.read_bytes()
    headers = {"Authorization": f"Bearer {token}"}
    server = ApiServer(settings_env(settings)).start()
    outcomes = []
    try:
        for attempt, delay in enumerate((0.3, 1.0, 2.5)):
            dataset_id = f"alice/crash{attempt}"
            session = httpx.post(f"{server.url}/api/v1/uploads", headers=headers, json={
                "dataset_id": dataset_id, "filename": "big.hdf5", "size": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest()}).json()
            httpx.put(f"{server.url}/api/v1/uploads/{session['id']}", params={"offset": 0}, content=payload,
                      headers=headers, timeout=120).raise_for_status()
            completing = threading.Thread(target=lambda: _ignore_errors(
                lambda: httpx.post(f"{server.url}/api/v1/uploads/{session['id']}/complete", headers=headers, timeout=120)))
            completing.start()
            time.sleep(delay)
            server.kill()
            completing.join()
            server.start()  # start-up runs gc and fails the interrupted upload
            state = httpx.get(f"{server.url}/api/v1/uploads/{session['id']}", headers=headers).json()["state"]
            shown = httpx.get(f"{server.url}/api/v1/datasets/{dataset_id}")
            if shown.status_code == 200:
                assert state == "completed" and registry.verify(f"{dataset_id}-v1") == []
                outcomes.append("whole")
            else:
                assert shown.status_code == 404 and state == "failed"
                assert registry.storage.sizes(dataset_id) == {}  # no files left behind either
                outcomes.append("none")
            with registry.session() as db_session:
                staging = db_session.scalar(sa.select(sa.func.count()).select_from(VersionRow)
                                            .where(VersionRow.state == VersionState.STAGING))
            assert staging == 0
    finally:
        server.stop()
        registry.close()
    assert "none" in outcomes  # the early kill always lands before the publish


def _ignore_errors(call):
    try:
        call()
    except httpx.HTTPError:
        pass


def test_concurrent_uploads_neither_clash_nor_lose_data(request, tmp_path):
    settings, registry, token = _server_with_alice(request, tmp_path, "sqlite-local")
    files = [write_d4rl_file(tmp_path / f"d{i}.hdf5", random_trajectories(np.random.default_rng(i), episodes=5))
             for i in range(8)]
    with api_server(settings_env(settings)) as server:
        def upload(index: int) -> dict:
            client = Client(server.url, token)
            try:
                target = "alice/same" if index < 4 else f"alice/own{index}"
                return client.upload(files[index], target, scratch=tmp_path)
            finally:
                client.close()

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(upload, range(8)))
    same = sorted(r["dataset"]["id"] for r in results[:4])
    assert same == [f"alice/same-v{v}" for v in range(1, 5)]
    assert len({r["dataset"]["content_sha256"] for r in results[:4]}) == 4  # every upload kept, none overwritten
    assert sorted(r["dataset"]["id"] for r in results[4:]) == [f"alice/own{i}-v1" for i in range(4, 8)]
    for result in results:
        assert registry.verify(result["dataset"]["id"]) == []
    registry.close()
