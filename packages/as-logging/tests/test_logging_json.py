"""The JSON-lines records: fields, timestamps, exceptions, and always-valid lines."""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from as_logging import JsonFormatter, bind, configure

Reader = Callable[[Path], list[dict[str, Any]]]

# Attributes every LogRecord has, plus those logging refuses in extra= and the one
# as-logging reserves for context fields: extras with these keys cannot exist.
RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "as_logging_context"}


def make_record(msg: object = "m", *args: object, **attrs: Any) -> logging.LogRecord:
    record = logging.LogRecord("t.json", logging.INFO, __file__, 7, msg, args or None, None)
    record.__dict__.update(attrs)
    return record


def fmt(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    line.encode("utf-8")  # strict: no lone surrogate left
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


def utf16_normalized(text: str) -> str:
    """What JSON gives back for a str with surrogates: pairs joined, lone ones kept."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


class Opaque:
    """A value JSON cannot hold; its repr has quotes, newlines, anything."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"Opaque({self.label!r}\n)"


# -- fields ----------------------------------------------------------------------------------


def test_record_has_the_documented_fields() -> None:
    record = make_record("loaded %s in %.1f s", "resnet50", 1.25, step=3)
    record.created = 1_700_000_000.5
    parsed = fmt(record)
    assert list(parsed) == [
        "timestamp",
        "level",
        "logger",
        "message",
        "module",
        "function",
        "line",
        "process",
        "thread",
        "context",
        "extra",
    ]
    assert parsed["timestamp"] == "2023-11-14T22:13:20.500000Z"
    assert parsed["level"] == "INFO"
    assert parsed["logger"] == "t.json"
    assert parsed["message"] == "loaded resnet50 in 1.2 s"
    assert parsed["line"] == 7
    assert parsed["context"] == {}
    assert parsed["extra"] == {"step": 3}


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000000Z"),
        (1_000_000_000.123456, "2001-09-09T01:46:40.123456Z"),
        (1_764_000_000.000001, "2025-11-24T16:00:00.000001Z"),
    ],
)
def test_timestamp_is_the_records_creation_time_in_utc(created: float, expected: str) -> None:
    record = make_record()
    record.created = created
    assert fmt(record)["timestamp"] == expected


def test_timestamp_in_the_file_is_the_creation_time_not_the_write_time(
    tmp_path: Path, read_records: Reader
) -> None:
    configure(console=False, log_dir=tmp_path, logger="t.time")
    log = logging.getLogger("t.time")
    record = log.makeRecord("t.time", logging.INFO, __file__, 1, "old news", (), None)
    record.created = 1_000_000_000.25  # long before the file was written
    log.handle(record)
    (parsed,) = read_records(tmp_path / "as-toolkit.jsonl")
    assert parsed["timestamp"] == "2001-09-09T01:46:40.250000Z"
    written = dt.datetime.fromisoformat(parsed["timestamp"])
    assert written.tzinfo == dt.UTC


def test_logger_exception_records_type_message_and_traceback(
    tmp_path: Path, read_records: Reader
) -> None:
    configure(console=False, log_dir=tmp_path, logger="t.exc")

    class ShapeError(ValueError):
        pass

    def load() -> None:
        raise ShapeError("expected (1, 3)\ngot (3, 1)")

    try:
        load()
    except ShapeError:
        logging.getLogger("t.exc").exception("inference failed")
    logging.getLogger("t.exc").error("no exception here")
    with_exc, without = read_records(tmp_path / "as-toolkit.jsonl")
    exception = with_exc["exception"]
    assert exception["type"] == f"{__name__}.{ShapeError.__qualname__}"
    assert exception["message"] == "expected (1, 3)\ngot (3, 1)"
    traceback_text = exception["traceback"]
    assert traceback_text.startswith("Traceback (most recent call last):\n")
    assert 'raise ShapeError("expected (1, 3)\\ngot (3, 1)")' in traceback_text
    assert "in load" in traceback_text
    assert traceback_text.endswith("ShapeError: expected (1, 3)\ngot (3, 1)")
    assert with_exc["level"] == "ERROR"
    assert "exception" not in without


def test_builtin_exception_type_has_no_module_prefix() -> None:
    empty: dict[str, int] = {}
    try:
        empty["k"]
    except KeyError:
        record = make_record(exc_info=sys.exc_info())
    assert fmt(record)["exception"]["type"] == "KeyError"


def test_exception_outside_an_except_block_adds_no_field() -> None:
    assert "exception" not in fmt(make_record(exc_info=(None, None, None)))


def test_exception_whose_str_fails_is_still_recorded() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    try:
        raise Broken
    except Broken:
        record = make_record(exc_info=sys.exc_info())
    exception = fmt(record)["exception"]
    assert exception["message"] == "Broken()"
    assert "Broken" in exception["traceback"]


def test_stack_info_is_recorded() -> None:
    record = make_record(stack_info="Stack (most recent call last):\n  File x")
    assert fmt(record)["stack"] == "Stack (most recent call last):\n  File x"


def test_context_fields_are_recorded_separately_from_extras() -> None:
    with bind(run_id="r1", model="m"):
        parsed = fmt(make_record(batch=8))
    assert parsed["context"] == {"run_id": "r1", "model": "m"}
    assert parsed["extra"] == {"batch": 8}


# -- values JSON cannot hold -------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (-math.inf, "-inf"),
        ((1, (2, 3)), [1, [2, 3]]),
        ({1: "a", (2, 3): "b"}, {"1": "a", "(2, 3)": "b"}),
        (b"\x00\xff", "b'\\x00\\xff'"),
        ({1, 2}, "{1, 2}"),
        (Color.RED, 1),
        (Path("/models/a.onnx"), "/models/a.onnx"),
        (dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "2026-01-02T03:04:05+00:00"),
        (dt.date(2026, 1, 2), "2026-01-02"),
        (Opaque('q"\n'), "Opaque('q\"\\n'\n)"),
        # pytest cannot even print this int as a test id; Python refuses it beyond 4300 digits.
        pytest.param(10**5000, "<int of 16610 bits>", id="int-too-long-to-print"),
    ],
)
def test_values_json_cannot_hold_fall_back_safely(value: object, expected: object) -> None:
    assert fmt(make_record(value=value))["extra"] == {"value": expected}


def test_self_containing_and_deep_structures_do_not_break_the_line() -> None:
    cycle: list[object] = [1]
    cycle.append(cycle)
    deep: list[object] = []
    node = deep
    for _ in range(200):
        node.append([])
        node = node[0]  # type: ignore[assignment]
    extra = fmt(make_record(cycle=cycle, deep=deep))["extra"]
    assert extra["cycle"] == [1, "<cycle: list contains itself>"]
    depth, node_out = 0, extra["deep"]
    while isinstance(node_out, list):
        depth, node_out = depth + 1, node_out[0]
    assert node_out == "<list nested deeper than 32 levels>"
    # The payload is level 0 and the extra dict level 1, so lists fill levels 2 to 31.
    assert depth == 30


def test_unrepresentable_value_becomes_a_placeholder() -> None:
    class NoRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    expected = f"<unrepresentable {NoRepr.__qualname__} object>"
    assert fmt(make_record(value=NoRepr()))["extra"] == {"value": expected}


def test_non_str_message_objects_are_rendered_with_str() -> None:
    assert fmt(make_record({"a": 1}))["message"] == "{'a': 1}"


@pytest.mark.parametrize(
    "text",
    ["a\nb", "a\rb", "tab\there", 'quote" back\\slash', "nel\x85", "ls\u2028ps\u2029", "\x00"],
)
def test_line_breaks_and_control_characters_stay_inside_one_line(text: str) -> None:
    line = JsonFormatter().format(make_record(text))
    assert len(line.splitlines()) == 1
    assert json.loads(line)["message"] == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bad \udc80 byte", "bad \udc80 byte"),  # lone low surrogate: kept, as an escape
        ("\ud83d", "\ud83d"),  # lone high surrogate
        ("pair \ud83d\ude00", "pair \U0001f600"),  # a pair is the character it encodes
        ("\\\udc80", "\\\udc80"),  # an escaped backslash before the escape stays two chars
    ],
)
def test_lone_surrogates_give_valid_utf8_and_read_back(text: str, expected: str) -> None:
    line = JsonFormatter().format(make_record(text, key=text))
    line.encode("utf-8")  # would raise on a raw surrogate
    parsed = json.loads(line)
    assert parsed["message"] == expected
    assert parsed["extra"] == {"key": expected}


def test_a_surrogate_pair_is_written_as_the_character_it_encodes() -> None:
    # Python's json would also join two escapes; other readers reject them, so the pair is
    # written as the real character, in UTF-8.
    line = JsonFormatter().format(make_record("\ud83d\ude00"))
    assert '"message": "\U0001f600"' in line
    assert "\\ud83d" not in line


# -- property: whatever the caller logs, every line is valid JSON and round-trips ------------

any_text = st.text(st.characters(exclude_categories=()))  # surrogates included
extra_keys = any_text.filter(lambda key: key not in RESERVED)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)
opaque_values = (
    st.builds(Opaque, any_text)
    | st.binary(max_size=8)
    | st.complex_numbers(allow_nan=False)
    | st.frozensets(st.integers(), max_size=3)
)
extras = st.dictionaries(extra_keys, json_values | opaque_values, max_size=5)


def expected_json(value: object) -> object:
    """The value as it must read back from the file (a model written apart from the code)."""
    if isinstance(value, str):
        return utf16_normalized(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, list | tuple):
        return [expected_json(item) for item in value]
    if isinstance(value, dict):
        return {utf16_normalized(key): expected_json(item) for key, item in value.items()}
    return utf16_normalized(repr(value))


def test_any_message_and_extras_give_valid_lines_that_round_trip(
    tmp_path: Path, read_records: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = configure(console=False, log_dir=tmp_path, logger="t.prop", level="debug")
    assert result.log_file is not None
    log_file = result.log_file
    log = logging.getLogger("t.prop")
    # Only the file is under test. Records with lone surrogates must not reach pytest's own
    # log capture: a report holding them cannot cross to the xdist controller (it is sent
    # as strict UTF-8), which would end a parallel run with an internal error.
    monkeypatch.setattr(log, "propagate", False)
    logged: list[tuple[str, dict[str, object]]] = []

    # An inner @given function: it shares one configured file across examples, and keeps
    # hypothesis away from the function-scoped fixtures of the outer test.
    @settings(max_examples=300, deadline=None)
    @given(message=any_text, extra=extras, as_arg=st.booleans())
    def log_one(message: str, extra: dict[str, object], as_arg: bool) -> None:
        if as_arg:
            log.info("%s", message, extra=extra)
        else:
            log.info(message, extra=extra)
        logged.append((message, extra))
        parsed = read_records(log_file)[-1]
        assert parsed["message"] == utf16_normalized(message)
        assert parsed["extra"] == expected_json(extra)

    log_one()
    records = read_records(log_file)  # every line of the whole file, parsed strictly
    assert len(records) == len(logged)
    for parsed, (message, extra) in zip(records, logged, strict=True):
        assert parsed["message"] == utf16_normalized(message)
        assert parsed["extra"] == expected_json(extra)
