"""What a LogRecord carries beyond the standard attributes: extras and context fields."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from as_logging._context import CONTEXT_ATTR, current_fields

# Computed from a real record so the set follows the running Python: 3.12 adds taskName,
# which on 3.11 is an ordinary extra. "message" and "asctime" are set by formatters, and
# logging refuses them in extra= too.
RESERVED_ATTRS: frozenset[str] = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", CONTEXT_ATTR}


def record_extras(record: logging.LogRecord) -> dict[str, object]:
    """Return the record's non-standard attributes: what the caller passed in ``extra=``."""
    return {key: value for key, value in vars(record).items() if key not in RESERVED_ATTRS}


def record_context(record: logging.LogRecord) -> Mapping[str, object]:
    """Return the context fields stamped on the record, or those bound now if none were."""
    fields = getattr(record, CONTEXT_ATTR, None)
    # A record formatted without ContextFilter (a handler set up by hand) is formatted in
    # the thread that logged it, so the fields bound now are the right ones.
    return fields if isinstance(fields, Mapping) else current_fields()
