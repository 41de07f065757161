# The two commands: `make demo` and `make test`. Both set up .venv from scratch on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp

.PHONY: demo test install dev lint bench screenshots clean

ASSETS := node_modules/.installed-stamp

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# What the demo needs is the runtime alone (about 600 MB); the test tools and PySpark bring the
# environment to about 1.5 GB, so only `make test` and the targets that need them install those.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $(STAMP)

$(DEV_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(DEV_STAMP) $(STAMP)

# The web app's chart library and CSS, from npm at the versions package-lock.json pins.
$(ASSETS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(ASSETS)

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

install: $(STAMP) $(ASSETS)

dev: $(DEV_STAMP) $(ASSETS)

# `make demo SOURCE=chatwoot`: a Chatwoot brand fed by signed webhooks instead.
demo: install
	$(BIN)/convoscope demo --out demo-out $(if $(SOURCE),--source $(SOURCE))

lint: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: lint $(CHROMIUM)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

# The README's pictures: the browser tests save a screenshot of each page they visit.
screenshots: dev $(CHROMIUM)
	CONVOSCOPE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/test_browser.py "tests/test_schedules.py::test_a_schedule_made_in_chromium_is_listed_and_run_now_mails_it" -q -p no:xdist

bench: install
	$(BIN)/python bench/run.py --events 1000000 10000000

clean:
	rm -rf $(VENV) node_modules demo-out bench/out .pytest_cache .mypy_cache .ruff_cache
