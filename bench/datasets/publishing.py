"""Publishing a version, step by step (docs/format.md, "Publishing"):

  1. read and validate the input completely; bad input stops here with nothing written;
  2. reserve the next version number: a ``staging`` row, committed (a unique constraint makes two
     concurrent imports take two numbers);
  3. build the version in a local staging directory and verify it decodes to the input;
  4. move or upload it to storage, manifest last;
  5. flip the row to ``published`` in one transaction.
Readers only ever see ``published`` (or ``yanked``) rows, so a crash at any point leaves nothing
visible; ``gc`` (housekeeping.py) removes staging rows whose writer is gone, with their files.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

import bench
from bench.datasets.catalogue import resolve_environment, tie_to_catalogue
from bench.datasets.format import MANIFEST, file_sha256, write_version
from bench.datasets.ids import DatasetId
from bench.datasets.interop import SourceData, read_source
from bench.datasets.storage import Storage
from bench.datasets.trajectories import EpisodeParts, Trajectories
from bench.errors import Conflict, IntegrityError, InvalidInput
from bench.platform import db
from bench.platform.db import DatasetRow, DatasetTagRow, VersionRow, VersionState
from bench.platform.environments import spaces_of
from bench.platform.settings import Settings


class Publisher:
    """Turns inputs into published versions; ``Registry.import_path`` and ``Registry.publish`` use it."""

    def __init__(self, session: Callable, storage: Storage, settings: Settings):
        self.session, self.storage, self.settings = session, storage, settings

    def import_path(
        self,
        path: str | Path,
        dataset_id: str,
        format: str | None = None,
        allow_nonfinite: bool = False,
        description: str | None = None,
        license: str | None = None,
        env_id: str | None = None,
        env_kwargs: dict[str, Any] | None = None,
        progress: Callable[[str], None] | None = None,
        tags: list[str] | None = None,
        private: bool | None = None,
        source_options: dict[str, Any] | None = None,
    ) -> str:
        """Import a file or directory (format detected unless given) as the next version; return its id.

        ``env_id`` names the gymnasium environment that evaluates the data; its spaces then
        describe the data and must match the arrays. ``source_options`` go to the importer
        (e.g. a real-robot log's robot, task and lab).
        """
        report = progress or (lambda stage: None)
        target = DatasetId.parse(dataset_id)
        self.check_publishable(target)
        report(f"reading {Path(path).name}")
        source = read_source(Path(path), format, source_options, self.settings.import_limits)
        try:
            return self._publish_source(source, target, Path(path), env_id, env_kwargs, description, license,
                                        allow_nonfinite, progress, tags, private)
        finally:
            if source.scratch is not None:
                shutil.rmtree(source.scratch, ignore_errors=True)

    def _publish_source(self, source: SourceData, target: DatasetId, path: Path, env_id: str | None,
                        env_kwargs: dict[str, Any] | None, description: str | None, license: str | None,
                        allow_nonfinite: bool, progress: Callable[[str], None] | None, tags: list[str] | None,
                        private: bool | None) -> str:
        env = tie_to_catalogue(source.env)
        if env_id:
            env = resolve_environment(env_id, env_kwargs)
            adopt_env_spaces(source.trajectories, env)
        elif env is not None and source.env_inferred:
            try:
                adopt_env_spaces(source.trajectories, env)
            except InvalidInput as exc:  # a guess that does not fit is dropped, and the manifest says so
                source.notes.append(f"not tied to {env['id']} (from the file name): {exc}")
                env = None
        return self.publish(
            source.trajectories,
            str(target),
            description=description or source.description,
            license=license,
            env=env,
            provenance=provenance_of(source, path),
            allow_nonfinite=allow_nonfinite,
            progress=progress,
            tags=sorted(set(tags or []) | set(source.tags)),
            private=private,
            media=source.media or None,
            originals=source.originals or None,
        )

    def publish(
        self,
        data: Trajectories | EpisodeParts,
        dataset_id: str,
        *,
        description: str | None = None,
        license: str | None = None,
        env: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        media: dict[str, bytes | Path] | None = None,
        originals: dict[str, Path] | None = None,
        allow_nonfinite: bool = False,
        progress: Callable[[str], None] | None = None,
        tags: list[str] | None = None,
        private: bool | None = None,
    ) -> str:
        """Publish trajectories as the next version of ``namespace/name``.

        In-memory trajectories are validated whole before anything is reserved; EpisodeParts (an input
        larger than the import memory budget) are validated part by part as they are written to staging,
        and a bad part removes the staging directory and row, so nothing is left either way.

        ``tags`` are added to the dataset's tags; ``private`` (if given) sets who may read it. Returns the
        new version's id.
        """
        report = progress or (lambda stage: None)
        target = DatasetId.parse(dataset_id)
        tags = check_tags(tags or [])
        self.check_publishable(target)
        if isinstance(data, Trajectories):
            report("validating")
            data.validate(allow_nonfinite=allow_nonfinite)
        row_id, version = self._reserve(target)
        full_id = target.with_version(version)
        storage_path = storage_path_of(full_id)
        staging = self.settings.staging_dir / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        try:
            report(f"writing and verifying {full_id}")
            manifest = write_version(staging, data, {
                "id": str(full_id),
                "namespace": full_id.namespace,
                "name": full_id.name,
                "version": version,
                "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "description": description,
                "license": license,
                "env": env,
                "provenance": provenance or {"source_format": "python", "importer": f"bench {bench.__version__}"},
            # Whole trajectories were validated above; parts are validated as they are written.
            }, media=media, originals=originals, allow_nonfinite=allow_nonfinite or isinstance(data, Trajectories))
            expected = getattr(data, "expected_content_sha256", None)
            if expected is not None and manifest["content_sha256"] != expected:
                raise InvalidInput("the arrays do not match the source manifest's content_sha256; the copy is corrupt")
            manifest_path = staging / MANIFEST
            manifest_sha = file_sha256(manifest_path)
            size = sum(entry["size"] for entry in manifest["files"].values()) + manifest_path.stat().st_size
            report(f"storing {len(manifest['files'])} files")
            self.storage.publish_dir(staging, storage_path)
            self._check_stored(storage_path, manifest)
            report("publishing")
            with self.session.begin() as session:
                row = session.get(VersionRow, row_id)
                row.state = VersionState.PUBLISHED
                row.published_at = db.utcnow()
                row.episodes = manifest["counts"]["episodes"]
                row.steps = manifest["counts"]["steps"]
                row.size_bytes = size
                row.manifest_sha256 = manifest_sha
                row.content_sha256 = manifest["content_sha256"]
                row.observation_space = manifest["observation_space"]
                row.action_space = manifest["action_space"]
                row.env = env
                row.description = description
                row.license = license
                row.source_format = (provenance or {}).get("source_format")
                row.writer_pid = None
                row.writer_host = None
                apply_dataset_settings(session, row.dataset, tags, private)
        except BaseException:
            # Undo everything this attempt wrote; the staging row goes too, so nothing is left.
            shutil.rmtree(staging, ignore_errors=True)
            try:
                self.storage.remove(storage_path)
                with self.session.begin() as session:
                    session.execute(sa.delete(VersionRow).where(
                        VersionRow.id == row_id, VersionRow.state == VersionState.STAGING))
                    delete_if_empty(session, target)
            except Exception:  # the original error matters more; gc will finish the cleanup
                pass
            raise
        return str(full_id)

    def check_publishable(self, target: DatasetId) -> None:
        if target.version is None:
            return
        with self.session() as session:
            existing = find_version_row(session, target)
            if existing is not None and existing.state != VersionState.STAGING:
                raise Conflict(f"{target} is already a published version; versions are immutable "
                               f"(import into {target.unversioned} to create the next one)")
            next_version = self._next_version(session, target)
        if target.version != next_version:
            raise InvalidInput(f"{target}: the next version of {target.unversioned} is v{next_version}")

    def _next_version(self, session, target: DatasetId) -> int:
        latest = session.scalar(
            sa.select(sa.func.max(VersionRow.version)).join(DatasetRow)
            .where(DatasetRow.namespace == target.namespace, DatasetRow.name == target.name)
        )
        return (latest or 0) + 1

    def _reserve(self, target: DatasetId) -> tuple[int, int]:
        """Insert a staging row for the next version; retry when a concurrent import took it."""
        for _ in range(50):
            try:
                with self.session.begin() as session:
                    dataset = session.scalar(sa.select(DatasetRow).where(
                        DatasetRow.namespace == target.namespace, DatasetRow.name == target.name))
                    if dataset is None:
                        dataset = DatasetRow(namespace=target.namespace, name=target.name)
                        session.add(dataset)
                        session.flush()
                    version = self._next_version(session, target)
                    if target.version is not None and version != target.version:
                        raise Conflict(f"{target} was taken by a concurrent import; the next version is v{version}")
                    row = VersionRow(
                        dataset_id=dataset.id, version=version, state=VersionState.STAGING,
                        storage_path=storage_path_of(target.with_version(version)),
                        writer_host=socket.gethostname(), writer_pid=os.getpid(),
                    )
                    session.add(row)
                    session.flush()
                    return row.id, version
            except SqlIntegrityError:
                continue
        raise Conflict(f"could not reserve a version of {target.unversioned}: too many concurrent imports")

    def _check_stored(self, storage_path: str, manifest: dict[str, Any]) -> None:
        stored = self.storage.sizes(storage_path)
        for name, entry in manifest["files"].items():
            if stored.get(name) != entry["size"]:
                raise IntegrityError(f"{storage_path}/{name}: stored size {stored.get(name)} != {entry['size']}")


def find_version_row(session, target: DatasetId) -> VersionRow | None:
    return session.scalar(
        sa.select(VersionRow).join(DatasetRow)
        .where(DatasetRow.namespace == target.namespace, DatasetRow.name == target.name,
               VersionRow.version == target.version)
    )


def adopt_env_spaces(data: Trajectories | EpisodeParts, env: dict[str, Any]) -> None:
    observation_space, action_space = spaces_of(env)
    first = data.first() if isinstance(data, EpisodeParts) else data
    for name, space, sample in (("observation", observation_space, first.observations), ("action", action_space, first.actions)):
        if isinstance(space, gym.spaces.Box) and not isinstance(sample, dict):
            if tuple(np.shape(sample)[1:]) != space.shape:
                raise InvalidInput(f"{env['id']}'s {name} space has shape {space.shape} but the data's {name}s have "
                                   f"shape {tuple(np.shape(sample)[1:])}")
    data.observation_space, data.action_space = observation_space, action_space


_TAG = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,63}")


def check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise InvalidInput(f"tag {tag!r} is invalid; tags use lower-case letters, digits, '_', '-' and '.', "
                               "start with a letter or digit, and are at most 64 characters")
    return sorted(set(tags))


def apply_dataset_settings(session, dataset: DatasetRow, tags: list[str], private: bool | None) -> None:
    existing = {tag.tag for tag in dataset.tags}
    for tag in tags:
        if tag not in existing:
            dataset.tags.append(DatasetTagRow(tag=tag))
    if private is not None:
        dataset.private = private


def delete_if_empty(session, target: DatasetId) -> None:
    """Drop a dataset name that has no versions left (its first import failed)."""
    has_versions = sa.select(VersionRow.id).where(VersionRow.dataset_id == DatasetRow.id).exists()
    session.execute(sa.delete(DatasetRow).where(
        DatasetRow.namespace == target.namespace, DatasetRow.name == target.name, ~has_versions))


def storage_path_of(target: DatasetId) -> str:
    return f"{target.namespace}/{target.name}/v{target.version}"


def provenance_of(source: SourceData, path: Path) -> dict[str, Any]:
    files = []
    candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in candidates:
        files.append({"name": file.relative_to(path.parent if path.is_file() else path).as_posix(),
                      "sha256": file_sha256(file), "size": file.stat().st_size})
    return {
        "source_format": source.source_format,
        "source_files": files,
        "importer": f"bench {bench.__version__} ({source.source_format} importer)",
        "notes": source.notes,
        "source_metadata": source.source_metadata,
    }
