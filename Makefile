# Every target runs the same command as .ci/run, so a green `make ci` means a green CI.
.DEFAULT_GOAL := help
.PHONY: help sync lock lint format typecheck release-check isolation test test-fast ci hooks

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

sync: ## Install the workspace from the lock (all packages, dev tools)
	uv sync --frozen

lock: ## Re-resolve uv.lock after changing a pyproject
	uv lock

lint: ## ruff lint and format check
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .

format: ## Apply ruff's fixes and formatting
	uv run --frozen ruff check --fix .
	uv run --frozen ruff format .

typecheck: ## mypy in strict mode over packages/
	uv run --frozen mypy

release-check: ## Each package's CHANGELOG top entry matches its version
	uv run --frozen python scripts/check_release.py --all

isolation: ## Build each wheel without sources, install it alone in a fresh venv, import it
	uv run --frozen python scripts/check_isolation.py

test: ## The whole test suite (the README's command)
	uv run --frozen pytest

test-fast: ## Tests that need neither the registry nor much time
	uv run --frozen pytest -m "not slow and not network"

hooks: ## Install the pre-commit hooks
	uv run --frozen pre-commit install

ci: ## Exactly what CI runs
	bash .ci/run
