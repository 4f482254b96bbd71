#!/usr/bin/env bash
# ferry's local stack, end to end (what `make dev|test|up|down|install|check` run):
#
#   up       install tools, start the backing services (stack.sh), build the workspace, provision the
#            template's resources, start `cargo lambda watch` (the Lambda service, 127.0.0.1:9001), the
#            gateway (the template's HTTP API, 127.0.0.1:9000) and the event pump
#   dev      up + an admin user, then follow the watch and pump logs until Ctrl-C; then down
#   test     up, then fmt, clippy, cfn-lint, sam validate, cargo test; always down at the end
#   down     stop the pump, the gateway, watch, and the backing services
#   restart-functions  stop and start watch, the gateway and the pump (state in the services is kept)
#   status   what is running
#   install  install.sh only
#   check    cargo fmt --check + clippy only (no stack)
#
# Every step prints `==> step` and its wall time; the first failing step stops the run and is named.
# State (pids, logs, data, resources.json, admin-password) lives in $FERRY_STATE_DIR (default .ferry/).
set -euo pipefail

RUN_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# stack.sh, sourced, defines the process helpers (spawn, wait_ready, stop_service, ...) and sources env.sh.
# shellcheck source-path=SCRIPTDIR source=stack.sh
source "$RUN_SCRIPTS_DIR/stack.sh"
cd "$FERRY_ROOT"

# FERRY_LOCAL overrides the binary (e.g. a release build, or a stub when testing these scripts).
FERRY_LOCAL="${FERRY_LOCAL:-$CARGO_TARGET_DIR/debug/ferry-local}"
WATCH_PORT="$FERRY_WATCH_PORT"
: "${FERRY_WATCH_TIMEOUT:=300}"
RUN_T0=$SECONDS

# step NAME CMD...: runs CMD in this shell, prints its wall time; on failure names the step and exits
# (the EXIT trap, where set, runs `down`). CMD is a simple command or a function that returns non-zero on
# failure (errexit does not apply inside it).
step() {
  local name="$1" t0=$SECONDS rc=0
  shift
  printf '==> %s\n' "$name"
  "$@" || rc=$?
  if [ "$rc" != 0 ]; then
    printf '==> FAILED: %s (exit %s, after %s s)\n' "$name" "$rc" "$((SECONDS - t0))" >&2
    exit "$rc"
  fi
  printf '    %s: ok, %s s\n' "$name" "$((SECONDS - t0))"
}

# ------------------------------------------------------------------------------------------ up

# The workspace build includes ferry-local; if the binary is still missing afterwards, say so plainly.
ensure_ferry_local() {
  [ -x "$FERRY_LOCAL" ] && return 0
  cargo build -p ferry-local || true
  if [ ! -x "$FERRY_LOCAL" ]; then
    say "error: $FERRY_LOCAL could not be built (cargo build -p ferry-local). It is the local-stack tool in"
    say "       infra/local (provision, env, gateway, pump, create-user); run.sh cannot go on without it."
    return 1
  fi
}

# Exports the functions' environment (table name, queue URLs, secret ARNs, ... resolved against the local
# stack) into this shell, so watch, the pump and cargo test inherit it; keeps a copy for other shells.
load_function_env() {
  local out
  out="$("$FERRY_LOCAL" env)" || return 1
  eval "$out" || return 1
  (umask 077 && printf '%s\n' "$out" >"$FERRY_STATE_DIR/function-env.sh")
}

# to_start NAME PORT URL: status 0 when NAME is to be started (a stale one of run.sh's is stopped
# first), 1 when run.sh's NAME already answers URL, 2 when a process run.sh did not start holds PORT.
to_start() {
  local name="$1" port="$2" url="$3" pid
  if pid="$(recorded_pid "$name")" && http_answers "$url"; then
    say "$name: already running (pid $pid)"
    return 1
  fi
  [ -n "${pid:-}" ] && stop_service "$name"
  if tcp_open "$port"; then
    say "error: port $port is in use by a process run.sh did not start: $(port_owner "$port")"
    return 2
  fi
}

start_watch() {
  local rc=0
  to_start watch "$WATCH_PORT" "http://127.0.0.1:$WATCH_PORT/" || rc=$?
  [ "$rc" = 1 ] && return 0
  [ "$rc" = 0 ] || return 1
  command -v cargo-lambda >/dev/null || {
    say "error: cargo-lambda is not on PATH: run infra/local/scripts/install.sh"
    return 1
  }
  local profile=()
  if [ -n "$FERRY_WATCH_RELEASE" ] && [ "$FERRY_WATCH_RELEASE" != 0 ]; then
    # Built here, not on each function's first request (a fat-LTO link takes minutes), one at a time
    # as watch builds them (`--bin NAME`: each function's own features, so watch finds it up to date).
    # 1: every function; a comma list (e.g. api-jobs,worker-loader): those, the rest on first request.
    local f names=()
    if [ "$FERRY_WATCH_RELEASE" = 1 ]; then
      for f in "$FERRY_ROOT"/functions/*/; do names+=("$(basename "$f")"); done
    else
      IFS=, read -r -a names <<<"$FERRY_WATCH_RELEASE"
    fi
    for f in "${names[@]}"; do
      [ -d "$FERRY_ROOT/functions/$f" ] || { say "error: FERRY_WATCH_RELEASE names no function '$f'"; return 1; }
      say "watch: building $f in release"
      (cd "$FERRY_ROOT" && cargo build --release --bin "$f") || return 1
    done
    profile=(--release)
  fi
  say "watch: starting cargo lambda watch on 127.0.0.1:$WATCH_PORT (log $(log_file watch))"
  spawn watch -C "$FERRY_ROOT" cargo lambda watch -A 127.0.0.1 -P "$WATCH_PORT" --ignore-changes \
    --concurrency "$FERRY_WATCH_CONCURRENCY" "${profile[@]}"
  wait_ready watch "$FERRY_WATCH_TIMEOUT" http_answers "http://127.0.0.1:$WATCH_PORT/"
}

# The gateway reads the template's routes when it starts: restart it (make down; make up) after changing them.
start_gateway() {
  local rc=0
  to_start gateway "$FERRY_API_PORT" "$FERRY_API_URL/health/live" || rc=$?
  [ "$rc" = 1 ] && return 0
  [ "$rc" = 0 ] || return 1
  say "gateway: starting ferry-local gateway on 127.0.0.1:$FERRY_API_PORT (log $(log_file gateway))"
  spawn gateway -C "$FERRY_ROOT" "$FERRY_LOCAL" gateway
  wait_ready gateway 30 http_answers "$FERRY_API_URL/health/live"
}

start_pump() {
  local pid
  if pid="$(recorded_pid pump)"; then
    say "pump: already running (pid $pid)"
    return 0
  fi
  say "pump: starting ferry-local pump (log $(log_file pump))"
  spawn pump -C "$FERRY_ROOT" "$FERRY_LOCAL" pump
  # The pump has no port: it is up if it is still alive after a moment.
  sleep 2
  if ! recorded_pid pump >/dev/null; then
    say "pump: exited right after starting"
    log_tail pump
    return 1
  fi
}

# The events database secret (EventsDatabaseSecret) points at the local MariaDB: `ferry-local provision`
# takes a secret's value from FERRY_LOCAL_SECRET_<LogicalId> when set (see infra/local/src/provision.rs).
export_local_secrets() {
  FERRY_LOCAL_SECRET_EventsDatabaseSecret="$(
    FERRY_MYSQL_PASSWORD="$FERRY_MYSQL_PASSWORD" "$(probe_python)" -c '
import json, os
print(json.dumps({"host": "127.0.0.1", "port": int(os.environ["FERRY_MARIADB_PORT"]),
                  "username": "ferry", "password": os.environ["FERRY_MYSQL_PASSWORD"], "dbname": "ferry"}))'
  )" || return 1
  export FERRY_LOCAL_SECRET_EventsDatabaseSecret
}

cmd_up() {
  step "install.sh" "$RUN_SCRIPTS_DIR/install.sh"
  step "stack.sh start" "$RUN_SCRIPTS_DIR/stack.sh" start
  step "cargo build --workspace --bins" cargo build --workspace --bins
  step "ferry-local binary" ensure_ferry_local
  step "local secret values" export_local_secrets
  step "ferry-local provision" "$FERRY_LOCAL" provision
  step "ferry-local env" load_function_env
  step "cargo lambda watch" start_watch
  step "ferry-local gateway" start_gateway
  step "ferry-local pump" start_pump
  printf '==> up in %s s: the API at %s\n' "$((SECONDS - RUN_T0))" "$FERRY_API_URL"
}

# ------------------------------------------------------------------------------------------ down

cmd_down() {
  local t0=$SECONDS
  printf '==> down\n'
  stop_service pump
  stop_service gateway
  stop_service watch
  "$RUN_SCRIPTS_DIR/stack.sh" stop
  printf '    down: ok, %s s\n' "$((SECONDS - t0))"
}

# restart-functions: stop the pump (it lets in-flight invocations finish) and cargo lambda watch (with every
# function process), then start both again as `up` does, with the functions' environment `up` saved. The
# backing services keep running: what survives is only what the functions stored.
cmd_restart_functions() {
  printf '==> restart-functions\n'
  stop_service pump
  stop_service gateway
  stop_service watch
  # shellcheck source=/dev/null
  source "$FERRY_STATE_DIR/function-env.sh" || return 1
  step "cargo lambda watch" start_watch
  step "ferry-local gateway" start_gateway
  step "ferry-local pump" start_pump
}

# On exit (normal, error or Ctrl-C) take everything down, keeping the exit status.
down_on_exit() {
  local rc=$?
  trap - EXIT
  trap '' INT TERM
  [ -n "${TAIL_PID:-}" ] && kill "$TAIL_PID" 2>/dev/null
  cmd_down || rc=1
  [ -n "${TEST_LOG:-}" ] && print_test_summary "$TEST_LOG"
  exit "$rc"
}

# print_test_summary LOG: one closing line adding up every cargo test binary's result, so the outcome of
# the whole suite is readable at the very end of the output, after the stack has stopped.
print_test_summary() {
  [ -f "$1" ] || return 0
  awk '/^test result: / {
         for (i = 1; i <= NF; i++) {
           if ($(i+1) ~ /^passed/) p += $i
           if ($(i+1) ~ /^failed/) f += $i
           if ($(i+1) ~ /^ignored/) s += $i
         }
       }
       END { printf "ferry: %d passed, %d failed, %d skipped\n", p, f, s }' "$1"
}

run_tests() {
  set -o pipefail
  cargo test --workspace --no-fail-fast -- --test-threads=4 2>&1 | tee "$TEST_LOG"
}
arm_down_on_exit() {
  trap down_on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# ------------------------------------------------------------------------------------------ dev

create_admin() {
  local pwfile="$FERRY_STATE_DIR/admin-password"
  mkdir -p "$FERRY_STATE_DIR"
  if [ -n "${FERRY_ADMIN_PASSWORD:-}" ]; then
    (umask 077 && printf '%s' "$FERRY_ADMIN_PASSWORD" >"$pwfile")
  elif [ ! -s "$pwfile" ]; then
    (umask 077 && "$(probe_python)" -c 'import secrets; print(secrets.token_urlsafe(18), end="")' >"$pwfile") || return 1
  fi
  chmod 600 "$pwfile"
  "$FERRY_LOCAL" create-user admin --password-file "$pwfile"
}

cmd_dev() {
  arm_down_on_exit
  cmd_up
  step "create admin user" create_admin
  local rel_state="${FERRY_STATE_DIR#"$FERRY_ROOT"/}"
  cat <<EOF

ferry is running locally. Base URL: $FERRY_API_URL
  log in as admin (the password is in $rel_state/admin-password; set FERRY_ADMIN_PASSWORD to choose it):
    curl -sS -X POST $FERRY_API_URL/login --data-urlencode username=admin --data-urlencode "password=\$(cat $rel_state/admin-password)"
  the same environment in another shell:
    source infra/local/scripts/env.sh && source $rel_state/function-env.sh
  logs: $rel_state/logs/{watch,gateway,pump,dynamodb,moto,mariadb,ferretdb}.log

Following the watch, gateway and pump logs; Ctrl-C stops everything.

EOF
  tail -n 20 -F "$(log_file watch)" "$(log_file gateway)" "$(log_file pump)" &
  TAIL_PID=$!
  while sleep 2; do
    for s in watch gateway pump; do
      if ! recorded_pid "$s" >/dev/null; then
        say "$s exited unexpectedly; stopping"
        exit 1
      fi
    done
  done
}

# ------------------------------------------------------------------------------------------ test

fmt_check() { cargo fmt --all -- --check; }
clippy() { cargo clippy --workspace --all-targets -- -D warnings; }

cmd_check() {
  step "cargo fmt --check" fmt_check
  step "cargo clippy -D warnings" clippy
}

cmd_test() {
  local s
  for s in "${STACK_SERVICES[@]}" watch gateway pump; do
    if recorded_pid "$s" >/dev/null; then
      say "note: a local stack is already running ($s, ...); test reuses it and stops it at the end"
      break
    fi
  done
  arm_down_on_exit
  cmd_up
  cmd_check
  step "cfn-lint" "$FERRY_CACHE/bin/cfn-lint" infra/template.yaml
  step "sam validate --lint" "$FERRY_CACHE/bin/sam" validate --lint --template-file infra/template.yaml
  TEST_LOG="$FERRY_STATE_DIR/logs/cargo-test.log"
  mkdir -p "$(dirname "$TEST_LOG")"
  : >"$TEST_LOG"
  step "cargo test" run_tests
  printf '==> all tests passed in %s s\n' "$((SECONDS - RUN_T0))"
}

cmd_status() {
  local s pid rc=0
  "$RUN_SCRIPTS_DIR/stack.sh" status || rc=1
  for s in watch gateway pump; do
    if pid="$(recorded_pid "$s")"; then
      printf '%-9s running  pid %s\n' "$s" "$pid"
    else
      printf '%-9s stopped\n' "$s"
      rc=1
    fi
  done
  return "$rc"
}

case "${1:-}" in
  up) cmd_up ;;
  dev) cmd_dev ;;
  test) cmd_test ;;
  down) cmd_down ;;
  restart-functions) cmd_restart_functions ;;
  status) cmd_status ;;
  install) step "install.sh" "$RUN_SCRIPTS_DIR/install.sh" ;;
  check) cmd_check ;;
  *)
    echo "usage: $0 dev|test|up|down|restart-functions|status|install|check" >&2
    exit 2
    ;;
esac
