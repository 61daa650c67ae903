# Two commands for a new user: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Relative paths (data/, .dagster_home/) resolve against the pipeline home: the checkout, for these targets.
export VTEX_PIPELINE_HOME ?= $(CURDIR)

.PHONY: install demo test lint check-defs deploy-test dev bench bench-small chaos clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/vtex-pipeline demo

test: install lint check-defs
	$(BIN)/pytest -q --durations=25

lint: install
	$(BIN)/ruff check vtex_pipeline vtex_pipeline_tests benchmarks chaos
	$(BIN)/ruff format --check vtex_pipeline vtex_pipeline_tests benchmarks chaos

check-defs: install
	VTEX_PIPELINE_START_DATE=2025-01-01 ICOMM_PROFILE_KEY=check $(BIN)/dagster definitions validate -m vtex_pipeline.definitions

# The image of deploy/Dockerfile built with podman and its code, daemon and webserver containers run
# against a throwaway PostgreSQL (needs podman, runc, debootstrap: .ci/run installs them). `make test`
# runs it too; -s prints the build, sync and stop timings.
deploy-test: install
	$(BIN)/pytest -q -s -m container vtex_pipeline_tests/deploy/test_containers.py

dev: install
	$(BIN)/vtex-pipeline dev

bench: install
	$(BIN)/python -m benchmarks.run --scale 1.0

bench-small: install
	$(BIN)/python -m benchmarks.run --scale 0.1

chaos: install
	$(BIN)/python -m chaos.run
	$(BIN)/pytest -q -m chaos_slow

clean:
	rm -rf $(VENV) data .dagster_home .pytest_cache .ruff_cache build dist
