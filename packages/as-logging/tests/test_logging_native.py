"""capture_native_output(): descriptor-level stderr goes to the log file, never to the terminal.

The end-to-end tests run a child Python whose stderr is a pipe (a real descriptor), as a
terminal would be, so that what reaches "the terminal" is exactly what the child wrote to
its descriptor 2 after the capture ended.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import as_logging
from as_logging import capture_native_output

# A child process: configures a log file, writes to descriptor 2 from C (libc's fprintf to
# stderr), from os.write and from a grandchild process inside the capture, logs a warning
# of its own, and then does what argv[2] says: "ok" or "raise".
CHILD = textwrap.dedent(
    """
    import ctypes, logging, os, subprocess, sys
    import as_logging

    as_logging.configure("WARNING", log_dir=sys.argv[1], file_level="DEBUG", force_plain=True)
    libc = ctypes.CDLL(None)
    stderr = ctypes.c_void_p.in_dll(libc, "stderr")
    print("before", file=sys.stderr, flush=True)
    with as_logging.capture_native_output("thirdparty") as captured:
        libc.fprintf(stderr, b"I0000 00:00:1796414001.291150    5974 port.cc:153] from C\\n")
        libc.fflush(stderr)
        os.write(2, b"from os.write\\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('from a child\\\\n')"])
        print("python to sys.stderr", file=sys.stderr)
        logging.getLogger("app").warning("our own warning")
        captured.stderr.write("our own progress\\n")
        if sys.argv[2] == "raise":
            raise RuntimeError("the wrapped code failed")
    print("after", file=sys.stderr, flush=True)
    print("lines", len(captured.lines))
    """
)

NOISE = ["from C", "from os.write", "from a child", "python to sys.stderr"]


def _run_child(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / "logs"), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _records(tmp_path: Path, read_records: Callable[[Path], list[dict[str, Any]]]) -> list[Any]:
    return read_records(tmp_path / "logs" / "as-toolkit.jsonl")


def test_c_level_stderr_goes_to_the_log_file_not_the_terminal(
    tmp_path: Path, read_records: Callable[[Path], list[dict[str, Any]]]
) -> None:
    done = _run_child(tmp_path, "ok")
    assert done.returncode == 0, done.stderr
    for text in NOISE:
        assert text not in done.stderr
    # What is ours still reaches the terminal, in order, around the captured block.
    assert done.stderr.index("before") < done.stderr.index("our own warning")
    assert done.stderr.index("our own progress") < done.stderr.index("after")
    assert "lines 4" in done.stdout
    records = [r for r in _records(tmp_path, read_records) if r["logger"] == "thirdparty"]
    messages = [r["message"] for r in records]
    for text in NOISE:
        assert any(text in m for m in messages), (text, messages)
    (native,) = [r for r in records if "from C" in r["message"]]
    assert native["level"] == "INFO"
    assert native["extra"] == {"stream": "stderr", "native_level": "I", "source": "port.cc:153"}


def test_an_exception_inside_propagates_and_the_captured_lines_are_logged(
    tmp_path: Path, read_records: Callable[[Path], list[dict[str, Any]]]
) -> None:
    done = _run_child(tmp_path, "raise")
    assert done.returncode == 1
    # The traceback reaches the terminal; the noise does not.
    assert "RuntimeError: the wrapped code failed" in done.stderr
    for text in NOISE:
        assert text not in done.stderr
    assert "after" not in done.stderr
    messages = [r["message"] for r in _records(tmp_path, read_records)]
    for text in NOISE:
        assert any(text in m for m in messages), (text, messages)


def test_in_process_the_descriptor_is_restored_even_when_the_block_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = os.fstat(2)
    with (
        caplog.at_level(logging.DEBUG, logger="noise"),
        pytest.raises(ValueError, match="inside"),
        capture_native_output("noise", level="DEBUG", stdout=True) as captured,
    ):
        os.write(2, b"to fd 2\n\n")
        os.write(1, b"to fd 1\n")
        raise ValueError("inside")
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)
    assert captured.lines == ["to fd 2", "to fd 1"]  # empty lines left out
    records = [(r.levelname, r.getMessage(), r.stream) for r in caplog.records]  # type: ignore[attr-defined]
    assert records == [("DEBUG", "to fd 2", "stderr"), ("DEBUG", "to fd 1", "stdout")]


def test_python_warnings_inside_are_logged_not_printed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="py.warnings"), warnings.catch_warnings():
        warnings.simplefilter("always")  # the test run turns warnings into errors
        shown = warnings.showwarning
        with capture_native_output() as captured:
            warnings.warn("a library is deprecated", DeprecationWarning, stacklevel=1)
        assert warnings.showwarning is shown  # restored on exit
    assert captured.warnings == 1
    (record,) = [r for r in caplog.records if r.name == "py.warnings"]
    assert "DeprecationWarning: a library is deprecated" in record.getMessage()
    assert record.category == "DeprecationWarning"  # type: ignore[attr-defined]


def test_a_warning_filter_that_raises_still_raises() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DeprecationWarning), capture_native_output():
            warnings.warn("old", DeprecationWarning, stacklevel=1)


def test_lines_over_the_limit_are_counted_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="as_logging.native"):
        with capture_native_output(max_lines=2) as captured:
            os.write(2, b"one\ntwo\nthree\nfour\n")
    assert captured.lines == ["one", "two"]
    assert captured.dropped == 2
    assert caplog.records[-1].getMessage() == "2 more line(s) of stderr output not logged"


def test_nested_captures_keep_as_loggings_console_on_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Under pytest's capture sys.stderr is not descriptor 2: the console handler writes to
    # it through terminal_stderr() only outside a capture, to the saved descriptor inside.
    as_logging.configure("WARNING", force_plain=True)
    with capture_native_output("outer") as outer:
        with capture_native_output("inner") as inner:
            os.write(2, b"inner noise\n")
        os.write(2, b"outer noise\n")
    assert inner.lines == ["inner noise"]
    assert outer.lines == ["outer noise"]
    logging.getLogger("ours").warning("after the capture")
    assert "after the capture" in capsys.readouterr().err


def test_a_closed_descriptor_is_left_alone() -> None:
    saved = os.dup(2)
    try:
        os.close(2)
        with capture_native_output() as captured:
            pass
        assert captured.lines == []
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def test_the_terminal_stream_follows_sys_stderr_outside_a_capture(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = as_logging.terminal_stderr()
    stream.write("hello\n")
    stream.flush()
    assert capsys.readouterr().err == "hello\n"
    assert stream.isatty() is False
    assert stream.encoding


def test_the_json_record_of_a_captured_line_is_valid(
    tmp_path: Path, read_records: Callable[[Path], list[dict[str, Any]]]
) -> None:
    result = as_logging.configure("INFO", console=False, log_dir=tmp_path)
    assert result.log_file is not None
    with capture_native_output():
        os.write(2, b"bytes that are not UTF-8: \xff\xfe\n")
    (record,) = read_records(result.log_file)
    assert record["logger"] == "as_logging.native"
    assert record["message"].startswith("bytes that are not UTF-8: ")
    assert json.dumps(record)
