"""The REST API in process (FastAPI's test client): uploads, downloads, privacy, runs, leaderboards, errors.

The dataset paths run on SQLite + local disk and on PostgreSQL + S3 (real servers); the
authorization matrix and the path-safety checks are in test_api_security.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
import sqlalchemy as sa

from fastapi.testclient import TestClient

from bench.datasets.format import read_version
from bench.platform.db import UploadRow, VersionRow
from bench.platform.settings import Settings
from bench.web.api import create_app
from tests.api_helpers import make_api
from tests.conftest import make_settings


@pytest.fixture(params=["sqlite-local", "postgres-s3"])
def api(request, tmp_path):
    api = make_api(make_settings(request, tmp_path, request.param), tmp_path)
    yield api
    api.client.__exit__(None, None, None)
    api.registry.close()


@pytest.fixture
def local_api(request, tmp_path):
    api = make_api(make_settings(request, tmp_path, "sqlite-local"), tmp_path)
    yield api
    api.client.__exit__(None, None, None)
    api.registry.close()


def test_upload_in_parts_resumes_and_publishes_like_a_local_import(api):
    data = api.d4rl_bytes(episodes=8)
    owner = api.headers["owner"]
    body = {"dataset_id": "alice/demos", "filename": "demos.hdf5", "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "tags": ["demos"], "description": "eight episodes"}
    created = api.client.post("/api/v1/uploads", json=body, headers=owner)
    assert created.status_code == 201 and created.json()["received"] == 0
    upload_id = created.json()["id"]
    assert api.client.put(f"/api/v1/uploads/{upload_id}", params={"offset": 0}, content=data[:3000],
                          headers=owner).json()["received"] == 3000
    # A client that lost track re-creates the session: the server hands back the open one.
    again = api.client.post("/api/v1/uploads", json=body, headers=owner)
    assert again.status_code == 201 and again.json()["id"] == upload_id and again.json()["resumed"]
    wrong = api.client.put(f"/api/v1/uploads/{upload_id}", params={"offset": 0}, content=data[:10], headers=owner)
    assert wrong.status_code == 409 and "offset 3000" in wrong.json()["detail"]
    early = api.client.post(f"/api/v1/uploads/{upload_id}/complete", headers=owner)
    assert early.status_code == 409 and "incomplete" in early.json()["detail"]
    assert api.client.put(f"/api/v1/uploads/{upload_id}", params={"offset": 3000}, content=data[3000:],
                          headers=owner).json()["received"] == len(data)
    done = api.client.post(f"/api/v1/uploads/{upload_id}/complete", headers=owner)
    assert done.status_code == 200, done.text
    assert done.json()["version"] == "alice/demos-v1" and done.json()["dataset"]["episodes"] == 8
    assert api.client.get(f"/api/v1/uploads/{upload_id}", headers=owner).json()["state"] == "completed"
    # Same as a local import of the same file: identical decoded content.
    local = api.registry.import_path(api.tmp / "d4rl-0-8.hdf5", "alice/local")
    shown = api.client.get("/api/v1/datasets/alice/demos").json()
    assert shown["content_sha256"] == local.content_sha256 and shown["tags"] == ["demos"]
    assert "storage_path" not in shown
    found = api.client.get("/api/v1/datasets", params={"tag": "demos"}).json()
    assert [item["id"] for item in found["items"]] == ["alice/demos-v1"]
    assert api.client.get("/api/v1/datasets", params={"q": "EIGHT"}).json()["total"] == 1


def test_downloads_whole_by_file_with_ranges_and_by_episode_range(api, tmp_path):
    dataset_id = api.publish("alice/play", seed=1)
    base = f"/api/v1/datasets/{dataset_id}/-"
    files = api.client.get(f"{base}/files").json()
    assert files[-1]["name"] == "manifest.json"
    for entry in files:
        whole = api.client.get(f"{base}/files/{entry['name']}")
        assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == entry["sha256"]
        if entry["size"] > 10:
            tail = api.client.get(f"{base}/files/{entry['name']}", headers={"Range": "bytes=10-"})
            assert tail.status_code == 206 and tail.content == whole.content[10:]
            assert tail.headers["content-range"] == f"bytes 10-{entry['size'] - 1}/{entry['size']}"
    assert api.client.get(f"{base}/files/{files[0]['name']}", headers={"Range": "bytes=999999999-"}).status_code == 416
    archive = api.client.get(f"{base}/download")
    assert archive.status_code == 200 and int(archive.headers["content-length"]) == len(archive.content)
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        tar.extractall(tmp_path / "whole", filter="data")
    data, manifest, _ = read_version(tmp_path / "whole" / "alice__play-v1")
    assert manifest["content_sha256"] == api.registry.show(dataset_id).content_sha256
    # Episodes 1:3 as a bench-format version of their own, verified file by file.
    subset = api.client.get(f"{base}/episodes", params={"start": 1, "stop": 3}).json()
    assert subset["manifest"]["counts"]["episodes"] == 2 and subset["manifest"]["subset"]["episodes"] == [1, 3]
    target = tmp_path / "subset"
    for entry in subset["files"]:
        content = api.client.get(f"{base}/episodes/files/{entry['name']}", params={"start": 1, "stop": 3}).content
        assert hashlib.sha256(content).hexdigest() == entry["sha256"]
        (target / entry["name"]).parent.mkdir(parents=True, exist_ok=True)
        (target / entry["name"]).write_bytes(content)
    part, _, _ = read_version(target)
    full = api.registry.load(dataset_id)
    np.testing.assert_array_equal(part.actions, full.data.select_episodes(1, 3).actions)
    bad = api.client.get(f"{base}/episodes", params={"start": 3, "stop": 99})
    assert bad.status_code == 400 and "outside" in bad.json()["detail"]


def test_a_failed_upload_leaves_no_version_and_says_why(api):
    owner = api.headers["owner"]
    garbage = api.upload(b"not an hdf5 file at all" * 100, "alice/broken", filename="broken.hdf5")
    assert garbage.status_code == 422 and "broken.hdf5" in garbage.json()["detail"]
    data = api.d4rl_bytes()
    created = api.client.post("/api/v1/uploads", headers=owner, json={
        "dataset_id": "alice/lies", "filename": "x.hdf5", "size": len(data), "sha256": "0" * 64})
    upload_id = created.json()["id"]
    api.client.put(f"/api/v1/uploads/{upload_id}", params={"offset": 0}, content=data, headers=owner)
    mismatch = api.client.post(f"/api/v1/uploads/{upload_id}/complete", headers=owner)
    assert mismatch.status_code == 422 and "sha256" in mismatch.json()["detail"]
    too_long = api.client.post("/api/v1/uploads", headers=owner, json={
        "dataset_id": "alice/long", "filename": "x.hdf5", "size": 5, "sha256": "0" * 64})
    over = api.client.put(f"/api/v1/uploads/{too_long.json()['id']}", params={"offset": 0}, content=b"123456789",
                          headers=owner)
    assert over.status_code == 413
    with api.registry.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(VersionRow)) == 0
        states = sorted(session.scalars(sa.select(UploadRow.state)).all())
    assert states == ["failed", "failed", "open"]
    assert api.client.get("/api/v1/datasets").json()["total"] == 0
    # Failed uploads' bytes are gone; only the open session keeps what it received.
    assert sorted(p.name for p in (api.registry.settings.home / "uploads").iterdir()) == [too_long.json()["id"]]


def test_directory_uploads_arrive_as_tar_and_unpack_inside_the_upload(local_api, tmp_path):
    api = local_api
    dataset_id = api.publish("alice/source")
    version_dir = api.registry.local_dir(dataset_id)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(version_dir, arcname="source-v1")
    response = api.upload(buffer.getvalue(), "alice/copy", filename="source-v1.tar")
    assert response.status_code == 200, response.text
    assert response.json()["dataset"]["content_sha256"] == api.registry.show(dataset_id).content_sha256


def test_private_datasets_are_invisible_to_everyone_but_owners_and_admins(local_api):
    api = local_api
    api.publish("alice/secret", private=True)
    api.publish("alice/open")
    paths = ["/api/v1/datasets/alice/secret", "/api/v1/datasets/alice/secret-v1/-/files",
             "/api/v1/datasets/alice/secret-v1/-/manifest", "/api/v1/datasets/alice/secret/-/versions",
             "/api/v1/datasets/alice/secret-v1/-/download", "/api/v1/datasets/alice/secret-v1/-/files/manifest.json",
             "/api/v1/datasets/alice/secret-v1/-/episodes?start=0&stop=1", "/api/v1/datasets/alice/secret-v1/-/stats",
             "/api/v1/datasets/alice/secret-v1/-/episodes/0"]
    # No environment to draw it in: its owner hears why (400), everyone else that it does not exist.
    drawn = ["/api/v1/datasets/alice/secret-v1/-/episodes/0/rendered",
             "/api/v1/datasets/alice/secret-v1/-/episodes/0/rendered/frame?t=0"]
    for who, visible in (("anonymous", False), ("other", False), ("owner", True), ("admin", True)):
        listed = [i["id"] for i in api.client.get("/api/v1/datasets", headers=api.headers[who]).json()["items"]]
        assert ("alice/secret-v1" in listed) == visible and "alice/open-v1" in listed
        for path in paths:
            status = api.client.get(path, headers=api.headers[who]).status_code
            assert status == (200 if visible else 404), (who, path, status)
        for path in drawn:
            status = api.client.get(path, headers=api.headers[who]).status_code
            assert status == (400 if visible else 404), (who, path, status)
    made_public = api.client.patch("/api/v1/datasets/alice/secret/-/settings", json={"private": False},
                                   headers=api.headers["owner"])
    assert made_public.status_code == 200 and not made_public.json()["private"]
    assert api.client.get("/api/v1/datasets/alice/secret").status_code == 200


def _run_json(dataset, run_id="r1", seed=0, score=50.0):
    return {"id": run_id, "sweep_id": "s1", "algorithm": "iql", "config": {"expectile": 0.7}, "config_hash": "h1",
            "seed": seed, "dataset_id": dataset.id, "dataset_content_sha256": dataset.content_sha256,
            "env_name": None, "plan": {"eval_episodes": 5, "offline_steps": 10, "online_steps": 10},
            "status": "completed", "code_version": "abc", "results": {
                "offline": {"final": {"return": score, "normalized_score": score, "success_rate": 0.4},
                            "best": {"return": score, "normalized_score": score, "success_rate": 0.4}},
                "online": {"final": {"return": score + 10, "normalized_score": score + 10, "success_rate": 0.8},
                           "best": {"return": score + 10, "normalized_score": score + 10, "success_rate": 0.8}}}}


def test_pushed_runs_feed_leaderboards_and_link_back(api):
    dataset = api.registry.show(api.publish("alice/bench"))
    owner = api.headers["owner"]
    curves = [{"kind": "eval", "phase": "offline", "step": 10, "return": 1.0}]
    for seed in range(3):
        pushed = api.client.post("/api/v1/runs", headers=owner,
                                 json={"run": _run_json(dataset, f"r{seed}", seed, 40.0 + seed), "curves": curves})
        assert pushed.status_code == 201, pushed.text
        assert pushed.json()["owner"] == "alice"
    again = api.client.post("/api/v1/runs", headers=owner, json={"run": _run_json(dataset, "r0", 0, 40.0), "curves": curves})
    assert again.status_code == 200
    clash = api.client.post("/api/v1/runs", headers=api.headers["other"], json={"run": _run_json(dataset, "r0"), "curves": []})
    assert clash.status_code == 409
    wrong_data = {**_run_json(dataset, "r9"), "dataset_content_sha256": "f" * 64}
    mismatch = api.client.post("/api/v1/runs", headers=owner, json={"run": wrong_data, "curves": []})
    assert mismatch.status_code == 409 and "content sha256" in mismatch.json()["detail"]
    renumbered = {**_run_json(dataset, "r7"), "dataset_id": "alice/bench-v5"}  # the same data, the client's numbering
    moved = api.client.post("/api/v1/runs", headers=owner, json={"run": renumbered, "curves": []})
    assert moved.status_code == 201 and moved.json()["dataset_id"] == dataset.id
    assert moved.json()["plan"]["client_dataset_id"] == "alice/bench-v5"
    api.client.delete("/api/v1/runs/r7", headers=owner)
    running = {**_run_json(dataset, "r8"), "status": "running"}
    assert api.client.post("/api/v1/runs", headers=owner, json={"run": running, "curves": []}).status_code == 400
    assert api.client.get("/api/v1/runs", params={"owner": "alice"}).json()["total"] == 3
    assert api.client.get("/api/v1/runs/r1/curves").json()[0]["step"] == 10
    created = api.client.post("/api/v1/leaderboards", headers=owner, json={
        "name": "alice-suite", "datasets": ["alice/bench"], "metric": "normalized_score", "min_seeds": 3})
    assert created.status_code == 201, created.text
    board = api.client.get("/api/v1/leaderboards/alice-suite").json()
    entry = board["datasets"][0]["entries"][0]
    assert entry["runs"] == ["r0", "r1", "r2"] and entry["offline"]["mean"] == pytest.approx(41.0)
    assert entry["online"]["mean"] == pytest.approx(51.0) and entry["dataset_content_sha256"] == dataset.content_sha256
    assert not entry["marked"] and board["aggregate"]["algorithms"][0]["algorithm"] == "iql"
    markdown = api.client.get("/api/v1/leaderboards/alice-suite/markdown").text
    assert "| iql |" in markdown and "41.0 [" in markdown and "-> 51.0" in markdown
    assert api.client.get("/api/v1/leaderboards/nope").status_code == 404


def test_tokens_are_stored_hashed_and_revocation_takes_effect(local_api):
    api = local_api
    created = api.client.post("/api/v1/tokens", json={"name": "ci"}, headers=api.headers["owner"])
    assert created.status_code == 201
    token = created.json()["token"]
    with api.registry.engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT token_sha256 FROM api_tokens")).scalars().all()
    assert token not in json.dumps(stored) and hashlib.sha256(token.encode()).hexdigest() in stored
    mine = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/v1/me", headers=mine).json()["name"] == "alice"
    assert api.client.delete(f"/api/v1/tokens/{created.json()['id']}", headers=mine).status_code == 200
    revoked = api.client.get("/api/v1/me", headers=mine)
    assert revoked.status_code == 401 and revoked.headers["www-authenticate"] == "Bearer"
    assert api.client.get("/api/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401


def test_size_limit_and_rate_limit_come_from_settings(request, tmp_path):
    base = make_settings(request, tmp_path, "sqlite-local")
    settings = Settings(**{**vars(base), "upload_max_bytes": 1000, "rate_limit_per_minute": 8})
    api = make_api(settings, tmp_path)
    try:
        too_big = api.client.post("/api/v1/uploads", headers=api.headers["owner"], json={
            "dataset_id": "alice/big", "filename": "x.hdf5", "size": 1001, "sha256": "0" * 64})
        assert too_big.status_code == 413 and "1000" in too_big.json()["detail"]
        statuses = [api.client.get("/api/v1/me", headers=api.headers["other"]).status_code for _ in range(11)]
        assert statuses.count(429) >= 2 and statuses[0] == 200
        # Each token that has authenticated has its own budget (tests/test_security_rate_limits.py has the rest).
        assert api.client.get("/api/v1/me", headers=api.headers["admin"]).status_code == 200
    finally:
        api.client.__exit__(None, None, None)
        api.registry.close()


def test_environments_and_reference_scores_are_served(local_api):
    listed = local_api.client.get("/api/v1/environments").json()
    names = [env["name"] for env in listed]
    assert "metaworld/drawer-open" in names
    hopper = local_api.client.get("/api/v1/environments/mujoco/hopper").json()
    assert any(ref["source"] == "d4rl" for ref in hopper["references"])
    assert local_api.client.get("/api/v1/environments/nope/nope").status_code == 404


def test_start_up_abandons_idle_uploads_and_keeps_recent_ones(request, tmp_path):
    import datetime as dt

    from bench.web.api.uploads import IDLE_DAYS

    settings = make_settings(request, tmp_path, "sqlite-local")
    api = make_api(settings, tmp_path)
    idle = api.upload(api.d4rl_bytes(), "alice/idle", complete=False)
    recent = api.upload(api.d4rl_bytes(seed=1), "alice/recent", complete=False)
    with api.registry.session.begin() as session:
        session.get(UploadRow, idle).updated_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=IDLE_DAYS + 1)
    api.client.__exit__(None, None, None)
    with TestClient(create_app(settings)) as client:  # a restart: start-up housekeeping runs
        owner = api.headers["owner"]
        assert client.get(f"/api/v1/uploads/{idle}", headers=owner).json()["state"] == "aborted"
        assert client.get(f"/api/v1/uploads/{recent}", headers=owner).json()["state"] == "open"
    assert not (settings.home / "uploads" / idle).exists() and (settings.home / "uploads" / recent).exists()
    api.registry.close()


def test_episode_statistics_arrays_and_frames_for_the_ui(local_api):
    from PIL import Image

    from bench.testing.data import random_trajectories

    api = local_api
    data = random_trajectories(np.random.default_rng(4), episodes=5, image_shape=(12, 16, 3))
    dataset_id = api.registry.publish(data, "alice/pixels").id
    base = f"/api/v1/datasets/{dataset_id}/-"
    stats = api.client.get(f"{base}/stats").json()
    assert sum(stats["length"]["histogram"]["counts"]) == 5 and stats["steps"] == int(data.lengths.sum())
    assert stats["return"]["mean"] == pytest.approx(float(np.mean(data.episode_returns())), rel=1e-5)
    episode = api.client.get(f"{base}/episodes/2").json()
    loaded = api.registry.load(dataset_id).episode(2)
    np.testing.assert_allclose(episode["actions"], loaded.actions, rtol=1e-6)
    assert episode["frames"] == {"pixels": {"count": len(loaded.actions) + 1, "shape": [12, 16, 3], "storage": "array"}}
    assert list(episode["observations"]) == ["state"]
    png = api.client.get(f"{base}/episodes/2/frames/pixels", params={"t": 1})
    assert png.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png.content))), loaded.observations["pixels"][1])
    assert api.client.get(f"{base}/episodes/9").status_code == 404
    assert api.client.get(f"{base}/episodes/2/frames/state", params={"t": 0}).status_code == 404
    assert api.client.get(f"{base}/episodes/2/frames/pixels", params={"t": 999}).status_code == 404
    assert api.client.get(f"{base}/episodes/download", params={"start": 0, "stop": 2}).status_code == 200


def test_a_ros_bag_logs_nested_camera_key_is_addressable(local_api, tmp_path):
    """Bug: camera keys of ROS-bag logs nest ("images/front"); the frame route took one path segment, so
    ``.../frames/images/front`` fell through to the dataset catch-all (400) and the UI showed a broken image."""
    from PIL import Image

    from bench.testing.data import write_ros_bag

    api = local_api
    write_ros_bag(tmp_path / "take0", ros=2)
    info = api.registry.import_path(tmp_path / "take0", "lab/bag", format="rosbag", source_options={"robot": "sawyer"})
    base = f"/api/v1/datasets/{info.id}/-"
    episode = api.client.get(f"{base}/episodes/0").json()
    assert "images/front" in episode["frames"]
    png = api.client.get(f"{base}/episodes/0/frames/images/front", params={"t": 2})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    stored = api.registry.load(info.id).episode(0).observations["images"]["front"][2]
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png.content))), stored)
    missing = api.client.get(f"{base}/episodes/0/frames/images/back", params={"t": 0})
    assert missing.status_code == 404 and "images/front" in missing.json()["detail"]


def test_a_simulated_episode_without_a_camera_is_drawn_in_its_environment(local_api):
    """The viewer's frames for state data: the episode put back into its environment; why not, where it cannot be."""
    from PIL import Image

    from bench.datasets.recipes.build import build
    from bench.datasets.rendering import episode_scene
    from bench.testing.data import random_trajectories

    api = local_api
    info = build(api.registry, "mujoco/hopper/random", episodes=2)
    base = f"/api/v1/datasets/{info.id}/-"
    assert api.client.get(f"{base}/episodes/1").json()["frames"] == {}  # no camera in the data
    described = api.client.get(f"{base}/episodes/1/rendered").json()
    loaded = api.registry.load(info.id)
    rows = len(loaded.episode(1)) + 1
    assert described["method"] == "replay" and described["frames"] == described["rows"] == rows
    png = api.client.get(f"{base}/episodes/1/rendered/frame", params={"t": rows - 1})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    with episode_scene(loaded.manifest["env"], loaded.episode(1)) as scene:
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png.content))), scene.frame(rows - 1))
    beyond = api.client.get(f"{base}/episodes/1/rendered/frame", params={"t": rows})
    assert beyond.status_code == 400 and f"rows 0 to {rows - 1}" in beyond.json()["detail"]
    assert api.client.get(f"{base}/episodes/2/rendered").status_code == 404
    assert api.client.get(f"{base}/episodes/0/rendered/frame", params={"t": -1}).status_code == 422
    plain = api.registry.publish(random_trajectories(np.random.default_rng(0), episodes=2), "alice/plain").id
    refused = api.client.get(f"/api/v1/datasets/{plain}/-/episodes/0/rendered")
    assert refused.status_code == 400 and "--env" in refused.json()["detail"]


def test_a_robot_log_folder_uploads_as_a_tar_and_trials_are_recorded_over_http(local_api, tmp_path):
    from bench.testing.data import write_robot_folder
    from bench.web.client import _deterministic_tar

    api = local_api
    write_robot_folder(tmp_path / "wipe", lengths=(5, 6))
    archive = _deterministic_tar(tmp_path / "wipe", tmp_path / "wipe.tar").read_bytes()
    response = api.upload(archive, "alice/wipe", filename="wipe.tar")
    assert response.status_code == 200, response.text
    dataset = response.json()["dataset"]
    assert "real-robot" in dataset["tags"] and "robot-franka" in dataset["tags"] and dataset["episodes"] == 2
    files = [f["name"] for f in api.client.get("/api/v1/datasets/alice/wipe/-/files").json()]
    assert "original/episode_000/front.mp4" in files and "media/front/episode_000000.mp4" in files
    original = api.client.get("/api/v1/datasets/alice/wipe/-/files/original/episode_000/steps.csv")
    assert original.content == (tmp_path / "wipe/episode_000/steps.csv").read_bytes()
    body = {"dataset": "alice/wipe", "policy": "iql", "phase": "offline", "task": "wipe",
            "trials": [{"success": True}, {"success": "failure", "judge": "bob"}]}
    assert api.client.post("/api/v1/robot-evals", json=body, headers=api.headers["owner"]).status_code == 201
    assert api.client.post("/api/v1/robot-evals", json=body, headers=api.headers["other"]).status_code == 403
    shown = api.client.get("/api/v1/robot-evals", params={"dataset": "alice/wipe"}).json()
    assert shown["summary"][0]["offline_success"]["successes"] == 1 and len(shown["trials"]) == 2
    found = api.client.get("/api/v1/datasets", params={"tag": "robot-franka", "published_after": "2000-01-01"}).json()
    assert [i["id"] for i in found["items"]] == ["alice/wipe-v1"]
    assert api.client.get("/api/v1/datasets", params={"published_before": "2000-01-01"}).json()["total"] == 0
