"""The registry on every backend: versions, immutability, latest resolution, yank, verify, atomicity, gc."""

import shutil
import threading
import warnings

import numpy as np
import pytest
import sqlalchemy as sa

from bench.datasets import Registry
from bench.datasets.registry import YankedVersionWarning
from bench.errors import Conflict, IntegrityError, InvalidInput, NotFound
from bench.platform.db import DatasetRow, VersionRow
from bench.testing.data import random_trajectories, write_d4rl_file

CONTRACT_FIELDS = {"id", "namespace", "name", "version", "state", "episodes", "steps", "observation_space",
                   "action_space", "env", "size_bytes", "manifest_sha256", "created_at"}


def _d4rl(tmp_path, rng, name="data.hdf5", episodes=5):
    data = random_trajectories(rng, episodes=episodes).validate()
    return write_d4rl_file(tmp_path / name, data), data


def test_import_creates_consecutive_versions(registry, tmp_path, rng):
    path, data = _d4rl(tmp_path, rng)
    first = registry.import_path(path, "d4rl/hopper-random")
    second = registry.import_path(path, "d4rl/hopper-random")
    assert (first.id, second.id) == ("d4rl/hopper-random-v1", "d4rl/hopper-random-v2")
    assert first.state == "published" and first.episodes == 5 and first.steps == data.num_steps
    assert first.content_sha256 == second.content_sha256  # same content, same content hash
    assert registry.show("d4rl/hopper-random").id == "d4rl/hopper-random-v2"  # unversioned = latest
    assert CONTRACT_FIELDS <= set(first.to_json())


def test_loaded_arrays_match_the_source(registry, tmp_path, rng):
    path, data = _d4rl(tmp_path, rng)
    info = registry.import_path(path, "d4rl/x")
    dataset = registry.load(info.id)
    np.testing.assert_array_equal(dataset.observations, data.observations)
    np.testing.assert_array_equal(dataset.actions, data.actions)
    np.testing.assert_array_equal(dataset.data.lengths, data.lengths)
    episode = dataset.episode(2)
    assert len(episode.observations) == len(episode) + 1
    batch = dataset.sample(64, np.random.default_rng(1))
    assert set(batch) == {"obs", "action", "reward", "next_obs", "terminated", "truncated"}
    # every sampled transition is a real one: next_obs follows obs within its episode
    rows = {tuple(row) for row in data.observations}
    assert all(tuple(row) in rows for row in batch["next_obs"])


def test_nested_namespaces_and_listing(registry, tmp_path, rng):
    path, _ = _d4rl(tmp_path, rng)
    registry.import_path(path, "metaworld/drawer-open/expert")
    registry.import_path(path, "metaworld/push/expert")
    registry.import_path(path, "d4rl/hopper")
    ids = [info.id for info in registry.list()]
    assert ids == ["d4rl/hopper-v1", "metaworld/drawer-open/expert-v1", "metaworld/push/expert-v1"]
    assert [i.id for i in registry.list(namespace="metaworld")] == ids[1:]
    assert [i.id for i in registry.list(namespace="metaworld/push")] == ids[2:]
    assert registry.list(namespace="metaworl") == []
    info = registry.show("metaworld/drawer-open/expert-v1")
    assert (info.namespace, info.name, info.version) == ("metaworld/drawer-open", "expert", 1)


def test_published_versions_are_immutable(registry, tmp_path, rng):
    path, _ = _d4rl(tmp_path, rng)
    registry.import_path(path, "d4rl/x")
    with pytest.raises(Conflict, match="already a published version"):
        registry.import_path(path, "d4rl/x-v1")
    with pytest.raises(InvalidInput, match="next version .* is v2"):
        registry.import_path(path, "d4rl/x-v5")
    assert registry.import_path(path, "d4rl/x-v2").id == "d4rl/x-v2"


def test_yank_hides_but_exact_id_still_loads(registry, tmp_path, rng):
    path, _ = _d4rl(tmp_path, rng)
    registry.import_path(path, "d4rl/x")
    registry.import_path(path, "d4rl/x")
    registry.yank("d4rl/x-v2", "wrong reward scale")
    assert [i.id for i in registry.list()] == ["d4rl/x-v1"]
    assert [i.id for i in registry.list(include_yanked=True)] == ["d4rl/x-v1", "d4rl/x-v2"]
    assert registry.show("d4rl/x").id == "d4rl/x-v1"  # latest skips yanked
    with pytest.warns(YankedVersionWarning, match="wrong reward scale"):
        assert registry.load("d4rl/x-v2").num_episodes == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.load("d4rl/x-v1")
    with pytest.raises(Conflict):
        registry.yank("d4rl/x-v2", "again")
    registry.yank("d4rl/x-v1", "also bad")
    with pytest.raises(NotFound, match="every version of d4rl/x is yanked"):
        registry.show("d4rl/x")


def test_unknown_ids_are_not_found(registry):
    with pytest.raises(NotFound):
        registry.show("nobody/nothing")
    with pytest.raises(NotFound):
        registry.load("nobody/nothing-v3")


def test_verify_names_every_tampered_file(registry, tmp_path, rng):
    path, _ = _d4rl(tmp_path, rng)
    info = registry.import_path(path, "d4rl/x")
    assert registry.verify(info.id) == []
    storage = registry.storage
    manifest = registry.manifest(info.id)
    victims = sorted(name for name in manifest["files"] if name.startswith("steps.zarr/actions/"))[:1] + ["episodes.parquet"]
    for name in victims:
        with storage.open(f"{info.storage_path}/{name}", "rb") as handle:
            payload = bytearray(handle.read())
        payload[-1] ^= 0xFF
        with storage.open(f"{info.storage_path}/{name}", "wb") as handle:
            handle.write(bytes(payload))
    problems = registry.verify(info.id)
    assert sorted(problem.split(":")[0] for problem in problems) == sorted(victims)


def test_failed_publish_leaves_nothing(registry, tmp_path, rng, monkeypatch):
    path, _ = _d4rl(tmp_path, rng)

    def broken_upload(local_dir, relative):
        (local_dir / "half-written").write_text("x")
        original(local_dir, relative)
        raise OSError("disk full")

    original = registry.storage.publish_dir
    monkeypatch.setattr(registry.storage, "publish_dir", broken_upload)
    with pytest.raises(OSError, match="disk full"):
        registry.import_path(path, "d4rl/x")
    with registry.session() as session:
        assert session.scalars(sa.select(VersionRow)).all() == []
        assert session.scalars(sa.select(DatasetRow)).all() == []
    assert registry.storage.sizes("d4rl/x") == {}
    assert not any(registry.settings.staging_dir.iterdir())
    monkeypatch.undo()
    assert registry.import_path(path, "d4rl/x").id == "d4rl/x-v1"


def test_concurrent_imports_get_distinct_versions(settings, tmp_path, rng):
    path, _ = _d4rl(tmp_path, rng)
    results, errors = [], []

    def work():
        registry = Registry.open(settings)
        try:
            results.append(registry.import_path(path, "d4rl/race").version)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            registry.close()

    Registry.open(settings).close()  # migrate once, before the race
    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results) == [1, 2, 3, 4]
    registry = Registry.open(settings)
    for version in results:
        assert registry.verify(f"d4rl/race-v{version}") == []
    registry.close()


def test_gc_removes_stale_staging(registry, tmp_path, rng):
    path, _ = _d4rl(tmp_path, rng)
    registry.import_path(path, "d4rl/x")
    # A crashed writer: a staging row owned by a dead process, files half uploaded, a staging dir.
    with registry.session.begin() as session:
        row = session.scalars(sa.select(VersionRow)).one()
        session.add(VersionRow(dataset_id=row.dataset_id, version=2, state="staging", storage_path="d4rl/x/v2",
                               writer_host=row.writer_host or __import__("socket").gethostname(), writer_pid=2**22 + 7))
    with registry.storage.open("d4rl/x/v2/steps.zarr/zarr.json", "wb") as handle:
        handle.write(b"{}")
    with registry.storage.open("d4rl/x/v9/manifest.json", "wb") as handle:  # orphan with no row
        handle.write(b"{}")
    stale_dir = registry.settings.staging_dir / f"{__import__('socket').gethostname()}-{2**22 + 7}-abc"
    stale_dir.mkdir(parents=True)
    assert [i.id for i in registry.list()] == ["d4rl/x-v1"]  # never visible
    report = registry.gc()
    assert report.staging_versions == ["d4rl/x-v2"]
    assert report.staging_dirs == [str(stale_dir)]
    assert report.orphan_dirs == ["d4rl/x/v9"]
    assert set(registry.storage.list_dirs("d4rl/x")) == {"v1"}
    assert registry.import_path(path, "d4rl/x").id == "d4rl/x-v2"
    assert registry.gc().staging_versions == []


@pytest.mark.parametrize("backend", ["sqlite-s3", "postgres-s3"])
def test_remote_storage_loads_through_a_verified_cache(registry, tmp_path, rng):
    path, _ = _d4rl(tmp_path, rng)
    info = registry.import_path(path, "d4rl/x")
    directory = registry.local_dir(info.id)
    assert directory.parent == registry.settings.cache_dir
    assert registry.load(info.id).num_episodes == 5
    # A corrupted object in the store is caught on download and never cached.
    with registry.storage.open(f"{info.storage_path}/episodes.parquet", "wb") as handle:
        handle.write(b"corrupt")
    shutil.rmtree(directory)
    with pytest.raises(IntegrityError, match="episodes.parquet"):
        registry.load(info.id)
    assert not directory.exists()


@pytest.mark.parametrize("backend", ["sqlite-local", "postgres-local"])
def test_search_filters_by_text_environment_tag_namespace_and_privacy(registry, rng):
    env = {"id": "Pendulum-v1", "kwargs": {}, "name": "test/pendulum"}
    registry.publish(random_trajectories(rng, episodes=2), "lab/drawer-demos", description="Drawer opening demos",
                     tags=["demos", "real-robot"], env=env)
    registry.publish(random_trajectories(rng, episodes=2), "lab/drawer-demos", tags=["v2"])  # latest is v2
    registry.publish(random_trajectories(rng, episodes=2), "lab/secret", private=True)
    registry.publish(random_trajectories(rng, episodes=2), "other/play")

    def ids(**filters):
        total, infos = registry.search(**filters)
        assert total == len(infos)
        return [info.id for info in infos]

    assert ids() == ["lab/drawer-demos-v2", "lab/secret-v1", "other/play-v1"]
    assert ids(readable=set()) == ["lab/drawer-demos-v2", "other/play-v1"]
    assert ids(readable={"lab"}) == ["lab/drawer-demos-v2", "lab/secret-v1", "other/play-v1"]
    assert ids(text="DRAWER") == ["lab/drawer-demos-v2"]
    assert ids(text="opening") == []  # the description belongs to v1; search shows each dataset's latest
    assert ids(tag="real-robot") == ["lab/drawer-demos-v2"]  # tags belong to the dataset, every version
    assert registry.show("lab/drawer-demos").tags == ("demos", "real-robot", "v2")
    assert ids(env="test/pendulum") == [] and ids(namespace="other") == ["other/play-v1"]
    registry.publish(random_trajectories(rng, episodes=2), "lab/pendulum", env=env)
    assert ids(env="test/pendulum") == ids(env="Pendulum-v1") == ["lab/pendulum-v1"]
    total, page = registry.search(limit=2, offset=2)
    assert total == 4 and [info.id for info in page] == ["lab/secret-v1", "other/play-v1"]
    with pytest.raises(InvalidInput, match="tag"):
        registry.publish(random_trajectories(rng, episodes=2), "lab/bad", tags=["Bad Tag"])
