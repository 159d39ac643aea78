"""Dataset routes: search, show, versions, manifest, files, card; downloads whole, by file, by episode range;
yank, delete, and settings (tags, privacy).

Dataset ids contain slashes, so routes that act on a dataset put their verb after ``/-/``
(``/datasets/alice/demos-v1/-/files``): ``-`` cannot start an id segment, so no id is ambiguous.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from bench.datasets.cards import dataset_card
from bench.datasets.format import MANIFEST, file_sha256
from bench.datasets.ids import DatasetId
from bench.datasets.registry import VersionInfo
from bench.errors import IntegrityError, InvalidInput, NotFound
from bench.platform.accounts import Principal
from bench.web.api.services import Services, fast_json, principal, services
from bench.web.api.streaming import file_response, tar_size, tar_stream

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])

ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Principal, Depends(principal)]


def readable(svc: Services, caller: Principal, dataset_id: str) -> VersionInfo:
    """The version a caller may read; a private one they may not read does not exist for them."""
    info = svc.registry.show(dataset_id)
    if not svc.accounts.can_read(caller, info.namespace, info.private):
        raise NotFound(f"dataset {DatasetId.parse(dataset_id)} not found")
    return info


def public_json(info: VersionInfo) -> dict[str, Any]:
    values = info.to_json()
    values.pop("storage_path")  # where the server keeps files is its own business
    return values


@router.get("", summary="Search datasets: the latest published version of each match")
def search(svc: ServicesDep, caller: CallerDep,
           q: Annotated[str | None, Query(max_length=200, description="text in the id or description")] = None,
           env: Annotated[str | None, Query(max_length=300, description="environment name or gymnasium id")] = None,
           tag: Annotated[str | None, Query(max_length=64)] = None,
           namespace: Annotated[str | None, Query(max_length=300)] = None,
           min_steps: Annotated[int | None, Query(ge=0, le=10**12)] = None,
           max_steps: Annotated[int | None, Query(ge=0, le=10**12)] = None,
           published_after: Annotated[dt.date | None, Query(description="on or after this day (UTC)")] = None,
           published_before: Annotated[dt.date | None, Query(description="before this day (UTC)")] = None,
           limit: Annotated[int, Query(ge=1, le=500)] = 50,
           offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> dict[str, Any]:
    readable_namespaces = svc.accounts.writable_namespaces(caller)
    day = lambda d: dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc) if d else None  # noqa: E731
    total, items = svc.registry.search(q, env, tag, namespace, readable_namespaces, limit, offset, min_steps, max_steps,
                                       day(published_after), day(published_before))
    return fast_json({"total": total, "limit": limit, "offset": offset, "items": [public_json(i) for i in items]})


def _manifest(svc: Services, info: VersionInfo) -> dict[str, Any]:
    return _stored_manifest(svc, info)[0]


def _stored_manifest(svc: Services, info: VersionInfo) -> tuple[dict[str, Any], int]:
    """The version's manifest and its size in bytes, checked against the registry's sha256 and kept by that sha256
    (immutable): a download of a version of N files asks for it N times."""
    def load() -> tuple[dict[str, Any], int]:
        raw = svc.registry.storage.read_bytes(f"{info.storage_path}/{MANIFEST}")
        if hashlib.sha256(raw).hexdigest() != info.manifest_sha256:
            raise IntegrityError(f"{info.id} {MANIFEST}: sha256 differs from the registry's record; the stored "
                                 "version was changed")
        return json.loads(raw), len(raw)

    return svc.episodes.get(("manifest", info.manifest_sha256), load, lambda loaded: 4 * loaded[1])


def _file_list(manifest: dict[str, Any], manifest_size: int, manifest_sha256: str) -> list[dict[str, Any]]:
    files = [{"name": name, **entry} for name, entry in sorted(manifest["files"].items())]
    return files + [{"name": MANIFEST, "size": manifest_size, "sha256": manifest_sha256}]


@router.get("/{dataset_id:path}/-/versions", summary="Every published or yanked version of a dataset")
def versions(dataset_id: str, svc: ServicesDep, caller: CallerDep) -> list[dict[str, Any]]:
    found = svc.registry.versions(dataset_id)
    if not svc.accounts.can_read(caller, found[0].namespace, found[0].private):
        raise NotFound(f"dataset {DatasetId.parse(dataset_id).unversioned} not found")
    return [public_json(info) for info in found]


@router.get("/{dataset_id:path}/-/manifest", summary="The version's manifest.json")
def manifest(dataset_id: str, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    return _manifest(svc, readable(svc, caller, dataset_id))


@router.get("/{dataset_id:path}/-/files", summary="The version's files with sizes and sha256 (manifest last)")
def files(dataset_id: str, svc: ServicesDep, caller: CallerDep) -> list[dict[str, Any]]:
    info = readable(svc, caller, dataset_id)
    manifest, size = _stored_manifest(svc, info)
    return _file_list(manifest, size, info.manifest_sha256)


@router.get("/{dataset_id:path}/-/files/{name:path}", summary="One file of the version (HTTP Range supported)",
            response_class=StreamingResponse)
def file(dataset_id: str, name: str, svc: ServicesDep, caller: CallerDep,
         range: Annotated[str | None, Header()] = None) -> StreamingResponse:
    info = readable(svc, caller, dataset_id)
    manifest, size = _stored_manifest(svc, info)
    # Only names the manifest lists: nothing from the request reaches a path. Looked up, not listed: a version
    # of many files is downloaded one request per file.
    entry = {"size": size, "sha256": info.manifest_sha256} if name == MANIFEST else manifest["files"].get(name)
    if not isinstance(entry, dict):
        raise NotFound(f"{info.id} has no file {name!r}")
    storage, path = svc.registry.storage, f"{info.storage_path}/{name}"
    return file_response(lambda: storage.open(path), entry["size"], entry["sha256"], range, Path(name).name)


@router.get("/{dataset_id:path}/-/download", summary="The whole version as one tar stream",
            response_class=StreamingResponse)
def download(dataset_id: str, svc: ServicesDep, caller: CallerDep) -> StreamingResponse:
    info = readable(svc, caller, dataset_id)
    storage = svc.registry.storage
    entries = files(dataset_id, svc, caller)
    members = [(e["name"], e["size"], (lambda p=f"{info.storage_path}/{e['name']}": storage.open(p))) for e in entries]
    prefix = info.id.replace("/", "__")
    return StreamingResponse(tar_stream(prefix, members), media_type="application/x-tar", headers={
        "Content-Disposition": f'attachment; filename="{prefix}.tar"', "Content-Length": str(tar_size(prefix, members))})


def _subset(svc: Services, caller: Principal, dataset_id: str, start: int, stop: int) -> tuple[VersionInfo, Path]:
    info = readable(svc, caller, dataset_id)
    return info, svc.registry.subset_dir(info.id, start, stop)


def _subset_files(directory: Path) -> list[dict[str, Any]]:
    manifest = json.loads((directory / MANIFEST).read_text())
    return _file_list(manifest, (directory / MANIFEST).stat().st_size, file_sha256(directory / MANIFEST))


EpisodeStart = Annotated[int, Query(ge=0, le=10**9, description="first episode (inclusive)")]
EpisodeStop = Annotated[int, Query(ge=1, le=10**9, description="last episode (exclusive)")]


@router.get("/{dataset_id:path}/-/episodes", summary="Episodes start:stop as a bench-format version: its manifest")
def episodes_manifest(dataset_id: str, start: EpisodeStart, stop: EpisodeStop, svc: ServicesDep,
                      caller: CallerDep) -> dict[str, Any]:
    _, directory = _subset(svc, caller, dataset_id, start, stop)
    return {"manifest": json.loads((directory / MANIFEST).read_text()), "files": _subset_files(directory)}


@router.get("/{dataset_id:path}/-/episodes/files/{name:path}", summary="One file of an episode range (Range supported)",
            response_class=StreamingResponse)
def episodes_file(dataset_id: str, name: str, start: EpisodeStart, stop: EpisodeStop, svc: ServicesDep,
                  caller: CallerDep, range: Annotated[str | None, Header()] = None) -> StreamingResponse:
    info, directory = _subset(svc, caller, dataset_id, start, stop)
    listed = {entry["name"]: entry for entry in _subset_files(directory)}
    if name not in listed:
        raise NotFound(f"episodes {start}:{stop} of {info.id} have no file {name!r}")
    entry = listed[name]
    return file_response(lambda: open(directory / name, "rb"), entry["size"], entry["sha256"], range, Path(name).name)


@router.get("/{dataset_id:path}/-/episodes/download", summary="Episodes start:stop as one tar stream",
            response_class=StreamingResponse)
def episodes_download(dataset_id: str, start: EpisodeStart, stop: EpisodeStop, svc: ServicesDep,
                      caller: CallerDep) -> StreamingResponse:
    info, directory = _subset(svc, caller, dataset_id, start, stop)
    # Opened now: the subset cache may evict this directory while the tar streams (open files stay readable).
    members = [(e["name"], e["size"], (lambda h=open(directory / e["name"], "rb"): h)) for e in _subset_files(directory)]
    prefix = f"{info.id.replace('/', '__')}-episodes-{start}-{stop}"
    return StreamingResponse(tar_stream(prefix, members), media_type="application/x-tar", headers={
        "Content-Disposition": f'attachment; filename="{prefix}.tar"', "Content-Length": str(tar_size(prefix, members))})


@router.get("/{dataset_id:path}/-/card", summary="The dataset card (Markdown)", response_class=PlainTextResponse)
def card(dataset_id: str, svc: ServicesDep, caller: CallerDep) -> PlainTextResponse:
    info = readable(svc, caller, dataset_id)
    return PlainTextResponse(dataset_card(svc.registry, info.id), media_type="text/markdown")


class YankRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


@router.post("/{dataset_id:path}/-/yank", summary="Yank a version: still downloadable by its exact id, never 'latest'")
def yank(dataset_id: str, body: YankRequest, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    info = readable(svc, caller, dataset_id)
    svc.accounts.require_write(caller, info.namespace)
    return public_json(svc.registry.yank(dataset_id, body.reason))


class SettingsRequest(BaseModel):
    tags: list[str] | None = Field(default=None, max_length=50, description="tags to add")
    private: bool | None = None


@router.patch("/{dataset_id:path}/-/settings", summary="Add tags, or make a dataset private or public")
def update_settings(dataset_id: str, body: SettingsRequest, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    info = readable(svc, caller, dataset_id)
    svc.accounts.require_write(caller, info.namespace)
    return public_json(svc.registry.update_settings(info.id, body.tags, body.private))


@router.get("/{dataset_id:path}", summary="One version (namespace/name means its latest published version)")
def show(dataset_id: str, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    return public_json(readable(svc, caller, dataset_id))


@router.delete("/{dataset_id:path}", summary="Delete one exact version for good (owners and admins)")
def delete(dataset_id: str, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    target = DatasetId.parse(dataset_id)
    if target.version is None:
        raise InvalidInput(f"delete needs an exact version, e.g. {target}-v1")
    info = readable(svc, caller, dataset_id)
    svc.accounts.require_write(caller, info.namespace)
    return public_json(svc.registry.delete(info.id))
