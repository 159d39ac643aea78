"""Reading a bench server's registry over HTTP: search, show, versions, cards and verified, resumable downloads.

The datasets layer's own view of a remote registry, so that ``Registry.load`` can fetch a version a
server holds (``BENCH_SERVER``, ``BENCH_TOKEN``), as ``minari.load_dataset(download=True)`` does; the
web layer's ``Client`` adds what changes a server (uploads, yanks, runs). Downloads resume (HTTP Range
into ``OUT.partial``), and every file is checked against the manifest's sha256 before the directory is
renamed to ``OUT``: a download is either complete and verified, or not there.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import httpx

from bench.datasets.format import MANIFEST, file_sha256
from bench.errors import (BenchError, Conflict, Forbidden, IntegrityError, InvalidInput, NotFound, PayloadTooLarge,
                          RateLimited, Unauthorized)

RETRIES = 5
TAR_ABOVE_FILES = 64  # a fresh download of a version with more files than this comes as one tar stream
ERRORS = {400: InvalidInput, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
          416: InvalidInput, 422: InvalidInput, 429: RateLimited}

Progress = Callable[[str, int, int], None]  # (what, done, total)


def quoted_id(dataset_id: str) -> str:
    return quote(dataset_id, safe="/")


class RemoteRegistry:
    """A bench server's datasets, read-only."""

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
            return checked(response)
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
        return self.get_json(f"/datasets/{quoted_id(dataset_id)}")

    def versions(self, dataset_id: str) -> list[dict[str, Any]]:
        return self.get_json(f"/datasets/{quoted_id(dataset_id)}/-/versions")

    def card(self, dataset_id: str) -> str:
        return self.request("GET", f"/datasets/{quoted_id(dataset_id)}/-/card").text

    def download(self, dataset_id: str, out: Path, episodes: tuple[int, int] | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
        """Download a version (or an episode range of it) into ``out``, verified, resuming a partial one."""
        report = progress or (lambda what, done, total: None)
        out = Path(out).expanduser()
        if out.exists():
            raise Conflict(f"{out} already exists; choose a new directory")
        base = f"/datasets/{quoted_id(dataset_id)}/-"
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
        if episodes is None and not partial.exists() and len(files) > TAR_ABOVE_FILES:
            # Many files (a large version's chunks): one tar stream instead of a request per file. Whatever it
            # does not bring whole (a broken connection) the loop below fetches file by file.
            self._fetch_tar(f"{base}/download", partial, files, lambda n: report("downloading", n, total))
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

    def _fetch_tar(self, url: str, partial: Path, files: list[dict[str, Any]], report: Callable[[int], None]) -> None:
        """The version's files from its tar stream into ``partial``: every member must be a file the version lists,
        of the listed size, and lands only at that name (sha256 checked afterwards, file by file)."""
        listed = {entry["name"]: entry for entry in files}
        done = 0
        try:
            with self.http.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    checked(response)
                with tarfile.open(fileobj=io.BufferedReader(_Chunks(response.iter_bytes(1 << 20))), mode="r|") as archive:
                    for member in archive:
                        name = member.name.partition("/")[2]
                        entry = listed.get(name)
                        if not member.isfile() or entry is None or member.size != entry["size"]:
                            raise IntegrityError(f"the server's archive holds {member.name[:100]!r}, which the "
                                                 "version does not list")
                        target = partial / name
                        if partial.resolve() not in target.resolve().parents:
                            raise IntegrityError(f"the server listed a file outside the version: {name!r}")
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with archive.extractfile(member) as source, open(target, "wb") as handle:
                            shutil.copyfileobj(source, handle, 1 << 20)
                        done += member.size
                        report(done)
        except (httpx.TransportError, tarfile.ReadError):
            pass  # what arrived is kept; the file-by-file loop fetches the rest

    def _fetch(self, url: str, params: dict[str, Any], target: Path, have: int, size: int,
               report: Callable[[int], None]) -> None:
        for attempt in range(RETRIES):
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                with self.http.stream("GET", url, params=params, headers=headers) as response:
                    if response.status_code == 429 and attempt + 1 < RETRIES:  # the server's rate limit: wait
                        response.read()
                        time.sleep(min(60.0, float(response.headers.get("Retry-After", "1"))))
                        continue
                    if response.status_code >= 400:
                        response.read()
                        checked(response)
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


class _Chunks(io.RawIOBase):
    """An iterator of byte strings as a readable file (what tarfile's stream mode reads)."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.left = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.left:
            self.left = next(self.chunks, None)
            if self.left is None:
                self.left = b""
                return 0
        n = min(len(buffer), len(self.left))
        buffer[:n], self.left = self.left[:n], self.left[n:]
        return n


def checked(response: httpx.Response) -> httpx.Response:
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
