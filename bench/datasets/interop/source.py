"""What an importer hands back: the trajectories plus what the manifest should say about them.

A leaf module: the format modules, the real-robot layer (robot_logs.py) and the registry all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.datasets.trajectories import Trajectories


@dataclass
class SourceData:
    """What an importer read: the trajectories plus what the manifest should say about them."""

    trajectories: Trajectories
    source_format: str
    # Notes on how the source was interpreted (e.g. dropped transitions), kept in the manifest.
    notes: list[str] = field(default_factory=list)
    env: dict[str, Any] | None = None
    # True where ``env`` is a guess (from a file name), kept only if the environment's spaces fit the data.
    env_inferred: bool = False
    description: str | None = None
    source_metadata: dict[str, Any] = field(default_factory=dict)
    # Real-robot logs: camera videos for media/, the source files kept under original/, tags to add.
    media: dict[str, bytes | Path] = field(default_factory=dict)
    originals: dict[str, Path] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    # Files the importer made for this import only (e.g. re-encoded video clips); removed when the import ends.
    scratch: Path | None = None
