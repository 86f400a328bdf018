# The two commands of the README: `make run` and `make test`. Everything they need is
# installed from this repository's own pinned files into .venv and node_modules.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install browser run test lint format bench package clean

$(STAMP): requirements.txt requirements-dev.txt package.json package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

install: $(STAMP)

# The browser tests drive Debian's chromium: installed from the OS packages when missing and
# this runs as root (apt-get update first if the package lists do not know it yet).
browser:
	@command -v chromium >/dev/null || { test "$$(id -u)" = 0 && \
		{ apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; }; } || \
		echo "chromium is missing: install it with 'sudo apt-get install -y chromium' (the browser tests fail until then)"

run: install
	$(PY) -m devtools.run_local

# The suite on both cores, then the chaos run alone: its kills and fault windows are timed, and
# a second worker's load on the same two cores would only test the machine.
test: install lint browser
	$(PY) -m pytest -n 2 -m "not chaos"
	$(PY) -m pytest -m chaos

# ruff, then the layers of shared/ (import-linter contracts in pyproject.toml).
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: install
	$(PY) bench/enqueue_stream.py
	$(PY) bench/package_import.py
	$(PY) bench/enqueue_burst.py
	$(PY) bench/poll_tick.py
	$(PY) bench/export_stream.py
	$(PY) bench/console_list.py
	$(PY) bench/fo_budget.py

package: install
	$(PY) scripts/build_package.py

clean:
	rm -rf $(VENV) node_modules dist .pytest_cache .ruff_cache
