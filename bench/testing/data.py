"""Small datasets made on the spot, in the layouts users bring: D4RL HDF5, OGBench npz, Minari directories.

These writers are deliberately independent of bench's exporters, so that import tests read
files made the way the original projects make them rather than files bench wrote itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

from bench.datasets.trajectories import Trajectories
from bench.datasets.video import encode_mp4


def random_trajectories(
    rng: np.random.Generator,
    episodes: int = 5,
    obs_dim: int = 4,
    act_dim: int = 2,
    min_len: int = 3,
    max_len: int = 12,
    dict_obs: bool = False,
    image_shape: tuple[int, ...] | None = None,
) -> Trajectories:
    """Random episodes; the first ends terminated, the rest truncated."""
    lengths = rng.integers(min_len, max_len + 1, size=episodes)
    steps, obs_rows = int(lengths.sum()), int(lengths.sum()) + episodes
    observations: Any = rng.normal(size=(obs_rows, obs_dim)).astype(np.float32)
    if dict_obs:
        observations = {
            "observation": observations,
            "achieved_goal": rng.normal(size=(obs_rows, 2)),
            "desired_goal": rng.normal(size=(obs_rows, 2)),
        }
    if image_shape is not None:
        observations = {"state": observations if not dict_obs else observations["observation"],
                        "pixels": rng.integers(0, 256, size=(obs_rows, *image_shape), dtype=np.uint8)}
    ends = np.cumsum(lengths) - 1
    terminations = np.zeros(steps, dtype=bool)
    truncations = np.zeros(steps, dtype=bool)
    terminations[ends[0]] = True
    truncations[ends[1:]] = True
    return Trajectories(
        observations=observations,
        actions=rng.uniform(-1, 1, size=(steps, act_dim)).astype(np.float32),
        rewards=rng.normal(size=steps).astype(np.float32),
        terminations=terminations,
        truncations=truncations,
        lengths=lengths,
    )


def write_d4rl_file(path: Path, data: Trajectories, next_observations: bool = True,
                    infos: dict[str, np.ndarray] | None = None) -> Path:
    """Write trajectories as D4RL does: one row per transition, terminals and timeouts."""
    obs = np.asarray(data.observations)
    obs_rows = np.concatenate([np.arange(s, s + n) for s, n in zip(data.obs_starts, data.lengths)])
    with h5py.File(path, "w") as handle:
        handle["observations"] = obs[obs_rows]
        if next_observations:
            handle["next_observations"] = obs[obs_rows + 1]
        handle["actions"] = data.actions
        handle["rewards"] = data.rewards
        handle["terminals"] = data.terminations
        handle["timeouts"] = data.truncations
        for key, value in (infos or {}).items():
            handle[f"infos/{key}"] = value
        handle.create_group("metadata").attrs["algorithm"] = "random"
    return path


def write_ogbench_npz(path: Path, data: Trajectories, with_qpos: bool = True) -> Path:
    """OGBench's layout: per-row observations and actions, terminals on each episode's last row.

    OGBench records an action on every row, the last one included; it has no successor, so we
    write a final random action that an importer must drop.
    """
    obs = np.asarray(data.observations)
    actions = np.empty((len(obs), data.actions.shape[1]), dtype=data.actions.dtype)
    terminals = np.zeros(len(obs), dtype=np.float32)
    for (obs_slice, step_slice) in data.iter_episode_slices():
        actions[obs_slice.start:obs_slice.stop - 1] = data.actions[step_slice]
        actions[obs_slice.stop - 1] = 9.0
        terminals[obs_slice.stop - 1] = 1.0
    arrays = {"observations": obs, "actions": actions, "terminals": terminals}
    if with_qpos:
        arrays["qpos"] = obs[:, :2].astype(np.float64) * 2
    np.savez_compressed(path, **arrays)
    return path


def write_minari_dir(path: Path, data: Trajectories, data_format: str = "hdf5", dataset_id: str = "test/random-v0",
                     observation_space: gym.Space | None = None, action_space: gym.Space | None = None,
                     infos: dict[str, np.ndarray] | None = None) -> Path:
    """A Minari dataset directory written by Minari's own storage classes (HDF5 or Arrow)."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    data.validate()
    (path / "data").mkdir(parents=True)
    storage = MinariStorage.new(path / "data", observation_space=observation_space or data.observation_space,
                                action_space=action_space or data.action_space, data_format=data_format)

    def select(tree: Any, rows: slice) -> Any:
        return {k: select(v, rows) for k, v in tree.items()} if isinstance(tree, dict) else tree[rows]

    buffers = []
    for index, (obs_slice, step_slice) in enumerate(data.iter_episode_slices()):
        buffers.append(EpisodeBuffer(
            id=index, seed=100 + index, observations=select(data.observations, obs_slice),
            actions=data.actions[step_slice], rewards=data.rewards[step_slice],
            terminations=data.terminations[step_slice], truncations=data.truncations[step_slice],
            infos={k: v[obs_slice] for k, v in (infos or {}).items()} or None,
        ))
    storage.update_episodes(buffers)
    storage.update_metadata({"dataset_id": dataset_id, "minari_version": minari.__version__})
    return path


def write_minari_with_metadata(root: Path, dataset_id: str, env_id: str, episodes: int = 2, steps: int = 20) -> Path:
    """A Minari dataset made the way Minari's DataCollector makes one (``minari.create_dataset_from_buffers``, the
    function the collector calls; the collector itself needs jax): random actions in ``env_id`` with env_spec,
    eval_env_spec, author, author_email, algorithm_name, code_permalink and requirements. Returns its directory
    under ``root`` (which it uses as MINARI_DATASETS_PATH)."""
    import os

    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    data = gym_random_rollouts(env_id, episodes=episodes, seed=0, max_steps=steps)
    buffers = [EpisodeBuffer(id=index, seed=index, observations=data.observations[obs_slice],
                             actions=data.actions[step_slice], rewards=data.rewards[step_slice],
                             terminations=data.terminations[step_slice], truncations=data.truncations[step_slice])
               for index, (obs_slice, step_slice) in enumerate(data.iter_episode_slices())]
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        minari.create_dataset_from_buffers(
            dataset_id, buffers, env=env_id, eval_env=env_id, algorithm_name="uniform-random", author="Ann Author",
            author_email="ann@example.org", code_permalink="https://example.org/collect.py",
            requirements=["gymnasium>=1.0"], description="random actions")
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
    return root / dataset_id


def gym_random_rollouts(env_id: str, episodes: int, seed: int, max_steps: int | None = None) -> Trajectories:
    """Uniform-random-action episodes from a gymnasium environment (real dynamics, real rewards)."""
    env = gym.make(env_id, max_episode_steps=max_steps) if max_steps else gym.make(env_id)
    env.action_space.seed(seed)
    obs_parts, actions, rewards, terms, truncs, lengths = [], [], [], [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        obs_parts.append(obs)
        length = 0
        while True:
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            obs_parts.append(obs)
            actions.append(action)
            rewards.append(reward)
            terms.append(terminated)
            truncs.append(truncated)
            length += 1
            if terminated or truncated:
                break
        lengths.append(length)
    env.close()
    return Trajectories(
        observations=np.asarray(obs_parts, dtype=np.float32), actions=np.asarray(actions, dtype=np.float32),
        rewards=np.asarray(rewards, dtype=np.float32), terminations=np.asarray(terms), truncations=np.asarray(truncs),
        lengths=np.asarray(lengths), observation_space=env.observation_space, action_space=env.action_space,
    )



def smooth_frames(count: int, height: int, width: int, offset: int = 0) -> np.ndarray:
    """Frames that survive lossy video coding nearly intact: flat colours that change frame to frame."""
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        frames[i] = ((offset + i) * 23 % 200 + 20, (offset + i) * 41 % 200 + 20, 128)
    return frames


def write_robot_folder(path: Path, lengths: tuple[int, ...] = (6, 8), fps: float = 10.0, labels: bool = True,
                       camera: str = "front", size: tuple[int, int] = (24, 32)) -> dict[str, Any]:
    """A real-robot log in bench's plain folder layout; returns what was written, for comparison."""
    import csv
    import json

    path.mkdir(parents=True)
    (path / "robot.json").write_text(json.dumps({"robot": "franka", "lab": "test-lab", "task": "wipe", "fps": fps}))
    rng = np.random.default_rng(len(lengths))
    written: dict[str, Any] = {"states": [], "actions": [], "frames": []}
    if labels:
        with open(path / "labels.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["episode", "success", "operator", "notes"])
            for index in range(len(lengths)):
                writer.writerow([f"episode_{index:03d}", "success" if index % 2 == 0 else "failure", "ann", f"take {index}"])
    for index, length in enumerate(lengths):
        directory = path / f"episode_{index:03d}"
        directory.mkdir()
        state, action = rng.normal(size=(length, 3)), rng.normal(size=(length, 2))
        with open(directory / "steps.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["timestamp", "state_0", "state_1", "state_2", "action_0", "action_1"])
            for t in range(length):
                writer.writerow([100.0 + t / fps, *state[t], *action[t]])
        frames = smooth_frames(length, *size, offset=10 * index)
        (directory / f"{camera}.mp4").write_bytes(encode_mp4(frames, fps))
        written["states"].append(state)
        written["actions"].append(action)
        written["frames"].append(frames)
    return written


def write_lerobot_dir(path: Path, lengths: tuple[int, ...] = (6, 9), fps: float = 10.0, camera: str = "observation.images.front",
                      size: tuple[int, int] = (24, 32)) -> dict[str, Any]:
    """A LeRobot v3 dataset directory (episodes concatenated in one data file and one video per camera)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    (path / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (path / "data" / "chunk-000").mkdir(parents=True)
    (path / f"videos/{camera}/chunk-000").mkdir(parents=True)
    info = {"codebase_version": "v3.0", "robot_type": "koch", "fps": fps, "total_episodes": len(lengths),
            "total_frames": int(sum(lengths)), "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": {"observation.state": {"dtype": "float32", "shape": [4]}, "action": {"dtype": "float32", "shape": [4]},
                         camera: {"dtype": "video", "shape": [3, *size]}, "timestamp": {"dtype": "float32", "shape": [1]},
                         "frame_index": {"dtype": "int64", "shape": [1]}, "episode_index": {"dtype": "int64", "shape": [1]},
                         "index": {"dtype": "int64", "shape": [1]}, "task_index": {"dtype": "int64", "shape": [1]},
                         "next.success": {"dtype": "bool", "shape": [1]}}}
    (path / "meta" / "info.json").write_text(json.dumps(info))
    columns: dict[str, list] = {k: [] for k in ("observation.state", "action", "timestamp", "frame_index", "episode_index",
                                                "index", "task_index", "next.success")}
    episodes, frames, start = [], [], 0
    written: dict[str, Any] = {"states": [], "actions": [], "frames": [], "success": []}
    for index, length in enumerate(lengths):
        state, action = rng.normal(size=(length, 4)).astype(np.float32), rng.normal(size=(length, 4)).astype(np.float32)
        clip = smooth_frames(length, *size, offset=10 * index)
        success = index == 0
        columns["observation.state"] += state.tolist()
        columns["action"] += action.tolist()
        columns["timestamp"] += [t / fps for t in range(length)]
        columns["frame_index"] += list(range(length))
        columns["episode_index"] += [index] * length
        columns["index"] += list(range(start, start + length))
        columns["task_index"] += [0] * length
        columns["next.success"] += [False] * (length - 1) + [success]
        episodes.append({"episode_index": index, "tasks": ["pick the cube"], "length": length,
                         "data/chunk_index": 0, "data/file_index": 0, "dataset_from_index": start,
                         "dataset_to_index": start + length, f"videos/{camera}/chunk_index": 0,
                         f"videos/{camera}/file_index": 0, f"videos/{camera}/from_timestamp": start / fps,
                         f"videos/{camera}/to_timestamp": (start + length) / fps})
        frames.append(clip)
        start += length
        written["states"].append(state)
        written["actions"].append(action)
        written["frames"].append(clip)
        written["success"].append(success)
    pq.write_table(pa.table(columns), path / "data/chunk-000/file-000.parquet")
    pq.write_table(pa.Table.from_pylist(episodes), path / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": [0], "task": ["pick the cube"]}), path / "meta/tasks.parquet")
    (path / f"videos/{camera}/chunk-000/file-000.mp4").write_bytes(encode_mp4(np.concatenate(frames), fps))
    return written


def write_ros_bag(path: Path, ros: int = 2, seconds: float = 1.0, compressed_camera: bool = False) -> dict[str, Any]:
    """A ROS 1 (``path`` a .bag file) or ROS 2 (``path`` a directory) bag written with rosbags: joint states at
    20 Hz from t0, velocity commands on /cmd_vel at 10 Hz and a 16x16 camera at 10 Hz, both from t0 + 0.01 s.
    Returns the messages' times and values, to check an importer's alignment against."""
    import io

    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE if ros == 2 else Stores.ROS1_NOETIC)
    types = store.types
    t0 = 1_700_000_000.0

    def header(t: float):
        stamp = types["builtin_interfaces/msg/Time"](sec=int(t), nanosec=int(round((t % 1) * 1e9)))
        if ros == 1:
            return types["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id="")
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id="")

    joints = [(t0 + i * 0.05, np.array([0.1 * i, -0.1 * i])) for i in range(int(seconds * 20))]
    commands = [(t0 + 0.01 + k * 0.1, float(k)) for k in range(int(seconds * 10))]
    frames = [(t0 + 0.01 + k * 0.1, smooth_frames(1, 16, 16, offset=k)[0]) for k in range(int(seconds * 10))]
    messages = []
    for t, position in joints:
        messages.append(("/joint_states", "sensor_msgs/msg/JointState", t, types["sensor_msgs/msg/JointState"](
            header=header(t), name=["j0", "j1"], position=position, velocity=np.zeros(0), effort=np.zeros(0))))
    for t, value in commands:
        vector = types["geometry_msgs/msg/Vector3"]
        messages.append(("/cmd_vel", "geometry_msgs/msg/Twist", t, types["geometry_msgs/msg/Twist"](
            linear=vector(x=value, y=0.0, z=0.0), angular=vector(x=0.0, y=0.0, z=-value))))
    for t, frame in frames:
        if compressed_camera:
            from PIL import Image

            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="PNG")
            messages.append(("/wrist/image/compressed", "sensor_msgs/msg/CompressedImage", t,
                             types["sensor_msgs/msg/CompressedImage"](header=header(t), format="png",
                                                                       data=np.frombuffer(buffer.getvalue(), np.uint8))))
        else:
            messages.append(("/front/image_raw", "sensor_msgs/msg/Image", t, types["sensor_msgs/msg/Image"](
                header=header(t), height=16, width=16, encoding="rgb8", is_bigendian=0, step=48,
                data=frame.reshape(-1))))
    messages.sort(key=lambda m: m[2])
    if ros == 1:
        from rosbags.rosbag1 import Writer

        writer, serialize = Writer(path), store.serialize_ros1
    else:
        from rosbags.rosbag2 import Writer

        writer, serialize = Writer(path, version=9), store.serialize_cdr
    with writer:
        connections = {}
        for topic, msgtype, t, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(connections[topic], int(round(t * 1e9)), serialize(msg, msgtype))
    return {"joints": joints, "commands": commands, "frames": frames}
