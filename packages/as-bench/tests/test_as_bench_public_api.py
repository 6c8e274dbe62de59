"""The public surface of as_bench: exactly what ``__all__`` promises, nothing pretending."""

import importlib.metadata
import re

import as_bench


def test_all_is_exact_and_every_name_resolves() -> None:
    public = {name for name in dir(as_bench) if not name.startswith("_")} - {"exceptions"}
    assert set(as_bench.__all__) == public | {"__version__"}
    for name in as_bench.__all__:
        assert getattr(as_bench, name) is not None


def test_version_matches_installed_metadata() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[-.]?(?:a|b|rc|dev)\d+)?", as_bench.__version__)
    assert importlib.metadata.version("as-bench") == as_bench.__version__


def test_base_error_is_an_exception() -> None:
    assert issubclass(as_bench.AsBenchError, Exception)
