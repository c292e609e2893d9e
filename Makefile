# rewardflow: `make help` lists every target.
SHELL := /bin/bash
# the interpreter .venv is made from: the fastest-built CPython 3.11 on the machine (an optimized
# build before pyenv's default one: 7-10% less flow CPU per event, stack/pick_python.py); PY=...
# overrides it. An existing .venv is kept: `rm -rf .venv` to make it again.
PY ?= $(shell python3 stack/pick_python.py 2>/dev/null || echo python3)
VENV := .venv
BIN := $(VENV)/bin
# what `make install` builds from: a change to any of them installs (and compiles) again
BUILT_FROM := pyproject.toml setup.py $(wildcard dataflows/*.pyx)
STAMP := $(VENV)/.installed-$(shell cat $(BUILT_FROM) | sha1sum | cut -c1-12)

.DEFAULT_GOAL := help

help: ## List every target with what it does
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): $(BUILT_FROM)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,bench]"
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) ## Create .venv, install rewardflow with its dev and bench extras, compile its native join

run: $(STAMP) ## Run broker, Redis, dataflow and gateway on 127.0.0.1:8000 (Ctrl-C stops all)
	$(BIN)/python -m stack.run

tools: ## Install promtool and a Docker Compose v2 CLI into var/tools/bin (ops checks)
	bash docker/tools/ensure-tools.sh

dashboard: $(STAMP) ## Regenerate docker/grafana/dashboards/rewardflow.json
	$(BIN)/python docker/grafana/make_dashboard.py

test: $(STAMP) tools ## Run the whole test suite (unit, doctests, integration on a real broker + Redis)
	$(BIN)/python -m pytest -q

lint: $(STAMP) ## ruff and mypy; changes nothing
	$(BIN)/ruff check .
	$(BIN)/mypy

schemas: $(STAMP) ## Export JSON Schema of every event to schemas/json/
	$(BIN)/python -m schemas.export schemas/json

demo: $(STAMP) ## Drive the `make run` stack with simulated people; prints acceptance, writes PNG
	$(BIN)/python -m simulator.demo --base-url http://127.0.0.1:8000

population-demo: $(STAMP) ## Against `make run`: a trained population's prior vs none for new people
	$(BIN)/python -m simulator.population_demo --base-url http://127.0.0.1:8000 --algorithm ucb

companion-demo: $(STAMP) ## Against `make run`: trait tuning for simulated companion-world people over HTTP
	$(BIN)/python -m simulator.companion_demo --base-url http://127.0.0.1:8000

replay: $(STAMP) ## Replay a JSONL log of events through Kafka into the flow: make replay LOG=file.jsonl
	$(BIN)/python -m stack.replay $(LOG)

bench: bench-pipeline bench-capacity bench-state bench-gateway bench-learning ## Run every benchmark

bench-pipeline: $(STAMP) ## End-to-end events/s and freshness vs raw consume: 1, then 2 flow processes
	$(BIN)/python -m bench.pipeline --flow-procs 1
	$(BIN)/python -m bench.pipeline --flow-procs 2

bench-capacity: $(STAMP) ## Freshness p50/p99 against load (10k-20k/s, lower if none meets 1 s; 2 flow processes); PNG
	$(BIN)/python -m bench.capacity

bench-state: $(STAMP) ## An agent's recovery state after a day of uptime: snapshot and prune cost
	$(BIN)/python -m bench.state_growth

bench-gateway: $(STAMP) ## decide latency/throughput vs a bare FastAPI endpoint
	$(BIN)/python -m bench.gateway

bench-learning: $(STAMP) ## This learner vs Vowpal Wabbit vs random vs oracle; writes PNG curves
	$(BIN)/python -m bench.learning

up: ## docker compose up: Kafka (KRaft), Redis AOF, Prometheus, Grafana, gateway, dataflow
	docker compose -f docker/compose.yaml up -d --build

down: ## docker compose down
	docker compose -f docker/compose.yaml down

clean: ## Remove var/ (local Redis AOF, recovery store) and caches
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install tools dashboard replay run test lint schemas demo population-demo companion-demo bench bench-pipeline bench-capacity bench-state bench-gateway bench-learning up down clean
