"""A lab's workflow against a real `bench serve api` process, through the real `bench` command:
accounts, upload, search, download (whole, by episode range, resumed, corrupted), local evaluation,
results push, leaderboards. Server on SQLite + local disk and on PostgreSQL + S3."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.datasets import Registry
from bench.datasets.format import read_version
from bench.platform.settings import Settings
from bench.testing.data import random_trajectories, write_d4rl_file
from bench.testing.services import api_server
from conftest import make_settings, publish_pendulum, settings_env

pytestmark = pytest.mark.slow


def bench(env, *args, check=True):
    result = subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"bench {' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr}\n{result.stdout}")
    return result


def client_env(tmp_path: Path, server_url: str, token: str) -> dict[str, str]:
    home = tmp_path / "client-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.update(BENCH_HOME=str(home), BENCH_SERVER=server_url, BENCH_TOKEN=token)
    return env


@pytest.mark.parametrize("backend", ["sqlite-local", "postgres-s3"])
def test_lab_shares_data_and_results_through_the_server(request, tmp_path, backend):
    server_env = settings_env(make_settings(request, tmp_path / "server", backend))
    bench(server_env, "users", "create", "alice")
    bench(server_env, "users", "create", "root", "--admin")
    alice_token = bench(server_env, "tokens", "create", "alice", "--name", "laptop").stdout.strip()
    assert alice_token.startswith("bench_")
    with api_server(server_env) as server:
        env = client_env(tmp_path, server.url, alice_token)
        demos = write_d4rl_file(tmp_path / "demos.hdf5", random_trajectories(np.random.default_rng(0), episodes=10))
        uploaded = json.loads(bench(env, "datasets", "upload", demos, "--id", "alice/demos", "--tag", "demos",
                                    "--description", "ten demos", "--json").stdout)
        assert uploaded["dataset"]["id"] == "alice/demos-v1" and uploaded["state"] == "completed"
        listed = json.loads(bench(env, "datasets", "list", "--tag", "demos", "--json").stdout)
        assert [item["id"] for item in listed] == ["alice/demos-v1"]
        assert "ten demos" in bench(env, "datasets", "show", "alice/demos").stdout
        denied = bench(env, "datasets", "upload", demos, "--id", "root/demos", check=False)
        assert denied.returncode == 1 and denied.stderr.strip() == "error: alice may not publish in namespace 'root'"
        anonymous = bench({**env, "BENCH_TOKEN": ""}, "datasets", "upload", demos, "--id", "alice/demos", check=False)
        assert anonymous.returncode == 1 and "sign in" in anonymous.stderr

        # Downloads: an episode range, the whole version, a resumed one, a corrupted one.
        bench(env, "datasets", "download", "alice/demos-v1", "--episodes", "2:5", "--out", tmp_path / "part")
        part, manifest, _ = read_version(tmp_path / "part")
        assert part.num_episodes == 3 and manifest["subset"] == {"of": "alice/demos-v1", "episodes": [2, 5],
                                                                    "content_sha256": uploaded["dataset"]["content_sha256"]}
        bench(env, "datasets", "download", "alice/demos", "--out", tmp_path / "whole")
        _, whole_manifest, _ = read_version(tmp_path / "whole")
        assert whole_manifest["content_sha256"] == uploaded["dataset"]["content_sha256"]
        partial = tmp_path / "again.partial"
        shutil.copytree(tmp_path / "whole", partial)
        parquet = partial / "episodes.parquet"
        parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])  # cut off mid-file
        (partial / "manifest.json").unlink()
        bench(env, "datasets", "download", "alice/demos", "--out", tmp_path / "again")
        assert (tmp_path / "again" / "episodes.parquet").read_bytes() == (tmp_path / "whole" / "episodes.parquet").read_bytes()
        corrupted = tmp_path / "bad.partial"
        shutil.copytree(tmp_path / "whole", corrupted)
        (corrupted / "episodes.parquet").write_bytes(b"x" * (corrupted / "episodes.parquet").stat().st_size)
        failed = bench(env, "datasets", "download", "alice/demos", "--out", tmp_path / "bad", check=False)
        assert failed.returncode == 1 and "sha256 differs" in failed.stderr and not (tmp_path / "bad").exists()
        bench(env, "datasets", "download", "alice/demos", "--out", tmp_path / "bad")  # the bad file was dropped
        exists = bench(env, "datasets", "download", "alice/demos", "--out", tmp_path / "bad", check=False)
        assert exists.returncode == 1 and "already exists" in exists.stderr

        # Evaluate locally, publish the data and the runs, read the leaderboard over HTTP.
        local = Registry.open(Settings.load(home=tmp_path / "client-home"))
        pendulum = publish_pendulum(local, "alice/pendulum")
        version_dir = local.local_dir(pendulum)
        local.close()
        local_env = {**env, "BENCH_SERVER": ""}
        runs = json.loads(bench(local_env, "evaluate", "bc", "alice/pendulum", "--seeds", "2", "--offline-steps", "20",
                                "--online-steps", "0", "--eval-every", "10", "--eval-episodes", "1",
                                "--set", "hidden_dims=32x32", "--set", "batch_size=64", "--json").stdout)["runs"]
        run_ids = [run["run_id"] for run in runs]
        not_there = bench(env, "results", "push", *run_ids, check=False)
        assert not_there.returncode == 1 and "upload that data" in not_there.stderr
        bench(env, "datasets", "upload", version_dir, "--id", "alice/pendulum")
        pushed = bench(env, "results", "push", *run_ids).stdout
        assert pushed.count("as alice") == 2
        remote_runs = json.loads(bench(env, "runs", "list", "--dataset", "alice/pendulum", "--json").stdout)
        assert sorted(run["run_id"] for run in remote_runs) == sorted(run_ids)
        assert "offline" in bench(env, "runs", "show", run_ids[0]).stdout
        created = httpx.post(f"{server.url}/api/v1/leaderboards", headers={"Authorization": f"Bearer {alice_token}"},
                             json={"name": "pendulum", "datasets": ["alice/pendulum"], "phase": "offline"})
        assert created.status_code == 201, created.text
        assert "pendulum" in bench(env, "leaderboard", "list").stdout
        board = json.loads(bench(env, "leaderboard", "show", "pendulum", "--json").stdout)
        entry = board["datasets"][0]["entries"][0]
        assert sorted(entry["runs"]) == sorted(run_ids) and entry["n"] == 2 and entry["marked"]
        markdown = bench(env, "leaderboard", "show", "pendulum", "--markdown").stdout
        assert markdown.startswith("### pendulum") and "| bc |" in markdown and "†" in markdown
        assert "bc" in bench(env, "leaderboard", "show", "pendulum").stdout


def test_registry_open_loads_a_servers_version_like_minari_load_dataset(request, tmp_path, monkeypatch):
    """The Python API honours BENCH_SERVER / BENCH_TOKEN as the CLI does: load() downloads a version the local
    registry lacks, verified, into the cache, and loads it from there the next time (even with the server gone)."""
    server_settings = make_settings(request, tmp_path / "server", "sqlite-local")
    registry = Registry.open(server_settings)
    data = random_trajectories(np.random.default_rng(5), episodes=4)
    registry.publish(data, "alice/remote-demos")
    registry.close()
    with api_server(settings_env(server_settings)) as server:
        monkeypatch.setenv("BENCH_HOME", str(tmp_path / "laptop"))
        monkeypatch.setenv("BENCH_SERVER", server.url)
        for key in ("BENCH_DATABASE_URL", "BENCH_STORAGE_URL"):
            monkeypatch.delenv(key, raising=False)
        laptop = Registry.open()
        loaded = laptop.load("alice/remote-demos")  # the latest version, resolved by the server
        assert loaded.id == "alice/remote-demos-v1" and loaded.num_episodes == 4
        np.testing.assert_array_equal(loaded.actions, data.actions)
        with pytest.raises(Exception, match="not found|no dataset"):
            laptop.load("alice/remote-demos", download=False)
    again = laptop.load("alice/remote-demos-v1")  # from the verified cache: the server is gone
    np.testing.assert_array_equal(again.rewards, data.rewards)
    laptop.close()
