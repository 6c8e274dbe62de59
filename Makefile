# Developer shortcuts for the CI steps. Each target calls scripts/ci/step, the one
# definition that .ci/run and .github/workflows/ci.yml call too: a green `make ci` means a
# green CI. `make help` lists the targets.
.DEFAULT_GOAL := help
STEP := scripts/ci/step
PACKAGE ?=
.PHONY: help sync lock lock-check lint format typecheck release-check isolation torch-cpu test test-fast \
	test-timing test-ci coverage-check test-package test-light test-lowest test-gpu test-macos ci hooks

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

sync: ## Install the workspace from the lock (all packages, dev tools)
	@$(STEP) sync

lock: ## Re-resolve uv.lock after changing a pyproject
	uv lock

lock-check: ## uv.lock matches every pyproject
	@$(STEP) lock-check

lint: ## ruff lint and format check
	@$(STEP) lint

format: ## Apply ruff's fixes and formatting
	uv run --frozen ruff check --fix .
	uv run --frozen ruff format .

typecheck: ## mypy in strict mode over packages/*/src, scripts/ and every tests folder
	@$(STEP) typecheck

release-check: ## Each package's CHANGELOG top entry matches its version
	@$(STEP) release-check

isolation: ## Build each wheel without sources, install it alone in a fresh venv, import it
	@$(STEP) isolation

torch-cpu: ## The README's CPU-only torch set-up in a fresh project (skips offline)
	@$(STEP) torch-cpu

test: ## The README's command: every test but timing, in parallel
	@$(STEP) test

test-fast: ## The quick subset: no registry, nothing slow
	@$(STEP) test -m "not network and not slow"

test-timing: ## The tests that measure real time, serially
	@$(STEP) test-timing

test-ci: ## The README's command with coverage and the per-package floors (CI's test step)
	@$(STEP) test-ci

coverage-check: ## The per-package floors, on the report test-ci wrote
	@$(STEP) coverage-check

test-package: ## PACKAGE=as-config: its tests with only it installed (.venvs/<package>)
	@$(STEP) test-package $(PACKAGE)

test-light: ## PACKAGE=as-bench: its tests with none of its extras installed
	@$(STEP) test-light $(PACKAGE)

test-lowest: ## PACKAGE=as-config: its tests against the lowest versions it declares
	@$(STEP) test-lowest $(PACKAGE)

test-gpu: ## The tests marked gpu, serially (needs CUDA)
	@$(STEP) test-gpu

test-macos: ## The tests marked macos, serially (needs Apple Silicon)
	@$(STEP) test-macos

ci: ## Exactly what CI runs (.ci/run)
	bash .ci/run

hooks: ## Install the pre-commit hooks
	uv run --frozen pre-commit install
