# The two commands a newcomer needs: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export MODELFACTORY_HOME ?= $(CURDIR)/.modelfactory

.PHONY: install dev test lint format clean lock bench bench-serving bench-drift

install: $(STAMP)

# --compile-bytecode: compiled once at install, so every later interpreter (a contract run,
# a code server, the CLI) starts without compiling dagster, mlflow or sklearn again, also
# where PYTHONDONTWRITEBYTECODE keeps Python from caching what it compiles.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e '.[dev,prod,examples]'
	@touch $(STAMP)

dev: install  ## seed + train the examples once, then Dagster UI :3000 and MLflow UI :5000
	$(BIN)/modelfactory dev

test: install  ## lint, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: bench-serving bench-drift  ## every benchmark; results in bench/results/

# BENCH_ARGS passes options, e.g. make bench-serving BENCH_ARGS="--duration 2 --rows 1"
bench-serving: install  ## our endpoint vs mlflow models serve vs a bare FastAPI (needs wrk)
	$(BIN)/python bench/serving.py $(BENCH_ARGS)

bench-drift: install  ## our drift check vs Evidently's DataDriftPreset, 10k/100k/1M rows
	$(BIN)/python bench/drift.py $(BENCH_ARGS)

lock: install  ## pin the production image's libraries (deploy/requirements.lock) from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra prod --python-version 3.11 --universal --upgrade --quiet -o deploy/requirements.lock

clean:  ## forget local state (runs, registry, warehouse); keeps .venv
	rm -rf $(MODELFACTORY_HOME)
