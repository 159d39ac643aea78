"""Resumable uploads: create a session, send parts at offsets, ask how far it got, complete -> publish.

Parts stream to a file in the server's upload directory (never whole in memory); a part cut off
mid-way keeps what arrived, so the client continues from ``received``. Completion checks the
size and sha256 the client declared, then imports the file exactly as ``bench datasets import``
does: validation, staging, storage, manifest last, one transaction. Any failure leaves no version.
A directory (a bench version or a Minari dataset) is uploaded as a tar of it and unpacked safely.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
import socket
import tarfile
import uuid
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from bench.datasets.format import file_sha256
from bench.datasets.housekeeping import pid_alive
from bench.datasets.ids import DatasetId
from bench.datasets.interop import IMPORT_FORMATS
from bench.datasets.interop.guards import TooLarge, check_relative_name
from bench.datasets.publishing import check_tags
from bench.errors import BenchError, Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge
from bench.platform import db
from bench.platform.accounts import Principal, require_user
from bench.platform.db import UploadRow, UploadState
from bench.platform.settings import ImportLimits
from bench.web.api.datasets import public_json
from bench.web.api.services import Services, principal, scrub_paths, services

router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"])
ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Principal, Depends(principal)]

IMPORTING = UploadState.IMPORTING
IDLE_DAYS = 7  # an open upload with no new part for this long is abandoned at the next start-up
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_locks: dict[str, asyncio.Lock] = {}


class UnprocessableUpload(BenchError):
    """The uploaded file arrived whole but is not a dataset bench can import (HTTP 422)."""


class UploadCreate(BaseModel):
    dataset_id: str = Field(max_length=400, description="namespace/name, or namespace/name-vN for an exact next version")
    filename: str = Field(max_length=200, description="the file's name; its extension selects the importer "
                                                      "(a directory is sent as NAME.tar)")
    size: int = Field(ge=1, le=2**62)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: str | None = Field(default=None, description="one of " + ", ".join(IMPORT_FORMATS) + "; default: detected")
    description: str | None = Field(default=None, max_length=10000)
    license: str | None = Field(default=None, max_length=200)
    env_id: str | None = Field(default=None, max_length=200, description="gymnasium id that evaluates the data")
    tags: list[str] = Field(default_factory=list, max_length=50)
    private: bool | None = None


def upload_dir(svc: Services, upload_id: str) -> Path:
    return svc.registry.settings.home / "uploads" / upload_id


def _json(row: UploadRow) -> dict[str, Any]:
    return {"id": row.id, "dataset_id": row.dataset_id, "filename": row.filename, "size": row.size,
            "sha256": row.sha256, "received": row.received, "state": row.state, "version": row.version_id,
            "error": row.error, "options": {k: v for k, v in row.options.items() if k != "importer"},
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def _owned(svc: Services, caller: Principal, upload_id: str, session) -> UploadRow:
    require_user(caller)
    row = session.get(UploadRow, upload_id) if _UPLOAD_ID.fullmatch(upload_id) else None
    if row is None:
        raise NotFound(f"no upload {upload_id!r}")
    if row.user_id != caller.user_id and not caller.is_admin:
        raise Forbidden(f"upload {upload_id} belongs to another user")
    return row


@router.post("", status_code=201, summary="Start an upload (or resume the open one for the same file and dataset)")
def create(body: UploadCreate, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    require_user(caller)
    target = DatasetId.parse(body.dataset_id)
    svc.accounts.require_write(caller, target.namespace)
    if not _FILENAME.fullmatch(body.filename) or body.filename in {".", ".."}:
        raise InvalidInput(f"file name {body.filename!r} must be a plain name of letters, digits, '_', '-' and '.'")
    if body.format is not None and body.format not in IMPORT_FORMATS:
        raise InvalidInput(f"unknown import format {body.format!r}; choose one of {', '.join(IMPORT_FORMATS)}")
    limit = svc.registry.settings.upload_max_bytes
    if body.size > limit:
        raise PayloadTooLarge(f"the file has {body.size} bytes; this server accepts uploads up to {limit}")
    check_tags(body.tags)
    svc.registry.check_publishable(target)
    with svc.registry.session.begin() as session:
        existing = session.scalar(sa.select(UploadRow).where(
            UploadRow.user_id == caller.user_id, UploadRow.dataset_id == str(target), UploadRow.sha256 == body.sha256,
            UploadRow.size == body.size, UploadRow.filename == body.filename, UploadRow.state == UploadState.OPEN))
        if existing is not None and (upload_dir(svc, existing.id) / "data").is_file():
            return {**_json(existing), "resumed": True}
        options = body.model_dump(include={"format", "description", "license", "env_id", "tags", "private"})
        row = UploadRow(id=uuid.uuid4().hex, user_id=caller.user_id, dataset_id=str(target), filename=body.filename,
                        size=body.size, sha256=body.sha256, received=0, state=UploadState.OPEN, options=options)
        session.add(row)
        directory = upload_dir(svc, row.id)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").touch()
        session.flush()
        return {**_json(row), "resumed": False}


@router.get("", summary="Your upload sessions, newest first")
def list_uploads(svc: ServicesDep, caller: CallerDep,
                 state: Annotated[str | None, Query(max_length=16)] = None) -> list[dict[str, Any]]:
    require_user(caller)
    query = sa.select(UploadRow).where(UploadRow.user_id == caller.user_id).order_by(UploadRow.created_at.desc())
    if state:
        query = query.where(UploadRow.state == state)
    with svc.registry.session() as session:
        return [_json(row) for row in session.scalars(query.limit(200))]


@router.get("/{upload_id}", summary="How far an upload got")
def progress(upload_id: str, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    with svc.registry.session() as session:
        return _json(_owned(svc, caller, upload_id, session))


@router.put("/{upload_id}", summary="Send the bytes starting at `offset` (which must equal `received`)",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def send_part(upload_id: str, request: Request, offset: Annotated[int, Query(ge=0, le=2**62)],
                    svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    def check() -> UploadRow:
        with svc.registry.session() as session:
            row = _owned(svc, caller, upload_id, session)
            if row.state != UploadState.OPEN:
                raise Conflict(f"upload {upload_id} is {row.state}; parts go to open uploads only")
            if offset != row.received:
                raise Conflict(f"upload {upload_id} has received {row.received} bytes; send the part at offset "
                               f"{row.received}, not {offset}")
            return row

    lock = _locks.setdefault(upload_id, asyncio.Lock())
    if lock.locked():
        raise Conflict(f"another part of upload {upload_id} is being received; wait for it")
    async with lock:
        row = await run_in_threadpool(check)
        path = upload_dir(svc, upload_id) / "data"
        written, too_large, cut_off = 0, False, False
        handle = await run_in_threadpool(open, path, "r+b")
        try:
            handle.seek(offset)
            try:
                async for piece in request.stream():
                    if offset + written + len(piece) > row.size:
                        too_large = True
                        break
                    handle.write(piece)
                    written += len(piece)
            except ClientDisconnect:
                cut_off = True  # keep what arrived: the client continues from `received`
            handle.flush()
            handle.truncate(offset + written)
        finally:
            handle.close()

        def record() -> dict[str, Any]:
            with svc.registry.session.begin() as session:
                # Conditional, for servers with several worker processes: only one part per offset counts.
                moved = session.execute(sa.update(UploadRow).where(UploadRow.id == upload_id, UploadRow.received == offset,
                                                                   UploadRow.state == UploadState.OPEN)
                                        .values(received=offset + written, updated_at=db.utcnow()))
                if moved.rowcount != 1:
                    raise Conflict(f"upload {upload_id} moved on while this part arrived; ask for its progress")
                return _json(session.get(UploadRow, upload_id))

        state = await run_in_threadpool(record)
    if too_large:
        raise PayloadTooLarge(f"upload {upload_id} declared {row.size} bytes; this part goes past the end "
                              f"(kept the first {state['received']})")
    if cut_off:
        raise InvalidInput(f"the part was cut off; {state['received']} bytes received so far")
    return state


@router.post("/{upload_id}/complete", summary="Check the file and publish it as the next version")
def complete(upload_id: str, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    with svc.registry.session.begin() as session:
        row = _owned(svc, caller, upload_id, session)
        if row.state == UploadState.COMPLETED:
            return {**_json(row), "version": row.version_id}
        if row.state != UploadState.OPEN:
            raise Conflict(f"upload {upload_id} is {row.state}")
        if row.received != row.size:
            raise Conflict(f"upload {upload_id} is incomplete: {row.received} of {row.size} bytes received")
        claimed = session.execute(sa.update(UploadRow).where(UploadRow.id == upload_id, UploadRow.state == UploadState.OPEN)
                                  .values(state=IMPORTING, updated_at=db.utcnow(),
                                          options={**row.options, "importer": f"{socket.gethostname()}:{os.getpid()}"}))
        if claimed.rowcount != 1:
            raise Conflict(f"upload {upload_id} is being completed by another request")
        details = dict(dataset_id=row.dataset_id, filename=row.filename, sha256=row.sha256, options=dict(row.options))
    directory = upload_dir(svc, upload_id)
    try:
        if file_sha256(directory / "data") != details["sha256"]:
            raise UnprocessableUpload("the received file's sha256 differs from the one declared; upload it again")
        source = _unpack(directory, details["filename"], svc.registry.settings.import_limits)
        options = details["options"]
        version = svc.registry.import_path(source, details["dataset_id"], format=options.get("format"),
                                           description=options.get("description"), license=options.get("license"),
                                           env_id=options.get("env_id"), tags=options.get("tags"),
                                           private=options.get("private"))
    except BaseException as exc:
        # Messages name files as the uploader knows them, never where this server keeps them.
        shown = details["filename"]
        message = scrub_paths(str(exc) or type(exc).__name__, {
            directory / "named" / shown: shown, directory.resolve() / "named" / shown: shown,
            directory / "unpacked": shown, directory.resolve() / "unpacked": shown,
            directory.resolve(): shown, directory: shown})
        _finish(svc, upload_id, UploadState.FAILED, error=message)
        shutil.rmtree(directory, ignore_errors=True)
        shown_message = message if message.startswith(f"{shown}:") else f"{shown}: {message}"
        if isinstance(exc, PayloadTooLarge):
            raise PayloadTooLarge(shown_message) from None
        if isinstance(exc, (InvalidInput, UnprocessableUpload)):
            raise UnprocessableUpload(shown_message) from None
        raise
    shutil.rmtree(directory, ignore_errors=True)
    state = _finish(svc, upload_id, UploadState.COMPLETED, version=version.id)
    return {**state, "dataset": public_json(version)}


@router.delete("/{upload_id}", summary="Abandon an open upload and delete what it received")
def abort(upload_id: str, svc: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    with svc.registry.session.begin() as session:
        row = _owned(svc, caller, upload_id, session)
        if row.state != UploadState.OPEN:
            raise Conflict(f"upload {upload_id} is {row.state}; only open uploads can be abandoned")
        row.state, row.updated_at = UploadState.ABORTED, db.utcnow()
    shutil.rmtree(upload_dir(svc, upload_id), ignore_errors=True)
    return progress(upload_id, svc, caller)


def _finish(svc: Services, upload_id: str, state: str, version: str | None = None, error: str | None = None) -> dict:
    with svc.registry.session.begin() as session:
        row = session.get(UploadRow, upload_id)
        row.state, row.version_id, row.error, row.updated_at = state, version, error, db.utcnow()
        return _json(row)


def _unpack(directory: Path, filename: str, limits: ImportLimits) -> Path:
    """The path to import: the file itself, renamed to its name, or a tar of a directory unpacked safely.

    A tar's member list is checked whole before anything is written: only files and directories,
    nothing outside the upload, no sparse files (a few bytes that claim gigabytes), at most
    ``max_files`` members of bounded name length and depth, and their sizes within ``max_bytes``.
    """
    data = directory / "data"
    if not filename.endswith(".tar"):
        named = directory / "named" / filename
        named.parent.mkdir(exist_ok=True)
        os.replace(data, named)
        return named
    target = (directory / "unpacked").resolve()
    try:
        with tarfile.open(data, "r:") as archive:
            members, total = [], 0
            for member in archive:
                members.append(member)
                if len(members) > limits.max_files:
                    raise TooLarge(f"the archive holds more than {limits.max_files} members (BENCH_IMPORT_MAX_FILES)")
                shown = member.name[:100]
                if not (member.isfile() or member.isdir()):
                    raise UnprocessableUpload(f"the archive holds {shown!r}, which is not a file or directory")
                if member.issparse():
                    raise UnprocessableUpload(f"the archive member {shown!r} is a sparse file; archive it without --sparse")
                try:
                    check_relative_name(member.name, limits, "the archive")
                except InvalidInput as exc:
                    raise UnprocessableUpload(str(exc)) from None
                destination = (target / member.name).resolve()
                if destination != target and target not in destination.parents:
                    raise UnprocessableUpload(f"the archive member {shown!r} points outside the archive")
                total += member.size
                if total > limits.max_bytes:
                    raise TooLarge(f"the archive's files add up to more than {limits.max_bytes} bytes "
                                   "(BENCH_IMPORT_MAX_BYTES)")
            kinds: dict[str, bool] = {}
            for member in members:
                name = os.path.normpath(member.name)
                if kinds.setdefault(name, member.isdir()) != member.isdir():
                    raise UnprocessableUpload(f"the archive holds {member.name[:100]!r} both as a file and as a directory")
            archive.extractall(target, members=members, filter="data")
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise UnprocessableUpload(f"not a readable tar archive ({type(exc).__name__})") from None
    tops = [p for p in target.iterdir()] if target.is_dir() else []
    if len(tops) != 1 or not tops[0].is_dir():
        raise UnprocessableUpload("a directory upload must be a tar holding exactly one top-level directory")
    return tops[0]


def housekeeping(svc: Services) -> list[str]:
    """At start-up: fail completions this host was running when it died (gc removes their staging),
    and abandon uploads nobody has sent a part to for ``IDLE_DAYS``; delete their bytes."""
    host = socket.gethostname()
    idle_since = db.utcnow() - dt.timedelta(days=IDLE_DAYS)
    ended = []
    with svc.registry.session.begin() as session:
        for row in session.scalars(sa.select(UploadRow).where(UploadRow.state.in_([IMPORTING, UploadState.OPEN]))):
            importer_host, _, pid = str(row.options.get("importer", "")).partition(":")
            if row.state == IMPORTING and importer_host == host and pid.isdigit() and not pid_alive(int(pid)):
                row.state = UploadState.FAILED
                row.error = "the server stopped while publishing this upload; nothing was published; upload it again"
                ended.append(row.id)
            elif row.state == UploadState.OPEN and _aware(row.updated_at) < idle_since:
                row.state = UploadState.ABORTED
                row.error = f"no part arrived for {IDLE_DAYS} days"
                ended.append(row.id)
    for upload_id in ended:
        shutil.rmtree(upload_dir(svc, upload_id), ignore_errors=True)
    return ended


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
