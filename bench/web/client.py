"""The HTTP client the CLI and UI use when ``BENCH_SERVER`` (or ``--server``) names a bench server.

Reading (search, show, verified resumable downloads) is ``bench.datasets.remote.RemoteRegistry``'s;
this adds what changes a server. Uploads are resumable: the file's sha256 identifies the upload, so
running the same upload again asks the server how much it has and sends the rest.
"""

from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bench.datasets.format import file_sha256
from bench.datasets.remote import RETRIES, Progress, RemoteRegistry, quoted_id
from bench.errors import BenchError, Forbidden, InvalidInput, NotFound, PayloadTooLarge, Unauthorized

PART_BYTES = 8 << 20  # a part is one PUT; a cut-off part loses nothing (the server keeps what arrived)


class Client(RemoteRegistry):
    """A bench server: its registry (``RemoteRegistry``) plus uploads, yanks, deletions, runs and leaderboards."""

    def yank(self, dataset_id: str, reason: str) -> dict[str, Any]:
        return self.request("POST", f"/datasets/{quoted_id(dataset_id)}/-/yank", json={"reason": reason}).json()

    def delete(self, dataset_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/datasets/{quoted_id(dataset_id)}").json()

    def upload(self, path: Path, dataset_id: str, *, format: str | None = None, description: str | None = None,
               license: str | None = None, env_id: str | None = None, tags: list[str] | None = None,
               private: bool | None = None, scratch: Path | None = None,
               progress: Progress | None = None) -> dict[str, Any]:
        """Upload a file (or a directory, as a tar) and publish it; resumes an interrupted upload of it."""
        report = progress or (lambda what, done, total: None)
        path = Path(path).expanduser()
        if not path.exists():
            raise InvalidInput(f"{path}: no such file or directory")
        source, filename = path, path.name
        if path.is_dir():
            source = _deterministic_tar(path, (scratch or path.parent) / f".{path.name}.upload.tar")
            filename = f"{path.name}.tar"
        size = source.stat().st_size
        report("hashing", 0, size)
        sha256 = file_sha256(source)
        session = self.request("POST", "/uploads", json={
            "dataset_id": dataset_id, "filename": filename, "size": size, "sha256": sha256, "format": format,
            "description": description, "license": license, "env_id": env_id, "tags": tags or [],
            "private": private}).json()
        upload_id, received = session["id"], session["received"]
        with open(source, "rb") as handle:
            failures = 0
            while received < size:
                report("uploading", received, size)
                handle.seek(received)
                part = handle.read(PART_BYTES)
                try:
                    received = self.request("PUT", f"/uploads/{upload_id}", params={"offset": received},
                                            content=part, headers={"Content-Type": "application/octet-stream"}).json()["received"]
                    failures = 0
                except (BenchError, httpx.HTTPError) as exc:
                    if isinstance(exc, (Unauthorized, Forbidden, NotFound, PayloadTooLarge)):
                        raise
                    failures += 1
                    if failures >= RETRIES:
                        raise BenchError(f"upload {upload_id} stopped at {received} of {size} bytes ({exc}); "
                                         "run the same command again to resume") from None
                    time.sleep(0.5 * 2 ** failures)
                    received = self.request("GET", f"/uploads/{upload_id}").json()["received"]
        report("publishing", size, size)
        result = self.request("POST", f"/uploads/{upload_id}/complete").json()
        if source != path:
            source.unlink(missing_ok=True)
        return result

    # -- runs and leaderboards ------------------------------------------------------------------------------
    def push_run(self, run: dict[str, Any], curves: list[dict[str, Any]]) -> dict[str, Any]:
        return self.request("POST", "/runs", json={"run": run, "curves": curves}).json()

    def runs(self, **filters: Any) -> dict[str, Any]:
        return self.get_json("/runs", **filters)

    def run(self, run_id: str) -> dict[str, Any]:
        return self.get_json(f"/runs/{quote(run_id)}")

    def curves(self, run_id: str) -> list[dict[str, Any]]:
        return self.get_json(f"/runs/{quote(run_id)}/curves")

    def leaderboards(self) -> list[dict[str, Any]]:
        return self.get_json("/leaderboards")

    def leaderboard(self, name: str) -> dict[str, Any]:
        return self.get_json(f"/leaderboards/{quote(name)}")


def _deterministic_tar(directory: Path, target: Path) -> Path:
    """A tar of a directory whose bytes depend only on the files: the same upload hashes the same."""
    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    partial = target.with_name(target.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(directory, arcname=directory.name, recursive=False, filter=clean)
        for path in sorted(directory.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise InvalidInput(f"{path}: only regular files and directories can be uploaded")
            archive.add(path, arcname=f"{directory.name}/{path.relative_to(directory).as_posix()}", recursive=False,
                        filter=clean)
    os.replace(partial, target)
    return target
