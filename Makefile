# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

export MLFLOW_DISABLE_TELEMETRY := true
export WANDB_MODE := disabled
export WANDB_DISABLED := true

.PHONY: setup system-deps demo test lint bench-readme clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: a CPU build lies on disk; a bare requirement pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

# Browser and database servers used by the tests (Debian packages; needs root or sudo).
system-deps:
	bash scripts/system-deps.sh

demo: setup
	$(BIN)/kt demo

lint: setup
	$(BIN)/ruff check kt app tests bench

test: setup system-deps lint
	$(BIN)/pytest -rs  # -rs: any skipped check is listed with its reason

# Copy every bench/results/*.md table into README.md (each bench script writes its own results).
bench-readme: setup
	$(BIN)/python -m bench.readme_tables

clean:
	rm -rf $(VENV) data/world data/*.db mlruns/mlflow.db mlruns/artifacts
