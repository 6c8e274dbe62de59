"""The demo's errors: each says what went wrong and where, for the page and the logs."""

from __future__ import annotations

__all__ = ["DemoError", "ModelUnavailableError"]


class DemoError(Exception):
    """A request the demo cannot answer (bad input, a model that fails, a server down)."""


class ModelUnavailableError(DemoError):
    """The model is not in the repository or on the server (or cannot run here)."""
