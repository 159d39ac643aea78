"""The README's workflow through the real `bench` command, on SQLite + local disk and PostgreSQL + S3."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bench.platform.db import SCHEMA_REVISION
from bench.testing.data import random_trajectories, write_d4rl_file, write_minari_dir
from conftest import make_settings, settings_env

pytestmark = pytest.mark.slow


def _bench(env, *args, check=True):
    result = subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"bench {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


@pytest.mark.parametrize("backend", ["sqlite-local", "postgres-s3"])
def test_readme_workflow(request, tmp_path, backend):
    settings = make_settings(request, tmp_path, backend)
    env = settings_env(settings)
    rng = np.random.default_rng(0)
    hopper = write_d4rl_file(tmp_path / "hopper_random.hdf5", random_trajectories(rng, episodes=8, obs_dim=11, act_dim=3).validate())
    minari_dir = write_minari_dir(tmp_path / "minari" / "expert-v0", random_trajectories(rng, episodes=3, dict_obs=True).validate())

    assert f"schema {SCHEMA_REVISION}" in _bench(env, "init").stdout
    imported = json.loads(_bench(env, "datasets", "import", hopper, "--id", "d4rl/hopper-random", "--json").stdout)
    assert imported["id"] == "d4rl/hopper-random-v1" and imported["episodes"] == 8
    _bench(env, "datasets", "import", minari_dir, "--id", "minari/hopper-expert")

    listed = json.loads(_bench(env, "datasets", "list", "--json").stdout)
    assert [item["id"] for item in listed] == ["d4rl/hopper-random-v1", "minari/hopper-expert-v1"]
    assert [item["id"] for item in json.loads(_bench(env, "datasets", "list", "--namespace", "d4rl", "--json").stdout)] == [
        "d4rl/hopper-random-v1"]
    shown = json.loads(_bench(env, "datasets", "show", "d4rl/hopper-random", "--json").stdout)
    for field in ("id", "namespace", "name", "version", "state", "episodes", "steps", "observation_space",
                  "action_space", "env", "size_bytes", "manifest_sha256", "created_at"):
        assert field in shown
    assert shown == imported
    # Readable: spaces as gymnasium writes them, the stored dtypes, how episodes end, return and length spread
    readable = _bench(env, "datasets", "show", "d4rl/hopper-random").stdout
    assert "Box(-inf, inf, (11,), float32)" in readable and "observations: float32 (" in readable
    assert "1 terminated, 7 truncated" in readable and "return" in readable and "mean " in readable
    assert "- (episodes carry no success flag)" in readable
    dict_spaces = _bench(env, "datasets", "show", "minari/hopper-expert").stdout
    assert "observation space  Dict" in dict_spaces and "  desired_goal: Box(" in dict_spaces
    assert "all files match" in _bench(env, "datasets", "verify", "d4rl/hopper-random-v1").stdout

    _bench(env, "datasets", "export", "d4rl/hopper-random-v1", "--format", "minari", "--out", tmp_path / "out" / "hopper-random-v1")
    _bench(env, "datasets", "export", "d4rl/hopper-random-v1", "--format", "d4rl", "--out", tmp_path / "out" / "hopper.hdf5")
    again = json.loads(_bench(env, "datasets", "import", tmp_path / "out" / "hopper.hdf5", "--id", "d4rl/hopper-random", "--json").stdout)
    assert again["id"] == "d4rl/hopper-random-v2" and again["content_sha256"] == imported["content_sha256"]
    via_minari = json.loads(_bench(env, "datasets", "import", tmp_path / "out" / "hopper-random-v1", "--id", "m/h", "--json").stdout)
    assert via_minari["content_sha256"] == imported["content_sha256"]

    _bench(env, "datasets", "yank", "d4rl/hopper-random-v2", "--reason", "duplicate")
    assert "hopper-random-v2" not in _bench(env, "datasets", "list").stdout
    yanked = _bench(env, "datasets", "show", "d4rl/hopper-random-v2")
    assert "yanked (duplicate)" in yanked.stdout
    assert "removed 0" in _bench(env, "datasets", "gc").stdout

    human = _bench(env, "datasets", "list").stdout
    assert "d4rl/hopper-random-v1" in human and "minari/hopper-expert-v1" in human


def test_local_download_copies_verified_versions_and_episode_ranges(request, tmp_path):
    from bench.datasets.format import read_version

    env = settings_env(make_settings(request, tmp_path, "sqlite-local"))
    data = write_d4rl_file(tmp_path / "d.hdf5", random_trajectories(np.random.default_rng(1), episodes=6).validate())
    _bench(env, "datasets", "import", data, "--id", "lab/d")
    assert "verified" in _bench(env, "datasets", "download", "lab/d", "--out", tmp_path / "whole").stdout
    _bench(env, "datasets", "download", "lab/d-v1", "--episodes", "2:4", "--out", tmp_path / "part")
    part, manifest, _ = read_version(tmp_path / "part")
    assert part.num_episodes == 2 and manifest["subset"]["episodes"] == [2, 4]
    bad_range = _bench(env, "datasets", "download", "lab/d", "--episodes", "4:2", "--out", tmp_path / "x", check=False)
    assert bad_range.returncode == 1 and "STOP must be greater" in bad_range.stderr
    stored = tmp_path / "home" / "datasets" / "lab" / "d" / "v1" / "episodes.parquet"
    stored.write_bytes(b"0" * stored.stat().st_size)  # damage the stored version
    damaged = _bench(env, "datasets", "download", "lab/d", "--out", tmp_path / "copy", check=False)
    assert damaged.returncode == 1 and "sha256 differs" in damaged.stderr
    assert not (tmp_path / "copy").exists() and not (tmp_path / "copy.partial").exists()
