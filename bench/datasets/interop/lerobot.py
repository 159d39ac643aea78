"""LeRobot v3 dataset directories (meta/info.json with codebase_version v3.x): parquet frames and mp4 videos.

Read: ``meta/info.json`` (fps, features, path templates), ``meta/episodes/**.parquet`` (per episode:
length, tasks, which video file holds its frames and from which timestamp), ``data/**.parquet``
(``observation.state``, ``action``, ``timestamp``, ``frame_index``, ``episode_index``), and each
camera's mp4 (episodes concatenated; cut out by ``from_timestamp`` and the episode length, then
re-encoded one file per episode). ``next.success`` (if present) at an episode's last frame is its
success label. Other numeric features are not carried (named in the manifest's notes).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.datasets.interop.guards import inside, json_text
from bench.datasets.robot_logs import RobotEpisode, original_files, parse_success, to_source
from bench.datasets.video import decode_mp4, encode_mp4
from bench.errors import InvalidInput
from bench.platform.settings import ImportLimits

INFO = "meta/info.json"


def detect(path: Path) -> bool:
    if not (path.is_dir() and (path / INFO).is_file()):
        return False
    try:
        return str(json.loads((path / INFO).read_text()).get("codebase_version", "")).startswith("v3")
    except json.JSONDecodeError:
        return False


def _table(files: list[Path], what: str) -> pa.Table:
    if not files:
        raise InvalidInput(f"no {what} parquet files")
    try:
        return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{what}: unreadable parquet ({exc})") from None


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    values = column.to_pylist()
    return np.asarray([np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in values], dtype=np.float64)


_PLACEHOLDER = re.compile(r"\{(video_key|chunk_index|file_index)(?::0(\d)d)?\}")


def _fill_template(template: object, **values: object) -> str:
    """LeRobot's path template with its three placeholders filled. Never ``str.format``: a template from
    an upload could reach attributes of the values through it."""
    if not isinstance(template, str) or len(template) > 500:
        raise InvalidInput(f"{INFO}: video_path must be a path template of at most 500 characters")

    def fill(match: re.Match) -> str:
        value = values[match.group(1)]
        if match.group(2):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidInput(f"{INFO}: {match.group(1)} must be an integer, got {value!r}"[:200])
            return f"{value:0{match.group(2)}d}"
        return str(value)

    filled = _PLACEHOLDER.sub(fill, template)
    if "{" in filled or "}" in filled:
        raise InvalidInput(f"{INFO}: video_path uses placeholders other than video_key, chunk_index, file_index")
    return filled


def read(path: Path, robot: str | None = None, task: str | None = None, lab: str | None = None,
         limits: ImportLimits | None = None):  # read_source checked the files against the limits

    info = json_text((path / INFO).read_bytes(), INFO)
    fps = float(info.get("fps") or 0)
    if fps <= 0:
        raise InvalidInput(f"{INFO}: fps is missing")
    features = info.get("features", {})
    for required in ("observation.state", "action"):
        if required not in features:
            raise InvalidInput(f"{INFO}: no {required!r} feature; bench needs proprioception and actions")
    cameras = [key for key, spec in features.items() if spec.get("dtype") == "video"]
    episodes_meta = _table(sorted((path / "meta" / "episodes").rglob("*.parquet")), "meta/episodes").to_pylist()
    frames = _table(sorted((path / "data").rglob("*.parquet")), "data")
    for column in ("observation.state", "action", "timestamp", "episode_index", "frame_index"):
        if column not in frames.column_names:
            raise InvalidInput(f"data: no {column!r} column")
    episode_of = frames.column("episode_index").to_numpy()
    order = np.lexsort((frames.column("frame_index").to_numpy(), episode_of))
    frames = frames.take(pa.array(order))
    episode_of = episode_of[order]
    state, actions = _matrix(frames.column("observation.state")), _matrix(frames.column("action"))
    timestamps = frames.column("timestamp").to_numpy().astype(np.float64)
    success = (frames.column("next.success").to_numpy(zero_copy_only=False) if "next.success" in frames.column_names
               else None)
    tasks_text = {}
    if (path / "meta" / "tasks.parquet").is_file():
        tasks_table = pq.read_table(path / "meta" / "tasks.parquet")
        text_column = "task" if "task" in tasks_table.column_names else "__index_level_0__"
        if text_column in tasks_table.column_names:
            tasks_text = dict(zip(tasks_table.column("task_index").to_pylist(), tasks_table.column(text_column).to_pylist()))
    # Each episode's clip is decoded alone (seeking in the camera's file) and re-encoded to a file of its own in
    # a scratch directory, removed when the import ends: one episode's frames in memory at a time.
    scratch = Path(tempfile.mkdtemp(prefix="bench-lerobot-"))
    episodes = []
    try:
        for meta in sorted(episodes_meta, key=lambda m: m["episode_index"]):
            index = meta["episode_index"]
            rows = np.flatnonzero(episode_of == index)
            where = f"episode {index}"
            if len(rows) != meta["length"]:
                raise InvalidInput(f"{where}: meta says {meta['length']} frames, data has {len(rows)}")
            videos = {}
            for camera in cameras:
                video_path = inside(path, _fill_template(info.get("video_path"), video_key=camera,
                                                         chunk_index=meta[f"videos/{camera}/chunk_index"],
                                                         file_index=meta[f"videos/{camera}/file_index"]), INFO)
                if not video_path.is_file():
                    raise InvalidInput(f"{where}: video {video_path.relative_to(path)} is missing")
                first = int(round(meta[f"videos/{camera}/from_timestamp"] * fps))
                clip = decode_mp4(video_path, start=first, count=len(rows))
                if len(clip) != len(rows):
                    raise InvalidInput(f"{where}: {video_path.name} has {len(clip)} frames for the episode's {len(rows)}")
                name = camera.removeprefix("observation.images.")
                spooled = scratch / f"{len(episodes)}-{len(videos)}.mp4"
                spooled.write_bytes(encode_mp4(clip, fps))
                videos[name] = spooled
            episode_tasks = meta.get("tasks") or []
            episodes.append(RobotEpisode(
                state=state[rows], actions=actions[rows], timestamps=timestamps[rows], videos=videos,
                success=parse_success(success[rows[-1]], where) if success is not None else None,
                task=episode_tasks[0] if episode_tasks else tasks_text.get(0), source=f"episode {index}"))
        ignored = sorted(set(features) - {"observation.state", "action", "timestamp", "frame_index", "episode_index",
                                          "index", "task_index", "next.success", *cameras})
        source = to_source(episodes, source_format="lerobot", robot=robot or info.get("robot_type"), lab=lab, task=task,
                           fps=fps, clock=f"LeRobot frames at {fps:g} fps", originals=original_files(path),
                           notes=[f"LeRobot features not carried: {', '.join(ignored)}"] if ignored else [])
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    source.scratch = scratch
    return source
