"""Context fields bound with :func:`bind`, kept in a :class:`contextvars.ContextVar`.

A context variable (not a thread-local) is what makes the fields follow asyncio tasks:
each task runs in a copy of the context it was created in, so two tasks that bind
different values never see each other's fields.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

# The record attribute under which ContextFilter stores the fields; it is reserved, so it
# never shows up among a record's extras.
CONTEXT_ATTR = "as_logging_context"

# Read-only mappings: a record keeps a reference to the mapping bound when it was logged,
# so the mapping must never change after it has been set.
_EMPTY: Mapping[str, object] = MappingProxyType({})
_fields: ContextVar[Mapping[str, object]] = ContextVar("as_logging_context", default=_EMPTY)


@contextmanager
def bind(**fields: object) -> Iterator[Mapping[str, object]]:
    """Add context fields to every record logged inside the ``with`` block.

    Nested binds merge (an inner value wins over an outer one with the same key), and on
    exit the fields that were bound before are restored, even when the block raises.

    The fields live in a :mod:`contextvars` variable, so:

    * each thread has its own fields. A new :class:`threading.Thread` starts from an empty
      context (on the default CPython build up to 3.13): fields bound in the thread that
      starts it are not seen, unless the thread runs its target under a copy, e.g.
      ``threading.Thread(target=contextvars.copy_context().run, args=(work,))``;
      :class:`concurrent.futures.ThreadPoolExecutor` workers likewise do not inherit them;
    * each asyncio task gets a copy of the fields bound when it was created; binds inside
      a task affect only that task.

    Args:
        **fields: The fields to bind, e.g. ``run_id="r42", model="resnet50"``.

    Yields:
        The read-only mapping of all fields bound inside the block.

    Example:
        >>> with bind(run_id="r42"):
        ...     with bind(step=3):
        ...         bound_context()
        {'run_id': 'r42', 'step': 3}
    """
    merged: Mapping[str, object] = MappingProxyType({**_fields.get(), **fields})
    token = _fields.set(merged)
    try:
        yield merged
    finally:
        _fields.reset(token)


def bound_context() -> dict[str, object]:
    """Return a copy of the context fields bound in the current thread or task."""
    return dict(_fields.get())


def current_fields() -> Mapping[str, object]:
    """Return the read-only mapping of the fields bound now (no copy)."""
    return _fields.get()


class ContextFilter(logging.Filter):
    """A handler filter that stamps the bound context fields onto each record.

    :func:`as_logging.configure` attaches it to the handlers it installs. The fields are
    captured in the thread that logs, so they stay right when the record is formatted
    elsewhere, e.g. by a :class:`logging.handlers.QueueListener` thread. It never drops a
    record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the current fields onto ``record`` unless an earlier handler did."""
        if not isinstance(getattr(record, CONTEXT_ATTR, None), Mapping):
            setattr(record, CONTEXT_ATTR, _fields.get())
        return True
