"""Shared fixtures of the as-config tests: no environment variable leaks into a test."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings read the environment; a variable from the shell that runs the tests (or
    # from another test) must not change what a test sees.
    for name in list(os.environ):
        if name.upper().startswith("AS_"):
            monkeypatch.delenv(name)
