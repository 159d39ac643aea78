"""bench format v1 on disk: layout, manifest, content hash, chunking, dict and image observations."""

import json

import numpy as np
import pyarrow.parquet as pq
import zarr

from bench.datasets import format as fmt
from bench.testing.data import random_trajectories


def _write(tmp_path, data, name="v"):
    return fmt.write_version(tmp_path / name, data.validate(), {"id": "t/x-v1", "description": None})


def test_layout_and_manifest(tmp_path, rng):
    data = random_trajectories(rng, episodes=4)
    manifest = _write(tmp_path, data)
    root = tmp_path / "v"
    assert (root / "manifest.json").is_file() and (root / "episodes.parquet").is_file()
    assert json.loads((root / "manifest.json").read_text()) == manifest
    assert manifest["format"] == "bench" and manifest["format_version"] == 1
    assert manifest["counts"] == {"episodes": 4, "steps": data.num_steps, "observations": data.num_steps + 4}
    group = zarr.open_group(root / "steps.zarr", mode="r")
    assert group.metadata.zarr_format == 3
    assert group["observations"].shape == (data.num_steps + 4, 4)
    assert group["actions"].shape == (data.num_steps, 2)
    for name, entry in manifest["files"].items():
        assert fmt.file_sha256(root / name) == entry["sha256"]
        assert (root / name).stat().st_size == entry["size"]
    table = pq.read_table(root / "episodes.parquet")
    assert table.column("length").to_pylist() == data.lengths.tolist()
    assert table.column("obs_start").to_pylist() == data.obs_starts.tolist()
    assert table.column("terminated").to_pylist() == [True, False, False, False]
    np.testing.assert_allclose(table.column("return").to_numpy(), data.episode_returns())


def test_read_back_is_identical(tmp_path, rng):
    data = random_trajectories(rng, episodes=6, dict_obs=True)
    data.infos = {"qpos": rng.normal(size=(data.num_steps + 6, 3)), "log_prob": rng.normal(size=data.num_steps)}
    manifest = _write(tmp_path, data)
    loaded, _, _ = fmt.read_version(tmp_path / "v")
    assert fmt.content_sha256(loaded) == fmt.content_sha256(data) == manifest["content_sha256"]
    for key in data.observations:
        np.testing.assert_array_equal(loaded.observations[key], data.observations[key])
    assert manifest["arrays"]["infos/qpos"]["rows"] == "observations"
    assert manifest["arrays"]["infos/log_prob"]["rows"] == "steps"
    assert loaded.observation_space == data.observation_space


def test_dict_observations_are_one_array_per_key(tmp_path, rng):
    data = random_trajectories(rng, episodes=3, dict_obs=True)
    manifest = _write(tmp_path, data)
    assert {"observations/observation", "observations/achieved_goal", "observations/desired_goal"} <= set(manifest["arrays"])
    group = zarr.open_group(tmp_path / "v" / "steps.zarr", mode="r")
    assert group["observations/desired_goal"].shape == (data.num_steps + 3, 2)


def test_images_are_uint8_chunked_by_frames(tmp_path, rng):
    data = random_trajectories(rng, episodes=20, min_len=5, max_len=8, image_shape=(16, 16, 3))
    _write(tmp_path, data)
    pixels = zarr.open_group(tmp_path / "v" / "steps.zarr", mode="r")["observations/pixels"]
    assert pixels.dtype == np.uint8 and pixels.chunks == (64, 16, 16, 3)
    vectors = zarr.open_group(tmp_path / "v" / "steps.zarr", mode="r")["observations/state"]
    assert vectors.chunks[0] == vectors.shape[0]  # small arrays are one chunk


def test_content_hash_ignores_compression_and_chunking(tmp_path, rng, monkeypatch):
    data = random_trajectories(rng, episodes=5)
    first = _write(tmp_path, data, "a")
    monkeypatch.setattr(fmt, "_VECTOR_CHUNK_BYTES", 64)
    monkeypatch.setattr(fmt, "_VECTOR_CODEC", ("zstd", {"level": 9}))
    second = _write(tmp_path, data, "b")
    assert first["files"] != second["files"]  # different bytes on disk ...
    assert first["content_sha256"] == second["content_sha256"]  # ... same content


def test_content_hash_sees_every_change(rng):
    base = random_trajectories(rng, episodes=3).validate()
    reference = fmt.content_sha256(base)
    changed_reward = random_trajectories(np.random.default_rng(0), episodes=3).validate()
    changed_reward.rewards = changed_reward.rewards.copy()
    changed_reward.rewards[0] += 1
    assert fmt.content_sha256(changed_reward) != reference
    # Same arrays, different episode boundaries.
    moved = random_trajectories(np.random.default_rng(0), episodes=3).validate()
    moved.lengths = moved.lengths.copy()
    moved.lengths[0] += 1
    moved.lengths[1] -= 1
    assert fmt.content_sha256(moved) != reference
    # Same values, different dtype.
    retyped = random_trajectories(np.random.default_rng(0), episodes=3).validate()
    retyped.rewards = retyped.rewards.astype(np.float64)
    assert fmt.content_sha256(retyped) != reference
