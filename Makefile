# ferry: entry points for the local stack and CI. Everything delegates to infra/local/scripts/run.sh;
# see its header (and docs ARCHITECTURE.md §7) for what each step does.
RUN := infra/local/scripts/run.sh

.PHONY: dev test up down install check status bench-events bench-loaders

## dev: start the local stack + functions, create an admin user, follow logs (Ctrl-C stops everything)
dev:
	$(RUN) dev

## test: the CI gate: stack up, fmt, clippy, routes check, cfn-lint, sam validate, cargo test, stack down
test:
	$(RUN) test

## up: start the local stack, cargo lambda watch and the event pump in the background
up:
	$(RUN) up

## down: stop whatever up/dev started
down:
	$(RUN) down

## install: install the local tools (idempotent; caches in ~/.cache/ferry)
install:
	$(RUN) install

## check: cargo fmt --check and clippy only
check:
	$(RUN) check

## status: what is running
status:
	$(RUN) status

## bench-events: with the stack up (make up): ingest vs LOAD DATA LOCAL INFILE, query p50/p99, then the
## 1 GiB streaming test with the worker's peak RSS (bench/RESULTS.md, Events)
bench-events:
	bash -c 'source infra/local/scripts/env.sh && source "$$FERRY_STATE_DIR/function-env.sh" && \
	  cargo run --release -p bench-events && \
	  cargo test -p ferry-tests --test events_e2e -- --ignored --nocapture a_1_gib_file'

## bench-loaders: with the stack up (make up): MySQL fill vs LOAD DATA LOCAL INFILE, MySQL CRUD vs sysbench,
## MongoDB fill vs pymongo (installs sysbench and a pymongo venv if missing; bench/RESULTS.md, Loaders)
bench-loaders:
	bash bench/loaders/run.sh
