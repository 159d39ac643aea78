"""Real-robot logs as bench versions: episodes of synchronized frames (proprioception, commands,
camera images, timestamps) with per-episode labels, and no simulator behind them.

Every importer (plain folder, LeRobot v3, ROS bags) reads its source into ``RobotEpisode`` objects;
``to_source`` turns them into one layout (docs/robot-logs.md):

- a log episode of N synchronized frames becomes N observations and N-1 steps: the command sent at
  frame i leads to frame i+1; the last frame's command has no next observation and is dropped;
- ``observations/state`` is the proprioception; small camera streams given as images become uint8
  arrays ``observations/images/<camera>``; videos stay compressed in ``media/<camera>/episode_NNNNNN.mp4``
  with ``observations/frame/<camera>`` giving each observation's frame in it;
- ``infos/timestamp`` (per observation, seconds from the episode's start); rewards are zeros (a log
  has no reward function: its label is ``success``); every episode ends truncated;
- episode attributes ``success`` (when labeled: all episodes or none), ``operator``, ``notes``,
  ``task``, ``started_at``, ``source``; the robot, lab, rate and cameras go in the manifest's
  provenance (``source_metadata.robot``) and as tags (``real-robot``, ``robot-<name>``, ``lab-<name>``);
  the source files are kept under ``original/``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets.interop.source import SourceData
from bench.datasets.trajectories import Trajectories
from bench.datasets.video import decode_mp4
from bench.errors import InvalidInput

ROBOT_TAG = "real-robot"


def robot_cameras(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A real-robot log's cameras (docs/robot-logs.md), from its manifest; {} for other datasets."""
    robot = ((manifest.get("provenance") or {}).get("source_metadata") or {}).get("robot") or {}
    return robot.get("cameras") or {}


VIDEO_FILES = "media/{camera}/episode_{index:06d}.mp4"  # a video camera's file per episode


def video_file(camera: str, index: int) -> str:
    """Where a log's episode ``index`` of ``camera`` is kept, when the camera is stored as video."""
    return VIDEO_FILES.format(camera=camera, index=index)


@dataclass
class RobotEpisode:
    state: np.ndarray  # (N, d) proprioception at each frame
    actions: np.ndarray  # (N, a) the command sent at each frame
    timestamps: np.ndarray  # (N,) seconds
    videos: dict[str, Path | bytes] = field(default_factory=dict)  # camera -> mp4 of exactly N frames
    images: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> (N, H, W, 3) uint8
    success: bool | None = None
    operator: str | None = None
    notes: str | None = None
    task: str | None = None
    started_at: str | None = None
    source: str | None = None  # which file or directory it came from


def read_labels(root: Path) -> dict[str, dict[str, Any]]:
    """Per-episode labels from ``root/labels.csv`` (column ``episode`` names each episode), as the folder and
    bag layouts share them; {} when there is no such file."""
    labels: dict[str, dict[str, Any]] = {}
    if (root / "labels.csv").is_file():
        with open(root / "labels.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                if "episode" not in row:
                    raise InvalidInput("labels.csv needs an 'episode' column naming each episode's directory")
                labels[row["episode"]] = row
    return labels


def parse_success(value: Any, where: str) -> bool | None:
    """A success label from a CSV/JSON cell: true/false/1/0/yes/no/success/failure, or blank for none."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    if text in {"", "none", "unknown", "na", "n/a"}:
        return None
    if text in {"1", "true", "yes", "y", "success", "succeeded", "s"}:
        return True
    if text in {"0", "false", "no", "n", "failure", "failed", "f", "fail"}:
        return False
    raise InvalidInput(f"{where}: success label {value!r} is not one of true/false, 1/0, yes/no, success/failure")


def to_source(episodes: list[RobotEpisode], *, source_format: str, robot: str | None, lab: str | None,
              task: str | None, fps: float | None, clock: str, originals: dict[str, Path],
              notes: list[str] | None = None, description: str | None = None) -> SourceData:
    if not episodes:
        raise InvalidInput("the log has no episodes")
    cameras: dict[str, dict[str, Any]] = {}
    media: dict[str, Path | bytes] = {}
    for index, episode in enumerate(episodes):
        where = f"episode {index} ({episode.source or 'unnamed'})"
        n = len(episode.timestamps)
        if n < 2:
            raise InvalidInput(f"{where} has {n} frame(s); a log episode needs at least 2 (one step)")
        for name, array in (("state", episode.state), ("actions", episode.actions)):
            if array.ndim != 2 or len(array) != n:
                raise InvalidInput(f"{where}: {name} has shape {array.shape}, expected ({n}, dims) for {n} frames")
            if not np.isfinite(array).all():
                raise InvalidInput(f"{where}: {name} has NaN or infinite values")
        if np.any(np.diff(episode.timestamps) < 0):
            raise InvalidInput(f"{where}: timestamps go backwards")
        for camera, video in episode.videos.items():
            frames = decode_mp4(video)
            if len(frames) != n:
                raise InvalidInput(f"{where}: camera {camera!r} has {len(frames)} frames for {n} synchronized frames")
            described = cameras.setdefault(camera, {"storage": "video", "height": frames.shape[1],
                                                    "width": frames.shape[2], "files": VIDEO_FILES.replace("{camera}", camera)})
            if described["storage"] != "video":
                raise InvalidInput(f"{where}: camera {camera!r} is a video here but images in another episode")
            media[video_file(camera, index)[len("media/"):]] = video
        for camera, images in episode.images.items():
            if images.dtype != np.uint8 or images.ndim != 4 or len(images) != n:
                raise InvalidInput(f"{where}: camera {camera!r} images must be uint8 ({n}, H, W, C), got "
                                   f"{images.dtype} {images.shape}")
            described = cameras.setdefault(camera, {"storage": "array", "height": images.shape[1], "width": images.shape[2]})
            if described["storage"] != "array" or (described["height"], described["width"]) != images.shape[1:3]:
                raise InvalidInput(f"{where}: camera {camera!r} changes size or storage between episodes")
    for key in ("state", "actions"):
        widths = {getattr(e, key).shape[1] for e in episodes}
        if len(widths) != 1:
            raise InvalidInput(f"{key} has different widths across episodes: {sorted(widths)}")
    labels = [e.success for e in episodes]
    if any(label is None for label in labels) and any(label is not None for label in labels):
        unlabeled = [i for i, label in enumerate(labels) if label is None]
        raise InvalidInput(f"success labels are given for some episodes but not for {unlabeled[:10]}; label all or none")
    for camera in cameras:
        missing = [i for i, e in enumerate(episodes) if camera not in e.videos and camera not in e.images]
        if missing:
            raise InvalidInput(f"camera {camera!r} is missing from episodes {missing[:10]}")

    lengths = np.array([len(e.timestamps) - 1 for e in episodes], dtype=np.int64)
    observations: dict[str, Any] = {"state": np.concatenate([e.state for e in episodes]).astype(np.float32)}
    arrays = {c: np.concatenate([e.images[c] for e in episodes]) for c, d in cameras.items() if d["storage"] == "array"}
    if arrays:
        observations["images"] = arrays
    videos = [c for c, d in cameras.items() if d["storage"] == "video"]
    if videos:
        observations["frame"] = {c: np.concatenate([np.arange(len(e.timestamps), dtype=np.int32) for e in episodes])
                                 for c in videos}
    actions = np.concatenate([e.actions[:-1] for e in episodes]).astype(np.float32)
    steps = int(lengths.sum())
    truncations = np.zeros(steps, dtype=bool)
    truncations[np.cumsum(lengths) - 1] = True
    timestamps = np.concatenate([e.timestamps - e.timestamps[0] for e in episodes]).astype(np.float64)

    def text_column(name: str, default: str | None = None) -> np.ndarray:
        return np.array([getattr(e, name) if getattr(e, name) is not None else (default or "") for e in episodes], dtype=object)

    attrs: dict[str, np.ndarray] = {"task": text_column("task", task), "operator": text_column("operator"),
                                    "notes": text_column("notes"), "started_at": text_column("started_at"),
                                    "source": text_column("source")}
    if labels[0] is not None:
        attrs["success"] = np.array(labels, dtype=bool)
    data = Trajectories(observations=observations, actions=actions, rewards=np.zeros(steps, dtype=np.float32),
                        terminations=np.zeros(steps, dtype=bool), truncations=truncations, lengths=lengths,
                        infos={"timestamp": timestamps}, episode_attrs=attrs)
    robot_info = {"robot": robot, "lab": lab, "task": task, "fps": fps, "clock": clock, "cameras": cameras}
    return SourceData(
        trajectories=data, source_format=source_format,
        notes=(notes or []) + ["each episode's last command is dropped: it has no next observation",
                               "rewards are zeros: a real-robot log has no reward function; see the success label"],
        description=description or f"{robot or 'robot'} log" + (f": {task}" if task else ""),
        source_metadata={"robot": robot_info}, media=media, originals=originals,
        tags=[ROBOT_TAG] + [label_tag(kind, value) for kind, value in (("robot", robot), ("lab", lab)) if value])


def label_tag(kind: str, value: str) -> str:
    """``robot-franka``, ``lab-rail``: tags that let people filter logs by robot and lab."""
    text = re.sub(r"[^a-z0-9_.\-]+", "-", f"{kind}-{value}".lower()).strip("-.")
    return text[:64]


def original_files(root: Path) -> dict[str, Path]:
    """Every file under a source directory (or the file itself), by its path relative to it."""
    if root.is_file():
        return {root.name: root}
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
