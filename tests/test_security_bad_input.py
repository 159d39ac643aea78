"""Class 9 of the security review: bad input is a 4xx with a clear detail, never a 500 and never a server path.

Malformed HDF5 (object, compound, complex, reference and string dtypes; scalar or wrongly-ranked
arrays; groups where arrays belong; soft-link loops; a group containing itself; metadata that cannot
become JSON), Minari metadata, npz members, tar names, and routes (huge version numbers and Range
headers, malformed run times, concurrent pushes of one run, concurrent yanks of one version).
"""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import numpy as np
import pytest

from bench.datasets import Registry
from bench.platform.accounts import Accounts
from bench.testing import hostile
from bench.testing.data import random_trajectories, write_minari_dir
from bench.testing.services import api_server
from tests.api_helpers import make_api, tar_bytes
from tests.conftest import make_settings, settings_env


@pytest.fixture(scope="module")
def api(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-input")
    api = make_api(make_settings(request, tmp, "sqlite-local"), tmp)
    yield api
    api.client.__exit__(None, None, None)
    api.registry.close()


def _clear_4xx(api, response, *extra_paths) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, (str, list)) and detail
    text = json.dumps(detail)
    for path in (api.registry.settings.home, api.tmp, *extra_paths):
        assert str(path) not in text, text
    return text


@pytest.mark.parametrize("variant", sorted(hostile.malformed_hdf5_variants()))
def test_malformed_hdf5_uploads_are_4xx(api, tmp_path, variant):
    path = hostile.write_d4rl(tmp_path / f"{variant}.hdf5", hostile.malformed_hdf5_variants()[variant])
    response = api.upload(path.read_bytes(), f"alice/bad-{variant.replace('_', '-')}", filename="bad.hdf5")
    if variant == "metadata_not_json":  # imported: the odd metadata is kept as descriptions
        assert response.status_code == 200, response.text
        manifest = api.registry.manifest(response.json()["version"])
        assert json.dumps(manifest)  # plain JSON, NaN included as text
        return
    _clear_4xx(api, response, tmp_path)


@pytest.mark.parametrize("variant", sorted(hostile.minari_metadata_variants()))
def test_malformed_minari_metadata_is_4xx(api, tmp_path, variant):
    directory = write_minari_dir(tmp_path / "m" / "bad-v0", random_trajectories(np.random.default_rng(0), episodes=2))
    metadata_file = directory / "data" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata.update(hostile.minari_metadata_variants()[variant])
    metadata_file.write_text(json.dumps(metadata))
    members = [(f"bad-v0/{p.relative_to(directory).as_posix()}", p.read_bytes() if p.is_file() else None,
                "file" if p.is_file() else "dir") for p in sorted(directory.rglob("*"))]
    response = api.upload(tar_bytes([("bad-v0", None, "dir"), *members]), f"alice/minari-{variant.replace('_', '-')}",
                          filename="bad.tar")
    _clear_4xx(api, response, tmp_path)


@pytest.mark.parametrize("variant", ["member_not_npy", "structured_dtype", "object_dtype", "two_d_terminals",
                                     "scalar_observations", "vector_actions", "lying_header"])
def test_malformed_npz_uploads_are_4xx(api, tmp_path, variant):
    path = hostile.npz_variants(lambda name: tmp_path / f"{name}.npz")[variant]
    response = api.upload(path.read_bytes(), f"alice/npz-{variant.replace('_', '-')}", filename="bad.npz")
    _clear_4xx(api, response, tmp_path)


@pytest.mark.parametrize("names", [
    [("top", "dir"), ("top/" + "a" * 300, "file")],
    [("top", "dir"), ("top/" + "/".join(["d" * 50] * 80) + "/f", "file")],
    [("top", "dir"), ("top/" + "a/" * 3000 + "f", "file")],
    [("top", "dir"), ("top/x", "file"), ("top/x", "dir")],
    [("top", "dir"), ("top/x", "file"), ("top/x/y", "file")],
], ids=["long-component", "long-path", "deep", "file-and-dir", "file-as-parent"])
def test_hostile_tar_names_are_4xx(api, names):
    response = api.upload(hostile.named_tar(names), "alice/tarnames", filename="names.tar")
    _clear_4xx(api, response)
    assert not list((api.registry.settings.home / "uploads").glob("*/unpacked"))


@pytest.mark.parametrize("path", [
    "/api/v1/datasets/alice/x-v99999999999999999999",
    "/api/v1/datasets/alice/x-v2147483648/-/manifest",
    "/api/v1/datasets/alice/x-v99999999999999999999/-/episodes/0",
])
def test_out_of_range_versions_are_4xx(api, path):
    _clear_4xx(api, api.client.get(path))


def test_absurd_range_headers_are_4xx(api):
    version = api.publish("alice/ranged")
    url = f"/api/v1/datasets/{version}/-/files/episodes.parquet"
    for header in ("bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=" + "1" * 60 + "-2"):
        response = api.client.get(url, headers={"Range": header})
        assert response.status_code in (400, 416), response.text
        assert len(response.json()["detail"]) < 300


def _run(dataset, run_id: str, **extra) -> dict:
    return {"id": run_id, "sweep_id": "s", "algorithm": "bc", "config": {}, "config_hash": "h", "seed": 0,
            "dataset_id": dataset.id, "dataset_content_sha256": dataset.content_sha256,
            "plan": {"eval_episodes": 1}, "status": "completed", "results": {}, **extra}


@pytest.mark.parametrize("extra", [{"created_at": "yesterday"}, {"created_at": 12}, {"finished_at": "2026-13-45"},
                                   {"seed": 10**30}, {"started_at": "x" * 5000}])
def test_malformed_run_pushes_are_4xx(api, extra):
    dataset = api.registry.show(api.publish("alice/pushed"))
    response = api.client.post("/api/v1/runs", headers=api.headers["owner"],
                               json={"run": _run(dataset, f"bad{abs(hash(json.dumps(extra))) % 10**8}", **extra)})
    _clear_4xx(api, response)


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """A real `bench serve api` on PostgreSQL and S3: the races below need real concurrency."""
    tmp = tmp_path_factory.mktemp("races")
    settings = make_settings(request, tmp, "postgres-s3")
    registry = Registry.open(settings)
    accounts = Accounts(registry.engine)
    accounts.create_user("alice", False)
    token, _ = accounts.create_token("alice", "races")
    with api_server(settings_env(settings)) as running:
        yield running, registry, {"Authorization": f"Bearer {token}"}
    registry.close()


def _concurrently(count: int, call) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


@pytest.mark.postgres
@pytest.mark.s3
def test_concurrent_pushes_of_one_run_give_one_201_and_no_500(server):
    running, registry, headers = server
    dataset = registry.publish(random_trajectories(np.random.default_rng(3), episodes=3), "alice/raced")
    body = {"run": _run(dataset, "racedrun"), "curves": [{"kind": "eval", "phase": "offline", "step": 1, "return": 1.0}]}
    responses = _concurrently(8, lambda: httpx.post(f"{running.url}/api/v1/runs", json=body, headers=headers,
                                                    timeout=60))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1 and set(statuses) <= {200, 201, 409}, [r.text for r in responses]


@pytest.mark.postgres
@pytest.mark.s3
def test_concurrent_yanks_of_one_version_give_one_200_and_409s(server):
    running, registry, headers = server
    version = registry.publish(random_trajectories(np.random.default_rng(4), episodes=3), "alice/yanked").id
    responses = _concurrently(6, lambda: httpx.post(f"{running.url}/api/v1/datasets/{version}/-/yank",
                                                    json={"reason": "race"}, headers=headers, timeout=60))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1 and statuses.count(409) == 5, [r.text for r in responses]
