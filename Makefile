# ganlab developer commands (GNU make).
#   make run    start the app (creates .venv and installs requirements on first use)
#   make test   install test requirements (+ Debian chromium when missing) and run the whole suite
#   make test-fast  the fast tier: engine and page tests without browsers or long runs (about a minute)
#   make bench  quick speed benchmark
#   make lint   ruff
# Extra arguments: make run ARGS="--server.address 0.0.0.0", make test PYTEST_ARGS="-m 'not browser' -x"

PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Stamps record that the venv holds what the requirement files ask for; pip runs again only when a
# requirement file is newer than its stamp (plain `pip install -r`, so pip's own config is respected).
REQ_STAMP := $(VENV)/.req-stamp
TEST_STAMP := $(VENV)/.req-test-stamp
CHROMIUM ?= /usr/bin/chromium
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test test-fast bench lint sysdeps venv

venv: $(REQ_STAMP)

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(REQ_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

$(TEST_STAMP): requirements-test.txt requirements.txt $(REQ_STAMP)
	$(BIN)/python -m pip install -r requirements-test.txt
	touch $@

run: $(REQ_STAMP)
	$(BIN)/streamlit run app.py $(ARGS)

# Best effort: browser tests need the system Chromium (Debian package `chromium`); the Fashion-MNIST tests and
# the fashion-dcgan preset use Debian's `dataset-fashion-mnist`. Without Chromium browser tests skip locally and
# fail under CI=true; without the data set its tests skip.
sysdeps:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist) \
	    || echo "WARNING: could not install dataset-fashion-mnist; its tests will skip"; \
	fi
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "== $(CHROMIUM) missing: installing Debian chromium"; \
	    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium) \
	      || echo "WARNING: could not install chromium; browser tests will skip (fail under CI=true)"; \
	  else \
	    echo "WARNING: $(CHROMIUM) missing (install the Debian package 'chromium'); browser tests will skip"; \
	  fi; \
	fi

test: $(TEST_STAMP) sysdeps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m "not browser and not slow" $(PYTEST_ARGS)

bench: $(REQ_STAMP)
	$(BIN)/python -m ganlab bench --quick

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
