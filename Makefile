# Winnow: the two commands are `make run` and `make test`; both set up .venv first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The CPU build of torch ships on this kind of machine's disk; elsewhere pip takes it from PyPI.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
PYTEST_ARGS ?=

.PHONY: setup run test test-fast protos protos-check bench eval clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q $(FIND_LINKS) -e '.[dev]'
	touch $@

run: setup
	$(VENV)/bin/winnow up

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow" tests/unit

protos: setup
	$(PY) tools/gen_protos.py

# Regenerate into a temporary directory and compare with the committed stubs; fails on any difference.
protos-check: setup
	$(PY) tools/gen_protos.py --check

bench: setup
	$(VENV)/bin/winnow bench models
	$(VENV)/bin/winnow bench index
	$(VENV)/bin/winnow bench gateway
	$(VENV)/bin/winnow bench log

eval: setup
	$(VENV)/bin/winnow eval --dataset ../shared/datasets/scifact

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
