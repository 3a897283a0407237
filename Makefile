# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv

.PHONY: demo test test-embedded test-services lint bench

$(VENV)/.installed-runtime: requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-runtime requirements-test.txt
	$(VENV)/bin/pip install --quiet -r requirements-test.txt
	touch $@

## Set up and start the gateway with the demo on the embedded default (SQLite, in-process store).
demo: $(VENV)/.installed-runtime
	bin/demo

## Install the test requirements and run the whole suite: lint, embedded run, PostgreSQL + Redis run.
test: $(VENV)/.installed-test
	bin/test

test-embedded: $(VENV)/.installed-test
	bin/test embedded

test-services: $(VENV)/.installed-test
	bin/test services

bench: $(VENV)/.installed-test
	$(VENV)/bin/python bench/run.py
