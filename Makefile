# EarthOps — the whole setup is `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The data catalog reads the local mirror beside the checkout when it exists.
ifneq ($(wildcard ../shared/data),)
export EARTHOPS_DATA_DIR ?= $(abspath ../shared/data)
endif
# No network here: keep Prefect's telemetry off.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
# OpenMP threads (LightGBM, XGBoost) sleep instead of spinning while they wait: spinning
# threads starve each other on a small shared machine (block CV: 25 min -> 2 min).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install run test bench lint format clean

install: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/earthops run

test: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m pytest -m slow benchmarks -s $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) .earthops .pytest_cache .ruff_cache
