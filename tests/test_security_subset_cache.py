"""Class 4 of the security review: anonymous episode-range downloads cannot fill the server's disk.

Each new start:stop pair builds a bench-format subset under cache/subsets; the cache is held under
BENCH_SUBSET_CACHE_BYTES (least recently used first) by every new subset, by gc and at start-up.
An evicted subset is rebuilt byte for byte, so downloads stay deterministic and resumable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time

import numpy as np
import pytest

from bench.datasets import Registry
from bench.datasets.housekeeping import trim_cache
from bench.testing.data import random_trajectories
from tests.api_helpers import make_api
from tests.conftest import make_settings

EPISODES = 20


def _cache_bytes(settings) -> int:
    root = settings.cache_dir
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and "subsets" in p.parts
               or p.is_file() and any(part.endswith(".parts") for part in p.parts))


@pytest.fixture(scope="module", params=["sqlite-local", "postgres-s3"])
def api(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("subsets")
    settings = make_settings(request, tmp, request.param)
    registry = Registry.open(settings)
    data = random_trajectories(np.random.default_rng(0), episodes=EPISODES, min_len=30, max_len=30)
    version = registry.publish(data, "alice/ranges")
    one = registry.subset_dir(version.id, 0, 1)
    subset_size = sum(p.stat().st_size for p in one.rglob("*") if p.is_file())
    registry.close()
    # Room for about three subsets (plus the partial copy of a remote version's chunks).
    bounded = dataclasses.replace(settings, subset_cache_bytes=3 * subset_size + 20_000)
    api = make_api(bounded, tmp)
    api.version = version
    yield api
    api.client.__exit__(None, None, None)
    api.registry.close()


def test_many_ranges_keep_the_cache_under_its_bound(api):
    settings = api.registry.settings
    for start in range(EPISODES - 1):
        response = api.client.get(f"/api/v1/datasets/{api.version.id}/-/episodes",
                                  params={"start": start, "stop": start + 2})
        assert response.status_code == 200, response.text
    kept = sorted((settings.cache_dir / "subsets").iterdir())
    assert 1 <= len(kept) <= 4
    assert _cache_bytes(settings) <= settings.subset_cache_bytes + max(
        sum(p.stat().st_size for p in k.rglob("*") if p.is_file()) for k in kept)


def test_an_evicted_range_downloads_the_same_bytes_again(api):
    url = f"/api/v1/datasets/{api.version.id}/-/episodes/download"
    first = api.client.get(url, params={"start": 3, "stop": 7})
    assert first.status_code == 200
    for start in range(8, EPISODES - 1):  # push it out of the cache
        api.client.get(f"/api/v1/datasets/{api.version.id}/-/episodes", params={"start": start, "stop": start + 1})
    again = api.client.get(url, params={"start": 3, "stop": 7})
    assert hashlib.sha256(again.content).hexdigest() == hashlib.sha256(first.content).hexdigest()
    ranged = api.client.get(f"/api/v1/datasets/{api.version.id}/-/episodes/files/episodes.parquet",
                            params={"start": 3, "stop": 7}, headers={"Range": "bytes=10-"})
    assert ranged.status_code == 206


def test_gc_trims_the_cache_and_removes_dead_partials(api, tmp_path):
    settings = api.registry.settings
    subsets = settings.cache_dir / "subsets"
    dead = subsets / "deadbeef-0-1.partial-999999999-abcdef12"
    dead.mkdir(parents=True)
    (dead / "episodes.parquet").write_bytes(b"x" * 10)
    stale = subsets / "0000-0-1"
    stale.mkdir()
    (stale / "blob").write_bytes(b"y" * (settings.subset_cache_bytes + 1))
    old = time.time() - 3600
    os.utime(stale, (old, old))
    report = api.registry.gc()
    assert str(dead) in report.cache_entries and str(stale) in report.cache_entries
    assert not dead.exists() and not stale.exists()


def test_trim_never_removes_what_it_is_told_to_keep(tmp_path):
    subsets = tmp_path / "subsets"
    for index in range(4):
        entry = subsets / f"s{index}"
        entry.mkdir(parents=True)
        (entry / "f").write_bytes(b"z" * 100)
        os.utime(entry, (1000 + index, 1000 + index))
    removed = trim_cache(tmp_path, 150, keep={subsets / "s0"})
    assert sorted(p.rsplit("/", 1)[1] for p in removed) == ["s1", "s2", "s3"]
    assert (subsets / "s0").exists()
