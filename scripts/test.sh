#!/usr/bin/env bash
# Set up and run the whole test suite. The tests start their own PostgreSQL 15 cluster and
# S3 server (bench/testing/services.py); this script makes sure the server binaries exist.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
  else
    echo "PostgreSQL 15 server binaries are missing: sudo apt-get install postgresql-15" >&2
    exit 1
  fi
fi
# The UI tests drive Debian's chromium through playwright (its own browser downloads are not used).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
bash scripts/setup.sh
exec .venv/bin/python -m pytest -n 2 "$@"
