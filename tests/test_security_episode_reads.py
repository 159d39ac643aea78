"""Class 3 of the security review: anonymous episode and frame reads cost one episode, not a whole version.

The episode and frame routes read only the chunks the episode touches (each checked against the
manifest), on local storage in place and on S3 into a partial copy holding just those chunks; what
they keep in memory is bounded by bytes (BENCH_API_CACHE_BYTES), not by a count of versions.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.testing.data import random_trajectories
from bench.web.api.services import ByteBoundedCache
from tests.api_helpers import make_api
from tests.conftest import make_settings

EPISODES, LENGTH = 8, 40  # 328 frames of 8x8x3: six 64-frame chunks of pixels
CACHE_BYTES = 30_000  # three of these episodes (9 KB each: pixels, state, actions, ...)


@pytest.fixture(scope="module", params=["sqlite-local", "postgres-s3"])
def api(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("episodes")
    settings = dataclasses.replace(make_settings(request, tmp, request.param), api_cache_bytes=CACHE_BYTES)
    api = make_api(settings, tmp)
    data = random_trajectories(np.random.default_rng(0), episodes=EPISODES, min_len=LENGTH, max_len=LENGTH,
                               image_shape=(8, 8, 3))
    api.version = api.registry.publish(data, "alice/pixels")
    yield api
    api.client.__exit__(None, None, None)
    api.registry.close()


def _pixel_chunk(api, chunk: int) -> str:
    return f"steps.zarr/observations/pixels/c/{chunk}/0/0/0"


def test_an_episode_is_read_from_its_own_chunks_only(api):
    version = api.version
    first = api.client.get(f"/api/v1/datasets/{version.id}/-/episodes/0")
    assert first.status_code == 200 and first.json()["length"] == LENGTH
    assert first.json()["frames"]["pixels"]["count"] == LENGTH + 1
    frame = api.client.get(f"/api/v1/datasets/{version.id}/-/episodes/0/frames/pixels", params={"t": 3})
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/png"
    if not api.registry.storage.is_local:
        parts = api.registry.settings.cache_dir / f"{version.manifest_sha256}.parts"
        chunks = sorted(p.name for p in (parts / "steps.zarr/observations/pixels/c").iterdir())
        assert chunks == ["0"], chunks  # episode 0 is frames 0..40: the first 64-frame chunk alone
        assert not (api.registry.settings.cache_dir / version.manifest_sha256).exists()


def test_a_damaged_chunk_fails_only_the_episodes_that_read_it(api):
    version = api.version
    name = _pixel_chunk(api, 5)  # frames 320..327: the last episode's
    raw = bytearray(api.registry.storage.read_bytes(f"{version.storage_path}/{name}"))
    raw[len(raw) // 2] ^= 0xFF
    api.registry.storage.write_bytes(f"{version.storage_path}/{name}", bytes(raw))
    try:
        assert api.client.get(f"/api/v1/datasets/{version.id}/-/episodes/1").status_code == 200
        damaged = api.client.get(f"/api/v1/datasets/{version.id}/-/episodes/{EPISODES - 1}")
        assert damaged.status_code == 500
        detail = damaged.json()["detail"]
        assert name in detail and "damaged" in detail and str(api.registry.settings.home) not in detail
    finally:
        raw[len(raw) // 2] ^= 0xFF
        api.registry.storage.write_bytes(f"{version.storage_path}/{name}", bytes(raw))
    assert api.client.get(f"/api/v1/datasets/{version.id}/-/episodes/{EPISODES - 1}").status_code == 200


def test_memory_kept_for_viewers_is_bounded_by_bytes(api):
    services = api.client.app.state.services
    for index in range(EPISODES):
        assert api.client.get(f"/api/v1/datasets/{api.version.id}/-/episodes/{index}").status_code == 200
    assert 0 < services.episodes.bytes <= CACHE_BYTES
    assert len(services.episodes.entries) < EPISODES


def test_the_byte_bounded_cache_evicts_least_recently_used_and_never_keeps_oversized_values():
    cache = ByteBoundedCache(100)
    made = []

    def make(value):
        made.append(value)
        return value

    for key in ("a", "b", "c"):
        cache.get(key, lambda k=key: make(k), lambda _: 40)
    assert list(cache.entries) == ["b", "c"] and cache.bytes == 80
    cache.get("b", lambda: make("again"), lambda _: 40)
    assert made == ["a", "b", "c"] and list(cache.entries) == ["c", "b"]
    assert cache.get("huge", lambda: "huge", lambda _: 1000) == "huge" and "huge" not in cache.entries
