# make demo: install into .venv and run the one-command demo; make test: install and run the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install sandbox demo test lint

$(BIN)/swarm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/swarm sandbox

# Agents, builds and oracles run in bubblewrap sandboxes; workers refuse to start without one. As root on a
# Debian-like machine it is installed here; elsewhere the error names the package to install.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null) || \
		echo "warning: bubblewrap (bwrap) is missing: install it (apt-get install bubblewrap)"; }

demo: install
	$(BIN)/swarm demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check swarm tests scripts
	$(BIN)/ruff format --check swarm tests scripts
	$(BIN)/mypy
