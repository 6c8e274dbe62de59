"""Errors of the model runners, re-exported from :mod:`as_deploy.exceptions` (one tree).

:class:`MissingRuntimeError` is :class:`~as_deploy.exceptions.MissingExtraError`: a
missing runtime is a missing extra, with the same ``uv add "as-deploy[<extra>]"`` hint.
"""

from __future__ import annotations

from as_deploy.exceptions import MissingRuntimeError, RunnerError

__all__ = ["MissingRuntimeError", "RunnerError"]
