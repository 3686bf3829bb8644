# The front door: `make run` starts the app on the bundled corpus, `make test` runs every test tier.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)
INDEX ?= data/index
CORPUS ?= corpus
PORT ?= 8501
# WATCH=1 (make run WATCH=1): the app watches the corpus folder and updates the index after each change
# (files added, edited, renamed or deleted by any means); 0, the default, updates only when asked.
WATCH ?= 0

.PHONY: install index run lint test test-fast clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .  # this project's packages, importable from anywhere
	rm -f $(VENV)/.installed-* && touch $@

# Build the index, or bring it up to date (re-embeds only changed text).
index: install
	$(PY) -m ingest --corpus $(CORPUS) --index $(INDEX)

run: index
	@echo "Starting the app at http://localhost:$(PORT)$(if $(filter 1,$(WATCH)), (watching $(CORPUS) for changes),)"
	KB_CORPUS=$(CORPUS) KB_INDEX=$(INDEX) KB_WATCH=$(WATCH) $(PY) -m ui.serve app.py \
		--server.address localhost --server.port $(PORT) --server.headless true \
		--browser.gatherUsageStats false

# Lint and formatting (ruff, configured in pyproject.toml); part of both test targets.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: install lint
	$(PY) -m pytest

# Quick unit tier: fake embedder; no model, browser, Ray instance or slow crash/50 MB tests.
test-fast: install lint
	$(PY) -m pytest -m "not model and not browser and not ray and not slow"

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis
