"""The public surface of as_template: exactly what ``__all__`` promises, nothing pretending."""

import importlib.metadata
import re

import as_template


def test_all_is_exact_and_every_name_resolves() -> None:
    public = {name for name in dir(as_template) if not name.startswith("_")} - {"exceptions"}
    assert set(as_template.__all__) == public | {"__version__"}
    for name in as_template.__all__:
        assert getattr(as_template, name) is not None


def test_version_matches_installed_metadata() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[-.]?(?:a|b|rc|dev)\d+)?", as_template.__version__)
    assert importlib.metadata.version("as-template") == as_template.__version__


def test_base_error_is_an_exception() -> None:
    assert issubclass(as_template.AsTemplateError, Exception)
