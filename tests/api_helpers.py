"""Shared pieces of the API tests: a server app with three users, and small datasets to publish."""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from bench.datasets import Registry
from bench.platform.accounts import Accounts
from bench.testing.data import random_trajectories, write_d4rl_file
from bench.web.api import create_app


@dataclass
class Api:
    client: TestClient
    registry: Registry
    accounts: Accounts
    headers: dict[str, dict[str, str]]  # "anonymous", "other" (bob), "owner" (alice), "admin" (root)
    tmp: Path

    def d4rl_bytes(self, seed: int = 0, episodes: int = 6) -> bytes:
        path = self.tmp / f"d4rl-{seed}-{episodes}.hdf5"
        if not path.exists():
            write_d4rl_file(path, random_trajectories(np.random.default_rng(seed), episodes=episodes))
        return path.read_bytes()

    def upload(self, data: bytes, dataset_id: str, who: str = "owner", filename: str = "data.hdf5",
               complete: bool = True, **options):
        create = self.client.post("/api/v1/uploads", headers=self.headers[who], json={
            "dataset_id": dataset_id, "filename": filename, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), **options})
        assert create.status_code in (200, 201), create.text
        upload_id = create.json()["id"]
        sent = self.client.put(f"/api/v1/uploads/{upload_id}", params={"offset": create.json()["received"]},
                               content=data[create.json()["received"]:], headers=self.headers[who])
        assert sent.status_code == 200, sent.text
        if not complete:
            return upload_id
        return self.client.post(f"/api/v1/uploads/{upload_id}/complete", headers=self.headers[who])

    def publish(self, dataset_id: str, seed: int = 0, **kwargs) -> str:
        data = random_trajectories(np.random.default_rng(seed), episodes=4)
        return self.registry.publish(data, dataset_id, **kwargs).id


def make_api(settings, tmp: Path):
    """A started app (lifespan run) with users alice (owner), bob (other) and root (admin)."""
    registry = Registry.open(settings)
    accounts = Accounts(registry.engine)
    headers = {"anonymous": {}}
    for role, name, admin in (("owner", "alice", False), ("other", "bob", False), ("admin", "root", True)):
        accounts.create_user(name, admin)
        token, _ = accounts.create_token(name, "test")
        headers[role] = {"Authorization": f"Bearer {token}"}
    client = TestClient(create_app(settings))
    client.__enter__()
    return Api(client, registry, accounts, headers, tmp)


def reopen_api(settings, tmp: Path):
    """The same server restarted (lifespan run again): its users exist, so only new tokens are made."""
    registry = Registry.open(settings)
    accounts = Accounts(registry.engine)
    headers = {"anonymous": {}}
    for role, name in (("owner", "alice"), ("other", "bob"), ("admin", "root")):
        token, _ = accounts.create_token(name, "again")
        headers[role] = {"Authorization": f"Bearer {token}"}
    client = TestClient(create_app(settings))
    client.__enter__()
    return Api(client, registry, accounts, headers, tmp)


def tar_bytes(members: list[tuple[str, bytes | None, str]]) -> bytes:
    """A tar from (name, content, kind) with kind 'file', 'dir' or 'symlink' (content is the link target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = content.decode()
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
