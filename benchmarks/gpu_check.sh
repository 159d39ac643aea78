#!/usr/bin/env bash
# The GPU checks in one script, for a machine with a CUDA GPU: the tests marked `gpu` (a run trained on
# the GPU resumes on the CPU; VAL and PTP end to end on the GPU; each learner's checkpoint crosses devices),
# then the throughput benchmark on the GPU with and without torch.compile, pixel representations included.
# Within 8 minutes on one GPU (each part is capped at 4); prints the benchmark's JSON and leaves it in $OUT (or .) as throughput-cuda.json.
#
#     bash benchmarks/gpu_check.sh [PYTHON]        # PYTHON defaults to .venv/bin/python
#
# On a fresh GPU machine `bash scripts/setup.sh` makes the virtualenv: its exact pin torch==2.13.0 resolves
# to PyPI's CUDA build there (here, without a GPU, to the local CPU wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-.venv/bin/python}"
OUT_DIR="${OUT:-.}"
export MUJOCO_GL=egl PYTHONUNBUFFERED=1

"$PYTHON" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA GPU here")
print(f"gpu_check: torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
PY

started=$(date +%s)
timeout 240 "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider tests/test_devices.py
echo "gpu_check: tests took $(( $(date +%s) - started )) s"

started=$(date +%s)
timeout 240 "$PYTHON" benchmarks/throughput.py --device cuda --no-d3rlpy --pixels --seeds 8 --repeats 3 \
    | tee "$OUT_DIR/throughput-cuda.json"
echo "gpu_check: throughput took $(( $(date +%s) - started )) s"
