# The two commands a newcomer needs: `make run` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000

.PHONY: run test smoke fuzz lint format migrate check schema clean demo-account compose-env \
	lock lock-upgrade check-locks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Exactly what requirements/dev.lock pins (hashes checked), then PushPilot itself, editable.
$(STAMP): pyproject.toml requirements/dev.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# requirements/*.lock from pyproject.toml (kept pins; `make lock-upgrade` for the newest allowed).
lock: $(STAMP)
	$(BIN)/python scripts/locks.py compile

lock-upgrade: $(STAMP)
	$(BIN)/python scripts/locks.py compile --upgrade

# Fails when pyproject.toml and the locks disagree (offline).
check-locks: $(STAMP)
	$(BIN)/python scripts/locks.py check

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	PORT=$(PORT) $(BIN)/python manage.py run_embedded

# A demo service account the running fake FCM trusts, as the body for PUT /integrations/firebase.
demo-account: $(STAMP)
	@$(BIN)/python manage.py demo_service_account

# .env with this install's own secrets for docker compose (kept if it exists).
compose-env:
	$(PYTHON) scripts/compose_env.py

# One pytest worker per core, at most 4; each has its own test database and Redis database,
# and the tests that start real processes share one worker (conftest.py).
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadgroup

# The real processes end to end, through HTTP only (uses DATABASE_URL / REDIS_URL if set).
smoke: $(STAMP)
	$(BIN)/python scripts/smoke.py

# A bounded schemathesis run against the live API (FUZZ_SECONDS, default 150).
fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz_api.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

check: $(STAMP)
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
