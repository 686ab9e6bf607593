# Two commands a newcomer needs: `make run` (the whole system on embedded PostgreSQL and
# Redis) and `make test` (the whole suite). Both only need Python 3.11+.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test venv lint openapi migrate lock clean

# The locked versions first (what the image runs and the suite is tested with), then the
# project and its development tools around them: a newer release of a dependency on the
# package index never changes what `make test` runs.
$(BIN)/activity-platform: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
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

# requirements.lock: the image's dependencies, with hashes, for Linux and Python 3.11,
# pinned to the versions this venv (the one the suite runs with) has.
lock: venv
	$(BIN)/pip install --quiet uv
	$(BIN)/pip freeze --exclude-editable | grep -v '^uv==' > .lock-constraints.txt
	$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--constraint .lock-constraints.txt --custom-compile-command "make lock" \
		--output-file requirements.lock
	rm -f .lock-constraints.txt

clean:
	rm -rf $(VENV) .data
