# make demo: install into .venv and run the one-command demo; make test: install and run the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint

$(BIN)/swarm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/swarm

demo: install
	$(BIN)/swarm demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check swarm tests scripts
	$(BIN)/ruff format --check swarm tests scripts
	$(BIN)/mypy
