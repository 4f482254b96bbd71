# ferry: entry points for the local stack and CI. Everything delegates to infra/local/scripts/run.sh;
# see its header (and docs ARCHITECTURE.md §7) for what each step does.
RUN := infra/local/scripts/run.sh

.PHONY: dev test up down install check status

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
