"""Errors raised by as-bench.

Every error the package raises on purpose derives from :class:`AsBenchError`, so a caller
can catch them all with one ``except`` clause::

    AsBenchError
"""

__all__ = ["AsBenchError"]


class AsBenchError(Exception):
    """Base class of every error as-bench raises on purpose."""
