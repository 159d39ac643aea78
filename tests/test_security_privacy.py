"""Class 5 of the security review: private data never shows through leaderboards or run pushes.

A leaderboard may only name datasets its creator can read (a missing dataset and someone else's
private one get the same answer); every leaderboard read, list and Markdown view leaves out what the
reader may not read, aggregates included. A run push answers alike for a private version with the
right hash, a wrong hash, and a dataset that does not exist.
"""

from __future__ import annotations

import pytest

from tests.api_helpers import make_api
from tests.conftest import make_settings


@pytest.fixture(scope="module", params=["sqlite-local", "postgres-s3"])
def api(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("privacy")
    api = make_api(make_settings(request, tmp, request.param), tmp)
    api.secret = api.registry.show(api.publish("alice/secret-log", private=True))
    api.open = api.registry.show(api.publish("alice/open-log", seed=1))
    for dataset, policy in ((api.secret, "secret-policy"), (api.open, "open-policy")):
        added = api.client.post("/api/v1/robot-evals", headers=api.headers["owner"], json={
            "dataset": f"alice/{dataset.name}", "policy": policy, "phase": "offline", "task": f"{dataset.name} task",
            "trials": [{"success": True}, {"success": False}]})
        assert added.status_code == 201, added.text
    yield api
    api.client.__exit__(None, None, None)
    api.registry.close()


def _run(dataset_id: str, content_sha256: str, run_id: str) -> dict:
    return {"id": run_id, "sweep_id": "s", "algorithm": "bc", "config": {}, "config_hash": "h", "seed": 0,
            "dataset_id": dataset_id, "dataset_content_sha256": content_sha256, "plan": {"eval_episodes": 1},
            "status": "completed", "results": {}}


@pytest.mark.parametrize("kind", ["robot", "runs"])
def test_nobody_can_name_another_users_private_dataset_in_a_board(api, kind):
    extra = {"kind": "robot", "metric": "success_rate", "aggregation": []} if kind == "robot" else {}
    answers = []
    for dataset in ("alice/secret-log", "alice/no-such-log"):
        response = api.client.post("/api/v1/leaderboards", headers=api.headers["other"],
                                   json={"name": f"bob-{kind}-{dataset.split('/')[1]}", "datasets": [dataset], **extra})
        answers.append((response.status_code, response.json()["detail"].replace(dataset, "<dataset>")))
    assert answers[0] == answers[1] and answers[0][0] == 404


def test_a_board_over_private_and_public_logs_shows_readers_only_the_public_one(api):
    created = api.client.post("/api/v1/leaderboards", headers=api.headers["owner"], json={
        "name": "alice-robots", "kind": "robot", "metric": "success_rate", "aggregation": [],
        "datasets": ["alice/secret-log", "alice/open-log"]})
    assert created.status_code == 201, created.text
    for who in ("anonymous", "other"):
        shown = api.client.get("/api/v1/leaderboards/alice-robots", headers=api.headers[who])
        assert shown.status_code == 200
        text = shown.text + api.client.get("/api/v1/leaderboards/alice-robots/markdown", headers=api.headers[who]).text
        text += api.client.get("/api/v1/leaderboards", headers=api.headers[who]).text
        assert "secret" not in text, who
        assert "open-policy" in shown.text
    owner = api.client.get("/api/v1/leaderboards/alice-robots", headers=api.headers["owner"]).text
    assert "secret-policy" in owner and "open-policy" in owner
    admin = api.client.get("/api/v1/leaderboards/alice-robots", headers=api.headers["admin"]).text
    assert "secret-policy" in admin


def test_a_board_whose_data_later_turns_private_hides_it(api):
    version = api.registry.show(api.publish("alice/turns-private", seed=2))
    assert api.client.post("/api/v1/leaderboards", headers=api.headers["owner"], json={
        "name": "turning", "datasets": ["alice/turns-private", "alice/open-log"]}).status_code == 201
    assert "turns-private" in api.client.get("/api/v1/leaderboards/turning").text
    api.registry.update_settings(version.id, private=True)
    assert "turns-private" not in api.client.get("/api/v1/leaderboards/turning").text
    assert "turns-private" in api.client.get("/api/v1/leaderboards/turning", headers=api.headers["owner"]).text


def test_run_pushes_cannot_probe_private_names_or_hashes(api):
    answers = {}
    for label, dataset_id, content in (
            ("private, right hash", api.secret.id, api.secret.content_sha256),
            ("private, wrong hash", api.secret.id, "0" * 64),
            ("missing dataset", "alice/secret-log-v9", "1" * 64),
            ("missing name", "alice/never-was", api.secret.content_sha256)):
        response = api.client.post("/api/v1/runs", headers=api.headers["other"],
                                   json={"run": _run(dataset_id, content, f"probe{len(answers)}"), "curves": []})
        detail = response.json()["detail"].replace(content[:12], "<hash>")
        detail = detail.replace("alice/never-was", "alice/secret-log")
        answers[label] = (response.status_code, detail)
    assert len(set(answers.values())) == 1, answers
    assert next(iter(answers.values()))[0] == 409
