"""Who may do what, exhaustively (anonymous / other user / owner / admin x every write endpoint), and
that nothing a client sends can reach outside the storage root or the upload directory."""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.api_helpers import make_api, tar_bytes
from tests.conftest import make_settings

ROLES = ("anonymous", "other", "owner", "admin")


@pytest.fixture(scope="module")
def api(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("security")
    api = make_api(make_settings(request, tmp, "sqlite-local"), tmp)
    api.accounts.create_group("lab", api.accounts.principal_of("alice"))
    yield api
    api.client.__exit__(None, None, None)
    api.registry.close()


_counter = iter(range(10**6))


def fresh(prefix: str) -> str:
    return f"{prefix}{next(_counter)}"


def _upload_session(api, complete_bytes=False):
    data = api.d4rl_bytes()
    name = fresh("up")
    created = api.client.post("/api/v1/uploads", headers=api.headers["owner"], json={
        "dataset_id": f"alice/{name}", "filename": "d.hdf5", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    upload_id = created.json()["id"]
    if complete_bytes:
        api.client.put(f"/api/v1/uploads/{upload_id}", params={"offset": 0}, content=data, headers=api.headers["owner"])
    return upload_id, data


def _run(api):
    dataset = api.registry.show(api.publish(f"alice/{fresh('runs')}"))
    run_id = fresh("run")
    run = {"id": run_id, "sweep_id": "s", "algorithm": "bc", "config": {}, "config_hash": "h", "seed": 0,
           "dataset_id": dataset.id, "dataset_content_sha256": dataset.content_sha256, "plan": {"eval_episodes": 1},
           "status": "completed", "results": {}}
    return run


# Each case: a setup that makes fresh state, the request it enables, and the status per role.
# Owner means alice: owner of namespace alice/, member of group lab, owner of the upload/run/board.
def cases():
    def upload_create(api):
        data = api.d4rl_bytes()
        return "POST", "/api/v1/uploads", {"json": {"dataset_id": f"alice/{fresh('c')}", "filename": "d.hdf5",
                                                    "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}

    def upload_part(api):
        upload_id, data = _upload_session(api)
        return "PUT", f"/api/v1/uploads/{upload_id}", {"params": {"offset": 0}, "content": data[:100]}

    def upload_progress(api):
        upload_id, _ = _upload_session(api)
        return "GET", f"/api/v1/uploads/{upload_id}", {}

    def upload_complete(api):
        upload_id, _ = _upload_session(api, complete_bytes=True)
        return "POST", f"/api/v1/uploads/{upload_id}/complete", {}

    def upload_abort(api):
        upload_id, _ = _upload_session(api)
        return "DELETE", f"/api/v1/uploads/{upload_id}", {}

    def yank(api):
        return "POST", f"/api/v1/datasets/{api.publish(f'alice/{fresh(chr(121))}')}/-/yank", {"json": {"reason": "bad"}}

    def settings(api):
        return "PATCH", f"/api/v1/datasets/{api.publish(f'alice/{fresh(chr(115))}')}/-/settings", {"json": {"tags": ["x"]}}

    def delete_version(api):
        return "DELETE", f"/api/v1/datasets/{api.publish(f'alice/{fresh(chr(100))}')}", {}

    def group_dataset_yank(api):
        return "POST", f"/api/v1/datasets/{api.publish(f'lab/{fresh(chr(103))}')}/-/yank", {"json": {"reason": "bad"}}

    def push_run(api):
        return "POST", "/api/v1/runs", {"json": {"run": _run(api), "curves": []}}

    def delete_run(api):
        run = _run(api)
        api.client.post("/api/v1/runs", json={"run": run, "curves": []}, headers=api.headers["owner"])
        return "DELETE", f"/api/v1/runs/{run['id']}", {}

    def public_dataset(api):
        return api.publish(f"alice/{fresh('boarded')}").rsplit("-v", 1)[0]

    def create_board(api):
        return "POST", "/api/v1/leaderboards", {"json": {"name": fresh("board"), "datasets": [public_dataset(api)]}}

    def delete_board(api):
        name = fresh("board")
        api.client.post("/api/v1/leaderboards", json={"name": name, "datasets": [public_dataset(api)]},
                        headers=api.headers["owner"])
        return "DELETE", f"/api/v1/leaderboards/{name}", {}

    def create_user(api):
        return "POST", "/api/v1/users", {"json": {"name": fresh("user")}}

    def list_users(api):
        return "GET", "/api/v1/users", {}

    def create_token_for_alice(api):
        return "POST", "/api/v1/tokens", {"json": {"name": "t", "user": "alice"}}

    def revoke_alice_token(api):
        token = api.client.post("/api/v1/tokens", json={"name": "t"}, headers=api.headers["owner"]).json()
        return "DELETE", f"/api/v1/tokens/{token['id']}", {}

    def create_group(api):
        return "POST", "/api/v1/groups", {"json": {"name": fresh("group")}}

    def add_member(api):
        # A fresh user each time: adding bob would make "other" a member of lab for the cases after it.
        return "POST", "/api/v1/groups/lab/members", {"json": {"user": api.accounts.create_user(fresh("member"))["name"]}}

    def group_namespace(api):
        return "POST", "/api/v1/namespaces", {"json": {"name": fresh("ns"), "group": "lab"}}

    def robot_trials(api):
        dataset = api.publish(f"alice/{fresh('log')}")
        return "POST", "/api/v1/robot-evals", {"json": {"dataset": dataset, "policy": "val", "phase": "offline",
                                                         "task": "open drawer", "trials": [{"success": True}]}}

    def user_namespace(api):
        return "POST", "/api/v1/namespaces", {"json": {"name": fresh("ns")}}

    owner_only = {"anonymous": 401, "other": 403, "owner": 200, "admin": 200}
    return {
        "upload create": (upload_create, {**owner_only, "owner": 201, "admin": 201}),
        "upload part": (upload_part, owner_only),
        "upload progress": (upload_progress, owner_only),
        "upload complete": (upload_complete, owner_only),
        "upload abort": (upload_abort, owner_only),
        "dataset yank": (yank, owner_only),
        "dataset settings": (settings, owner_only),
        "dataset delete": (delete_version, owner_only),
        "group dataset yank": (group_dataset_yank, owner_only),
        "run push": (push_run, {"anonymous": 401, "other": 201, "owner": 201, "admin": 201}),
        "run delete": (delete_run, owner_only),
        "leaderboard create": (create_board, {"anonymous": 401, "other": 201, "owner": 201, "admin": 201}),
        "leaderboard delete": (delete_board, owner_only),
        "user create": (create_user, {"anonymous": 401, "other": 403, "owner": 403, "admin": 201}),
        "user list": (list_users, {"anonymous": 401, "other": 403, "owner": 403, "admin": 200}),
        "token create for alice": (create_token_for_alice, {"anonymous": 401, "other": 403, "owner": 201, "admin": 201}),
        "token revoke": (revoke_alice_token, {"anonymous": 401, "other": 404, "owner": 200, "admin": 200}),
        "group create": (create_group, {"anonymous": 401, "other": 201, "owner": 201, "admin": 201}),
        "group add member": (add_member, owner_only),
        "namespace for group": (group_namespace, {**owner_only, "owner": 201, "admin": 201}),
        "robot trials": (robot_trials, {**owner_only, "owner": 201, "admin": 201}),
        "namespace for user": (user_namespace, {"anonymous": 401, "other": 403, "owner": 403, "admin": 201}),
    }


CASES = cases()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(CASES))
def test_authorization_matrix(api, name, role):
    setup, expected = CASES[name]
    method, path, kwargs = setup(api)
    response = api.client.request(method, path, headers=api.headers[role], **kwargs)
    assert response.status_code == expected[role], (name, role, response.text)
    assert "detail" in response.json() or response.status_code < 400


def test_every_write_route_is_in_the_matrix(api):
    """A new write endpoint must be added to the matrix above."""
    covered = {("POST", "/api/v1/uploads"), ("PUT", "/api/v1/uploads/{upload_id}"),
               ("POST", "/api/v1/uploads/{upload_id}/complete"), ("DELETE", "/api/v1/uploads/{upload_id}"),
               ("POST", "/api/v1/datasets/{dataset_id}/-/yank"), ("PATCH", "/api/v1/datasets/{dataset_id}/-/settings"),
               ("DELETE", "/api/v1/datasets/{dataset_id}"), ("POST", "/api/v1/runs"), ("DELETE", "/api/v1/runs/{run_id}"),
               ("POST", "/api/v1/leaderboards"), ("DELETE", "/api/v1/leaderboards/{name}"), ("POST", "/api/v1/users"),
               ("POST", "/api/v1/tokens"), ("DELETE", "/api/v1/tokens/{token_id}"), ("POST", "/api/v1/groups"),
               ("POST", "/api/v1/groups/{group}/members"), ("POST", "/api/v1/namespaces"),
               ("POST", "/api/v1/robot-evals")}
    schema = api.client.get("/api/v1/openapi.json").json()
    writes = {(method.upper(), path) for path, operations in schema["paths"].items() for method in operations
              if method in ("post", "put", "patch", "delete")}
    assert writes == covered


HOSTILE_DATASET_PATHS = [
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/etc/passwd", "alice/../../bench.db",
    "/etc/passwd", "alice//x", "alice/x%00", "alice/" + "a" * 5000, "alice/\u00e9t\u00e9", "alice/demo-v0",
    "alice/demo-v1/-/files/../../../../bench.db", "alice/demo-v1/-/files/%2e%2e/%2e%2e/bench.db",
    "alice/demo-v1/-/files//etc/passwd", "alice/demo-v1/-/files/steps.zarr/../../../../bench.db",
    "alice/demo-v1/-/episodes/files/../../bench.db?start=0&stop=1", "alice/demo-v1/-/nothing",
]


def test_no_request_path_reaches_outside_the_version(api):
    api.publish("alice/demo")
    secret = (api.registry.settings.home / "bench.db").read_bytes()[:64]
    for path in HOSTILE_DATASET_PATHS:
        for role in ("anonymous", "admin"):
            response = api.client.get(f"/api/v1/datasets/{path}", headers=api.headers[role])
            assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:200])
            assert secret not in response.content and b"root:" not in response.content


def test_upload_names_and_archives_cannot_escape_the_upload_directory(api, tmp_path):
    owner = api.headers["owner"]
    for filename in ("../evil.hdf5", "a/b.hdf5", "/etc/passwd", ".hidden", "x\x00.hdf5", ".."):
        response = api.client.post("/api/v1/uploads", headers=owner, json={
            "dataset_id": f"alice/{fresh('n')}", "filename": filename, "size": 10, "sha256": "0" * 64})
        assert response.status_code == 400, (filename, response.text)
    outside = api.registry.settings.home.parent / "escaped"
    archives = {
        "parent": [("v1", None, "dir"), ("v1/../../escaped", b"boom", "file")],
        "absolute": [("v1", None, "dir"), (str(outside), b"boom", "file")],
        "symlink": [("v1", None, "dir"), ("v1/link", b"/etc", "symlink")],
        "two tops": [("a", None, "dir"), ("b", None, "dir")],
    }
    for label, members in archives.items():
        response = api.upload(tar_bytes(members), f"alice/{fresh('tar')}", filename="v1.tar")
        assert response.status_code == 422, (label, response.text)
    assert not outside.exists() and not os.path.lexists(api.registry.settings.home / "escaped")
