"""Class 8 of the security review: `bench datasets verify` on a damaged or missing manifest is one line.

The line names the manifest, the exit status is non-zero, and there is no traceback, no
JSONDecodeError and no server path.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bench.datasets import Registry
from bench.testing.data import random_trajectories
from tests.conftest import settings_env


@pytest.mark.parametrize("damage", ["garbage", "empty", "list", "no files", "missing"])
def test_verify_on_a_damaged_or_missing_manifest_is_one_line(local_settings, damage):
    registry = Registry.open(local_settings)
    version = registry.publish(random_trajectories(np.random.default_rng(0), episodes=5), "lab/verified")
    registry.close()
    manifest = local_settings.home / "datasets" / version.storage_path / "manifest.json"
    if damage == "missing":
        manifest.unlink()
    else:
        manifest.write_text({"garbage": "{not json", "empty": "", "list": "[1, 2]",
                             "no files": '{"format": "bench", "format_version": 1}'}[damage])
    result = subprocess.run([sys.executable, "-m", "bench.cli", "datasets", "verify", version.id],
                            env=settings_env(local_settings), capture_output=True, text=True)
    assert result.returncode != 0
    output = (result.stdout + result.stderr).strip()
    assert "manifest.json" in output and "Traceback" not in output and "JSONDecodeError" not in output
    assert str(local_settings.home) not in output
    assert len(output.splitlines()) <= 2, output
