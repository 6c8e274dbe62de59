"""torch and safetensors, imported when the monitor is first used, never at package import."""

from __future__ import annotations

from types import ModuleType

from as_core.extras import require
from as_optimize.exceptions import MissingExtraError

__all__ = ["load_safetensors", "load_torch"]


def load_torch() -> ModuleType:
    """Import torch or raise :class:`~as_optimize.MissingExtraError` naming the extra."""
    return require("torch", "training", error=MissingExtraError, feature="the training monitor")


def load_safetensors() -> ModuleType:
    """Import ``safetensors.torch`` or raise :class:`~as_optimize.MissingExtraError`."""
    return require(
        "safetensors.torch", "training", error=MissingExtraError, feature="training checkpoints"
    )
