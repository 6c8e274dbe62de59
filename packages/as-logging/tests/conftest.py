"""Shared fixtures of the as-logging tests: no test leaks handlers or levels into another."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import as_logging
from as_logging._configure import is_owned


def all_loggers() -> list[logging.Logger]:
    items = logging.Logger.manager.loggerDict.values()
    return [logging.getLogger(), *(item for item in items if isinstance(item, logging.Logger))]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    as_logging.reset()
    # pytest's own capture handlers come and go on the root logger per test phase, so the
    # check is that none of as-logging's handlers is left anywhere.
    leftovers = [h for lg in all_loggers() for h in lg.handlers if is_owned(h)]
    assert leftovers == []


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's json accepts them unless told otherwise.
    raise ValueError(f"non-standard JSON constant {name}")


def parse_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file, parsed strictly; fails on any invalid line."""
    data = path.read_bytes()
    text = data.decode("utf-8")  # strict: the file must be valid UTF-8
    assert text.endswith("\n") or text == ""
    lines = text.split("\n")[:-1]
    # No record may contain a character that str.splitlines() treats as a line break.
    assert len(text.splitlines()) == len(lines)
    records = [json.loads(line, parse_constant=_reject_constant) for line in lines]
    assert all(isinstance(record, dict) for record in records)
    return records


@pytest.fixture
def read_records() -> Callable[[Path], list[dict[str, Any]]]:
    return parse_lines
