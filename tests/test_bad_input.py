"""Bad input through the CLI: one line naming the problem, a non-zero exit, and nothing left behind."""

import os

import h5py
import numpy as np
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from bench.cli import app
from bench.datasets import Registry
from bench.platform.db import DatasetRow, VersionRow
from bench.testing.data import random_trajectories, write_d4rl_file
from conftest import settings_env


@pytest.fixture
def cli(settings, monkeypatch):
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("BENCH_") and k not in settings_env(settings)]:
        monkeypatch.delenv(key)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, [str(a) for a in args])

    return run


def _good_file(tmp_path, rng, name="good.hdf5"):
    return write_d4rl_file(tmp_path / name, random_trajectories(rng, episodes=3).validate())


def _assert_nothing_left(settings):
    registry = Registry.open(settings)
    try:
        with registry.session() as session:
            assert session.scalars(sa.select(VersionRow)).all() == []
            assert session.scalars(sa.select(DatasetRow)).all() == []
        assert registry.storage.sizes("") == {}
        staging = settings.staging_dir
        assert not staging.exists() or not any(staging.iterdir())
    finally:
        registry.close()


def _assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _mismatched(path):
    with h5py.File(path, "w") as handle:
        handle["observations"] = np.zeros((10, 3), np.float32)
        handle["actions"] = np.zeros((9, 2), np.float32)
        handle["rewards"] = np.zeros(10, np.float32)
        handle["terminals"] = np.zeros(10, bool)
    return path


def _empty(path):
    with h5py.File(path, "w") as handle:
        for key, shape in {"observations": (0, 3), "actions": (0, 2), "rewards": (0,), "terminals": (0,)}.items():
            handle[key] = np.zeros(shape, np.float32)
    return path


def _truncated(path, rng):
    write_d4rl_file(path, random_trajectories(rng, episodes=30).validate())
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2])
    return path


def _nonfinite(path, rng):
    data = random_trajectories(rng, episodes=3).validate()
    data.rewards[4] = np.nan
    data.observations[2, 1] = np.inf
    return write_d4rl_file(path, data)


def test_missing_file(cli, settings, tmp_path):
    _assert_one_line_error(cli("datasets", "import", tmp_path / "nope.hdf5", "--id", "a/b"), "nope.hdf5", "no such file")
    _assert_nothing_left(settings)


def test_unknown_format(cli, settings, tmp_path, rng):
    (tmp_path / "notes.txt").write_text("hello")
    _assert_one_line_error(cli("datasets", "import", tmp_path / "notes.txt", "--id", "a/b"), "unknown format")
    _assert_one_line_error(cli("datasets", "import", _good_file(tmp_path, rng), "--id", "a/b", "--format", "csv"),
                           "unknown import format 'csv'")
    _assert_nothing_left(settings)


def test_truncated_hdf5(cli, settings, tmp_path, rng):
    result = cli("datasets", "import", _truncated(tmp_path / "cut.hdf5", rng), "--id", "a/b")
    _assert_one_line_error(result, "cut.hdf5")
    assert "HDF5" in result.stderr
    _assert_nothing_left(settings)


def test_mismatched_lengths(cli, settings, tmp_path):
    _assert_one_line_error(cli("datasets", "import", _mismatched(tmp_path / "m.hdf5"), "--id", "a/b"),
                           "observations has 10 rows but actions has 9")
    _assert_nothing_left(settings)


def test_empty_dataset(cli, settings, tmp_path):
    _assert_one_line_error(cli("datasets", "import", _empty(tmp_path / "e.hdf5"), "--id", "a/b"), "empty")
    _assert_nothing_left(settings)


def test_nonfinite_values_rejected_unless_allowed(cli, settings, tmp_path, rng):
    path = _nonfinite(tmp_path / "nan.hdf5", rng)
    _assert_one_line_error(cli("datasets", "import", path, "--id", "a/b"), "non-finite", "--allow-nonfinite")
    _assert_nothing_left(settings)
    result = cli("datasets", "import", path, "--id", "a/b", "--allow-nonfinite")
    assert result.exit_code == 0, result.output
    assert "a/b-v1" in result.stdout


@pytest.mark.parametrize("bad_id", ["a/../b", "noslash", "a//b", "a/b c"])
def test_invalid_names(cli, settings, tmp_path, rng, bad_id):
    _assert_one_line_error(cli("datasets", "import", _good_file(tmp_path, rng), "--id", bad_id), "dataset id")
    _assert_nothing_left(settings)


def test_already_published_version(cli, settings, tmp_path, rng):
    path = _good_file(tmp_path, rng)
    assert cli("datasets", "import", path, "--id", "a/b").exit_code == 0
    _assert_one_line_error(cli("datasets", "import", path, "--id", "a/b-v1"), "a/b-v1 is already a published version")
    registry = Registry.open(settings)
    assert [info.id for info in registry.list()] == ["a/b-v1"]
    with registry.session() as session:
        assert len(session.scalars(sa.select(VersionRow)).all()) == 1
        assert len(session.scalars(sa.select(DatasetRow)).all()) == 1
    registry.close()


def test_unknown_dataset_and_export_errors(cli, settings, tmp_path, rng):
    _assert_one_line_error(cli("datasets", "show", "x/y-v1"), "not found")
    _assert_one_line_error(cli("datasets", "verify", "x/y"), "not found")
    assert cli("datasets", "import", _good_file(tmp_path, rng), "--id", "a/b").exit_code == 0
    _assert_one_line_error(cli("datasets", "export", "a/b-v1", "--format", "parquet", "--out", tmp_path / "o"),
                           "unknown export format")
    _assert_one_line_error(cli("datasets", "export", "a/b-v1", "--format", "minari", "--out", tmp_path / "badname"),
                           "name-vN")
    _assert_one_line_error(cli("datasets", "yank", "a/b", "--reason", "x"), "exact version")

    # Near misses name what exists: a dataset, a version, an algorithm, a recipe, an environment.
    _assert_one_line_error(cli("datasets", "show", "a/bb"), "dataset a/bb not found (did you mean a/b?)")
    _assert_one_line_error(cli("datasets", "show", "a/b-v7"), "dataset version a/b-v7 not found; a/b has v1")
    _assert_one_line_error(cli("algorithms", "show", "iqll"), "(did you mean iql")
    _assert_one_line_error(cli("datasets", "build", "pointmaze/umaz/navigate"), "did you mean pointmaze/umaze/navigate")
    _assert_one_line_error(cli("envs", "show", "mujoco/hoper"), "did you mean mujoco/hopper")
    _assert_one_line_error(cli("evaluate", "iql", "a/b"), "import it again with --env NAME")


def test_verify_reports_each_damaged_file(cli, settings, tmp_path, rng):
    assert cli("datasets", "import", _good_file(tmp_path, rng), "--id", "a/b").exit_code == 0
    registry = Registry.open(settings)
    info = registry.show("a/b-v1")
    with registry.storage.open(f"{info.storage_path}/episodes.parquet", "wb") as handle:
        handle.write(b"garbage")
    registry.close()
    result = cli("datasets", "verify", "a/b-v1")
    assert result.exit_code == 1
    assert result.stderr.strip() == "a/b-v1: episodes.parquet: sha256 differs from the manifest"
