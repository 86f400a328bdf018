# The two commands of the README: `make run` and `make test`. Everything they need is
# installed from this repository's own pinned files into .venv and node_modules.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint format bench package clean

$(STAMP): requirements.txt requirements-dev.txt package.json package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m devtools.run_local

test: install lint
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: install
	$(PY) bench/enqueue_stream.py
	$(PY) bench/package_import.py
	$(PY) bench/enqueue_burst.py
	$(PY) bench/poll_tick.py
	$(PY) bench/export_stream.py

package: install
	$(PY) scripts/build_package.py

clean:
	rm -rf $(VENV) node_modules dist .pytest_cache .ruff_cache
