# fitclub — `make run` serves the demo club, `make test` runs the whole suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DB ?= sqlite:///var/fitclub.db
HOST ?= 127.0.0.1
PORT ?= 8000
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

.PHONY: setup browser run test test-sqlite test-pg bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

setup: $(VENV)/.installed

run: setup
	mkdir -p var
	DATABASE_URL=$(DB) $(BIN)/fitclub migrate
	DATABASE_URL=$(DB) $(BIN)/fitclub demo --if-empty
	DATABASE_URL=$(DB) $(BIN)/fitclub serve --host $(HOST) --port $(PORT)

# Browser tests drive Debian's Chromium through Playwright; never a downloaded browser.
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: setup browser
	FITCLUB_TEST_PG_URL=$(PG_TEST_URL) $(BIN)/pytest -n 2 $(PYTEST_ARGS)

test-sqlite: setup
	FITCLUB_TEST_DATABASES=sqlite $(BIN)/pytest $(PYTEST_ARGS)

test-pg: setup
	FITCLUB_TEST_DATABASES=postgresql FITCLUB_TEST_PG_URL=$(PG_TEST_URL) $(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench.checkin
	$(BIN)/python -m bench.search
	$(BIN)/python -m bench.retention
	$(BIN)/python -m bench.analytics
	$(BIN)/python -m bench.peak
	$(BIN)/python -m bench.import

clean:
	rm -rf $(VENV) var .pytest_cache
