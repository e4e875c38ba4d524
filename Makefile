# `make run` starts the platform, `make test` runs the suite; both create the venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test lint format run l10n

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The whole platform under one supervisor; Ctrl-C stops it. Data stays in ./var.
run: install
	$(VENV)/bin/emobot run

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The text catalogue: the keys the code names (t(lang, "key"), Rejected("key")) into
# emobot/locales/emobot.pot for translators, and the .po files compiled into the .mo files the
# processes read (committed; tests/test_i18n.py fails when one is stale or a key is missing).
l10n: install
	$(VENV)/bin/pybabel extract --no-default-keywords -k t:2 -k Rejected:1 \
		-o emobot/locales/emobot.pot bot worker trainer emobot runtime cli db ml
	$(VENV)/bin/pybabel compile --statistics -D emobot -d emobot/locales

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
