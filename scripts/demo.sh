#!/usr/bin/env bash
# The main job, end to end, on the embedded defaults (SQLite + local disk under $BENCH_HOME,
# default ~/.bench): set up, init, make a small real dataset, import, show, verify, export.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BENCH=.venv/bin/bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

$BENCH init
# 20 episodes of Pendulum-v1 under uniform random actions, written in D4RL's HDF5 layout.
.venv/bin/python -m bench.testing.data "$work/pendulum_random.hdf5" Pendulum-v1 20 0
$BENCH datasets import "$work/pendulum_random.hdf5" --id gym/pendulum-random --env Pendulum-v1
$BENCH datasets list
$BENCH datasets show gym/pendulum-random
$BENCH datasets verify gym/pendulum-random
$BENCH datasets export gym/pendulum-random --format minari --out "$work/minari/pendulum-random-v1"
$BENCH datasets export gym/pendulum-random --format d4rl --out "$work/pendulum-random.hdf5"
MINARI_DATASETS_PATH="$work/minari" .venv/bin/python -c \
  "import minari; d = minari.load_dataset('pendulum-random-v1'); print(f'minari reads the export: {d.total_episodes} episodes, {d.total_steps} steps')"
echo "demo finished: the registry is in ${BENCH_HOME:-$HOME/.bench}"
