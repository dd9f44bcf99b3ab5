# Tidings: `make run` starts a server on the embedded defaults; `make test` installs what the
# tests need (Python packages, redis-server, the npm socket.io-client), builds the docs strictly
# and runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# two workers, each test module on one of them (its module fixtures with it): the suite waits
# on servers and sockets more than it computes
PYTEST_ARGS ?= -n 2 --dist loadfile
# strict: a broken link or anchor in docs/ fails the build
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

.DEFAULT_GOAL := help
.PHONY: help install system-deps install-test run test unit lint format docs bench bench-report clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded]'
	touch $@

install: $(STAMP) ## create .venv with Tidings and its embedded store

$(VENV)/.installed-test: $(STAMP) clients/python/pyproject.toml
	$(BIN)/pip install --quiet -e '.[embedded,test,dev,bench]' -e clients/python
	touch $@

tests/js/node_modules/.package-lock.json: tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error

clients/js/node_modules/.package-lock.json: clients/js/package.json clients/js/package-lock.json
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error

clients/js/dist/index.mjs: clients/js/node_modules/.package-lock.json $(wildcard clients/js/src/*.ts) clients/dashboard/build.mjs
	cd clients/js && npm run build --silent

# the react-activity-feed example, built for tests/integration/test_react_example.py
REACT := examples/react-activity-feed

$(REACT)/node_modules/.package-lock.json: $(REACT)/package.json $(REACT)/package-lock.json
	cd $(REACT) && npm ci --no-audit --no-fund --loglevel=error

$(REACT)/dist/app.js: $(REACT)/node_modules/.package-lock.json $(REACT)/src/main.jsx $(REACT)/index.html $(REACT)/build.mjs
	cd $(REACT) && npm run build --silent

system-deps: ## redis-server, node and chromium (apt-get) where they are missing
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing nodejs and npm (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (apt-get), for the browser tests of clients/js"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

install-test: system-deps $(VENV)/.installed-test tests/js/node_modules/.package-lock.json clients/js/dist/index.mjs $(REACT)/dist/app.js ## everything the tests need

run: install ## start Tidings on 127.0.0.1:8080 with the embedded store (data under var/)
	@echo "API key:       $$($(BIN)/python -c 'from tidings.config import load_settings as l; print(l().auth.api_key)')"
	@echo "server token:  $$($(BIN)/tidings token --server)"
	@echo "user token bob: $$($(BIN)/tidings token --user bob)"
	$(BIN)/tidings serve

test: install-test ## install what the tests need, build the docs strictly, then run the tests
	$(MKDOCS)
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(VENV)/.installed-test ## the fast tests only (no I/O)
	$(BIN)/pytest tests/unit bench

lint: $(VENV)/.installed-test ## ruff and mypy
	$(BIN)/ruff check server harness tests bench clients/python conftest.py
	$(BIN)/ruff format --check server harness tests bench clients/python conftest.py
	$(BIN)/mypy

format: $(VENV)/.installed-test ## ruff format and autofix
	$(BIN)/ruff check --fix server harness tests bench clients/python conftest.py
	$(BIN)/ruff format server harness tests bench clients/python conftest.py

docs: $(VENV)/.installed-test ## build the docs site into site/ (strict: a broken link fails)
	$(MKDOCS)

bench: install-test ## the round-trip benchmark (JSON on stdout)
	$(BIN)/python -m bench roundtrip

bench-report: install-test ## every benchmark of docs/BENCHMARKS.md, JSON and plots (~30 min)
	$(BIN)/python -m bench.report --out docs/benchmarks

clean: ## remove .venv, var/ and caches
	rm -rf $(VENV) var site .pytest_cache .ruff_cache .mypy_cache tests/js/node_modules \
	  clients/js/node_modules clients/js/dist $(REACT)/node_modules $(REACT)/dist
