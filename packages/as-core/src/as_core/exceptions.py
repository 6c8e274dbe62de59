"""Errors of as-core, the base every as-toolkit package builds on.

The tree::

    AsCoreError(Exception)
    └── MissingExtraError(AsCoreError, ImportError)   an optional library is not installed

Each package subclasses :class:`MissingExtraError` under its own error base (for example
``as_bench.MissingExtraError(AsBenchError, as_core.MissingExtraError)``) and sets
:attr:`MissingExtraError.package`, so the message names that package's extra.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["AsCoreError", "MissingExtraError", "install_hint"]


class AsCoreError(Exception):
    """Base of every error as-core raises."""


def install_hint(package: str, extra: str) -> str:
    """The command that installs ``package``'s ``extra``: ``uv add "<package>[<extra>]"``."""
    return f'uv add "{package}[{extra}]"  (or: pip install "{package}[{extra}]")'


class MissingExtraError(AsCoreError, ImportError):
    """An optional library a feature needs is not installed; the message names the fix.

    Attributes:
        package: The distribution whose extra installs the library (a class attribute that
            each package's subclass sets: ``"as-bench"``, ``"as-deploy"``).
        module: The import name that is missing (``"onnxruntime"``).
        extra: The extra that provides it (``"onnx"``).
        feature: What needed it (``"exporting to tflite"``), or ``""``.
        hint: The install command.
    """

    package: ClassVar[str] = "as-toolkit"

    def __init__(self, module: str, extra: str, feature: str = "") -> None:
        """Record the missing ``module``, the ``extra`` that installs it and the ``feature``."""
        self.module = module
        self.extra = extra
        self.feature = feature
        self.hint = install_hint(self.package, extra)
        what = f" ({feature} needs it)" if feature else ""
        super().__init__(
            f"{module!r} is not installed{what}; it comes with {self.package}'s {extra!r} "
            f"extra: {self.hint}",
            name=module,
        )
