# Social contact import: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export CONTACT_IMPORT_DATA_DIR ?= $(CURDIR)/.data

.PHONY: setup demo test airflow airflow-celery bench clean chromium

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt -e .
	touch $@

demo: setup
	$(BIN)/contact-import db upgrade
	$(BIN)/contact-import workspace apply examples/demo-workspace.yaml
	$(BIN)/contact-import import examples/line-contacts.csv --workspace demo --channel line

test: setup chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Debian's Chromium for the browser test of the Contact imports page.
chromium:
	bash scripts/ensure_chromium.sh

# AIRFLOW_PORT=8090 moves the API server and both log servers (two checkouts side by side); this
# project's DAGs are unpaused at every start. See scripts/airflow_local.py.
airflow: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/airflow_local.py

# The same DAGs on CeleryExecutor: Redis broker (AIRFLOW__CELERY__BROKER_URL, default redis://127.0.0.1:6379/0),
# PostgreSQL metadata (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, default database airflow_celery on localhost:5432,
# created if missing); exits 2 with one line on stderr if either is unusable. See scripts/airflow_local.py.
airflow-celery: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" AIRFLOW_LOCAL_EXECUTOR=celery $(BIN)/python scripts/airflow_local.py

clean:
	-$(BIN)/python -c "import pgserver, sys; pgserver.get_server('$(CONTACT_IMPORT_DATA_DIR)/pg', cleanup_mode='stop')" 2>/dev/null
	rm -rf $(CONTACT_IMPORT_DATA_DIR)

bench: setup
	$(BIN)/python scripts/bench.py
