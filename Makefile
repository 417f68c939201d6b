# The README's two commands: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup run test lint bench clean

setup: $(STAMP)

# torch first, from the local CPU wheel: otherwise pip resolves a multi-GB CUDA build.
# open_clip_torch is installed without dependencies only for the CLIP BPE vocabulary file that its
# wheel ships (the tiny demo model's tokenizer); it is never imported.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[image,safety,embeddings,dev]'
	$(BIN)/pip install -q --no-deps open_clip_torch==3.3.0
	touch $(STAMP)

run: setup
	$(BIN)/fimum models ensure-demo
	$(BIN)/fimum serve

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
