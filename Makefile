# Two commands a newcomer needs: `make run` (the whole system on embedded PostgreSQL and
# Redis) and `make test` (the whole suite). Both only need Python 3.11+.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test venv lint openapi migrate clean

$(BIN)/activity-platform: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

venv: $(BIN)/activity-platform

run: venv
	$(BIN)/activity-platform dev

test: venv
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

openapi: venv
	$(BIN)/activity-platform openapi

migrate: venv
	$(BIN)/activity-platform migrate

clean:
	rm -rf $(VENV) .data
