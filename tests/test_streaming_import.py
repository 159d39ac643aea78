"""Imports larger than memory: versions written a part at a time equal versions written whole.

format.VersionWriter takes whole episodes in parts; the D4RL importer reads a file larger than the
import memory budget (ImportLimits.part_bytes) as such parts. Streamed and whole imports must give
the same content_sha256 and episodes, a bad part must leave nothing, and an import's peak memory must
follow the budget rather than the file (measured in a subprocess).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from bench.datasets import Registry, format as fmt
from bench.datasets.trajectories import EpisodeParts
from bench.errors import BenchError, InvalidInput
from bench.platform.settings import Settings
from bench.testing import hostile
from bench.testing.data import random_trajectories, write_d4rl_file


def parts_of(data, cuts):
    bounds = [0, *cuts, data.num_episodes]
    parts = [data.select_episodes(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    for part in parts:
        part.observation_space, part.action_space = data.observation_space, data.action_space
    return parts


@pytest.mark.parametrize("kind", ["flat", "dict+images"])
def test_parts_write_the_same_content_as_the_whole(tmp_path, rng, kind):
    data = random_trajectories(rng, episodes=7, dict_obs=kind != "flat",
                               image_shape=(6, 6, 3) if kind != "flat" else None)
    steps, obs_rows = data.num_steps, data.num_steps + data.num_episodes
    data.infos = {"per_step": rng.normal(size=steps), "per_obs": rng.normal(size=(obs_rows, 2)).astype(np.float32)}
    data.episode_attrs = {"seed": np.arange(7, dtype=np.int64)}
    data.validate()
    whole = fmt.write_version(tmp_path / "whole", data, {"id": "t/x-v1"})
    streamed = fmt.write_version(tmp_path / "parts", parts_of(data, [1, 2, 5]), {"id": "t/x-v1"})
    assert streamed["content_sha256"] == whole["content_sha256"] == fmt.content_sha256(data)
    assert streamed["arrays"] == whole["arrays"] and streamed["counts"] == whole["counts"]
    loaded, _, table = fmt.read_version(tmp_path / "parts")
    assert fmt.content_sha256(loaded) == whole["content_sha256"]
    assert table.column("obs_start").to_pylist() == list(data.obs_starts)
    assert table.column("seed").to_pylist() == list(range(7))
    np.testing.assert_allclose(table.column("return").to_numpy(), data.episode_returns())


def test_small_chunks_fill_across_parts(tmp_path, rng, monkeypatch):
    """Rows wait until a chunk is whole: chunks written across part boundaries decode to the input."""
    monkeypatch.setattr(fmt, "_VECTOR_CHUNK_BYTES", 64)  # 4 rows of 4 float32 per chunk
    data = random_trajectories(rng, episodes=9, min_len=1, max_len=5).validate()
    manifest = fmt.write_version(tmp_path / "v", parts_of(data, [1, 2, 3, 6]), {"id": "t/x-v1"})
    assert manifest["content_sha256"] == fmt.content_sha256(data)
    assert sum(name.startswith("steps.zarr/observations/c/") for name in manifest["files"]) > 5


def test_a_part_that_does_not_match_the_first_is_refused(tmp_path, rng):
    data = random_trajectories(rng, episodes=4).validate()
    first, second = parts_of(data, [2])
    second.actions = second.actions.astype(np.float64)
    with pytest.raises(InvalidInput, match="actions: a later part has rows of float64"):
        fmt.write_version(tmp_path / "v", [first, second], {"id": "t/x-v1"})
    third = parts_of(data, [2])[1]
    third.infos = {"extra": np.zeros(third.num_steps)}
    with pytest.raises(InvalidInput, match="a later part has arrays"):
        fmt.write_version(tmp_path / "w", [first, third], {"id": "t/x-v1"})


def streaming_registry(tmp_path, part_bytes: int) -> Registry:
    home = tmp_path / f"home-{part_bytes}"
    return Registry.open(Settings.load(home=home, database_url=f"sqlite:///{home / 'bench.db'}",
                                       storage_url=str(home / "datasets"), import_part_bytes=part_bytes))


@pytest.mark.parametrize("next_observations", [True, False], ids=["next_obs", "no_next_obs"])
def test_d4rl_streamed_import_equals_the_whole_import(tmp_path, rng, next_observations):
    data = random_trajectories(rng, episodes=40, min_len=1, max_len=30).validate()
    # The file's last episode has no end flag (the importer ends it, truncated).
    data.truncations[-1] = False
    path = write_d4rl_file(tmp_path / "walker.hdf5", data, next_observations=next_observations,
                           infos={"qpos": rng.normal(size=(data.num_steps, 3))})
    whole, streamed = streaming_registry(tmp_path, 256 << 20), streaming_registry(tmp_path, 2000)
    try:
        assert isinstance(fmt_read(path, 2000).trajectories, EpisodeParts)  # ~40 rows a part: many parts
        a, b = whole.import_path(path, "t/walker").id, streamed.import_path(path, "t/walker").id
        manifest_a, manifest_b = whole.manifest(a), streamed.manifest(b)
        assert manifest_b["content_sha256"] == manifest_a["content_sha256"]
        assert manifest_b["counts"] == manifest_a["counts"]
        assert manifest_b["provenance"]["notes"] == manifest_a["provenance"]["notes"]
        assert whole.load(a).episode(-1).truncations[-1] and streamed.load(b).episode(-1).truncations[-1]
        assert streamed.verify(b) == []
    finally:
        whole.close()
        streamed.close()


def fmt_read(path, part_bytes):
    from bench.datasets.interop import read_source
    from bench.platform.settings import ImportLimits

    return read_source(path, "d4rl", limits=ImportLimits(part_bytes=part_bytes))


def test_a_bad_part_of_a_streamed_import_leaves_nothing(tmp_path, rng):
    data = random_trajectories(rng, episodes=30, min_len=5, max_len=10).validate()
    observations = np.asarray(data.observations).copy()
    observations[-3, 0] = np.nan  # in the last part only: the first parts are already written when it is read
    data.observations = observations
    path = write_d4rl_file(tmp_path / "bad.hdf5", data)
    registry = streaming_registry(tmp_path, 1000)
    try:
        with pytest.raises(InvalidInput, match="non-finite"):
            registry.import_path(path, "t/bad")
        assert registry.list() == []
        assert not any(registry.settings.staging_dir.iterdir()) if registry.settings.staging_dir.exists() else True
        assert not (registry.settings.home / "datasets" / "t").exists() or \
            not any((registry.settings.home / "datasets" / "t").rglob("*"))
    finally:
        registry.close()


def test_import_memory_follows_the_budget_not_the_file(tmp_path):
    """A 470 MB D4RL file imported in 8 MB parts: the peak grows by what docs/format.md says (6 parts + 128 MB at
    most), not by the file (a whole import of it grows by ~700 MB)."""
    rows, width = 1_000_000, 58  # 58 float32 observations + next observations + 6 actions: ~470 MB
    path = tmp_path / "big.hdf5"
    with h5py.File(path, "w") as handle:
        for key, shape in (("observations", (rows, width)), ("next_observations", (rows, width)),
                           ("actions", (rows, 6))):
            dataset = handle.create_dataset(key, shape, np.float32)
            for start in range(0, rows, 100_000):
                dataset[start:start + 100_000] = np.random.default_rng(start).normal(
                    size=(min(100_000, rows - start), shape[1])).astype(np.float32)
        handle["rewards"] = np.zeros(rows, np.float32)
        ends = np.zeros(rows, bool)
        ends[999::1000] = True
        handle["terminals"] = np.zeros(rows, bool)
        handle["timeouts"] = ends
    script = textwrap.dedent(f"""
        import json, resource, sys
        from bench.datasets import Registry
        from bench.platform.settings import Settings
        home = sys.argv[1]
        registry = Registry.open(Settings.load(home=home, database_url=f"sqlite:///{{home}}/bench.db",
                                               storage_url=home + "/datasets", import_part_bytes={8 << 20}))
        import h5py, pyarrow.parquet, zarr  # noqa: F401  (loaded before the baseline: imports are not the data)
        from bench.datasets.interop import _formats
        _formats()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        dataset_id = registry.import_path({str(path)!r}, "t/big").id
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"id": dataset_id, "before_kb": before, "after_kb": after}}))
    """)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "home")], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    grown_mb = (report["after_kb"] - report["before_kb"]) / 1024
    file_mb = path.stat().st_size / 2**20
    assert report["id"] == "t/big-v1"
    assert grown_mb < 6 * 8 + 128 < file_mb / 2, f"peak grew {grown_mb:.0f} MB importing a {file_mb:.0f} MB file"


@pytest.mark.parametrize("variant", sorted(hostile.malformed_hdf5_variants()))
def test_malformed_d4rl_files_fail_the_same_way_in_parts(tmp_path, variant):
    """Every malformed file the security suite uploads is refused (a BenchError, never a crash) when read in parts too."""
    path = hostile.write_d4rl(tmp_path / f"{variant}.hdf5", hostile.malformed_hdf5_variants()[variant])

    def outcome(part_bytes):
        try:
            source = fmt_read(path, part_bytes)
            parts = list(source.trajectories) if isinstance(source.trajectories, EpisodeParts) else [source.trajectories]
            written = fmt.write_version(tmp_path / f"v-{part_bytes}", parts, {"id": "t/x-v1"}, allow_nonfinite=False)
            return "ok", written["content_sha256"]
        except BenchError as exc:
            return "refused", type(exc).__name__

    assert outcome(64) == outcome(256 << 20)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_recipe_built_in_parts_equals_the_whole_build(tmp_path, workers):
    from bench.datasets.recipes.build import build

    whole, streamed = streaming_registry(tmp_path, 256 << 20), streaming_registry(tmp_path, 3000)
    try:
        options = dict(episodes=6, reference_episodes=2, previews=False)
        a = build(whole, "pointmaze/umaze/navigate", workers=1, **options).id
        b = build(streamed, "pointmaze/umaze/navigate", workers=workers, **options).id
        manifest_a, manifest_b = whole.manifest(a), streamed.manifest(b)
        assert manifest_b["content_sha256"] == manifest_a["content_sha256"]
        assert manifest_b["provenance"]["notes"] == manifest_a["provenance"]["notes"]
        assert manifest_b["provenance"]["notes"][0].startswith("success rate in the data")
        # Streamed: chunks sized for an unknown length (more rows than a whole write would give them).
        assert manifest_b["files"] != manifest_a["files"]
    finally:
        whole.close()
        streamed.close()


def test_a_bench_version_copy_imports_in_parts_and_a_corrupt_one_leaves_nothing(tmp_path, rng):
    source = streaming_registry(tmp_path, 256 << 20)
    try:
        dataset_id = source.publish(random_trajectories(rng, episodes=30, dict_obs=True), "t/copy").id
        copy = tmp_path / "copy"
        shutil.copytree(source.local_dir(dataset_id), copy)
        expected = source.manifest(dataset_id)["content_sha256"]
    finally:
        source.close()
    streamed = streaming_registry(tmp_path, 1500)
    try:
        assert isinstance(fmt_read_as(copy, "bench", 1500).trajectories, EpisodeParts)
        imported = streamed.import_path(copy, "t/copied").id
        assert streamed.manifest(imported)["content_sha256"] == expected
        # A copy whose arrays were changed and re-described in its manifest (sha256 of the files updated, the
        # content hash not): the parts write fine, the content check refuses it, and nothing is left.
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["content_sha256"] = "0" * 64
        (copy / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(InvalidInput, match="content_sha256"):
            streamed.import_path(copy, "t/corrupt")
        assert [info.id for info in streamed.list()] == [imported]
        staging = streamed.settings.staging_dir
        assert not staging.exists() or not any(staging.iterdir())
    finally:
        streamed.close()


def fmt_read_as(path, format, part_bytes):
    from bench.datasets.interop import read_source
    from bench.platform.settings import ImportLimits

    return read_source(path, format, limits=ImportLimits(part_bytes=part_bytes))


@pytest.mark.parametrize("data_format", ["hdf5", "arrow"])
def test_a_minari_dataset_imports_in_parts_as_it_does_whole(tmp_path, rng, data_format):
    from bench.testing.data import write_minari_dir

    data = random_trajectories(rng, episodes=25, dict_obs=True, min_len=3, max_len=15).validate()
    rows = data.num_steps + data.num_episodes
    path = write_minari_dir(tmp_path / "minari", data, data_format=data_format,
                            infos={"energy": rng.normal(size=(rows, 2)).astype(np.float32)})
    assert isinstance(fmt_read_as(path, "minari", 500).trajectories, EpisodeParts)
    whole, streamed = streaming_registry(tmp_path, 256 << 20), streaming_registry(tmp_path, 500)
    try:
        a, b = whole.import_path(path, "t/m").id, streamed.import_path(path, "t/m").id
        assert streamed.manifest(b)["content_sha256"] == whole.manifest(a)["content_sha256"]
        assert streamed.episode_table(b).equals(whole.episode_table(a))
    finally:
        whole.close()
        streamed.close()


@pytest.mark.parametrize("with_qpos", [True, False])
def test_an_ogbench_file_imports_in_parts_as_it_does_whole(tmp_path, rng, with_qpos):
    from bench.testing.data import write_ogbench_npz

    data = random_trajectories(rng, episodes=30, min_len=2, max_len=20).validate()
    path = write_ogbench_npz(tmp_path / "maze-stitch-v0.npz", data, with_qpos=with_qpos)
    assert isinstance(fmt_read_as(path, "ogbench", 700).trajectories, EpisodeParts)
    whole, streamed = streaming_registry(tmp_path, 256 << 20), streaming_registry(tmp_path, 700)
    try:
        a, b = whole.import_path(path, "t/o").id, streamed.import_path(path, "t/o").id
        manifest_a, manifest_b = whole.manifest(a), streamed.manifest(b)
        assert manifest_b["content_sha256"] == manifest_a["content_sha256"]
        assert manifest_b["provenance"]["notes"] == manifest_a["provenance"]["notes"]
    finally:
        whole.close()
        streamed.close()


def test_malformed_npz_files_fail_the_same_way_in_parts(tmp_path):
    """Every malformed .npz the security suite uploads is refused (a BenchError, never a crash) when read in parts."""
    for variant, path in hostile.npz_variants(lambda name: tmp_path / f"{name}.npz").items():
        def outcome(part_bytes):
            try:
                source = fmt_read_as(path, "ogbench", part_bytes)
                parts = list(source.trajectories) if isinstance(source.trajectories, EpisodeParts) else [source.trajectories]
                written = fmt.write_version(tmp_path / f"{variant}-{part_bytes}", parts, {"id": "t/x-v1"},
                                            allow_nonfinite=False)
                return "ok", written["content_sha256"]
            except BenchError as exc:
                return "refused", type(exc).__name__

        assert outcome(64) == outcome(256 << 20), variant


def test_a_video_clip_decodes_by_seeking_and_equals_the_same_frames_of_the_whole_video():
    from bench.datasets.video import decode_mp4, encode_mp4

    frames = np.zeros((300, 16, 24, 3), np.uint8)
    frames[..., 0] = (np.arange(300) % 256)[:, None, None]
    frames[..., 1] = (np.arange(300) // 256 * 120)[:, None, None]
    mp4 = encode_mp4(frames, fps=30)
    whole = decode_mp4(mp4)
    for start, count in ((0, 7), (120, 40), (291, 9), (295, 20)):
        np.testing.assert_array_equal(decode_mp4(mp4, start=start, count=count), whole[start:start + count])


def test_a_lerobot_import_decodes_episode_by_episode_and_leaves_no_scratch(local_registry, tmp_path):
    import glob
    import tempfile

    from bench.testing.data import write_lerobot_dir

    pattern = str(Path(tempfile.gettempdir()) / "bench-lerobot-*")
    before = set(glob.glob(pattern))
    write_lerobot_dir(tmp_path / "lerobot")
    info = local_registry.import_path(tmp_path / "lerobot", "lab/lerobot")
    assert info.episodes >= 2 and set(glob.glob(pattern)) == before
    for video in (tmp_path / "lerobot").rglob("*.mp4"):  # found missing after the scratch directory was made
        video.unlink()
    with pytest.raises(InvalidInput, match="is missing"):  # a failed import removes its scratch too
        local_registry.import_path(tmp_path / "lerobot", "lab/lerobot")
    assert set(glob.glob(pattern)) == before


def test_a_version_of_many_files_downloads_as_one_tar_stream_and_verifies(tmp_path, rng, monkeypatch):
    """A fresh download of a version with many files (a large version's chunks) takes one request, not one per file;
    every file is still checked against the manifest, and the copy equals the stored version."""
    from bench.datasets import remote
    from bench.testing.services import api_server

    home = tmp_path / "server"
    registry = Registry.open(Settings.load(home=home, database_url=f"sqlite:///{home / 'bench.db'}",
                                           storage_url=str(home / "datasets")))
    dataset_id = registry.publish(random_trajectories(rng, episodes=6, image_shape=(8, 8, 3)), "t/many").id
    stored = registry.local_dir(dataset_id)
    registry.close()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BENCH_")}
    env.update(BENCH_HOME=str(home))
    monkeypatch.setattr(remote, "TAR_ABOVE_FILES", 0)
    fetched = []
    real_fetch = remote.RemoteRegistry._fetch
    monkeypatch.setattr(remote.RemoteRegistry, "_fetch", lambda self, *a, **k: fetched.append(a) or real_fetch(self, *a, **k))
    with api_server(env) as server:
        client = remote.RemoteRegistry(server.url)
        try:
            client.download(dataset_id, tmp_path / "copy")
        finally:
            client.close()
    assert fetched == []  # nothing fetched file by file
    for path in stored.rglob("*"):
        if path.is_file():
            assert (tmp_path / "copy" / path.relative_to(stored)).read_bytes() == path.read_bytes()
