"""The public surface of as_logging: exactly what ``__all__`` promises, nothing pretending."""

import importlib.metadata
import pickle
import re
from pathlib import Path

import pytest

import as_logging
from as_logging import exceptions

EXPECTED = {
    "AsLoggingError",
    "CapturedOutput",
    "ConfigurationError",
    "ConfigureResult",
    "ContextFilter",
    "InvalidLevelError",
    "JsonFormatter",
    "LogDirectoryError",
    "__version__",
    "bind",
    "bound_context",
    "capture_native_output",
    "configure",
    "get_logger",
    "reset",
    "terminal_stderr",
}


def test_all_is_exact_and_every_name_resolves() -> None:
    public = {name for name in dir(as_logging) if not name.startswith("_")} - {"exceptions"}
    assert set(as_logging.__all__) == EXPECTED
    assert set(as_logging.__all__) == public | {"__version__"}
    for name in as_logging.__all__:
        assert getattr(as_logging, name) is not None


def test_version_matches_installed_metadata() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[-.]?(?:a|b|rc|dev)\d+)?", as_logging.__version__)
    assert importlib.metadata.version("as-logging") == as_logging.__version__


def test_exceptions_module_exports_the_tree() -> None:
    assert set(exceptions.__all__) == {
        "AsLoggingError",
        "ConfigurationError",
        "InvalidLevelError",
        "LogDirectoryError",
    }


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (as_logging.ConfigurationError, ValueError),
        (as_logging.InvalidLevelError, ValueError),
        (as_logging.LogDirectoryError, OSError),
    ],
)
def test_errors_derive_from_the_base_and_their_builtin(
    error: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(error, as_logging.AsLoggingError)
    assert issubclass(error, builtin)
    assert issubclass(as_logging.AsLoggingError, Exception)


def test_errors_keep_their_message_and_survive_pickling() -> None:
    level_error = as_logging.InvalidLevelError("bad level", value="loud", parameter="file_level")
    dir_error = as_logging.LogDirectoryError("bad dir", path=Path("/x"), errno=20)
    assert str(dir_error) == "bad dir"  # not "[Errno 20] ..."
    assert dir_error.errno == 20
    assert dir_error.path == Path("/x")
    assert (level_error.value, level_error.parameter) == ("loud", "file_level")
    for error in (level_error, dir_error):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
