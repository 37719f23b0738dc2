# make dev    — install (if needed), build the frontend (if changed), run the whole stack
#               make dev PORT=8001                     the app on another port
#               make dev DEV_ARGS="--workers 2 --fake-comfy-port 8190"   any `safelight dev` option
# make test   — install (if needed), run every test suite CI runs
# make check  — lint, format check, type check
#
# Installs and the frontend build are stamped with a hash of what they depend
# on, so repeated runs skip pip / npm / vite when nothing changed.

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
# What `npm run build` reads: the sources (not src/gql, which codegen writes), the html entry points,
# public/, package*.json, the build configs and the API schema. Names are hashed with the contents.
FRONTEND_INPUTS = $(wildcard frontend/*.html frontend/package.json frontend/package-lock.json frontend/vite.config.* \
	frontend/codegen.ts frontend/tsconfig*.json schema.graphql) \
	$(shell find frontend/src $(wildcard frontend/public) -path frontend/src/gql -prune -o -type f -print)
BUILD_STAMP = frontend/dist/.built-$(shell printf '%s\n' $(FRONTEND_INPUTS) | LC_ALL=C sort | xargs sha256sum \
	| sha256sum | cut -c1-16)

PORT ?=
DEV_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help install dev test check frontend-install frontend-build

help:
	@echo "make dev    run the whole stack locally (embedded PostgreSQL/Redis, fake ComfyUI)"
	@echo "            make dev PORT=8001; make dev DEV_ARGS=\"--fake-comfy-port 8190 --workers 2\""
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
	cd frontend && if [ -f package-lock.json ]; then npm ci --engine-strict; else npm install --engine-strict; fi
	@mkdir -p frontend/node_modules && rm -f frontend/node_modules/.installed-*
	@touch $@

frontend-build: frontend-install $(if $(FRONTEND),$(BUILD_STAMP))

ifneq ($(FRONTEND),)
$(BUILD_STAMP): $(NPM_STAMP)
	cd frontend && npm run build
	@rm -f frontend/dist/.built-*
	@touch $@
endif

dev: install frontend-build
	$(BIN)/safelight dev $(if $(PORT),--port $(PORT)) $(DEV_ARGS)

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
