"""The public surface of as_config: exactly what ``__all__`` promises, errors as documented."""

from __future__ import annotations

import importlib.metadata
import inspect
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

import as_config
from as_config import exceptions

EXPECTED = {
    "PROFILES_KEY",
    "SECRET_MASK",
    "SUFFIXES",
    "AsConfigError",
    "AsSettings",
    "ConfigDumpError",
    "ConfigFileNotFoundError",
    "ConfigFileReadError",
    "ConfigFormat",
    "ConfigIssue",
    "ConfigParseError",
    "ConfigSection",
    "ConfigValidationError",
    "DuplicateKeyError",
    "ProfileNotFoundError",
    "UnsupportedFormatError",
    "__version__",
    "deep_merge",
    "dump_settings",
    "write_text_atomic",
    "load_settings",
    "read_config_file",
}


def test_all_is_exact_and_every_name_resolves() -> None:
    # Submodules (exceptions, cli once a test imported it) are attributes too; skip them.
    public = {
        name
        for name in dir(as_config)
        if not name.startswith("_") and not inspect.ismodule(getattr(as_config, name))
    }
    assert set(as_config.__all__) == EXPECTED
    assert set(as_config.__all__) == public | {"__version__"}
    for name in as_config.__all__:
        assert getattr(as_config, name) is not None


def test_importing_the_package_does_not_import_the_cli() -> None:
    # The CLI pulls in typer and rich; a library import should not pay for them.
    code = "import sys, as_config; print('as_config.cli' in sys.modules, 'typer' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False False"


def test_version_matches_installed_metadata() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", as_config.__version__)
    assert importlib.metadata.version("as-config") == as_config.__version__


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (exceptions.ConfigFileNotFoundError, FileNotFoundError),
        (exceptions.ConfigFileReadError, OSError),
        (exceptions.UnsupportedFormatError, ValueError),
        (exceptions.ConfigParseError, ValueError),
        (exceptions.DuplicateKeyError, exceptions.ConfigParseError),
        (exceptions.ConfigValidationError, ValueError),
        (exceptions.ProfileNotFoundError, LookupError),
        (exceptions.ConfigDumpError, ValueError),
    ],
)
def test_errors_also_derive_from_builtins(error: type[Exception], builtin: type[Exception]) -> None:
    assert issubclass(error, exceptions.AsConfigError)
    assert issubclass(error, builtin)
    assert error.__name__ in (exceptions.__doc__ or "")


ERRORS = [
    exceptions.ConfigFileNotFoundError(Path("/etc/x.yaml")),
    exceptions.ConfigFileReadError(Path("d"), "it is a directory, not a file"),
    exceptions.UnsupportedFormatError(".ini", [".yaml"], path=Path("a.ini")),
    exceptions.ConfigParseError(Path("a.yaml"), "bad", line=1, column=2),
    exceptions.DuplicateKeyError(Path("a.json"), "k", line=3, column=1, first_line=1),
    exceptions.ConfigValidationError("M", [exceptions.ConfigIssue("a.b", "bad", "a.yaml:1:1")]),
    exceptions.ProfileNotFoundError("dev", "not there", ["ci"]),
    exceptions.ConfigDumpError("toml", "no null", "a[1]"),
]


@pytest.mark.parametrize("error", ERRORS, ids=[type(e).__name__ for e in ERRORS])
def test_errors_pickle_with_their_attributes(error: exceptions.AsConfigError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__
    assert error.hint


def test_issue_formatting() -> None:
    assert str(exceptions.ConfigIssue("a", "bad")) == "a: bad"
    assert str(exceptions.ConfigIssue("a", "bad", "f.yaml:2:3")) == "a: bad [f.yaml:2:3]"
    assert str(exceptions.ConfigIssue("", "bad")) == "<top level>: bad"
