"""Real-robot logs: plain folders and LeRobot v3 directories round-trip through import and download,
bad inputs leave nothing behind, and trials give success rates offline -> online with Wilson intervals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import sqlalchemy as sa

from bench.datasets.format import read_version
from bench.datasets.video import decode_mp4, encode_mp4
from bench.errors import InvalidInput
from bench.platform.db import VersionRow
from bench.leaderboards.robot_evals import RobotEvals
from bench.testing.data import write_lerobot_dir, write_robot_folder
from conftest import make_settings, settings_env


def _close(decoded: np.ndarray, frames: np.ndarray) -> bool:
    """Lossy video: flat colours come back within a few levels."""
    return decoded.shape == frames.shape and float(np.abs(decoded.astype(int) - frames.astype(int)).mean()) < 4.0


@pytest.mark.parametrize("backend", ["sqlite-local", "postgres-s3"])
def test_a_folder_log_round_trips_with_labels_timestamps_video_and_originals(request, tmp_path, backend):
    from bench.datasets import Registry

    registry = Registry.open(make_settings(request, tmp_path, backend))
    written = write_robot_folder(tmp_path / "session", lengths=(6, 8))
    info = registry.import_path(tmp_path / "session", "lab/franka-wipe", source_options={"task": "wipe the table"})
    assert info.tags == ("lab-test-lab", "real-robot", "robot-franka") and info.episodes == 2 and info.steps == 5 + 7
    assert info.env is None
    dataset = registry.load(info.id)
    for index, episode in enumerate(dataset.episodes()):
        np.testing.assert_allclose(episode.observations["state"], written["states"][index], rtol=1e-6)
        np.testing.assert_allclose(episode.actions, written["actions"][index][:-1], rtol=1e-6)  # the last command has no next frame
        np.testing.assert_allclose(episode.infos["timestamp"], np.arange(len(episode) + 1) / 10.0, atol=1e-9)
        np.testing.assert_array_equal(episode.observations["frame"]["front"], np.arange(len(episode) + 1))
        assert episode.attrs["success"] == (index == 0) and episode.attrs["operator"] == "ann"
        assert episode.attrs["task"] == "wipe the table"
    manifest = registry.manifest(info.id)
    robot = manifest["provenance"]["source_metadata"]["robot"]
    assert robot["robot"] == "franka" and robot["lab"] == "test-lab" and robot["cameras"]["front"]["storage"] == "video"
    local = registry.local_dir(info.id)
    for index in range(2):
        video = local / f"media/front/episode_{index:06d}.mp4"
        assert _close(decode_mp4(video), written["frames"][index])
        original = local / f"original/episode_{index:03d}/front.mp4"
        assert original.read_bytes() == (tmp_path / f"session/episode_{index:03d}/front.mp4").read_bytes()
    assert (local / "original/labels.csv").read_bytes() == (tmp_path / "session/labels.csv").read_bytes()
    from bench.datasets.cards import dataset_card

    card = dataset_card(registry, info.id)  # a log's card: time, cameras and labels, not a histogram of zero returns
    assert "## Robot log" in card and "- duration: 1.2 s in all" in card and "front (" in card
    assert "episodes by operator: ann 2" in card and "Return histogram" not in card and "| | |" not in card
    registry.close()


def test_a_lerobot_v3_directory_imports_episode_by_episode(local_registry, tmp_path):
    written = write_lerobot_dir(tmp_path / "koch-pick", lengths=(6, 9))
    info = local_registry.import_path(tmp_path / "koch-pick", "lab/koch-pick")
    assert info.source_format == "lerobot" and info.episodes == 2 and info.steps == 5 + 8
    dataset = local_registry.load(info.id)
    local = local_registry.local_dir(info.id)
    for index, episode in enumerate(dataset.episodes()):
        np.testing.assert_allclose(episode.observations["state"], written["states"][index], rtol=1e-6)
        np.testing.assert_allclose(episode.actions, written["actions"][index][:-1], rtol=1e-6)
        assert episode.attrs["success"] == written["success"][index] and episode.attrs["task"] == "pick the cube"
        assert _close(decode_mp4(local / f"media/front/episode_{index:06d}.mp4"), written["frames"][index])
    robot = local_registry.manifest(info.id)["provenance"]["source_metadata"]["robot"]
    assert robot["robot"] == "koch" and robot["fps"] == 10.0
    assert (local / "original/meta/info.json").is_file()


def _no_versions(registry) -> bool:
    with registry.session() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(VersionRow)) == 0


def test_bad_logs_give_clear_errors_and_leave_nothing(local_registry, tmp_path):
    def folder(name, **kwargs):
        return write_robot_folder(tmp_path / name, **kwargs) and tmp_path / name

    short_video = folder("short")
    (short_video / "episode_001/front.mp4").write_bytes(encode_mp4(np.zeros((3, 8, 8, 3), np.uint8), 10))
    broken_video = folder("broken")
    (broken_video / "episode_000/front.mp4").write_bytes(b"\x00" * 100)
    partial = folder("partial")
    (partial / "labels.csv").write_text("episode,success\nepisode_000,true\n")
    no_steps = folder("nosteps")
    (no_steps / "episode_001/steps.csv").unlink()
    bad_label = folder("badlabel")
    (bad_label / "labels.csv").write_text("episode,success\nepisode_000,maybe\nepisode_001,true\n")
    no_video = tmp_path / "lerobot-missing"
    write_lerobot_dir(no_video)
    shutil.rmtree(no_video / "videos")
    cases = [(short_video, "has 3 frames for 8 synchronized frames"), (broken_video, "not a readable mp4 video"),
             (partial, "label all or none"), (no_steps, "no steps.csv"), (bad_label, "'maybe'"),
             (no_video, "is missing")]
    for path, message in cases:
        with pytest.raises(InvalidInput, match=message):
            local_registry.import_path(path, "lab/bad")
    assert _no_versions(local_registry) and local_registry.list() == []


def test_robot_cli_imports_and_reports_success_rates(request, tmp_path):
    env = settings_env(make_settings(request, tmp_path, "sqlite-local"))

    def bench(*args, check=True):
        result = subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], env=env, capture_output=True, text=True)
        assert not check or result.returncode == 0, result.stderr
        return result

    write_robot_folder(tmp_path / "drawer", lengths=(5, 5, 5))
    imported = json.loads(bench("robot-logs", "import", tmp_path / "drawer", "--id", "lab/sawyer-drawer",
                                "--robot", "sawyer", "--task", "open drawer", "--json").stdout)
    assert imported["tags"] == ["lab-test-lab", "real-robot", "robot-sawyer"] and imported["episodes"] == 3
    offline = tmp_path / "offline.csv"
    offline.write_text("success,judge\n" + "\n".join(["success"] * 5 + ["failure"] * 3) + "\n")
    online = tmp_path / "online.csv"
    online.write_text("trial,success,notes\n" + "\n".join(f"{i},1,ok" for i in range(1, 9)) + "\n")
    bench("robot-evals", "add", "lab/sawyer-drawer", "--policy", "val", "--phase", "offline", "--trials", offline,
          "--task", "Drawer opening", "--judge", "ann")
    bench("robot-evals", "add", "lab/sawyer-drawer", "--policy", "val", "--phase", "online", "--trials", online,
          "--task", "Drawer opening")
    shown = bench("robot-evals", "show", "lab/sawyer-drawer").stdout
    assert "62.5% [30.6, 86.3] (5/8)" in shown and "100.0% [67.6, 100.0] (8/8)" in shown
    summary = json.loads(bench("robot-evals", "show", "lab/sawyer-drawer", "--json").stdout)
    assert summary["summary"][0]["online_success"]["successes"] == 8 and len(summary["trials"]) == 16
    wrong = bench("robot-evals", "add", "lab/sawyer-drawer", "--policy", "val", "--phase", "later", "--trials", online,
                  "--task", "x", check=False)
    assert wrong.returncode == 1 and wrong.stderr.strip() == "error: phase 'later' is not one of offline, online"
    not_a_log = bench("robot-logs", "import", offline, "--id", "lab/x", check=False)
    assert not_a_log.returncode == 1 and "unknown format" in not_a_log.stderr

    # A bag's import says which topic became what, at which rate, and how the streams were aligned
    from bench.testing.data import write_ros_bag

    write_ros_bag(tmp_path / "take0", ros=2)
    report = bench("robot-logs", "import", tmp_path / "take0", "--id", "lab/bag").stdout
    assert "published lab/bag-v1: 1 episode, " in report
    assert "state <- /joint_states (20 Hz)" in report and "action <- /cmd_vel (10 Hz)" in report
    assert "camera front <- " in report and "cameras: front (16x16, array); 20 frames per second" in report
    assert "aligned to the clock /joint_states at 20 Hz" in report
    one = bench("robot-evals", "add", "lab/sawyer-drawer", "--policy", "bc", "--phase", "offline", "--trials",
                offline, "--task", "Drawer opening").stdout
    assert "recorded 8 offline trials of bc" in one


def test_trials_need_labels_and_tasks_and_are_numbered(local_registry):
    evals = RobotEvals(local_registry.engine)
    with pytest.raises(InvalidInput, match="no success label"):
        evals.add("lab/log", "val", "offline", [{"success": ""}], task="t")
    with pytest.raises(InvalidInput, match="no task"):
        evals.add("lab/log", "val", "offline", [{"success": "1"}])
    evals.add("lab/log", "val", "offline", [{"success": "1"}, {"success": "0"}], task="t")
    evals.add("lab/log", "val", "offline", [{"success": "yes"}], task="t")
    assert [t["trial"] for t in evals.trials("lab/log")] == [1, 2, 3]
    (entry,) = evals.summary(["lab/log"])
    assert entry["offline_success"]["successes"] == 2 and entry["online_success"] is None


def _expected_hold(times_values, ticks):
    """The zero-order hold: each tick takes the latest message at or before it."""
    times = np.array([t for t, _ in times_values])
    return [times_values[int(np.searchsorted(times, tick + 1e-9, side="right")) - 1][1] for tick in ticks]


@pytest.mark.parametrize("ros", [1, 2])
def test_ros_bags_align_streams_to_the_clock_and_keep_labels(local_registry, tmp_path, ros):
    from bench.testing.data import write_ros_bag

    session = tmp_path / "session"
    session.mkdir()
    names = [f"take{i}.bag" if ros == 1 else f"take{i}" for i in range(2)]
    written = [write_ros_bag(session / name, ros=ros, seconds=1.0 + 0.5 * i) for i, name in enumerate(names)]
    (session / "labels.csv").write_text("episode,success,operator\n" + f"{names[0]},1,ann\n{names[1]},0,bob\n")
    info = local_registry.import_path(session, "lab/bags", source_options={"robot": "sawyer", "task": "open drawer"})
    assert info.source_format == "rosbag" and info.episodes == 2 and "robot-sawyer" in info.tags
    dataset = local_registry.load(info.id)
    for episode, messages in zip(dataset.episodes(), written):
        ticks = [t for t, _ in messages["joints"] if t >= messages["commands"][0][0]]  # every stream has spoken
        assert len(episode) == len(ticks) - 1
        np.testing.assert_allclose(episode.observations["state"], [p for t, p in messages["joints"] if t in ticks])
        commands = _expected_hold(messages["commands"], ticks)[:-1]
        np.testing.assert_allclose(episode.actions[:, 0], commands)  # linear.x
        np.testing.assert_allclose(episode.actions[:, 5], [-c for c in commands])  # angular.z
        np.testing.assert_array_equal(episode.observations["images"]["front"], _expected_hold(messages["frames"], ticks))
        np.testing.assert_allclose(episode.infos["timestamp"], np.array(ticks) - ticks[0], atol=1e-6)
    assert [e.attrs["success"] for e in dataset.episodes()] == [True, False]
    assert [e.attrs["operator"] for e in dataset.episodes()] == ["ann", "bob"]
    assert dataset.episode(0).attrs["started_at"].startswith("2023-11-14T22:13:20")  # the bag's first tick, UTC
    assert local_registry.manifest(info.id)["provenance"]["source_metadata"]["robot"]["fps"] == 20.0
    assert set(local_registry.manifest(info.id)["files"]) >= {f"original/{names[0]}" if ros == 1 else f"original/{names[0]}/metadata.yaml"}


def test_a_mapping_file_chooses_topics_and_a_fixed_rate_clock(local_registry, tmp_path):
    from bench.testing.data import write_ros_bag

    write_ros_bag(tmp_path / "wrist", ros=2, compressed_camera=True)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("state: /joint_states\naction: /cmd_vel\ncameras:\n  wrist: /wrist/image/compressed\nclock: rate:5\n")
    info = local_registry.import_path(tmp_path / "wrist", "lab/wrist", format="rosbag",
                                      source_options={"mapping": str(mapping)})
    episode = local_registry.load(info.id).episode(0)
    assert np.allclose(np.diff(episode.infos["timestamp"]), 0.2)  # 5 Hz ticks
    assert episode.observations["images"]["wrist"].shape[1:] == (16, 16, 3)
    mapping.write_text('{"action": "/does_not_exist"}')
    with pytest.raises(InvalidInput, match="'/does_not_exist' \\(action\\) is not in the bag"):
        local_registry.import_path(tmp_path / "wrist", "lab/wrist2", source_options={"mapping": str(mapping)})


def test_a_truncated_bag_is_refused_and_nothing_is_published(request, tmp_path):
    from bench.testing.data import write_ros_bag

    env = settings_env(make_settings(request, tmp_path, "sqlite-local"))
    write_ros_bag(tmp_path / "session.bag", ros=1)
    whole = subprocess.run([sys.executable, "-m", "bench.cli", "robot-logs", "import", tmp_path / "session.bag",
                            "--robot", "sawyer", "--task", "open drawer", "--id", "lab/sawyer-drawer"],
                           env=env, capture_output=True, text=True)
    assert whole.returncode == 0 and "published lab/sawyer-drawer-v1" in whole.stdout, whole.stderr
    cut = tmp_path / "cut.bag"
    cut.write_bytes((tmp_path / "session.bag").read_bytes()[:3000])
    result = subprocess.run([sys.executable, "-m", "bench.cli", "robot-logs", "import", cut, "--id", "lab/cut"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.strip().startswith("error: cut.bag: not a readable bag"), result.stderr
    listed = subprocess.run([sys.executable, "-m", "bench.cli", "datasets", "list", "--json"], env=env,
                            capture_output=True, text=True)
    assert [item["id"] for item in json.loads(listed.stdout)] == ["lab/sawyer-drawer-v1"]


def test_logs_from_a_bag_lerobot_and_a_folder_round_trip_to_a_download(request, tmp_path):
    from bench.testing.data import write_ros_bag

    env = settings_env(make_settings(request, tmp_path, "sqlite-local"))
    write_ros_bag(tmp_path / "session.bag", ros=1)
    write_lerobot_dir(tmp_path / "lerobot")
    write_robot_folder(tmp_path / "folder")
    sources = ((tmp_path / "session.bag", "bag", "rosbag"), (tmp_path / "lerobot", "lerobot", "lerobot"),
               (tmp_path / "folder", "folder", "robot-folder"))
    for source, name, source_format in sources:
        for args in (["robot-logs", "import", source, "--id", f"lab/{name}"],
                     ["datasets", "download", f"lab/{name}", "--out", tmp_path / f"out-{name}"]):
            result = subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], env=env, capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
        data, manifest, table = read_version(tmp_path / f"out-{name}")
        assert manifest["provenance"]["source_format"] == source_format
        assert manifest["provenance"]["source_metadata"]["robot"]["clock"]
        originals = [f for f in manifest["files"] if f.startswith("original/")]
        assert originals and all((tmp_path / f"out-{name}" / f).is_file() for f in originals)
        assert data.num_episodes == len(table) >= 1
