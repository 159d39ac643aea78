"""Dataset ids: ``namespace/name-vN``, with a namespace that may be nested (``metaworld/drawer-open``).

Character set, per path segment: ASCII letters, digits, ``_``, ``-`` and ``.``; a segment starts
with a letter or digit and is at most 64 characters. So no empty segments, no ``.`` or ``..``,
no leading ``-``. A name may not itself end in ``-v<digits>``: that suffix is the version.
At most 4 namespace segments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.errors import InvalidInput

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
MAX_VERSION = 2**31 - 1  # the database's integer column
_VERSION_SUFFIX = re.compile(r"^(?P<name>.+)-v(?P<version>\d+)$")
MAX_NAMESPACE_DEPTH = 4


@dataclass(frozen=True, order=True)
class DatasetId:
    namespace: str
    name: str
    version: int | None = None  # None means "the latest published version"

    @classmethod
    def parse(cls, text: str) -> "DatasetId":
        """Parse ``namespace/name`` or ``namespace/name-vN``; raise InvalidInput naming the problem."""
        if not isinstance(text, str) or not text:
            raise InvalidInput("dataset id is empty; expected namespace/name or namespace/name-vN")
        segments = text.split("/")
        if len(segments) < 2:
            raise InvalidInput(f"dataset id {text!r} has no namespace; expected namespace/name[-vN]")
        if len(segments) - 1 > MAX_NAMESPACE_DEPTH:
            raise InvalidInput(f"dataset id {text!r} nests deeper than {MAX_NAMESPACE_DEPTH} namespace levels")
        for segment in segments:
            if not _SEGMENT.fullmatch(segment):
                shown = segment if segment else "(empty)"
                raise InvalidInput(
                    f"dataset id {text!r}: segment {shown!r} is invalid; segments use letters, digits, "
                    "'_', '-', '.', start with a letter or digit, and are at most 64 characters"
                )
        *namespace, last = segments
        version = None
        match = _VERSION_SUFFIX.match(last)
        if match:
            last, version = match["name"], int(match["version"])
            if version < 1:
                raise InvalidInput(f"dataset id {text!r}: versions start at v1")
            if version > MAX_VERSION:
                raise InvalidInput(f"dataset id {text!r}: versions go up to v{MAX_VERSION}")
            if _VERSION_SUFFIX.match(last):
                raise InvalidInput(f"dataset id {text!r}: a name may not end in -vN itself")
        return cls("/".join(namespace), last, version)

    def with_version(self, version: int) -> "DatasetId":
        return DatasetId(self.namespace, self.name, version)

    @property
    def unversioned(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return self.unversioned if self.version is None else f"{self.unversioned}-v{self.version}"
