# The two commands a newcomer needs: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export MODELFACTORY_HOME ?= $(CURDIR)/.modelfactory

# The browser tests drive this chromium (Debian's package) with playwright (the dev extra).
export MODELFACTORY_CHROMIUM ?= /usr/bin/chromium

.PHONY: install browser dev test lint format clean lock bench bench-serving bench-drift bench-dev-memory bench-scale bench-serving-refresh

install: $(STAMP)

# --compile-bytecode: compiled once at install, so every later interpreter (a contract run,
# a code server, the CLI) starts without compiling dagster, mlflow or sklearn again, also
# where PYTHONDONTWRITEBYTECODE keeps Python from caching what it compiles.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e '.[dev,prod,examples]'
	@touch $(STAMP)

dev: install  ## train the examples once, then Dagster UI :3000, MLflow UI :5000, endpoint :8000
	$(BIN)/modelfactory dev

# playwright's own browser download (`playwright install`) needs a CDN; Debian's chromium
# comes from the package archive like any other package.
browser: install  ## chromium + playwright for the browser tests (apt-get as root, else says how)
	@$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/uv pip install --python $(BIN)/python --quiet 'playwright>=1.50'
	@if [ -x "$(MODELFACTORY_CHROMIUM)" ]; then \
		echo "browser tests use $(MODELFACTORY_CHROMIUM)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "no chromium at $(MODELFACTORY_CHROMIUM): the browser tests will skip (and fail under CI=true)."; \
		echo "  Debian/Ubuntu: sudo apt-get install chromium; elsewhere set MODELFACTORY_CHROMIUM to a Chromium or Chrome binary"; \
	fi

test: install browser  ## lint, the import contract, then the whole test suite (browser tests too)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: bench-serving bench-drift bench-dev-memory bench-scale bench-serving-refresh  ## every benchmark; results in bench/results/

# BENCH_ARGS passes options, e.g. make bench-serving BENCH_ARGS="--duration 2 --rows 1"
bench-serving: install  ## our endpoint vs mlflow models serve vs a bare FastAPI (needs wrk)
	$(BIN)/python bench/serving.py $(BENCH_ARGS)

bench-drift: install  ## our drift check vs Evidently's DataDriftPreset, 10k/100k/1M rows
	$(BIN)/python bench/drift.py $(BENCH_ARGS)

bench-dev-memory: install  ## RSS of `modelfactory dev`'s process tree at rest (ports 3150/5150/8150)
	$(BIN)/python bench/dev_memory.py $(BENCH_ARGS)

# Takes ~10 min at 10 models with one location each; sizes that would not fit are skipped.
bench-scale: install  ## N generated models under dagster dev: load time, RSS, daemon CPU (port 3300)
	$(BIN)/python bench/scale.py $(BENCH_ARGS)

bench-serving-refresh: install  ## idle CPU of `modelfactory serve` with 10 and 100 models, main vs this tree (port 8350)
	$(BIN)/python bench/serving_refresh.py $(BENCH_ARGS)

lock: install  ## pin the production image's libraries (deploy/requirements.lock) from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra prod --extra examples --python-version 3.11 --universal --upgrade --quiet -o deploy/requirements.lock

clean:  ## forget local state (runs, registry, warehouse); keeps .venv
	rm -rf $(MODELFACTORY_HOME)
