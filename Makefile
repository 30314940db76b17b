# casework — two commands: `make run` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
NODE_STAMP := node_modules/.setup-stamp
APT_PACKAGES := tesseract-ocr tesseract-ocr-eng dovecot-imapd chromium fonts-dejavu-core spamd
# `make test` spreads the tests over 4 pytest-xdist workers (many tests wait on subprocesses, a
# browser or a broker rather than compute, so 4 beat 2 even on 2 cores); a test file runs whole on
# one worker, so tests sharing a module- or package-scoped fixture keep their order. Serially, for debugging:
# `make test PYTEST_ARGS="-p no:xdist"` (or "-n 0"); one file: PYTEST_ARGS="-p no:xdist tests/api/test_app.py".
PYTEST_ARGS ?= -n 4 --dist loadfile

.PHONY: setup system-packages bytecode run test lint bench clean-data help

help:
	@echo "make run    set up if needed, then serve on http://127.0.0.1:8000 with a watched drop folder"
	@echo "make test   set up if needed, then lint, type-check and run the whole test suite"
	@echo "make bench  run the benchmarks (figures go to BENCHMARKS.md by hand)"
	@echo "make setup  create .venv, install casework with its dev extras and the Debian packages"

setup: system-packages $(STAMP) $(NODE_STAMP) bytecode

# The project's bytecode, as `pip install` writes it for an installed package: every `casework`
# process (serve's stage processes, each worker, each CLI command, the tests' subprocesses) then
# starts without compiling ~160 modules, also where PYTHONDONTWRITEBYTECODE=1 stops Python writing
# them itself.  Only changed files are compiled again (about a second when nothing changed).
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 api casestore classify ingest connectors benchmarks

# Debian packages: installed with apt-get when missing and running as root; otherwise say what to run.
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing"; \
	    echo "install them with: sudo apt-get install -y --no-install-recommends$$missing"; \
	    exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Browser assets (htmx, Swagger UI, ReDoc; axe-core for the browser tests) from the npm registry,
# exactly as package-lock.json pins them; the workbench serves them from node_modules/, never a CDN.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	  else echo "npm is missing: sudo apt-get install -y --no-install-recommends nodejs npm"; exit 1; fi; }
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $(NODE_STAMP)

run: setup
	@mkdir -p casework-data/drop
	$(BIN)/casework serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# PostgreSQL must answer on 127.0.0.1:5432 for the store tests; start the local cluster if it is down.
test: setup lint
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || \
	  (command -v pg_ctlcluster >/dev/null && pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start) || \
	  echo "warning: PostgreSQL is not answering on 127.0.0.1:5432; the postgres tests will fail"
	OMP_THREAD_LIMIT=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks.pipeline_throughput

clean-data:
	rm -rf casework-data
