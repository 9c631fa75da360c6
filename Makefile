# StreamRec: `make demo` runs the whole loop on an embedded DuckDB, `make test` runs the test suite.
# Both create .venv and install the pinned dependencies first, so they work on a fresh machine.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export STREAMREC_HOME ?= $(CURDIR)/.streamrec

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (StreamRec needs Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install pinned dependencies

demo: $(STAMP) ## run the main job end to end on a demo-sized dataset
	$(BIN)/streamrec demo

# Two pytest-xdist workers: much of the suite waits on subprocesses (dbt, servers, killed CLIs), so two
# workers overlap those waits even on two cores. `--dist loadfile` keeps each file (and its module fixtures)
# on one worker; the session fixtures are built once for both (tests/conftest.py build_once).
# --no-loadscope-reorder: files go out in collection order (e2e, faults, integration: the long ones) rather
# than most-tests-first, which left the few-test, minutes-long files (wheel install, daily) for the end.
TEST_WORKERS ?= 2
# --durations=30: every run (and CI's log) lists the slowest tests, where the suite's time goes.
# The Spark parity tests join `make test` once the spark extra is installed (make install-spark) and Java is on
# the PATH. They go first, as two files (the module build's tests, the incremental test) on the two workers:
# their Spark builds run beside the rest of the suite, which took less time than running them after it (docs/benchmarks.md "Test suite").
SPARK_READY = $(and $(wildcard $(VENV)/.installed-spark),$(shell command -v java))
TEST_PATHS = $(if $(SPARK_READY),tests/spark,) tests/e2e tests/faults tests/integration tests/unit

test: $(STAMP) ## run the whole test suite (with the Spark tests once `make install-spark` ran and Java 17 is here)
	@$(if $(SPARK_READY),,echo "note: the Spark parity tests are not run: make install-spark (needs Java 17) adds them")
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30 $(TEST_PATHS)

$(VENV)/.installed-spark: pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	@touch $@

install-spark: $(VENV)/.installed-spark ## add the spark extra (pyspark, dbt-spark): `make test` then runs the Spark tests

# --dist loadgroup: the tests of the module's Spark build stay on one worker (tests/spark/test_spark_parity.py)
test-spark: $(VENV)/.installed-spark ## Spark parity tests: dbt features on pyspark local mode = DuckDB's (needs Java 17)
	@command -v java >/dev/null || { echo "error: java not found (the Spark tests need Java 17)"; exit 1; }
	@# one process: two Spark JVMs on 2 cores took 8.5 min against 6 min serial (CI, 937a3b8)
	$(BIN)/pytest -q tests/spark

lint: $(STAMP) ## ruff (lint and format), mypy, the layer contract (import-linter), sqlfluff on the dbt models
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	@# the dbt templater opens the profile's DuckDB files: empty ones in a scratch home, not the warehouse
	lint_home=$$(mktemp -d) && $(BIN)/python -c "import duckdb, sys; duckdb.connect(sys.argv[1]).close()" $$lint_home/raw.duckdb \
	&& env -u STREAMREC_WAREHOUSE STREAMREC_HOME=$$lint_home $(BIN)/sqlfluff lint --processes 0 dbt_project/models; \
	status=$$?; rm -rf $$lint_home; exit $$status

bench: $(STAMP) ## run the benchmarks and rewrite docs/benchmarks.md sections (serving needs wrk: apt-get install wrk)
	$(BIN)/python bench/feature_build.py
	$(BIN)/python bench/serve.py

clean: ## remove built state (warehouse, artifacts, logs) but keep .venv
	rm -rf $(STREAMREC_HOME) dbt_project/target dbt_project/logs

.PHONY: help install install-spark demo test test-spark lint bench clean
