"""Real-robot logs in a plain folder (docs/robot-logs.md, "Plain folder layout"):

    session/
      robot.json            {"robot": "franka", "lab": "...", "task": "wipe the table", "fps": 10}
      labels.csv            optional: episode,success,operator,notes (episode = directory name)
      <episode>/            one directory per episode, in name order
        steps.csv | steps.parquet   timestamp, state_0..state_k, action_0..action_m (one row per frame)
        <camera>.mp4        a video with one frame per row, or
        <camera>/*.png      one image per row, in name order
        labels.json         optional: {"success": true, "operator": "...", "notes": "..."}
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bench.datasets.interop.guards import decode_image
from bench.datasets.robot_logs import RobotEpisode, original_files, parse_success, read_labels, to_source
from bench.errors import InvalidInput
from bench.platform.settings import ImportLimits

MARKER = "robot.json"


def detect(path: Path) -> bool:
    return path.is_dir() and (path / MARKER).is_file()


def _columns(table: pa.Table, prefix: str, where: str) -> np.ndarray:
    names = sorted((n for n in table.column_names if re.fullmatch(rf"{prefix}_\d+", n)), key=lambda n: int(n.rsplit("_", 1)[1]))
    if not names:
        raise InvalidInput(f"{where}: no {prefix}_0, {prefix}_1, ... columns (found {table.column_names})")
    return np.stack([table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in names], axis=1)


def _read_steps(directory: Path) -> pa.Table:
    if (directory / "steps.parquet").is_file():
        return pq.read_table(directory / "steps.parquet")
    if (directory / "steps.csv").is_file():
        try:
            return pacsv.read_csv(directory / "steps.csv")
        except pa.ArrowInvalid as exc:
            raise InvalidInput(f"{directory.name}/steps.csv: not a readable CSV ({exc})") from None
    raise InvalidInput(f"{directory.name}: no steps.csv or steps.parquet")


def read(path: Path, robot: str | None = None, task: str | None = None, lab: str | None = None,
         limits: ImportLimits | None = None):  # read_source checked the files against the limits

    try:
        meta = json.loads((path / MARKER).read_text())
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{MARKER}: not valid JSON ({exc.msg})") from None
    labels = read_labels(path)
    directories = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not directories:
        raise InvalidInput(f"{path}: no episode directories next to {MARKER}")
    unknown = set(labels) - {d.name for d in directories}
    if unknown:
        raise InvalidInput(f"labels.csv names episodes that do not exist: {sorted(unknown)[:5]}")
    episodes = []
    for directory in directories:
        where = directory.name
        table = _read_steps(directory)
        if "timestamp" not in table.column_names:
            raise InvalidInput(f"{where}: the steps have no timestamp column")
        label = {**labels.get(where, {})}
        if (directory / "labels.json").is_file():
            label.update(json.loads((directory / "labels.json").read_text()))
        videos = {p.stem: p for p in sorted(directory.glob("*.mp4"))}
        images = {}
        for camera_dir in sorted(d for d in directory.iterdir() if d.is_dir()):
            frames = sorted(camera_dir.glob("*.png")) + sorted(camera_dir.glob("*.jpg"))
            if frames:
                try:
                    images[camera_dir.name] = np.stack([decode_image(f, f"{where}/{camera_dir.name}/{f.name}")
                                                        for f in frames])
                except (OSError, ValueError) as exc:
                    raise InvalidInput(f"{where}/{camera_dir.name}: unreadable or mismatched images ({exc})") from None
        episodes.append(RobotEpisode(
            state=_columns(table, "state", where), actions=_columns(table, "action", where),
            timestamps=table.column("timestamp").to_numpy(zero_copy_only=False).astype(np.float64),
            videos=videos, images=images, success=parse_success(label.get("success"), f"{where} label"),
            operator=label.get("operator") or None, notes=label.get("notes") or None,
            task=label.get("task") or None, started_at=label.get("started_at") or None, source=where))
    return to_source(episodes, source_format="robot-folder", robot=robot or meta.get("robot"),
                     lab=lab or meta.get("lab"), task=task or meta.get("task"), fps=meta.get("fps"),
                     clock="the rows of steps.csv (one per synchronized frame)", originals=original_files(path),
                     description=meta.get("description"))
