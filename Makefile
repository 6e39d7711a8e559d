# Each target sets up what it needs: a virtualenv in .venv, the package, system services.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint bench soak system-deps clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## make run: start the gateway on the default config (SQLite, mock provider, 127.0.0.1:8080)
run: $(STAMP)
	$(BIN)/onyproxy serve

## make test: the whole suite, with the services it needs (Redis, Chromium) installed if missing
test: $(STAMP) system-deps
	$(BIN)/pytest

## make lint: ruff over the project
lint: $(STAMP)
	$(BIN)/ruff check .

## make bench: load benchmarks against a local fake upstream (not part of make test)
bench: $(STAMP)
	$(BIN)/python -m bench

soak: $(STAMP)
	$(BIN)/python -m bench --soak

system-deps:
	@scripts/system-deps.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
