# Verbund: `make run` starts the platform, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := $(wildcard *-service)
STAMP := $(VENV)/.installed

.PHONY: run test unit lint install clean bench docs screenshots

$(STAMP): kit/pyproject.toml $(foreach s,$(SERVICES),$(s)/pyproject.toml) portal/pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	@# -qq: errors only (pip's and the build backend's warnings would bury `make run`'s own lines)
	$(BIN)/pip install -qq --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -qq --disable-pip-version-check -e 'kit[testing]' $(foreach s,$(SERVICES),-e $(s)) -e portal -r requirements-dev.txt
	@# The portal's browser tests drive Debian's chromium (never a browser downloaded by playwright).
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || echo "chromium is missing: apt-get install chromium (as root) for the portal's browser tests" >&2
	touch $(STAMP)

install: $(STAMP)

## Start every service with the embedded defaults (SQLite under .data/, RabbitMQ on localhost).
run: $(STAMP)
	$(BIN)/verbund up --demo

## Run every test: unit, service and database tests on SQLite and PostgreSQL, end-to-end.
test: $(STAMP)
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

## Benchmarks (not part of `make test`): each service's bench/run.py (and churn.py where there is one) and the
## platform's bench/platform.py
## write their reports under docs/bench/.
bench: $(STAMP)
	@for script in $(wildcard *-service/bench/run.py) $(wildcard *-service/bench/churn.py) bench/platform.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

## Regenerate the contract documents from the code (tests fail when a committed one is stale).
docs: $(STAMP)
	$(BIN)/verbund asyncapi
	$(BIN)/verbund openapi
	RETRY_DELAYS_MS= $(BIN)/verbund definitions > infra/rabbitmq/definitions.json

## Retake the portal's screenshots in docs/screenshots (the README's) with the browser flow tests.
screenshots: $(STAMP)
	SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest portal/tests/test_member_flow.py \
		portal/tests/test_organizer_flow.py portal/tests/test_dashboard.py portal/tests/test_workspace.py \
		portal/tests/test_matchmaking_flow.py

lint: $(STAMP)
	$(BIN)/ruff check kit $(SERVICES) portal tests

clean:
	rm -rf $(VENV) .data
