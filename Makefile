# Gridflow: one Makefile for installing, running, testing and measuring.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AMQP_URI ?= amqp://guest:guest@127.0.0.1:5672/
export DATABASE_URL ?= postgresql+psycopg2://postgres@127.0.0.1:5432/gridflow
# One name for Gridflow's port in both modes (`make run`, `make up`); replay and import default to it.
export GRIDFLOW_PORT ?= 8000

# Every package, each by name (their folders are not packages of one tree), for mypy.
MYPY_PACKAGES := -p gridflow_common -p gridflow_app -p gridflow_intake -p gridflow_routing \
	-p gridflow_departments -p gridflow_sla -p gridflow_notify -p bench -p gridflow_filedrop

.DEFAULT_GOAL := help
# @asyncapi/cli validates docs/asyncapi.yaml (tests/unit/test_asyncapi.py); npm, pinned here.
ASYNCAPI_CLI_VERSION := 6.2.0
TOOLS := .tools
ASYNCAPI_CLI := $(TOOLS)/asyncapi/node_modules/.bin/asyncapi

.PHONY: help install run up down status test test-unit test-integration test-e2e test-scenarios test-adapters bench bench-identity bench-departments bench-command-center bench-board-latency bench-rules lint migrate clean tools asyncapi bench-clock bench-classify bench-intake bench-notify bench-classify-retrain bench-addresses test-api-fuzz bench-relay

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml adapters/example/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' -e adapters/example
	@touch $(STAMP)

install: $(STAMP) ## create .venv (when missing) and install Gridflow and its tools into it

run: $(STAMP) ## the embedded default: all five services in one process, SQLite, simulated clock, on :$GRIDFLOW_PORT (8000)
	GRIDFLOW_CLOCK=$${GRIDFLOW_CLOCK:-simulated} exec $(BIN)/gridflow run --port $(GRIDFLOW_PORT)

up: $(STAMP) ## the real topology: each service its own nameko process on RabbitMQ + PostgreSQL, behind nginx on :$GRIDFLOW_PORT (8000)
	deploy/topology.sh up

down: ## stop what `make up` started
	deploy/topology.sh down

status: ## show the processes `make up` started
	deploy/topology.sh status

migrate: $(STAMP) ## upgrade every service's tables in DATABASE_URL
	$(BIN)/gridflow migrate --database-url $(DATABASE_URL)

test: $(STAMP) ## everything: unit, integration (RabbitMQ + PostgreSQL), end to end, scenarios, the example adapter
	$(BIN)/pytest tests/unit tests/scenarios tests/e2e
	$(BIN)/nameko test tests/integration -p no:cacheprovider
	$(MAKE) test-adapters

test-adapters: $(STAMP) ## the example adapter package's own tests (adapters/example), the contract suite among them
	cd adapters/example && ../../$(BIN)/pytest -p no:cacheprovider

test-unit: $(STAMP) ## unit tests only (no servers)
	$(BIN)/pytest tests/unit

test-integration: $(STAMP) ## one service at a time in a nameko container against RabbitMQ + PostgreSQL
	$(BIN)/nameko test tests/integration -p no:cacheprovider

test-e2e: $(STAMP) ## every service as its own process, with a SIGKILL mid-stream
	$(BIN)/pytest tests/e2e

test-api-fuzz: $(STAMP) ## schemathesis against the live embedded default, from its own /api/v1/openapi.json, and the docs page in Chromium (about 3 min)
	$(BIN)/pytest tests/e2e/test_openapi_live.py tests/e2e/test_docs_browser.py

test-scenarios: $(STAMP) ## the shared scenarios against the embedded default
	$(BIN)/pytest tests/scenarios

bench: $(STAMP) ## throughput and latency of the real topology beside a bare kombu + psycopg2 pipeline
	$(BIN)/python -m bench.run

bench-identity: $(STAMP) ## what the identity check costs per request: GET of a case checked and unchecked, in process and over HTTP
	$(BIN)/python -m bench.identity_cost

bench-departments: $(STAMP) ## pushes/s through the AMQP and webhook adapters beside raw kombu and raw HTTP, and a 10,000-case backlog's recovery
	$(BIN)/python -m bench.departments

bench-command-center: $(STAMP) ## the board's first load, case lists and a year's assessment on 100,000 open and 1,000,000 closed cases (PostgreSQL), beside a raw GROUP BY
	$(BIN)/python -m bench.command_center

bench-rules: $(STAMP) ## routing decisions/s as a pure function with a 38-rule Lucheng rules file, beside taxonomy-only routing
	$(BIN)/python -m bench.rules

bench-addresses: $(STAMP) ## address -> grid lookups per second (Lucheng's list and a 20,000-entry city) beside a naive scan of the same list
	$(BIN)/python -m bench.addresses

bench-board-latency: $(STAMP) ## a colour change's delay to the board's live feed and summary on the real topology (simulated clock), beside a 1 s polling SELECT
	$(BIN)/python -m bench.board_latency

bench-notify: $(STAMP) ## notifications/s through the e-mail (aiosmtpd) and webhook channels beside raw smtplib and raw HTTP (BENCH_ARGS=--quick for a short run)
	$(BIN)/python -m bench.notify $(BENCH_ARGS)

bench-clock: $(STAMP) ## the SLA sweep with 1,000,000 open clocks: nothing due, 10,000 crossing at once, each warning's lateness on the real clock, beside raw SELECT/UPDATE (QUICK=1: 100,000)
	$(BIN)/python -m bench.clock $(if $(QUICK),--quick)

bench-classify: $(STAMP) ## classifications/s beside the keyword classifier, training time, held-out accuracy and precision, cross-validated thresholds
	$(BIN)/python -m bench.classify

bench-classify-retrain: $(STAMP) ## report latency (p50/p99/max) on an eventlet hub while the classification model retrains: in a request (before) and at the tick (after)
	$(BIN)/python -m bench.classify_retrain

bench-intake: $(STAMP) ## reports accepted/s by POST /api/v1/reports, by batch upload and by bulk import (intake's nameko service), beside raw psycopg2 inserts; BENCH_ARGS=--quick for a short run
	$(BIN)/python -m bench.intake $(BENCH_ARGS)

bench-relay: $(STAMP) ## confirmed publishes/s of the outbox relay (one at a time, batched) beside raw kombu and py-amqp, and 10,000 outbox rows relayed from PostgreSQL (QUICK=1: 2,000)
	$(BIN)/python -m bench.relay $(if $(QUICK),--quick)

tools: $(ASYNCAPI_CLI) ## install @asyncapi/cli (npm) into .tools/, for the AsyncAPI validation test

$(ASYNCAPI_CLI):
	npm install --prefix $(TOOLS)/asyncapi --no-audit --no-fund --loglevel=error @asyncapi/cli@$(ASYNCAPI_CLI_VERSION)
	CI=true $(ASYNCAPI_CLI) config analytics --disable

asyncapi: $(STAMP) ## write docs/asyncapi.yaml from the contracts (gridflow asyncapi; --check in the tests)
	$(BIN)/gridflow asyncapi

lint: $(STAMP) ## ruff (rules and formatting) on everything, mypy on every package
	$(BIN)/ruff check libs services tests bench adapters
	$(BIN)/ruff format --check libs services tests bench adapters
	$(BIN)/mypy $(MYPY_PACKAGES)

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info var
