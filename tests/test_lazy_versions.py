"""Versions read on demand (LazyDataset) give what in-memory versions give, on every storage backend."""

from __future__ import annotations

import numpy as np
import pytest

from bench.datasets import Registry
from bench.datasets.dataset import Dataset
from bench.datasets.lazy import LazyDataset
from bench.platform.settings import Settings
from bench.testing.data import random_trajectories


def publish(registry, rng, **kwargs) -> str:
    data = random_trajectories(rng, episodes=12, min_len=2, max_len=20, **kwargs)
    steps, obs_rows = data.num_steps, data.num_steps + data.num_episodes
    data.infos = {"per_step": rng.normal(size=steps), "per_obs": rng.normal(size=(obs_rows, 2))}
    data.episode_attrs = {"seed": np.arange(12) * 3, "task": np.array([f"t{i % 3}" for i in range(12)], dtype=object)}
    return registry.publish(data, "t/lazy").id


def assert_tree_equal(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_tree_equal(a[key], b[key])
    else:
        np.testing.assert_array_equal(a, b)


def assert_episode_equal(a, b):
    assert a.index == b.index and a.attrs == b.attrs
    assert_tree_equal(a.observations, b.observations)
    for name in ("actions", "rewards", "terminations", "truncations"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert_tree_equal(a.infos, b.infos)


@pytest.mark.parametrize("kind", ["flat", "dict+images"])
def test_lazy_version_equals_the_in_memory_one(registry, rng, kind, monkeypatch):
    dataset_id = publish(registry, rng, dict_obs=kind != "flat", image_shape=(4, 4, 3) if kind != "flat" else None)
    whole, lazy = registry.load(dataset_id), registry.load(dataset_id, in_memory=False)
    assert isinstance(whole, Dataset) and isinstance(lazy, LazyDataset)
    assert (lazy.num_episodes, lazy.num_steps, lazy.content_sha256) == (whole.num_episodes, whole.num_steps,
                                                                        whole.content_sha256)
    assert lazy.observation_space == whole.observation_space and lazy.action_space == whole.action_space
    for index in (0, 5, 11, -1):
        assert_episode_equal(lazy.episode(index), whole.episode(index))
    # Reading all episodes goes a range at a time; make the ranges small so that several are read.
    monkeypatch.setattr("bench.datasets.lazy.READ_BYTES", 2000)
    assert len(lazy.ranges()) > 2
    for a, b in zip(lazy.episodes(), whole.episodes(), strict=True):
        assert_episode_equal(a, b)
    rows = rng.integers(0, whole.num_steps, size=50)
    assert_tree_equal(lazy.transitions(rows), whole.transitions(rows))
    parts = list(lazy.parts(3000))
    assert sum(part.num_episodes for part in parts) == whole.num_episodes and len(parts) > 1
    assert lazy.load().content_sha256 == whole.content_sha256
    assert_tree_equal(lazy.load().transitions(rows), whole.transitions(rows))
    with pytest.raises(IndexError):
        lazy.transitions(np.array([whole.num_steps]))


def test_versions_larger_than_the_load_limit_are_read_on_demand(tmp_path, rng):
    home = tmp_path / "home"
    settings = Settings.load(home=home, database_url=f"sqlite:///{home / 'bench.db'}",
                             storage_url=str(home / "datasets"), load_max_bytes=1000)
    registry = Registry.open(settings)
    try:
        dataset_id = publish(registry, rng)
        assert isinstance(registry.load(dataset_id), LazyDataset)
        assert isinstance(registry.load(dataset_id, in_memory=True), Dataset)
        assert registry.load(dataset_id).decoded_bytes > 1000
    finally:
        registry.close()


@pytest.mark.parametrize("format", ["d4rl", "minari"])
def test_exports_of_a_lazy_version_equal_the_in_memory_exports(local_registry, rng, tmp_path, format, monkeypatch):
    import h5py

    from bench.datasets.format import content_sha256
    from bench.datasets.interop import read_source, write_export

    data = random_trajectories(rng, episodes=12, min_len=2, max_len=20, dict_obs=format == "minari")
    data.infos = {"per_obs": rng.normal(size=(data.num_steps + data.num_episodes, 2))}
    data.episode_attrs = {"seed": np.arange(12)}
    dataset_id = local_registry.publish(data, "t/export").id
    monkeypatch.setattr("bench.datasets.lazy.READ_BYTES", 1500)  # several ranges
    name = "x.hdf5" if format == "d4rl" else "x-v1"
    whole_out, lazy_out = tmp_path / "whole" / name, tmp_path / "lazy" / name
    lazy = local_registry.load(dataset_id, in_memory=False)
    assert len(lazy.ranges()) > 2
    assert write_export(local_registry.load(dataset_id), format, whole_out) == write_export(lazy, format, lazy_out)
    if format == "d4rl":
        with h5py.File(whole_out) as a, h5py.File(lazy_out) as b:
            for key in ("observations", "next_observations", "actions", "rewards", "terminals", "timeouts", "infos/per_obs"):
                np.testing.assert_array_equal(a[key][...], b[key][...])
    assert content_sha256(read_source(whole_out).trajectories) == content_sha256(read_source(lazy_out).trajectories)


def test_a_card_reads_the_episode_table_and_a_logs_timestamps_only(tmp_path):
    """A version larger than the load limit still gets its card (a robot log's durations from its timestamps)."""
    from bench.datasets.cards import dataset_card
    from bench.testing.data import write_robot_folder

    home = tmp_path / "home"
    registry = Registry.open(Settings.load(home=home, database_url=f"sqlite:///{home / 'bench.db'}",
                                           storage_url=str(home / "datasets"), load_max_bytes=100))
    try:
        write_robot_folder(tmp_path / "session", lengths=(6, 8))
        info = registry.import_path(tmp_path / "session", "lab/wipe")
        assert registry.load(info.id).lazy
        card = dataset_card(registry, info.id)
        assert "## Robot log" in card and "- duration: 1.2 s in all" in card
    finally:
        registry.close()
