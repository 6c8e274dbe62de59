"""Optional dependencies: imported only when used, with the exact fix when missing."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from as_bench.exceptions import MissingExtraError

__all__ = ["is_installed", "require"]


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install.

    Args:
        module: The import name, e.g. ``"onnxruntime"``.
        extra: The as-bench extra that provides it, e.g. ``"onnx"``.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the module exists but one of *its* imports is missing: show that
        raise MissingExtraError(module, extra) from exc
