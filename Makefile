# Two commands do all the set-up on a fresh machine with Python 3.11 and pip:
#   make demo   -> creates .venv, installs bayescale, runs `bayescale demo`
#   make test   -> creates .venv, installs bayescale with test extras, runs the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast notebooks bench lint
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/bayescale demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -ra -n 2 --dist worksteal --durations=25

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -ra -n 2 --dist worksteal -m "not slow"

notebooks: $(BIN)/.installed
	BAYESCALE_NOTEBOOK_SIZE=full $(BIN)/python -m bayescale.notebooks --html

bench: $(BIN)/.installed
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python bench/backends.py

lint: $(BIN)/.installed
	$(BIN)/ruff check bayescale tests bench && $(BIN)/ruff format --check bayescale tests bench
