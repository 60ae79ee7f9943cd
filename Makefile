# The verbs a user needs. `make run` and `make test` are the README's two commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
export ROOT := $(CURDIR)

# Optional local settings live in .env (see .env.example); scripts/dotenv.sh loads them so that
# the environment wins over the file.

.PHONY: help venv up down status run airflow test test-unit test-integration lint format bench lock clean reliability

help:
	@echo "make run    - venv + local stack (MLflow :5000, model server :1234) + one DAG run"
	@echo "make test   - the whole test suite (starts the services it needs)"
	@echo "make airflow - the local stack + Airflow UI/scheduler on 127.0.0.1:8080 (prints the login)"
	@echo "make up / down / status - the local stack only; down stops Airflow too"
	@echo "make lint / format / bench / lock / clean"

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	scripts/stack.sh up

down:
	scripts/stack.sh down

status:
	scripts/stack.sh status

run: up
	scripts/run-dag.sh

airflow: $(STAMP)
	scripts/airflow.sh up

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

test-unit: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not integration"

test-integration: $(STAMP)
	$(VENV)/bin/python -m pytest -m integration

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Run the reliability suites and regenerate docs/reliability.md from what they recorded.
RELIABILITY_TESTS := tests/data/test_bad_inputs.py tests/integration/test_pipeline_e2e.py \
	tests/integration/test_hostile_requests.py \
	tests/integration/test_registry_races.py tests/integration/test_load_promotion.py \
	tests/integration/test_faults.py
reliability: $(STAMP)
	WINE_RELIABILITY_OUT=.local/reliability.json $(VENV)/bin/python -m pytest $(RELIABILITY_TESTS)
	PYTHONPATH=include:. $(VENV)/bin/python scripts/reliability_report.py \
		.local/reliability.json docs/reliability.md

bench: $(STAMP)
	PYTHONPATH=include $(VENV)/bin/python -m bench

# Re-resolve the lock from the direct pins in a throwaway venv.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements-dev.txt
	{ echo '# Full lock of requirements-dev.txt, from `pip freeze` in a clean venv (make lock).'; \
	  .lock-venv/bin/pip freeze --exclude-editable; } > constraints.txt
	rm -rf .lock-venv

clean: down
	rm -rf .local
