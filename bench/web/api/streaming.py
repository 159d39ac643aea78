"""Streamed downloads: files with HTTP Range (so clients resume), and whole versions as a tar stream.

Nothing is read whole into memory: files go out in 1 MiB pieces straight from storage (local
disk or S3), and the tar is produced header by header as it is sent.
"""

from __future__ import annotations

import re
import tarfile
from typing import Callable, Iterator, BinaryIO

from fastapi.responses import StreamingResponse

from bench.errors import InvalidInput

PIECE = 1 << 20
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class RangeNotSatisfiable(InvalidInput):
    """A Range header outside the file (HTTP 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (start, stop) byte range a Range header asks for; None for the whole file."""
    if not header:
        return None
    match = _RANGE.match(header.strip()) if len(header) <= 100 else None
    if not match:
        raise InvalidInput(f"unsupported Range header {header[:40]!r}; use 'bytes=START-' or 'bytes=START-END' "
                           "(at most 100 characters)")
    start = int(match[1])
    stop = int(match[2]) + 1 if match[2] else size
    if start >= size and size > 0 or stop <= start and size > 0:
        raise RangeNotSatisfiable(f"range {header[:60]!r} is outside the file's {size} bytes")
    return start, min(stop, size)


def _pieces(open_file: Callable[[], BinaryIO], start: int, stop: int) -> Iterator[bytes]:
    with open_file() as handle:
        handle.seek(start)
        remaining = stop - start
        while remaining > 0:
            piece = handle.read(min(PIECE, remaining))
            if not piece:
                raise IOError("file ended before its recorded size")
            remaining -= len(piece)
            yield piece


def file_response(open_file: Callable[[], BinaryIO], size: int, sha256: str | None, range_header: str | None,
                  filename: str, media_type: str = "application/octet-stream") -> StreamingResponse:
    selected = parse_range(range_header, size)
    headers = {"Accept-Ranges": "bytes", "Content-Disposition": f'attachment; filename="{filename}"'}
    if sha256:
        headers["ETag"] = f'"{sha256}"'
        headers["X-Content-SHA256"] = sha256
    if selected is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_pieces(open_file, 0, size), media_type=media_type, headers=headers)
    start, stop = selected
    headers["Content-Length"] = str(stop - start)
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return StreamingResponse(_pieces(open_file, start, stop), status_code=206, media_type=media_type, headers=headers)


def tar_stream(prefix: str, files: list[tuple[str, int, Callable[[], BinaryIO]]]) -> Iterator[bytes]:
    """A ustar/pax archive of (name, size, opener) under ``prefix/``, produced as it is sent."""
    for name, size, opener in files:
        info = tarfile.TarInfo(f"{prefix}/{name}")
        info.size = size
        info.mode = 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        yield from _pieces(opener, 0, size)
        if size % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


def tar_size(prefix: str, files: list[tuple[str, int, Callable[[], BinaryIO]]]) -> int:
    total = 2 * tarfile.BLOCKSIZE
    for name, size, _ in files:
        info = tarfile.TarInfo(f"{prefix}/{name}")
        info.size = size
        total += len(info.tobuf(format=tarfile.PAX_FORMAT)) + -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    return total
