"""The HTTP client the CLI uses when ``BENCH_SERVER`` (or ``--server``) names a bench server.

Uploads are resumable: the file's sha256 identifies the upload, so running the same upload again
asks the server how much it has and sends the rest. Downloads are resumable too (HTTP Range into
``OUT.partial``), and every file is checked against the manifest's sha256 before the directory is
renamed to ``OUT``: a download is either complete and verified, or not there.
"""

from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import httpx

from bench.datasets.format import MANIFEST, file_sha256
from bench.errors import (BenchError, Conflict, Forbidden, IntegrityError, InvalidInput, NotFound, PayloadTooLarge,
                          RateLimited, Unauthorized)

PART_BYTES = 8 << 20  # a part is one PUT; a cut-off part loses nothing (the server keeps what arrived)
RETRIES = 5
ERRORS = {400: InvalidInput, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
          416: InvalidInput, 422: InvalidInput, 429: RateLimited}

Progress = Callable[[str, int, int], None]  # (what, done, total)


def _path(dataset_id: str) -> str:
    return quote(dataset_id, safe="/")


class Client:
    def __init__(self, server: str, token: str | None = None, timeout: float = 300.0):
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.server + "/api/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    # -- plumbing ---------------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(RETRIES):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt + 1 == RETRIES or method not in ("GET", "HEAD"):
                    raise BenchError(f"cannot reach {self.server}: {exc}") from None
                time.sleep(0.5 * 2 ** attempt)
                continue
            if response.status_code == 429 and attempt + 1 < RETRIES:
                time.sleep(min(60.0, float(response.headers.get("Retry-After", "1"))))
                continue
            return _checked(response)
        raise AssertionError("unreachable")

    def get_json(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    # -- datasets -------------------------------------------------------------------------------------------
    def search(self, q: str | None = None, env: str | None = None, tag: str | None = None,
               namespace: str | None = None, limit: int = 50, offset: int = 0, **filters: Any) -> dict[str, Any]:
        """One page of the latest version of each matching dataset; ``filters``: min_steps, max_steps,
        published_after, published_before (see GET /datasets)."""
        return self.get_json("/datasets", q=q, env=env, tag=tag, namespace=namespace, limit=limit, offset=offset,
                             **filters)

    def show(self, dataset_id: str) -> dict[str, Any]:
        return self.get_json(f"/datasets/{_path(dataset_id)}")

    def versions(self, dataset_id: str) -> list[dict[str, Any]]:
        return self.get_json(f"/datasets/{_path(dataset_id)}/-/versions")

    def yank(self, dataset_id: str, reason: str) -> dict[str, Any]:
        return self.request("POST", f"/datasets/{_path(dataset_id)}/-/yank", json={"reason": reason}).json()

    def delete(self, dataset_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/datasets/{_path(dataset_id)}").json()

    def card(self, dataset_id: str) -> str:
        return self.request("GET", f"/datasets/{_path(dataset_id)}/-/card").text

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

    def download(self, dataset_id: str, out: Path, episodes: tuple[int, int] | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
        """Download a version (or an episode range of it) into ``out``, verified, resuming a partial one."""
        report = progress or (lambda what, done, total: None)
        out = Path(out).expanduser()
        if out.exists():
            raise Conflict(f"{out} already exists; choose a new directory")
        base = f"/datasets/{_path(dataset_id)}/-"
        if episodes is None:
            info = self.show(dataset_id)
            files = self.get_json(f"{base}/files")
            file_url, params = f"{base}/files", {}
        else:
            start, stop = episodes
            listing = self.get_json(f"{base}/episodes", start=start, stop=stop)
            info, files = listing["manifest"], listing["files"]
            file_url, params = f"{base}/episodes/files", {"start": start, "stop": stop}
        partial = out.with_name(out.name + ".partial")
        total, done = sum(f["size"] for f in files), 0
        for entry in files:
            target = partial / entry["name"]
            if partial.resolve() not in target.resolve().parents:
                raise IntegrityError(f"the server listed a file outside the version: {entry['name']!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            have = target.stat().st_size if target.exists() else 0
            if have > entry["size"]:
                target.unlink()
                have = 0
            if have < entry["size"]:
                self._fetch(f"{file_url}/{quote(entry['name'])}", params, target, have, entry["size"],
                            lambda n: report("downloading", done + n, total))
            if file_sha256(target) != entry["sha256"]:
                target.unlink()
                raise IntegrityError(f"{entry['name']}: sha256 differs from the manifest; run the download again")
            done += entry["size"]
            report("downloading", done, total)
        manifest = json.loads((partial / MANIFEST).read_text())
        listed = set(manifest["files"]) | {MANIFEST}
        if listed != {entry["name"] for entry in files}:
            raise IntegrityError("the server's file list differs from the manifest's")
        os.rename(partial, out)
        return info

    def _fetch(self, url: str, params: dict[str, Any], target: Path, have: int, size: int,
               report: Callable[[int], None]) -> None:
        for attempt in range(RETRIES):
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                with self.http.stream("GET", url, params=params, headers=headers) as response:
                    if response.status_code >= 400:
                        response.read()
                        _checked(response)
                    if have and response.status_code != 206:
                        have = 0  # the server sent the whole file: start it over
                    with open(target, "ab" if have else "wb") as handle:
                        for piece in response.iter_bytes(1 << 20):
                            handle.write(piece)
                            have += len(piece)
                            report(have)
                if have >= size:
                    return
            except httpx.TransportError as exc:
                if attempt + 1 == RETRIES:
                    raise BenchError(f"download of {target.name} stopped at {have} of {size} bytes ({exc}); "
                                     "run the same command again to resume") from None
                time.sleep(0.5 * 2 ** attempt)
                have = target.stat().st_size if target.exists() else 0

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


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code < 400:
        return response
    try:
        detail = response.json().get("detail")
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        detail = None
    if not isinstance(detail, str):
        detail = json.dumps(detail) if detail is not None else response.text[:300] or response.reason_phrase
    error = ERRORS.get(response.status_code)
    if error is None:
        raise BenchError(f"the server answered {response.status_code}: {detail}")
    raise error(detail)


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
