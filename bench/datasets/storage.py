"""Where version files live, addressed by an fsspec URL: a local directory or ``s3://bucket/prefix``.

Versions are built in a local staging directory and then handed to ``publish_dir``, which
moves (local) or uploads (remote) every file with the manifest last, so a reader that finds
a manifest finds everything it lists.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import fsspec

from bench.datasets.format import MANIFEST, file_sha256, list_files, stream_sha256
from bench.errors import IntegrityError

class Storage:
    def __init__(self, url: str, options: dict[str, Any] | None = None):
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url, **(options or {}))
        self.root = self.root.rstrip("/")
        self.is_local = "file" in _protocols(self.fs)
        if self.is_local:
            self.fs = fsspec.filesystem("file", auto_mkdir=True)  # writes create their directories, as on S3
            Path(self.root).mkdir(parents=True, exist_ok=True)

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}" if relative else self.root

    def local_path(self, relative: str) -> Path:
        assert self.is_local, "only local storage has local paths"
        return Path(self.path(relative))

    def exists(self, relative: str) -> bool:
        return self.fs.exists(self.path(relative))

    def read_bytes(self, relative: str) -> bytes:
        return self.fs.cat_file(self.path(relative))

    def open(self, relative: str, mode: str = "rb"):
        return self.fs.open(self.path(relative), mode)

    def sizes(self, relative: str) -> dict[str, int]:
        """Every file below a directory, relative to it, with its size."""
        base = self.path(relative).rstrip("/")
        if not self.fs.exists(base):
            return {}
        found = self.fs.find(base, detail=True)
        prefix = _strip_protocol(self.fs, base) + "/"
        return {
            _strip_protocol(self.fs, name)[len(prefix):]: int(info.get("size") or 0)
            for name, info in found.items()
        }

    def sha256(self, relative: str) -> str:
        with self.open(relative) as handle:
            return stream_sha256(handle)

    def publish_dir(self, local_dir: Path, relative: str) -> None:
        """Move or upload a staged version directory; the manifest arrives last."""
        if self.is_local:
            target = self.local_path(relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(local_dir, target)  # atomic on one filesystem: the directory appears whole
                return
            except OSError:
                shutil.copytree(local_dir, target.with_name(target.name + ".partial"))
                os.rename(target.with_name(target.name + ".partial"), target)
                shutil.rmtree(local_dir)
                return
        files = list_files(local_dir)
        # One batched call: s3fs uploads the files concurrently. The manifest goes after all of them.
        self.fs.put([str(local_dir / name) for name in files], [self.path(f"{relative}/{name}") for name in files])
        self.fs.put_file(str(local_dir / MANIFEST), self.path(f"{relative}/{MANIFEST}"))
        shutil.rmtree(local_dir)

    def download_dir(self, relative: str, local_dir: Path, files: dict[str, dict[str, Any]]) -> None:
        """Copy a version to a local directory, verifying each file's sha256; manifest last."""
        partial = local_dir.with_name(f"{local_dir.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        names = list(files)
        for name in names:
            (partial / name).parent.mkdir(parents=True, exist_ok=True)
        self.fs.get([self.path(f"{relative}/{name}") for name in names], [str(partial / name) for name in names])
        for name, entry in files.items():
            if file_sha256(partial / name) != entry["sha256"]:
                shutil.rmtree(partial, ignore_errors=True)
                raise IntegrityError(f"{relative}/{name}: sha256 differs from the manifest")
        (partial / MANIFEST).write_bytes(self.read_bytes(f"{relative}/{MANIFEST}"))
        local_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(partial, local_dir)
        except OSError:  # another process cached the same version first; theirs is as good
            shutil.rmtree(partial, ignore_errors=True)

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write one file whole: readers see the old or the new content, never a part."""
        if self.is_local:
            target = self.local_path(relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            # One partial file per writer: two processes writing the same file (a shared model cache
            # entry) must not replace each other's half-written partial.
            partial = target.with_name(f"{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
            partial.write_bytes(data)
            os.replace(partial, target)
        else:
            self.fs.pipe_file(self.path(relative), data)  # an object PUT is atomic

    def remove(self, relative: str) -> None:
        """Remove a directory with everything below it, or one file."""
        target = self.path(relative)
        if self.is_local:
            if os.path.isfile(target):
                os.remove(target)
            else:
                shutil.rmtree(target, ignore_errors=True)
        elif self.fs.exists(target):
            self.fs.rm(target, recursive=True)

    def list_dirs(self, relative: str = "") -> list[str]:
        base = self.path(relative)
        if not self.fs.exists(base):
            return []
        prefix = _strip_protocol(self.fs, base).rstrip("/") + "/"
        return sorted(
            _strip_protocol(self.fs, info["name"])[len(prefix):]
            for info in self.fs.ls(base, detail=True)
            if info["type"] == "directory"
        )


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _strip_protocol(fs: fsspec.AbstractFileSystem, path: str) -> str:
    return fs._strip_protocol(path).rstrip("/")
