"""Optional dependencies: looked up without importing, imported only when used.

A package declares each heavy library under an extra (``as-bench[onnx]``) and imports it
with :func:`require`, which turns a missing library into the package's own
:class:`~as_core.exceptions.MissingExtraError` subclass, whose message is the exact
``uv add`` command. A module that *is* installed but fails on one of its own imports keeps
that error, so the real cause is not hidden behind a wrong hint.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from types import ModuleType

from as_core.exceptions import MissingExtraError

__all__ = ["first_missing", "is_installed", "require"]


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def first_missing(modules: tuple[str, ...] | list[str]) -> str | None:
    """The first of ``modules`` that is not installed, or ``None`` when all are."""
    for module in modules:
        if not is_installed(module):
            return module
    return None


def require(
    module: str,
    extra: str,
    *,
    error: type[MissingExtraError] = MissingExtraError,
    feature: str = "",
) -> ModuleType:
    """Import ``module`` or raise ``error`` naming the extra that installs it.

    Old escape sequences in the docstrings of some optional libraries (coremltools,
    torchao) warn when first compiled, an error under ``-W error``; only that warning is
    silenced while importing.

    Args:
        module: The import name, e.g. ``"onnxruntime"``.
        extra: The extra that provides it, e.g. ``"onnx"``.
        error: The package's :class:`MissingExtraError` subclass to raise.
        feature: What needs the module, for the message (``"exporting to tflite"``).

    Raises:
        MissingExtraError: ``module`` (the top-level package) is not installed.
    """
    try:
        with warnings.catch_warnings():
            for category in (DeprecationWarning, SyntaxWarning):
                warnings.filterwarnings(
                    "ignore", message="invalid escape sequence", category=category
                )
            return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the module exists but one of *its* imports is missing: show that
        raise error(module, extra, feature) from exc
