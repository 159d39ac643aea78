#!/usr/bin/env bash
# Create .venv (if missing) and install bench with its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, asked for directly: that takes this machine's CPU wheel. Left to resolve as the
# project's dependency, the same pin takes PyPI's CUDA build (+cu130), several GB, whose runtime
# crashes MuJoCo's EGL rendering in the same process (seen as a SIGSEGV in OGBench evaluation).
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]"
