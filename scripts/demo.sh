#!/usr/bin/env bash
# The main job, end to end, on the embedded defaults (SQLite + local disk under $BENCH_HOME,
# default ~/.bench): set up, build a benchmark dataset from its recipe, look at its card,
# verify it, export it to Minari and D4RL, import the D4RL file back as a user would, then
# evaluate IQL on it offline and online over two seeds (a short CPU budget) and show a run;
# finally share both through a bench server (its own home, on a loopback port): upload the data,
# push the runs, download an episode range, and read the leaderboard over HTTP; last, start the API
# and the web UI over this registry and print the UI's address.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BENCH=.venv/bin/bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONWARNINGS=ignore  # Meta-World's scripted policies warn about action constants on every import

$BENCH init
$BENCH recipes list
# Meta-World drawer opening, AWAC-style prior data: 1 expert demonstration + 50 medium/random episodes.
$BENCH datasets build metaworld/drawer-open/mixed --episodes 51 --seed 0
$BENCH datasets card metaworld/drawer-open/mixed --out "$work/card"
cat "$work/card/card.md"
$BENCH datasets verify metaworld/drawer-open/mixed
$BENCH envs show metaworld/drawer-open
$BENCH datasets export metaworld/drawer-open/mixed --format minari --out "$work/minari/drawer-open-mixed-v1"
$BENCH datasets export metaworld/drawer-open/mixed --format d4rl --out "$work/drawer_open_mixed.hdf5"
MINARI_DATASETS_PATH="$work/minari" .venv/bin/python -c \
  "import minari; d = minari.load_dataset('drawer-open-mixed-v1'); print(f'minari reads the export: {d.total_episodes} episodes, {d.total_steps} steps')"
$BENCH datasets import "$work/drawer_open_mixed.hdf5" --id demo/drawer-open-mixed \
  --env bench/MetaWorld-v0 --env-kwargs '{"task": "drawer-open"}'
$BENCH datasets list
$BENCH algorithms list
$BENCH evaluate iql metaworld/drawer-open/mixed --seeds 2 --offline-steps 2000 --online-steps 2000 \
  --eval-every 1000 --eval-episodes 5 --executor process --json > "$work/evaluate.json"
.venv/bin/python -c "import json, sys; print(json.dumps(json.load(open(sys.argv[1]))['summary'], indent=2))" "$work/evaluate.json"
$BENCH runs show "$(.venv/bin/python -c "import json, sys; print(json.load(open(sys.argv[1]))['runs'][0]['run_id'])" "$work/evaluate.json")"

# Share through a server. In a lab this runs on another machine (docs/deploy.md).
server_home="$work/server"
port=$(.venv/bin/python -c "from bench.testing.services import free_port; print(free_port())")
BENCH_HOME="$server_home" $BENCH users create demo --admin
token=$(BENCH_HOME="$server_home" $BENCH tokens create demo --name demo)
BENCH_HOME="$server_home" $BENCH serve api --port "$port" > "$work/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/api/v1/health"; echo
version_dir=$(.venv/bin/python -c "from bench.datasets import Registry; print(Registry.open().local_dir('metaworld/drawer-open/mixed'))")
run_ids=$(.venv/bin/python -c "import json, sys; print(' '.join(r['run_id'] for r in json.load(open(sys.argv[1]))['runs']))" "$work/evaluate.json")
export BENCH_SERVER="http://127.0.0.1:$port" BENCH_TOKEN="$token"
$BENCH datasets upload "$version_dir" --id metaworld/drawer-open/mixed --tag demo
$BENCH datasets list --tag demo
$BENCH datasets download metaworld/drawer-open/mixed --episodes 0:5 --out "$work/first-five"
# shellcheck disable=SC2086
$BENCH results push $run_ids
$BENCH leaderboard show families
unset BENCH_SERVER BENCH_TOKEN

# The web UI over this registry (the dataset, its card and episodes, the runs), left running.
home="${BENCH_HOME:-$HOME/.bench}"
api_port=$(.venv/bin/python -c "from bench.testing.services import free_port; print(free_port())")
ui_port=$(.venv/bin/python -c "from bench.testing.services import free_port; print(free_port())")
setsid $BENCH serve api --port "$api_port" > "$home/api.log" 2>&1 < /dev/null &
api_pid=$!
for _ in $(seq 150); do curl -fsS "http://127.0.0.1:$api_port/api/v1/health" >/dev/null 2>&1 && break; sleep 0.2; done
setsid $BENCH serve ui --api "http://127.0.0.1:$api_port" --port "$ui_port" > "$home/ui.log" 2>&1 < /dev/null &
ui_pid=$!
for _ in $(seq 150); do curl -fsS "http://127.0.0.1:$ui_port/_stcore/health" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://127.0.0.1:$ui_port/_stcore/health" >/dev/null
echo "demo finished: the registry is in $home"
echo "bench UI: http://127.0.0.1:$ui_port  (API: http://127.0.0.1:$api_port/api/v1/docs)"
echo "they keep running; stop them with: kill $api_pid $ui_pid"
