# Verbund: `make run` starts the platform, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := members-service
STAMP := $(VENV)/.installed

.PHONY: run test unit lint install clean token

$(STAMP): kit/pyproject.toml $(foreach s,$(SERVICES),$(s)/pyproject.toml) requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e kit $(foreach s,$(SERVICES),-e $(s)) -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Start every service with the embedded defaults (SQLite under .data/, RabbitMQ on localhost).
run: $(STAMP)
	$(BIN)/verbund up

## Run every test: unit, service and database tests on SQLite and PostgreSQL, end-to-end.
test: $(STAMP)
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check kit $(SERVICES) tests

clean:
	rm -rf $(VENV) .data
