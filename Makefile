# The two commands of a fresh machine: `make demo` runs the main job, `make test` the suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: test test-slow lint demo bench ui-screenshot

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .

# The main job on embedded defaults: the CC-SSL flow for horse on the quick preset (ephemeral Prefect,
# local SQLite MLflow), then the results table and the command that opens the MLflow UI.
demo: $(STAMP)
	$(BIN)/animalpose demo --species horse --preset quick

bench: $(STAMP)
	$(BIN)/animalpose bench synth
	$(BIN)/animalpose bench loader
	$(BIN)/animalpose bench models

# The MLflow UI comparing a smoke demo's stages, shot by headless Chromium into docs/ (runs the smoke demo
# into a temporary data home first; needs chromium on PATH).
ui-screenshot: $(STAMP)
	$(BIN)/python -m flows.ui_screenshot --out docs/mlflow_compare.png
