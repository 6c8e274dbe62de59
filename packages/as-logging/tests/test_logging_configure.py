"""configure() and reset(): levels, idempotency, foreign handlers, console kinds, log dirs."""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Callable, Iterator
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

import pytest
from rich.logging import RichHandler

import as_logging
from as_logging import (
    ConfigurationError,
    InvalidLevelError,
    LogDirectoryError,
    configure,
    reset,
)

Reader = Callable[[Path], list[dict[str, Any]]]


class ListHandler(logging.Handler):
    """A handler someone else installed: as-logging must never remove it."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def foreign() -> Iterator[ListHandler]:
    handler = ListHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


@pytest.fixture
def root_level() -> Iterator[None]:
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.WARNING)
    yield
    root.setLevel(before)


def owned(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, "_as_logging_owned", False)]


# -- levels -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("info", logging.INFO),
        ("WARNING", logging.WARNING),
        ("Debug", logging.DEBUG),
        (" error ", logging.ERROR),
        ("critical", logging.CRITICAL),
        (10, logging.DEBUG),
        (logging.ERROR, logging.ERROR),
        (50, logging.CRITICAL),
    ],
)
def test_level_accepts_names_in_any_case_and_standard_numbers(
    given: str | int, expected: int
) -> None:
    result = configure(given, console_stream=io.StringIO(), logger="t.levels")
    assert result.level == expected
    assert result.logger.level == expected
    assert result.console_handler is not None
    assert result.console_handler.level == expected


@pytest.mark.parametrize("bad", ["verbose", "", "WARN ING", 15, 0, 60, -10, True, 20.0, "20"])
def test_invalid_level_names_the_value_and_the_allowed_ones(bad: object) -> None:
    with pytest.raises(InvalidLevelError) as info:
        configure(bad, console_stream=io.StringIO(), logger="t.levels")  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(f"invalid level {bad!r}: expected one of ")
    for allowed in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "10, 20, 30, 40, 50"):
        assert allowed in message
    assert info.value.value == bad
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("parameter", ["console_level", "file_level"])
def test_invalid_handler_level_names_its_parameter(parameter: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidLevelError, match=rf"^invalid {parameter} 'loud': expected"):
        kwargs: dict[str, Any] = {parameter: "loud"}
        configure("info", log_dir=tmp_path, console_stream=io.StringIO(), **kwargs)
    assert not (tmp_path / "as-toolkit.jsonl").exists()  # checked before anything opened


def test_logger_level_is_the_lowest_handler_level(tmp_path: Path, read_records: Reader) -> None:
    stream = io.StringIO()
    result = configure(
        "warning", file_level="debug", log_dir=tmp_path, console_stream=stream, logger="t.mix"
    )
    assert result.level == logging.DEBUG
    assert result.file_handler is not None
    assert result.file_handler.level == logging.DEBUG
    log = logging.getLogger("t.mix.child")
    log.debug("fine detail")
    log.warning("heads up")
    assert [r["message"] for r in read_records(tmp_path / "as-toolkit.jsonl")] == [
        "fine detail",
        "heads up",
    ]
    assert "fine detail" not in stream.getvalue()
    assert "heads up" in stream.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_bytes": -1}, r"^invalid max_bytes -1: expected an integer >= 0$"),
        ({"backup_count": -2}, r"^invalid backup_count -2: expected an integer >= 0$"),
        ({"max_bytes": 1.5}, r"^invalid max_bytes 1.5"),
        ({"filename": "sub/app.jsonl"}, r"^invalid filename 'sub/app.jsonl': expected a file"),
        ({"filename": ""}, r"^invalid filename ''"),
    ],
)
def test_invalid_file_settings_raise_configuration_error(
    kwargs: dict[str, Any], match: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        configure(log_dir=tmp_path, console=False, **kwargs)


# -- idempotency and foreign handlers --------------------------------------------------------


def test_repeated_configure_adds_no_duplicates_and_keeps_foreign_handlers(
    tmp_path: Path, foreign: ListHandler, read_records: Reader, root_level: None
) -> None:
    root = logging.getLogger()
    first = configure("info", log_dir=tmp_path, console_stream=io.StringIO())
    for _ in range(3):
        result = configure("info", log_dir=tmp_path, console_stream=io.StringIO())
    assert owned(root) == [result.console_handler, result.file_handler]
    assert foreign in root.handlers
    # The replaced handlers were closed, not leaked.
    assert first.file_handler is not None
    assert first.file_handler.stream is None

    logging.getLogger("t.dup").info("once")
    assert [r["message"] for r in read_records(tmp_path / "as-toolkit.jsonl")] == ["once"]
    assert [r.getMessage() for r in foreign.records] == ["once"]

    reset()
    assert owned(root) == []
    assert foreign in root.handlers
    assert root.level == logging.WARNING  # the level from before configure() is back
    assert result.file_handler is not None
    assert result.file_handler.stream is None
    logging.getLogger("t.dup").warning("after reset")
    assert [r.getMessage() for r in foreign.records] == ["once", "after reset"]


def test_reset_covers_every_configured_logger(tmp_path: Path) -> None:
    configure(log_dir=tmp_path / "a", console=False, logger="t.one")
    configure(log_dir=tmp_path / "b", console_stream=io.StringIO(), logger="t.two")
    assert owned(logging.getLogger("t.one")) and owned(logging.getLogger("t.two"))
    reset()
    assert owned(logging.getLogger("t.one")) == owned(logging.getLogger("t.two")) == []
    assert logging.getLogger("t.one").level == logging.NOTSET


def test_empty_logger_name_is_the_root_logger() -> None:
    assert configure(console=False, logger="").logger is logging.getLogger()


def test_failed_configure_leaves_the_previous_setup_in_place(tmp_path: Path) -> None:
    before = configure("info", log_dir=tmp_path, console_stream=io.StringIO(), logger="t.keep")
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory", encoding="utf-8")
    with pytest.raises(LogDirectoryError):
        configure("debug", log_dir=blocker, console_stream=io.StringIO(), logger="t.keep")
    assert owned(before.logger) == [before.console_handler, before.file_handler]
    assert before.logger.level == logging.INFO


# -- console --------------------------------------------------------------------------------


def test_console_is_plain_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    result = configure("info", console_stream=stream, logger="t.plain")
    assert type(result.console_handler) is logging.StreamHandler
    log = logging.getLogger("t.plain")
    with as_logging.bind(run_id="r42"):
        log.info("loaded %s", "resnet50", extra={"params": 25})
    log.debug("hidden")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(" INFO     t.plain: loaded resnet50 [run_id=r42 params=25]")


def test_plain_console_shows_the_traceback_after_the_message() -> None:
    stream = io.StringIO()
    configure("info", console_stream=stream, logger="t.plain")
    try:
        raise KeyError("missing")
    except KeyError:
        logging.getLogger("t.plain").exception("lookup failed")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("t.plain: lookup failed")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "KeyError: 'missing'"


def test_console_is_rich_on_a_terminal() -> None:
    stream = FakeTerminal()
    result = configure("info", console_stream=stream, logger="t.rich")
    assert isinstance(result.console_handler, RichHandler)
    logging.getLogger("t.rich").info("[b]kept[/b]")
    output = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())  # rich colours a terminal
    assert "INFO" in output
    assert "[b]kept[/b]" in output  # markup off: brackets in messages stay


@pytest.mark.parametrize(
    ("stream", "force_plain", "rich"),
    [(FakeTerminal(), True, False), (io.StringIO(), False, True)],
)
def test_force_plain_overrides_terminal_detection(
    stream: io.StringIO, force_plain: bool, rich: bool
) -> None:
    result = configure(console_stream=stream, force_plain=force_plain, logger="t.force")
    assert isinstance(result.console_handler, RichHandler) is rich


def test_default_console_writes_to_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info", logger="t.stderr")  # pytest's captured stderr is no terminal
    logging.getLogger("t.stderr").warning("to stderr")
    captured = capsys.readouterr()
    assert "t.stderr: to stderr" in captured.err
    assert captured.out == ""


def test_console_false_installs_only_the_file(tmp_path: Path) -> None:
    result = configure(console=False, log_dir=tmp_path, logger="t.file")
    assert result.console_handler is None
    assert isinstance(result.file_handler, RotatingFileHandler)
    assert owned(result.logger) == [result.file_handler]


# -- log directory --------------------------------------------------------------------------


def test_log_dir_is_created_with_parents_and_the_file_path_returned(tmp_path: Path) -> None:
    log_dir = tmp_path / "deep" / "er" / "logs"
    result = configure(console=False, log_dir=str(log_dir), filename="run.jsonl")
    assert log_dir.is_dir()
    assert result.log_file == (log_dir / "run.jsonl").absolute()
    assert result.log_file.is_file()


def test_log_dir_that_is_a_file_raises_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(LogDirectoryError) as info:
        configure(console=False, log_dir=blocker)
    expected = f"cannot use log directory {blocker}: it exists and is not a directory"
    assert str(info.value) == expected
    assert info.value.path == blocker
    assert isinstance(info.value, OSError)


def test_log_dir_under_a_file_raises_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(LogDirectoryError, match="one of its parents is a file"):
        configure(console=False, log_dir=blocker / "logs")


def test_log_file_that_is_a_directory_raises_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "as-toolkit.jsonl").mkdir()
    with pytest.raises(LogDirectoryError, match=r"as-toolkit\.jsonl: it is a directory$"):
        configure(console_stream=io.StringIO(), log_dir=tmp_path)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root writes into read-only directories, so there is no permission error to see",
)
def test_unwritable_log_dir_raises_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(LogDirectoryError, match=r"for writing: Permission denied$") as info:
            configure(console=False, log_dir=locked)
        assert info.value.path == locked / "as-toolkit.jsonl"
    finally:
        locked.chmod(0o700)


def test_permission_error_opening_the_file_is_translated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs as root too (unlike the chmod test above): the OS error is raised by hand.
    def refuse(*args: object, **kwargs: object) -> RotatingFileHandler:
        raise PermissionError(13, "Permission denied", str(args[0]))

    monkeypatch.setattr("as_logging._file.RotatingFileHandler", refuse)
    with pytest.raises(LogDirectoryError) as info:
        configure(console_stream=io.StringIO(), log_dir=tmp_path, logger="t.perm")
    log_file = tmp_path / "as-toolkit.jsonl"
    assert str(info.value) == f"cannot open log file {log_file} for writing: Permission denied"
    assert info.value.errno == 13
    assert isinstance(info.value.__cause__, PermissionError)
    assert owned(logging.getLogger("t.perm")) == []
