# The README's two commands: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup run test lint bench clean web web-check screenshots

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

run: setup web
	$(BIN)/fimum models ensure-demo
	$(BIN)/fimum serve

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src

# Unit + integration tests, then in their own run the Schemathesis contract test and last the
# browser tests (Playwright's sync API keeps an event loop running in its process; asyncio tests
# after it fail). `PYTEST_WORKERS=2` runs the first part in two pytest-xdist processes, a file per
# process at a time (~7 instead of ~15 min on 2 cores); it stays opt-in because app shutdown in
# distributed mode hung in 3 of 7 such runs (a test_accounts TestClient teardown; see the README).
# The contract test's per-operation items are not reported one by one under xdist.
PYTEST_WORKERS ?= 1
CONTRACT_TEST := tests/integration/test_openapi_contract.py
XDIST := $(if $(filter-out 1,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile,)
test: lint web-check web
	$(BIN)/pytest $(XDIST) --ignore=$(CONTRACT_TEST) tests/unit tests/integration
	$(BIN)/pytest $(CONTRACT_TEST) tests/e2e

# --- Web app (web/, React + Vite): built into the package's static/ folder, served at / ---------------
# npm ci when package-lock.json is newer than the installed tree; vite build when any source is newer
# than the build. The build is not committed.
WEB_DEPS := web/node_modules/.package-lock.json
WEB_BUILD := src/fimum_ai/static/index.html
WEB_SRC := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/vite.config.ts \
	web/tsconfig.json web/package.json

web: $(WEB_BUILD)

$(WEB_DEPS): web/package-lock.json
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
		2>/dev/null || { echo "The web app needs Node.js >= 20.19 with npm (https://nodejs.org)"; exit 1; }
	cd web && npm ci --no-audit --no-fund
	touch $(WEB_DEPS)

$(WEB_BUILD): $(WEB_DEPS) $(WEB_SRC)
	cd web && npm run build
	touch $(WEB_BUILD)

# Type check, lint (incl. jsx-a11y and no dangerouslySetInnerHTML) and the Vitest unit tests.
web-check: $(WEB_DEPS)
	cd web && npm run typecheck && npm run lint && npm test

# README screenshots: docs/images/*.png from the e2e tests.
screenshots: setup web
	FIMUM_SCREENSHOTS=1 $(BIN)/pytest tests/e2e -q

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache web/node_modules src/fimum_ai/static
