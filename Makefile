# One entry point per job. `make test` and `make demo` work from a fresh clone: each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := frontend/node_modules/.installed
CHROMIUM := /usr/bin/chromium
CHECKOV_VENV := .venv-checkov

.PHONY: help venv install test test-python test-frontend test-e2e lint bench bench-profile demo up traces specs \
        frontend-build chromium checkov deploy-sse clean

help:
	@echo "make test   - install everything, run every suite (python, frontend, infra, e2e)"
	@echo "make demo   - bring the local stack up, drive the scripted scenario, print the report"
	@echo "make up     - run the local stack until Ctrl-C"
	@echo "make lint   - ruff + mypy on src/lib"
	@echo "make bench  - run benchmarks/ and print figures"
	@echo "make bench-profile - the live benchmark's 1- and 100-viewer scenarios under py-spy: where the CPU goes"
	@echo "make deploy-sse - build and push the SSE image, print its digest for Terraform"

# constraints.txt pins every distribution the zips and the image carry: the test environment installs
# exactly those versions, whatever the registry published since.
# scripts/find-python prefers the stack map's python_version, the one Python of every artefact.
$(STAMP): pyproject.toml constraints.txt
	@base=$$(scripts/find-python); echo "Using Python: $$base ($$($$base --version))"; \
	  test -x $(PY) || $$base -m venv $(VENV); \
	  want=$$($(PY) -c 'import json; print(json.load(open("infrastructure/terraform/stack.json"))["python_version"])'); \
	  have=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  test "$$have" = "$$want" || echo "warning: $(VENV) runs Python $$have, stack.json says $$want (make clean, then make)"
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt ".[dev]"
	@touch $@

venv install: $(STAMP)

$(NODE_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's chromium for the browser tests (Playwright's own browser download cannot work here).
chromium:
	@test -x $(CHROMIUM) || { (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || { echo "chromium is missing and could not be installed (need root and Debian's registry)"; exit 1; }; }

$(CHECKOV_VENV)/.installed:
	@base=$$(scripts/find-python); $$base -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q "checkov>=3.2,<4"
	@touch $@

checkov: $(CHECKOV_VENV)/.installed

specs: $(STAMP)
	$(PY) scripts/traceability.py --write

test-python: $(STAMP) checkov lint
	$(PY) scripts/traceability.py --check
	$(PY) -m pytest tests --ignore=tests/e2e

test-frontend: $(NODE_STAMP)
	cd frontend && npm test --silent

test-e2e: $(STAMP) $(NODE_STAMP) chromium
	cd frontend && npm run build --silent
	$(PY) -m pytest tests/e2e

test: test-python test-frontend test-e2e

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts benchmarks
	$(PY) -m mypy src/lib

bench: $(STAMP)
	$(PY) benchmarks/run.py --write benchmarks/RESULTS.md

bench-profile: $(STAMP)
	$(PY) benchmarks/profile_live.py $(ARGS)

frontend-build: $(NODE_STAMP)
	cd frontend && npm run build --silent

demo: $(STAMP) frontend-build
	PYTHONPATH=src $(PY) -m devstack demo $(ARGS)

up: $(STAMP) frontend-build
	PYTHONPATH=src $(PY) -m devstack up $(ARGS)

traces: $(STAMP)
	PYTHONPATH=src $(PY) -m devstack traces $(ARGS)

deploy-sse: $(STAMP)
	docker/sse/deploy.sh

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) frontend/node_modules frontend/dist .devstack
