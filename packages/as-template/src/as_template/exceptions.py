"""Errors raised by as-template.

Every error the package raises on purpose derives from :class:`AsTemplateError`, so a caller
can catch them all with one ``except`` clause::

    AsTemplateError
"""

__all__ = ["AsTemplateError"]


class AsTemplateError(Exception):
    """Base class of every error as-template raises on purpose."""
