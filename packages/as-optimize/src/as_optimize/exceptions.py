"""Errors raised by as-optimize.

Every error the package raises on purpose derives from :class:`AsOptimizeError`, so a caller
can catch them all with one ``except`` clause::

    AsOptimizeError
"""

__all__ = ["AsOptimizeError"]


class AsOptimizeError(Exception):
    """Base class of every error as-optimize raises on purpose."""
