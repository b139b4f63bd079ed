# fitclub — `make run` serves the demo club, `make test` runs the whole suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DB ?= sqlite:///var/fitclub.db
HOST ?= 127.0.0.1
PORT ?= 8000
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

.PHONY: setup browser run test test-clock test-sqlite test-pg bench lint clean

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
	@echo "serving on http://$(HOST):$(PORT) (make run PORT=8080 for another port; Ctrl-C stops)"
	DATABASE_URL=$(DB) $(BIN)/fitclub serve --host $(HOST) --port $(PORT); \
	  status=$$?; [ $$status -eq 0 ] || [ $$status -eq 130 ] || [ $$status -eq 143 ]

# Browser tests drive Debian's Chromium through Playwright; never a downloaded browser.
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: setup browser
	FITCLUB_TEST_PG_URL=$(PG_TEST_URL) $(BIN)/pytest -n 2 $(PYTEST_ARGS)

# The clock-sensitive packages again, each test starting at an instant that breaks naive code:
# 00:30 on the spring-forward night (still 27 March in UTC), 00:30 on 1 March of a leap year
# east of UTC (29 February in UTC), five to midnight on New Year's Eve, and 21:30 in the club's
# quiet hours (Berlin). Each instant runs on one backend (INSTANT@BACKEND), so both backends meet
# a night whose local date is not UTC's; the whole suite runs on both at the real time.
CLOCK_TESTS ?= tests/core/test_clock.py tests/privacy tests/retention tests/analytics \
	tests/memberships tests/trainers tests/access tests/billing tests/crm \
	tests/dues/test_contracts.py tests/dues/test_run.py tests/dues/test_dunning.py tests/memberapp
HOSTILE_INSTANTS ?= 2027-03-28T00:30:00+01:00@sqlite 2028-03-01T00:30:00+01:00@postgresql \
	2027-12-31T23:55:00+01:00@sqlite 2026-12-06T21:30:00+01:00@postgresql

test-clock: setup
	@for pair in $(HOSTILE_INSTANTS); do \
	  at=$${pair%@*}; backend=$${pair#*@}; \
	  echo "== the clock-sensitive tests at $$at on $$backend"; \
	  FITCLUB_TEST_DATABASES=$$backend FITCLUB_TEST_PG_URL=$(PG_TEST_URL) \
	    $(BIN)/pytest -n 2 -q --clock=$$at $(CLOCK_TESTS) $(PYTEST_ARGS) || exit 1; \
	done

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
	$(BIN)/python -m bench.billing
	$(BIN)/python -m bench.sepa_file

clean:
	rm -rf $(VENV) var .pytest_cache
