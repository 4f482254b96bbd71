#!/usr/bin/env bash
# Starts, stops and reports the local stand-ins for ferry's AWS backing services, all on 127.0.0.1:
#
#   dynamodb   DynamoDB Local 3.3.1 (Java), in memory    :8000
#   moto       moto server (S3, SQS, Scheduler, Secrets)   :4566
#   mariadb    MariaDB (stands in for MySQL)               :3306  (socket $FERRY_STATE_DIR/run/mysqld.sock)
#   ferretdb   FerretDB v1 on SQLite (stands in for MongoDB) :27017
#
# Usage: stack.sh start|stop|status [service...]      (no service = all four)
#
# Every service runs in the background with its output in $FERRY_STATE_DIR/logs/<svc>.log and its PID in
# $FERRY_STATE_DIR/pids/<svc>.pid. `start` waits until the service answers (FERRY_START_TIMEOUT seconds,
# default 90) and wipes its data first, so every start is fresh; starting a service that is already running
# and answering does nothing. `stop` signals exactly the recorded PIDs (TERM, then KILL after a grace
# period) and removes the pid files. Install the binaries first with install.sh.
#
# run.sh sources this file for its process helpers (spawn, wait_ready, stop_service); sourcing runs nothing.

STACK_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$STACK_SCRIPTS_DIR/env.sh"

STACK_SERVICES=(dynamodb moto mariadb ferretdb)
DYNAMODB_LOCAL_DIR="$FERRY_CACHE/dynamodb-local-3.3.1"
: "${FERRY_START_TIMEOUT:=90}"
: "${FERRY_STOP_TIMEOUT:=30}"

# ------------------------------------------------------------------------------------------ helpers

say() { printf '[stack] %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

pid_file() { printf '%s/pids/%s.pid' "$FERRY_STATE_DIR" "$1"; }
log_file() { printf '%s/logs/%s.log' "$FERRY_STATE_DIR" "$1"; }

# A Python for the readiness probes: the tools venv (it has pymongo) or the system one.
probe_python() {
  if [ -x "$FERRY_CACHE/venv-tools/bin/python" ]; then
    printf '%s' "$FERRY_CACHE/venv-tools/bin/python"
  else
    printf 'python3'
  fi
}

# alive PID: the process exists and is not a zombie.
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1 || true)"
  [ "$state" != "Z" ]
}

# recorded_pid NAME: prints the recorded PID if that process is alive.
recorded_pid() {
  local f pid
  f="$(pid_file "$1")"
  [ -s "$f" ] || return 1
  pid="$(tr -d '[:space:]' <"$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  printf '%s' "$pid"
}

# tcp_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
tcp_open() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# http_answers URL [BODY [HEADER...]]: the server sends any HTTP response (an error status counts).
http_answers() {
  "$(probe_python)" - "$@" <<'PY'
import sys, urllib.error, urllib.request
url = sys.argv[1]
body = sys.argv[2].encode() if len(sys.argv) > 2 else None
req = urllib.request.Request(url, data=body)
for h in sys.argv[3:]:
    k, v = h.split(":", 1)
    req.add_header(k.strip(), v.strip())
try:
    urllib.request.urlopen(req, timeout=3).read()
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
PY
}

# port_owner PORT: a short description of who listens on PORT (for error messages).
port_owner() { ss -Hltnp "sport = :$1" 2>/dev/null | awk '{print $NF}' | head -n 3 || true; }

log_tail() {
  local f
  f="$(log_file "$1")"
  if [ -s "$f" ]; then
    say "last lines of $f:"
    tail -n "${2:-40}" "$f" | sed 's/^/    | /' >&2
  else
    say "($f is empty)"
  fi
}

# spawn NAME [-C DIR] CMD...: runs CMD in the background in its own session (so a Ctrl-C in the terminal
# does not reach it; `stop` does), output to the log, PID to the pid file. The PID recorded is the one of
# CMD itself: the wrapper shell writes its own PID, then execs CMD.
spawn() {
  local name="$1" dir="$PWD" pidf logf
  shift
  if [ "${1:-}" = "-C" ]; then
    dir="$2"
    shift 2
  fi
  pidf="$(pid_file "$name")"
  logf="$(log_file "$name")"
  mkdir -p "$(dirname "$pidf")" "$(dirname "$logf")"
  rm -f "$pidf"
  printf '### %s: started %s in %s\n### %s\n' "$name" "$(date -Is)" "$dir" "$*" >>"$logf"
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  (cd "$dir" && exec setsid bash -c 'echo "$$" >"$0"; exec "$@"' "$pidf" "$@") >>"$logf" 2>&1 </dev/null &
  local i
  for ((i = 0; i < 100; i++)); do
    [ -s "$pidf" ] && return 0
    sleep 0.05
  done
  die "$name: no PID recorded in $pidf after 5 s"
}

# wait_ready NAME TIMEOUT CHECK...: polls CHECK until it succeeds; fails early if the process exits, and
# on failure prints the log tail.
wait_ready() {
  local name="$1" timeout="$2" start=$SECONDS
  shift 2
  while :; do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if ! recorded_pid "$name" >/dev/null; then
      say "$name: the process exited before it was ready"
      log_tail "$name"
      rm -f "$(pid_file "$name")"
      return 1
    fi
    if ((SECONDS - start >= timeout)); then
      say "$name: not ready after ${timeout} s (check: $*)"
      log_tail "$name"
      return 1
    fi
    sleep 0.25
  done
}

# group_alive PGID: some live (non-zombie) process is in process group PGID.
group_alive() {
  local p
  for p in $(pgrep -g "$1" 2>/dev/null); do
    alive "$p" && return 0
  done
  return 1
}

# stop_service NAME: TERM the recorded PID (its whole process group when it leads one, which is the case
# for everything spawn starts: that takes children such as cargo's function processes along), wait up
# to FERRY_STOP_TIMEOUT seconds, then KILL. Removes the pid file.
stop_service() {
  local name="$1" pidf pid target pgid i
  pidf="$(pid_file "$name")"
  if ! pid="$(recorded_pid "$name")"; then
    if [ -e "$pidf" ]; then say "$name: not running (removing stale $pidf)"; else say "$name: not running"; fi
    rm -f "$pidf"
    return 0
  fi
  target="$pid"
  pgid="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)"
  [ "$pgid" = "$pid" ] && target="-$pid"
  running() { alive "$pid" || { [ "$target" != "$pid" ] && group_alive "$pid"; }; }
  say "$name: stopping pid $pid"
  kill -TERM -- "$target" 2>/dev/null || true
  for ((i = 0; i < FERRY_STOP_TIMEOUT * 20; i++)); do
    running || break
    sleep 0.05
  done
  if running; then
    say "$name: still alive after ${FERRY_STOP_TIMEOUT} s, sending KILL"
    kill -KILL -- "$target" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      running || break
      sleep 0.05
    done
  fi
  running && die "$name: pid $pid (or its process group) would not die"
  rm -f "$pidf"
}

# ------------------------------------------------------------------------------------------ services
# Each service has: <svc>_port, <svc>_ready (a quick "answers" check), <svc>_launch (wipe data, spawn),
# <svc>_await (wait until ready, plus any setup).

dynamodb_port() { echo "$FERRY_DYNAMODB_PORT"; }
dynamodb_ready() {
  http_answers "http://127.0.0.1:$FERRY_DYNAMODB_PORT/" '{}' \
    'X-Amz-Target: DynamoDB_20120810.ListTables' 'Content-Type: application/x-amz-json-1.0'
}
dynamodb_launch() {
  [ -f "$DYNAMODB_LOCAL_DIR/lib/DynamoDBLocal.jar" ] || die "dynamodb: $DYNAMODB_LOCAL_DIR is missing: run infra/local/scripts/install.sh"
  [ -f "$DYNAMODB_LOCAL_DIR/lib/libsqlite4java-linux-amd64.so" ] || die "dynamodb: sqlite4java native library missing in $DYNAMODB_LOCAL_DIR/lib: run install.sh"
  command -v java >/dev/null || die "dynamodb: java is not installed"
  local data="$FERRY_STATE_DIR/data/dynamodb"
  rm -rf "$data" && mkdir -p "$data"
  # -inMemory: nothing on disk. -sharedDb: one database whatever the credentials/region of the caller.
  # (DynamoDB Local has no bind-address option: it listens on all interfaces.)
  spawn dynamodb -C "$data" java -Xmx1g -XX:+UseSerialGC \
    -Djava.library.path="$DYNAMODB_LOCAL_DIR/lib" -cp "$DYNAMODB_LOCAL_DIR/lib/*" \
    software.amazon.dynamodb.services.local.main.ServerRunner \
    -inMemory -sharedDb -disableTelemetry -port "$FERRY_DYNAMODB_PORT"
}
dynamodb_await() { wait_ready dynamodb "$FERRY_START_TIMEOUT" dynamodb_ready; }

moto_port() { echo "$FERRY_MOTO_PORT"; }
moto_ready() { http_answers "http://127.0.0.1:$FERRY_MOTO_PORT/moto-api/"; }
moto_launch() {
  [ -x "$FERRY_CACHE/bin/moto_server" ] || die "moto: $FERRY_CACHE/bin/moto_server is missing: run install.sh"
  local data="$FERRY_STATE_DIR/data/moto"
  rm -rf "$data" && mkdir -p "$data"
  spawn moto -C "$data" "$FERRY_CACHE/bin/moto_server" -H 127.0.0.1 -p "$FERRY_MOTO_PORT"
}
moto_await() { wait_ready moto "$FERRY_START_TIMEOUT" moto_ready; }

# MariaDB runs as the mysql user when we are root (mariadbd refuses root), else as ourselves.
mariadb_os_user() { if [ "$(id -u)" = 0 ]; then echo mysql; else id -un; fi; }
mariadb_socket() { printf '%s' "$FERRY_STATE_DIR/run/mysqld.sock"; }
mariadb_port() { echo "$FERRY_MARIADB_PORT"; }
mariadb_ready() {
  MYSQL_PWD="$FERRY_MYSQL_PASSWORD" mariadb --no-defaults --connect-timeout=3 \
    -h127.0.0.1 -P"$FERRY_MARIADB_PORT" -uferry -e 'select 1'
}
mariadb_launch() {
  command -v mariadbd >/dev/null || die "mariadb: mariadbd is not installed: run install.sh"
  local data="$FERRY_STATE_DIR/data/mariadb" run="$FERRY_STATE_DIR/run" user logf
  user="$(mariadb_os_user)"
  logf="$(log_file mariadb)"
  rm -rf "$data" "$run/mysqld.sock" "$run/mariadbd.pid"
  mkdir -p "$data" "$run" "$(dirname "$logf")"
  if [ "$user" = mysql ]; then
    chown mysql:mysql "$data" "$run"
    runuser -u mysql -- test -w "$data" ||
      die "mariadb: the mysql user cannot write $data (a parent directory is not traversable?); set FERRY_STATE_DIR elsewhere"
  fi
  printf '### mariadb: mariadb-install-db %s\n' "$(date -Is)" >"$logf"
  if ! mariadb-install-db --no-defaults --user="$user" --datadir="$data" \
    --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve >>"$logf" 2>&1; then
    log_tail mariadb
    die "mariadb: mariadb-install-db failed"
  fi
  mv "$logf" "$logf.install"
  # --no-defaults: ignore /etc/mysql, so the Debian config (datadir, socket, log paths) cannot interfere.
  spawn mariadb -C "$data" mariadbd --no-defaults --user="$user" --datadir="$data" \
    --socket="$run/mysqld.sock" --pid-file="$run/mariadbd.pid" \
    --bind-address=127.0.0.1 --port="$FERRY_MARIADB_PORT" --skip-name-resolve \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --local-infile=1 --max-allowed-packet=64M --innodb-flush-log-at-trx-commit=2
}
mariadb_await() {
  local sock admin pw
  sock="$(mariadb_socket)"
  wait_ready mariadb "$FERRY_START_TIMEOUT" test -S "$sock" || return 1
  # Over the socket, the OS user that ran mariadb-install-db (root, or ourselves) is a MariaDB admin.
  admin="$(id -un)"
  wait_ready mariadb "$FERRY_START_TIMEOUT" mariadb --no-defaults -S "$sock" -u"$admin" -e 'select 1' || return 1
  pw="${FERRY_MYSQL_PASSWORD//\\/\\\\}"
  pw="${pw//\'/\\\'}"
  if ! mariadb --no-defaults -S "$sock" -u"$admin" >>"$(log_file mariadb)" 2>&1 <<SQL; then
CREATE DATABASE IF NOT EXISTS ferry CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'ferry'@'127.0.0.1' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS 'ferry'@'localhost' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON *.* TO 'ferry'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'ferry'@'localhost';
SET GLOBAL local_infile = 1;
FLUSH PRIVILEGES;
SQL
    log_tail mariadb
    say "mariadb: creating the ferry database and user failed"
    return 1
  fi
  wait_ready mariadb "$FERRY_START_TIMEOUT" mariadb_ready
}

ferretdb_port() { echo "$FERRY_FERRETDB_PORT"; }
ferretdb_ready() {
  tcp_open "$FERRY_FERRETDB_PORT" || return 1
  "$(probe_python)" -c '
import sys, pymongo
c = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=2000, connectTimeoutMS=2000)
c.admin.command("ping")' "$FERRY_MONGO_URL"
}
ferretdb_launch() {
  [ -x "$FERRY_CACHE/bin/ferretdb" ] || die "ferretdb: $FERRY_CACHE/bin/ferretdb is missing: run install.sh"
  local data="$FERRY_STATE_DIR/data/ferretdb"
  rm -rf "$data" && mkdir -p "$data/sqlite" "$data/state"
  # --debug-addr=-: no debug/metrics HTTP listener.
  spawn ferretdb -C "$data" "$FERRY_CACHE/bin/ferretdb" --handler=sqlite --sqlite-url="file:$data/sqlite/" \
    --listen-addr="127.0.0.1:$FERRY_FERRETDB_PORT" --debug-addr=- --state-dir="$data/state" --telemetry=disable \
    --log-level=info
}
ferretdb_await() { wait_ready ferretdb "$FERRY_START_TIMEOUT" ferretdb_ready; }

# ------------------------------------------------------------------------------------------ commands

check_services() {
  local s k known
  for s in "$@"; do
    known=0
    for k in "${STACK_SERVICES[@]}"; do [ "$s" = "$k" ] && known=1; done
    [ "$known" = 1 ] || die "unknown service '$s' (services: ${STACK_SERVICES[*]})"
  done
}

cmd_start() {
  local s pid port launched=() failed=() t0=$SECONDS
  mkdir -p "$FERRY_STATE_DIR"/{pids,logs,data,run}
  for s in "$@"; do
    port="$("${s}_port")"
    if pid="$(recorded_pid "$s")"; then
      if "${s}_ready" >/dev/null 2>&1; then
        say "$s: already running (pid $pid, port $port)"
        continue
      fi
      say "$s: pid $pid is alive but does not answer on port $port: restarting it"
      stop_service "$s"
    fi
    rm -f "$(pid_file "$s")"
    if tcp_open "$port"; then
      die "$s: port $port is already in use by a process stack.sh did not start: $(port_owner "$port")"
    fi
    say "$s: starting (log $(log_file "$s"))"
    "${s}_launch"
    launched+=("$s")
  done
  for s in "${launched[@]}"; do
    if "${s}_await"; then
      say "$s: ready on 127.0.0.1:$("${s}_port") (pid $(recorded_pid "$s"))"
    else
      failed+=("$s")
    fi
  done
  if ((${#failed[@]})); then
    die "failed to start: ${failed[*]} (the others are left running; stop them with: $0 stop)"
  fi
  ((${#launched[@]})) && say "started ${launched[*]} in $((SECONDS - t0)) s"
  return 0
}

cmd_stop() {
  local i
  # Reverse order of start.
  for ((i = $# ; i >= 1; i--)); do stop_service "${!i}"; done
}

cmd_status() {
  local s pid port rc=0
  for s in "$@"; do
    port="$("${s}_port")"
    if pid="$(recorded_pid "$s")"; then
      if "${s}_ready" >/dev/null 2>&1; then
        printf '%-9s running  pid %-7s 127.0.0.1:%s answering\n' "$s" "$pid" "$port"
      else
        printf '%-9s running  pid %-7s 127.0.0.1:%s NOT answering\n' "$s" "$pid" "$port"
        rc=1
      fi
    elif tcp_open "$port"; then
      printf '%-9s stopped  (but port %s is used by another process: %s)\n' "$s" "$port" "$(port_owner "$port")"
      rc=1
    else
      printf '%-9s stopped\n' "$s"
      rc=1
    fi
  done
  return "$rc"
}

stack_main() {
  set -euo pipefail
  local cmd="${1:-}"
  shift || true
  (($#)) || set -- "${STACK_SERVICES[@]}"
  case "$cmd" in
    start) check_services "$@" && cmd_start "$@" ;;
    stop) check_services "$@" && cmd_stop "$@" ;;
    status) check_services "$@" && cmd_status "$@" ;;
    *)
      echo "usage: $0 start|stop|status [service...]   (services: ${STACK_SERVICES[*]})" >&2
      exit 2
      ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  stack_main "$@"
fi
