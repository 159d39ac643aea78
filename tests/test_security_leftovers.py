"""Class 10 of the security review: what a killed server leaves in uploads/ is removed at start-up and by gc.

A server killed between making an upload's directory and committing its row leaves a directory no
row points to; finished, failed and abandoned uploads leave none. Start-up and ``bench datasets gc``
remove such directories once they are older than a grace period (a live create() makes the
directory just before its row commits); the directories of open uploads stay.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.api_helpers import make_api, reopen_api
from tests.conftest import make_settings, settings_env


def _leftover(settings, age_seconds: float):
    directory = settings.home / "uploads" / uuid.uuid4().hex
    directory.mkdir(parents=True)
    (directory / "data").write_bytes(b"partial")
    then = time.time() - age_seconds
    os.utime(directory, (then, then))
    return directory


@pytest.mark.parametrize("backend", ["sqlite-local", "postgres-s3"])
def test_start_up_and_gc_remove_upload_directories_nothing_points_to(request, tmp_path, backend):
    settings = make_settings(request, tmp_path, backend)
    first = make_api(settings, tmp_path)
    open_upload = first.upload(first.d4rl_bytes(), "alice/open", complete=False)
    first.client.__exit__(None, None, None)
    first.registry.close()
    old = _leftover(settings, 3600)
    young = _leftover(settings, 0)
    restarted = reopen_api(settings, tmp_path)
    try:
        assert not old.exists(), "start-up leaves a dead upload's directory"
        assert young.exists(), "a directory younger than the grace period may belong to a create() in flight"
        assert (settings.home / "uploads" / open_upload).is_dir()
        finished = restarted.upload(restarted.d4rl_bytes(seed=1), "alice/finished")
        assert finished.status_code == 200
    finally:
        restarted.client.__exit__(None, None, None)
        restarted.registry.close()
    another = _leftover(settings, 3600)
    result = subprocess.run([sys.executable, "-m", "bench.cli", "datasets", "gc", "--json"],
                            env=settings_env(settings), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert str(another) in result.stdout and not another.exists()
    assert (settings.home / "uploads" / open_upload).is_dir()
    remaining = {p.name for p in (settings.home / "uploads").iterdir()}
    assert remaining == {open_upload, young.name}
