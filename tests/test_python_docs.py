"""docs/python.md runs: its code blocks execute in order, in one namespace, against a fresh BENCH_HOME."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def test_every_example_in_the_python_guide_runs(tmp_path, monkeypatch):
    for key in ("BENCH_DATABASE_URL", "BENCH_STORAGE_URL", "BENCH_SERVER", "BENCH_TOKEN", "BENCH_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no ./bench.toml of the checkout's
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 5
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/python.md, example {number}", "exec"), namespace)
