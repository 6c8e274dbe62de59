"""Errors raised by as-deploy.

Every error the package raises on purpose derives from :class:`AsDeployError`, so a caller
can catch them all with one ``except`` clause::

    AsDeployError
"""

__all__ = ["AsDeployError"]


class AsDeployError(Exception):
    """Base class of every error as-deploy raises on purpose."""
