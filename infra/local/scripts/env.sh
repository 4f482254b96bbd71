# shellcheck shell=bash
# Environment of ferry's local stack. Source it (bash), don't run it:
#     source infra/local/scripts/env.sh
# It only exports variables; it defines no functions and changes no shell options, so it is safe in an
# interactive shell. The functions' own variables (table name, queue URLs, ...) come from
# `ferry-local env` once the stack is provisioned: eval "$(target/debug/ferry-local env)".

# The repo root is derived from where this file lives, so a stale FERRY_ROOT from another checkout
# never leaks in.
FERRY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/../../.." && pwd)"
export FERRY_ROOT
export FERRY_STATE_DIR="${FERRY_STATE_DIR:-$FERRY_ROOT/.ferry}"   # gitignored: pids, logs, data, resources.json
export FERRY_CACHE="${FERRY_CACHE:-$HOME/.cache/ferry}"           # installed tools, outside the repo

case ":$PATH:" in
  *":$FERRY_CACHE/bin:"*) ;;
  *) export PATH="$PATH:$FERRY_CACHE/bin" ;;
esac

# AWS SDKs and CLIs: moto for everything except DynamoDB, which is DynamoDB Local. Dummy credentials;
# no instance-metadata lookups (they would only time out here).
# Ports can be moved to run a second stack beside the first (e.g. `make test` while `make dev` runs).
export FERRY_DYNAMODB_PORT="${FERRY_DYNAMODB_PORT:-8000}"
export FERRY_MOTO_PORT="${FERRY_MOTO_PORT:-4566}"
export FERRY_MARIADB_PORT="${FERRY_MARIADB_PORT:-3306}"
export FERRY_FERRETDB_PORT="${FERRY_FERRETDB_PORT:-27017}"
export FERRY_API_PORT="${FERRY_API_PORT:-9000}"
export FERRY_WATCH_PORT="${FERRY_WATCH_PORT:-9001}"
export AWS_ENDPOINT_URL="http://127.0.0.1:$FERRY_MOTO_PORT"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$FERRY_DYNAMODB_PORT"
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_EC2_METADATA_DISABLED=true

# Local MariaDB (stands in for MySQL) and FerretDB (stands in for MongoDB).
export FERRY_MYSQL_PASSWORD="${FERRY_MYSQL_PASSWORD:-ferry-local-password}"
export FERRY_MYSQL_URL="mysql://ferry:${FERRY_MYSQL_PASSWORD}@127.0.0.1:$FERRY_MARIADB_PORT/ferry"
export FERRY_MYSQL_SOCKET="$FERRY_STATE_DIR/run/mysqld.sock"
export FERRY_MONGO_URL="mongodb://127.0.0.1:$FERRY_FERRETDB_PORT/"

# The HTTP API: `ferry-local gateway` serves the template's HttpApi routes there, as API Gateway does,
# and invokes each route's function through cargo lambda watch's Lambda Invoke API.
export FERRY_API_URL="http://127.0.0.1:$FERRY_API_PORT"
# cargo lambda watch: the functions' runtime and the Lambda Invoke API (the pump and the gateway use it).
export FERRY_WATCH_URL="http://127.0.0.1:$FERRY_WATCH_PORT"
# A function's own Lambda Invoke (api-loaders -> worker-loader) goes to watch, as the tests' do.
export AWS_ENDPOINT_URL_LAMBDA="$FERRY_WATCH_URL"
# Instances per function that watch may run at once, and poll loops per SQS source in the pump (each
# source gets min(its ScalingConfig.MaximumConcurrency, this)): Lambda runs a source's batches in
# parallel, so one long loader slice does not hold up every other loader's tick. Watch runs two more
# instances than the pump's pollers use, for synchronous invocations (api-loaders -> worker-loader),
# which Lambda would otherwise answer with a fresh instance while every poller's slice runs.
export FERRY_PUMP_MAX_POLLERS="${FERRY_PUMP_MAX_POLLERS:-4}"
export FERRY_WATCH_CONCURRENCY="${FERRY_WATCH_CONCURRENCY:-$((FERRY_PUMP_MAX_POLLERS + 2))}"
# FERRY_WATCH_RELEASE=1: watch runs the functions' release builds (what deploys; for benchmarks), built
# before watch starts; a comma list of functions prebuilds only those (the rest build on first request);
# default 0: debug builds, quick to rebuild.
export FERRY_WATCH_RELEASE="${FERRY_WATCH_RELEASE:-0}"

export SAM_CLI_TELEMETRY=0
# The default target dir, made explicit so every tool agrees on where target/debug/ferry-local is.
# Don't keep it exported around `sam build` (SAM sets its own CARGO_TARGET_DIR inside CodeUri).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FERRY_ROOT/target}"
