"""Validating log levels given by name (any case) or by number."""

from __future__ import annotations

import logging

from as_logging.exceptions import InvalidLevelError

# Only the five standard levels: NOTSET means "defer to the parent" on a named logger and
# "everything" on the root, a difference that would surprise someone who typed it.
_LEVELS: dict[str, int] = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
_ALLOWED = (
    f"one of {', '.join(_LEVELS)} (any case) or {', '.join(str(n) for n in _LEVELS.values())}"
)


def parse_level(value: object, parameter: str = "level") -> int:
    """Return the numeric level for a level name (case-insensitive) or a standard number.

    Args:
        value: A level name such as ``"info"`` or ``"WARNING"``, or one of 10, 20, 30, 40, 50.
        parameter: The argument name to quote in the error message.

    Returns:
        The numeric level.

    Raises:
        InvalidLevelError: The value is neither a standard level name nor a standard number.
    """
    if isinstance(value, str):
        number = _LEVELS.get(value.strip().upper())
        if number is not None:
            return number
    # bool is an int subclass; True must not pass for a level.
    elif isinstance(value, int) and not isinstance(value, bool) and value in _LEVELS.values():
        return int(value)
    msg = f"invalid {parameter} {value!r}: expected {_ALLOWED}"
    raise InvalidLevelError(msg, value=value, parameter=parameter)
