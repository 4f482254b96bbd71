#!/usr/bin/env bash
# bench-loaders (make bench-loaders): with the local stack up, install the peers if missing (Debian
# sysbench; pymongo in ~/.cache/ferry/venv-bench), then run the benchmark in release. Arguments go to
# the binary: [MYSQL_ROWS [MONGO_DOCS [CRUD_SECS [ROUNDS]]]]; BENCH_ONLY=mysql|mongo runs one part.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=/dev/null
source infra/local/scripts/env.sh
# shellcheck source=/dev/null
source "$FERRY_STATE_DIR/function-env.sh"

if ! command -v sysbench >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "bench-loaders: need sysbench (apt-get install sysbench)" >&2; exit 1; }
  echo "bench-loaders: apt-get install sysbench"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends sysbench >/dev/null
fi
VENV="${FERRY_CACHE:-$HOME/.cache/ferry}/venv-bench"
if ! "$VENV/bin/python" -c 'import pymongo' 2>/dev/null; then
  echo "bench-loaders: creating $VENV with pymongo"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'pymongo>=4.10,<5'
fi
export BENCH_PYTHON="$VENV/bin/python"
exec cargo run --release -p bench-loaders -- "$@"
