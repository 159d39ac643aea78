"""Class 7 of the security review: damaged data never loads.

Loading a version checks every file it reads against the manifest, and the manifest against the
registry's record: a flipped byte, a truncated, deleted or added chunk, a changed episode table or
manifest is an error naming the file (never different data, never a missing chunk read as zeros),
on local disk and on S3 (the object itself, or the local cache of it).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bench.errors import IntegrityError
from bench.testing.data import random_trajectories
from tests.conftest import settings_env

CHUNK = "steps.zarr/actions/c/0/0"


def _damage(data: bytes, how: str) -> bytes | None:
    if how == "flip":
        raw = bytearray(data)
        raw[len(raw) // 2] ^= 0x01
        return bytes(raw)
    if how == "truncate":
        return data[: len(data) // 2]
    return None  # delete


def _publish(registry):
    return registry.publish(random_trajectories(np.random.default_rng(0), episodes=5), "lab/integrity")


def _replace(registry, storage_path: str, name: str, data: bytes | None) -> None:
    if data is None:
        registry.storage.fs.rm(registry.storage.path(f"{storage_path}/{name}"))
    else:
        registry.storage.write_bytes(f"{storage_path}/{name}", data)


DAMAGES = [(how, "sqlite-local") for how in ("flip", "truncate", "delete")] + [("flip", "postgres-s3")]


@pytest.mark.parametrize("name", [CHUNK, "steps.zarr/observations/c/0/0", "steps.zarr/rewards/zarr.json",
                                  "episodes.parquet"])
@pytest.mark.parametrize("how, backend", DAMAGES)
def test_a_damaged_file_in_storage_is_refused_naming_it(request, tmp_path, how, backend, name):
    from bench.datasets import Registry
    from tests.conftest import make_settings

    registry = Registry.open(make_settings(request, tmp_path, backend))
    try:
        version = _publish(registry)
        original = registry.storage.read_bytes(f"{version.storage_path}/{name}")
        _replace(registry, version.storage_path, name, _damage(original, how))
        with pytest.raises(IntegrityError, match=name.replace(".", r"\.")):
            registry.load(version.id)
        _replace(registry, version.storage_path, name, original)
        assert registry.load(version.id).num_episodes == 5
    finally:
        registry.close()


def test_an_added_chunk_and_a_changed_manifest_are_refused(local_registry):
    version = _publish(local_registry)
    directory = local_registry.local_dir(version.id)
    extra = directory / "steps.zarr/rewards/c/7"
    extra.write_bytes(b"\0" * 16)
    with pytest.raises(IntegrityError, match="steps.zarr/rewards/c/7: a file the manifest does not list"):
        local_registry.load(version.id)
    extra.unlink()
    manifest = directory / "manifest.json"
    original = manifest.read_bytes()
    manifest.write_bytes(original.replace(b'"description": null', b'"description": "edited"'))
    with pytest.raises(IntegrityError, match="manifest.json: sha256 differs from the registry's record"):
        local_registry.load(version.id)
    manifest.write_bytes(original)
    assert local_registry.load(version.id).num_steps == version.steps


@pytest.mark.s3
def test_a_damaged_local_cache_of_a_remote_version_is_refused(request, tmp_path):
    from bench.datasets import Registry
    from tests.conftest import make_settings

    registry = Registry.open(make_settings(request, tmp_path, "sqlite-s3"))
    try:
        version = _publish(registry)
        registry.load(version.id)  # downloads and verifies a cached copy
        cached = registry.settings.cache_dir / version.manifest_sha256 / CHUNK
        cached.unlink()  # a deleted chunk would otherwise read as fill values: zeros
        with pytest.raises(IntegrityError, match=f"{CHUNK}: missing"):
            registry.load(version.id)
    finally:
        registry.close()


def test_the_cli_refuses_damaged_data_in_one_line(local_settings, tmp_path):
    from bench.datasets import Registry

    registry = Registry.open(local_settings)
    version = _publish(registry)
    registry.close()
    chunk = local_settings.home / "datasets" / version.storage_path / CHUNK
    chunk.write_bytes(_damage(chunk.read_bytes(), "flip"))
    result = subprocess.run([sys.executable, "-m", "bench.cli", "datasets", "export", version.id, "--format", "d4rl",
                             "--out", str(tmp_path / "out.hdf5")], env=settings_env(local_settings),
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and CHUNK in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.hdf5").exists()


def test_the_statistics_route_refuses_a_damaged_episode_table(local_settings, tmp_path):
    from tests.api_helpers import make_api

    api = make_api(local_settings, tmp_path)
    try:
        version = _publish(api.registry)
        table = local_settings.home / "datasets" / version.storage_path / "episodes.parquet"
        assert api.client.get(f"/api/v1/datasets/{version.id}/-/stats").status_code == 200
        table.write_bytes(_damage(table.read_bytes(), "flip"))
        damaged = api.client.get(f"/api/v1/datasets/{version.id}/-/stats")
        assert damaged.status_code == 500 and "episodes.parquet" in damaged.json()["detail"]
    finally:
        api.client.__exit__(None, None, None)
        api.registry.close()
