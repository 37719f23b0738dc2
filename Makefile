# make dev    — install (if needed), build the frontend (if present), run the whole stack
# make test   — install (if needed), run every test suite CI runs
# make check  — lint, format check, type check
#
# Installs are stamped with a hash of what they depend on, so repeated runs
# skip pip / npm when nothing changed.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)

FRONTEND := $(wildcard frontend/package.json)
FRONTEND_LOCK := $(firstword $(wildcard frontend/package-lock.json) $(FRONTEND))
NPM_STAMP := frontend/node_modules/.installed-$(if $(FRONTEND),$(shell cat frontend/package.json $(FRONTEND_LOCK) | sha256sum | cut -c1-16),none)

DEV_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help install dev test check frontend-install frontend-build

help:
	@echo "make dev    run the whole stack locally (embedded PostgreSQL/Redis, fake ComfyUI)"
	@echo "make test   run every test suite (needs PostgreSQL and Redis: DATABASE_URL, REDIS_URL)"
	@echo "make check  ruff check, ruff format --check, mypy"

install: $(PY_STAMP)

$(PY_STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

frontend-install: $(if $(FRONTEND),$(NPM_STAMP))

$(NPM_STAMP):
	cd frontend && if [ -f package-lock.json ]; then npm ci; else npm install; fi
	@mkdir -p frontend/node_modules && rm -f frontend/node_modules/.installed-*
	@touch $@

frontend-build: frontend-install
ifneq ($(FRONTEND),)
	cd frontend && npm run build
endif

dev: install frontend-build
	$(BIN)/safelight dev $(DEV_ARGS)

test: install frontend-build
	$(BIN)/pytest $(PYTEST_ARGS)
ifneq ($(FRONTEND),)
	cd frontend && npm test
endif

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
ifneq ($(FRONTEND),)
	$(MAKE) frontend-install
	cd frontend && npm run --if-present typecheck && npm run --if-present lint
endif
