"""The JSON-lines formatter: one JSON object per record."""

from __future__ import annotations

import datetime as dt
import logging
import traceback

from as_logging._encode import JsonValue, dumps_line, safe_repr, to_jsonable
from as_logging._record import record_context, record_extras


def iso_timestamp(created: float) -> str:
    """Format a ``LogRecord.created`` time as ISO-8601 UTC with microseconds, e.g. ``...Z``."""
    moment = dt.datetime.fromtimestamp(created, tz=dt.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """Format each record as one line of JSON (no trailing newline; the handler adds it).

    Every line is a JSON object with these keys:

    * ``timestamp``: when the record was created (``record.created``), ISO-8601 UTC with
      microseconds, e.g. ``"2026-11-26T09:15:02.123456Z"``;
    * ``level``, ``logger``, ``message`` (the message with its ``%`` arguments applied);
    * ``module``, ``function``, ``line``, ``process``, ``thread`` (the thread's name);
    * ``context``: the fields bound with :func:`as_logging.bind` (``{}`` when none);
    * ``extra``: every non-standard record attribute, i.e. what the caller passed in
      ``extra=`` (``{}`` when none);
    * ``exception``, only when the record carries one: ``{"type", "message", "traceback"}``;
    * ``stack``, only when the record was logged with ``stack_info=True``.

    Values that JSON cannot hold are written as their repr (see the README), so the
    formatter never fails on the caller's data and every line is valid UTF-8 JSON.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        return dumps_line(to_jsonable(self.fields(record)))

    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        """Return the record's fields before JSON encoding (the keys listed above)."""
        fields: dict[str, object] = {
            "timestamp": iso_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
            "process": record.process,
            "thread": record.threadName,
            "context": dict(record_context(record)),
            "extra": record_extras(record),
        }
        exception = _exception_fields(record)
        if exception is not None:
            fields["exception"] = exception
        if record.stack_info:
            fields["stack"] = record.stack_info
        return fields


def _exception_fields(record: logging.LogRecord) -> dict[str, JsonValue] | None:
    exc_info = record.exc_info
    # logger.exception() outside an except block gives (None, None, None).
    if not exc_info or exc_info[1] is None:
        return None
    exc_type, exc, tb = exc_info
    return {
        "type": _type_name(exc_type if exc_type is not None else type(exc)),
        "message": _safe_str(exc),
        "traceback": "".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n"),
    }


def _type_name(exc_type: type[BaseException]) -> str:
    if exc_type.__module__ == "builtins":
        return exc_type.__qualname__
    return f"{exc_type.__module__}.{exc_type.__qualname__}"


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return safe_repr(exc)
