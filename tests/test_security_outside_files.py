"""Class 1 of the security review: no importer reads bytes from outside the input it was given.

HDF5 external storage, external links, virtual datasets, soft links and undecodable filters;
Minari's HDF5 files; LeRobot path templates; ROS 2 bag storage lists; videos that are playlists;
Parquet column chunks kept in other files. Each is refused before a value is read, through the
registry and through the upload API (SQLite + local disk and PostgreSQL + S3), and nothing is
published.
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import yaml

from bench.datasets.interop import read_source
from bench.errors import InvalidInput
from bench.testing import hostile
from bench.testing.data import random_trajectories, write_lerobot_dir, write_minari_dir, write_robot_folder, write_ros_bag
from tests.api_helpers import make_api, tar_bytes
from tests.conftest import make_settings

REFUSAL = r"outside|external|link|virtual|filter"


@pytest.fixture
def secret(tmp_path):
    return hostile.secret_hdf5(tmp_path / "secret.h5")


@pytest.mark.parametrize("variant", hostile.OUTSIDE_VARIANTS)
def test_d4rl_files_that_reach_outside_are_refused_before_reading(local_registry, tmp_path, secret, variant):
    path = hostile.write_d4rl(tmp_path / f"{variant}.hdf5", hostile.outside_variants(secret)[variant])
    with pytest.raises(InvalidInput, match=REFUSAL):
        local_registry.import_path(path, "evil/outside")
    assert local_registry.search()[0] == 0


def test_minari_hdf5_with_external_storage_is_refused(local_registry, tmp_path, secret):
    directory = write_minari_dir(tmp_path / "minari", random_trajectories(np.random.default_rng(0), episodes=2))
    with h5py.File(directory / "data" / "main_data.hdf5", "a") as handle:
        first = sorted(handle.keys())[0]
        handle[first].create_dataset("leak", shape=(4,), dtype="u1", external=[(str(secret), 0, 4)])
    with pytest.raises(InvalidInput, match="external file"):
        local_registry.import_path(directory, "evil/minari")
    assert local_registry.search()[0] == 0


@pytest.mark.parametrize("template, message", [
    ("../../{video_key}.mp4", "outside"),
    ("/etc/{video_key}", "outside"),
    ("videos/{video_key.__class__.__init__.__globals__}.mp4", "placeholders"),
    ("videos/{chunk_index!r}.mp4", "placeholders"),
])
def test_lerobot_path_templates_stay_inside_the_dataset(tmp_path, template, message):
    directory = tmp_path / "lerobot"
    write_lerobot_dir(directory)
    info = json.loads((directory / "meta/info.json").read_text())
    info["video_path"] = template
    (directory / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(InvalidInput, match=message):
        read_source(directory)


@pytest.mark.parametrize("escape", ["../secret.db3", "/etc/passwd", "sub/../../x.db3"])
def test_ros2_bag_storage_files_stay_inside_the_bag(tmp_path, escape):
    bag = tmp_path / "bag"
    write_ros_bag(bag, ros=2)
    metadata = yaml.safe_load((bag / "metadata.yaml").read_text())
    info = metadata["rosbag2_bagfile_information"]
    info["relative_file_paths"] = [escape]
    (bag / "metadata.yaml").write_text(yaml.safe_dump(metadata))
    with pytest.raises(InvalidInput, match="outside"):
        read_source(bag, "rosbag")


@pytest.mark.parametrize("payload", ["hls", "concat"])
def test_a_robot_video_that_is_a_playlist_is_not_followed(tmp_path, secret, payload):
    directory = tmp_path / "folder"
    write_robot_folder(directory)
    video = next(directory.glob("*/*.mp4"))
    video.write_bytes(hostile.hls_playlist(secret) if payload == "hls" else f"ffconcat version 1.0\nfile {secret}\n".encode())
    with pytest.raises(InvalidInput, match="not a readable mp4"):
        read_source(directory)


def test_parquet_column_chunks_in_another_file_are_refused(tmp_path, secret):
    directory = tmp_path / "folder"
    write_robot_folder(directory)
    episode = next(p for p in sorted(directory.iterdir()) if p.is_dir())
    (episode / "steps.csv").unlink(missing_ok=True)
    hostile.parquet_elsewhere(episode / "steps.parquet", str(secret))
    with pytest.raises(InvalidInput, match="another file"):
        read_source(directory)


@pytest.fixture(scope="module", params=["sqlite-local", "postgres-s3"])
def api(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outside")
    api = make_api(make_settings(request, tmp, request.param), tmp)
    yield api
    api.client.__exit__(None, None, None)
    api.registry.close()


def _server_secrets(api, tmp_path):
    """Files an attacker wants: the SQLite database when there is one, else a file beside the server's home."""
    database = api.registry.settings.home / "bench.db"
    if database.is_file():
        return database
    other = tmp_path / "bench.toml"
    other.write_text('token = "s3cr3t"\n')
    return other


@pytest.mark.parametrize("variant", ["external_storage", "external_storage_info", "external_link", "virtual_dataset"])
def test_uploads_that_point_at_server_files_publish_nothing_and_serve_nothing(api, tmp_path, variant):
    secret = _server_secrets(api, tmp_path)
    if variant in ("external_link", "virtual_dataset"):
        secret = hostile.secret_hdf5(tmp_path / "other-user.h5")
    path = hostile.write_d4rl(tmp_path / "evil.hdf5", hostile.outside_variants(secret)[variant])
    dataset_id = f"alice/outside-{variant.replace('_', '-')}"
    response = api.upload(path.read_bytes(), dataset_id, filename="evil.hdf5")
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "inside the uploaded file" in detail
    assert str(api.registry.settings.home) not in detail and str(tmp_path) not in detail
    assert api.client.get(f"/api/v1/datasets/{dataset_id}-v1/-/episodes/0").status_code == 404
    assert api.client.get(f"/api/v1/datasets/{dataset_id}-v1").status_code == 404


def test_a_minari_directory_upload_with_external_storage_is_refused(api, tmp_path):
    secret = _server_secrets(api, tmp_path)
    directory = write_minari_dir(tmp_path / "minari-up" / "evil-v0", random_trajectories(np.random.default_rng(1), episodes=2))
    with h5py.File(directory / "data" / "main_data.hdf5", "a") as handle:
        handle.create_dataset("leak", shape=(8,), dtype="u1", external=[(str(secret), 0, 8)])
    members = [(f"evil-v0/{p.relative_to(directory).as_posix()}", p.read_bytes() if p.is_file() else None,
                "file" if p.is_file() else "dir") for p in sorted(directory.rglob("*"))]
    response = api.upload(tar_bytes([("evil-v0", None, "dir"), *members]), "alice/minari-outside", filename="evil.tar")
    assert response.status_code == 422, response.text
    assert "external file" in response.json()["detail"]
    shutil.rmtree(tmp_path / "minari-up")
