"""ROS 1 and ROS 2 bags as real-robot logs, read with the rosbags package (no ROS installation).

Input: one bag (a ROS 1 ``.bag`` file or a ROS 2 bag directory with ``metadata.yaml``) per episode,
or a directory of them (episodes in name order, optional ``labels.csv`` as in the folder layout).

Which topics mean what (docs/robot-logs.md, "ROS bags"): by default the first
``sensor_msgs/JointState`` topic is the state (its positions) and the clock; the first command topic
(``geometry_msgs/Twist`` or ``TwistStamped``: linear and angular velocity; ``std_msgs/Float64MultiArray``
or ``Float32MultiArray``: its data; ``sensor_msgs/JointState``: positions) whose name contains "cmd" or
"command" is the action; every ``sensor_msgs/Image`` and ``CompressedImage`` topic is a camera. A
mapping file (JSON or YAML) overrides any of it::

    {"state": "/joint_states", "action": "/cmd_vel", "cameras": {"front": "/camera/image_raw"},
     "clock": "/joint_states"}          # or "clock": "rate:10" for a fixed 10 Hz

Alignment: at each tick of the clock (the clock topic's messages, or a fixed rate), every other
stream contributes its latest message at or before the tick (zero-order hold); ticks before every
stream has spoken are dropped. Times are the bag's record times.
"""

from __future__ import annotations

import datetime as dt

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets.interop.guards import decode_image, inside
from bench.datasets.robot_logs import RobotEpisode, original_files, parse_success, read_labels, to_source
from bench.datasets.video import encode_mp4
from bench.errors import InvalidInput
from bench.platform.settings import ImportLimits

COMMAND_TYPES = ("geometry_msgs/msg/Twist", "geometry_msgs/msg/TwistStamped", "std_msgs/msg/Float64MultiArray",
                 "std_msgs/msg/Float32MultiArray", "sensor_msgs/msg/JointState")
CAMERA_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
SMALL_IMAGE_PIXELS = 96 * 96  # cameras at most this large are stored as uint8 arrays, larger ones as mp4


def _is_bag(path: Path) -> bool:
    return (path.is_file() and path.suffix == ".bag") or (path.is_dir() and (path / "metadata.yaml").is_file())


def _bags(path: Path) -> list[Path]:
    if _is_bag(path):
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if _is_bag(p))
    return []


def detect(path: Path) -> bool:
    return bool(_bags(path)) and not (path / "robot.json").exists()


def _vector(msg: Any, msgtype: str) -> np.ndarray:
    if msgtype.endswith("Twist") or msgtype.endswith("TwistStamped"):
        twist = msg.twist if msgtype.endswith("TwistStamped") else msg
        return np.array([twist.linear.x, twist.linear.y, twist.linear.z,
                         twist.angular.x, twist.angular.y, twist.angular.z], dtype=np.float64)
    if msgtype.endswith("JointState"):
        return np.asarray(msg.position, dtype=np.float64)
    return np.asarray(msg.data, dtype=np.float64)


def _image(msg: Any, msgtype: str, topic: str) -> np.ndarray:
    if msgtype.endswith("CompressedImage"):
        return decode_image(bytes(msg.data), topic)
    encoding = msg.encoding.lower()
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}.get(encoding)
    if channels is None:
        raise InvalidInput(f"{topic}: image encoding {msg.encoding!r} is not supported (rgb8, bgr8, rgba8, bgra8, mono8)")
    rows = data.reshape(msg.height, msg.step)[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    if encoding.startswith("bgr"):
        rows = rows[..., [2, 1, 0]]
    return np.repeat(rows, 3, axis=2) if channels == 1 else rows[..., :3].copy()


def _camera_name(topic: str) -> str:
    parts = [p for p in topic.strip("/").split("/") if p not in {"image_raw", "image", "compressed", "image_color"}]
    return re.sub(r"[^A-Za-z0-9_]+", "_", "_".join(parts) or "camera")


def _mapping(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"{path}: not valid JSON or YAML ({exc})") from None
        if not isinstance(value, dict):
            raise InvalidInput(f"{path}: a mapping file is an object of state/action/cameras/clock")
        return value


def _check_bag_files(bag: Path) -> None:
    """A ROS 2 bag's metadata.yaml names its storage files: each must be a file inside the bag directory."""
    if not bag.is_dir():
        return
    import yaml

    try:
        metadata = yaml.safe_load((bag / "metadata.yaml").read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{bag.name}/metadata.yaml: not valid YAML ({type(exc).__name__})") from None
    info = metadata.get("rosbag2_bagfile_information") if isinstance(metadata, dict) else None
    if not isinstance(info, dict):
        raise InvalidInput(f"{bag.name}/metadata.yaml: no rosbag2_bagfile_information")
    names = list(info.get("relative_file_paths") or [])
    names += [entry.get("path") for entry in info.get("files") or [] if isinstance(entry, dict)]
    for name in names:
        if not isinstance(name, str):
            raise InvalidInput(f"{bag.name}/metadata.yaml: a storage file name that is not text")
        inside(bag, name, f"{bag.name}/metadata.yaml")


def _read_bag(bag: Path, mapping: dict[str, Any]) -> dict[str, Any]:
    """Every message of the topics in use, by role, as (times in seconds, values)."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    _check_bag_files(bag)
    try:
        reader = AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
        reader.open()
    except Exception as exc:  # rosbags raises its own errors (and struct/OS errors) for broken bags
        raise InvalidInput(f"{bag.name}: not a readable bag ({exc})") from None
    try:
        types = {c.topic: c.msgtype for c in reader.connections}

        def pick(role: str, candidates: tuple[str, ...], hint: str | None = None) -> str:
            if mapping.get(role):
                topic = mapping[role]
                if topic not in types:
                    raise InvalidInput(f"{bag.name}: topic {topic!r} ({role}) is not in the bag; it has {sorted(types)}")
                return topic
            found = [t for t, m in sorted(types.items()) if m in candidates and (hint is None or re.search(hint, t))]
            if not found:
                raise InvalidInput(f"{bag.name}: no {role} topic ({', '.join(candidates)}"
                                   f"{', named like ' + hint if hint else ''}); name one in a mapping file. "
                                   f"Topics: {sorted(types)}")
            return found[0]

        state_topic = pick("state", ("sensor_msgs/msg/JointState",))
        action_topic = pick("action", COMMAND_TYPES, hint="cmd|command")
        cameras = mapping.get("cameras") or {_camera_name(t): t for t, m in sorted(types.items()) if m in CAMERA_TYPES}
        for name, topic in cameras.items():
            if topic not in types:
                raise InvalidInput(f"{bag.name}: camera topic {topic!r} is not in the bag; it has {sorted(types)}")
        wanted = {state_topic: "state", action_topic: "action", **{t: f"camera:{n}" for n, t in cameras.items()}}
        streams: dict[str, tuple[list[float], list[Any]]] = {role: ([], []) for role in wanted.values()}
        connections = [c for c in reader.connections if c.topic in wanted]
        try:
            for connection, stamp, raw in reader.messages(connections=connections):
                role = wanted[connection.topic]
                msg = reader.deserialize(raw, connection.msgtype)
                value = (_image(msg, connection.msgtype, connection.topic) if role.startswith("camera:")
                         else _vector(msg, connection.msgtype))
                streams[role][0].append(stamp / 1e9)
                streams[role][1].append(value)
        except InvalidInput:
            raise
        except Exception as exc:
            raise InvalidInput(f"{bag.name}: the bag is truncated or corrupt ({exc})") from None
    finally:
        reader.close()
    for role, (times, _) in streams.items():
        if not times:
            raise InvalidInput(f"{bag.name}: the {role} stream has no messages")
    return {"streams": streams, "topics": wanted, "clock": mapping.get("clock") or state_topic}


def _align(bag: Path, streams: dict[str, tuple[list[float], list[Any]]], clock: str, topics: dict[str, str]):
    """Clock ticks, and for each stream the index of its latest message at or before each tick."""
    if clock.startswith("rate:"):
        rate = float(clock.split(":", 1)[1])
        start = max(times[0] for times, _ in streams.values())
        end = min(times[-1] for times, _ in streams.values())
        ticks = np.arange(start, end + 1e-9, 1.0 / rate)
    else:
        role = topics.get(clock)
        if role is None:
            raise InvalidInput(f"{bag.name}: clock topic {clock!r} is not one of the streams in use {sorted(topics)}")
        ticks = np.asarray(streams[role][0])
    picks = {}
    for role, (times, _) in streams.items():
        picks[role] = np.searchsorted(np.asarray(times), ticks, side="right") - 1
    ready = np.all(np.stack([p >= 0 for p in picks.values()]), axis=0)  # every stream has spoken
    return ticks[ready], {role: p[ready] for role, p in picks.items()}


def read(path: Path, robot: str | None = None, task: str | None = None, lab: str | None = None,
         limits: ImportLimits | None = None, mapping: str | None = None):  # limits: checked by read_source
    bags = _bags(path)
    if not bags:
        raise InvalidInput(f"{path}: no ROS bag (a .bag file or a directory with metadata.yaml)")
    mapping_values = _mapping(Path(mapping) if mapping else None)
    labels = read_labels(path) if path.is_dir() and not _is_bag(path) else {}
    episodes, clock_text, rates, streams_text = [], None, [], ""
    for bag in bags:
        content = _read_bag(bag, mapping_values)
        ticks, picks = _align(bag, content["streams"], content["clock"], content["topics"])
        clock_text = content["clock"]
        if len(ticks) < 2:
            raise InvalidInput(f"{bag.name}: fewer than 2 clock ticks after every stream has a message")
        rates.append((len(ticks) - 1) / max(float(ticks[-1] - ticks[0]), 1e-9))
        streams_text = _streams_text(content["topics"], content["streams"])
        values = {role: [content["streams"][role][1][i] for i in index] for role, index in picks.items()}
        try:
            state, actions = np.stack(values["state"]), np.stack(values["action"])
        except ValueError:
            raise InvalidInput(f"{bag.name}: state or command messages change length within the bag") from None
        videos, images = {}, {}
        for role, frames in values.items():
            if role.startswith("camera:"):
                stacked = np.stack(frames)
                name = role.split(":", 1)[1]
                if stacked.shape[1] * stacked.shape[2] <= SMALL_IMAGE_PIXELS:
                    images[name] = stacked
                else:
                    rate = (len(ticks) - 1) / max(ticks[-1] - ticks[0], 1e-9)
                    videos[name] = encode_mp4(stacked, rate)
        label = labels.get(bag.name, {}) or labels.get(bag.stem, {})
        episodes.append(RobotEpisode(
            state=state, actions=actions, timestamps=ticks, videos=videos, images=images,
            success=parse_success(label.get("success"), f"{bag.name} label"), operator=label.get("operator") or None,
            notes=label.get("notes") or None, task=label.get("task") or None, source=bag.name,
            started_at=dt.datetime.fromtimestamp(float(ticks[0]), dt.timezone.utc).isoformat()))
    fps = round(float(np.median(rates)), 3)
    return to_source(episodes, source_format="rosbag", robot=robot, lab=lab, task=task, fps=fps,
                     clock=f"{clock_text} (zero-order hold of every other stream)", originals=original_files(path),
                     notes=[f"topics {'from the mapping file' if mapping_values else 'chosen by message type'}: "
                            f"{streams_text}",
                            f"aligned to the clock {clock_text} at {fps:g} Hz: each frame takes every other "
                            "stream's latest message at or before its tick; frames before every stream has spoken "
                            "are dropped"])


def _streams_text(topics: dict[str, str], streams: dict[str, tuple[list[float], list[Any]]]) -> str:
    """``state <- /joint_states (20 Hz), action <- /cmd_vel (10 Hz), camera front <- /front/image (10 Hz)``."""
    parts = []
    for topic, role in topics.items():
        times = streams[role][0]
        rate = (len(times) - 1) / max(times[-1] - times[0], 1e-9) if len(times) > 1 else 0.0
        parts.append(f"{role.replace('camera:', 'camera ')} <- {topic} ({rate:.3g} Hz)")
    return ", ".join(parts)
