"""Errors of the model runners.

::

    AsDeployError
    ├── RunnerError (RuntimeError)          a runner could not load or run a model
    └── MissingRuntimeError (ImportError)   the runtime of a model's format is not installed
"""

from __future__ import annotations

from as_deploy.exceptions import AsDeployError

__all__ = ["MissingRuntimeError", "RunnerError"]


class RunnerError(AsDeployError, RuntimeError):
    """A runner could not load or run a model; the message names the model and the cause."""


class MissingRuntimeError(AsDeployError, ImportError):
    """The runtime a model format needs is not installed.

    Attributes:
        module: The module that is missing.
        extra: The as-deploy extra that installs it.
        hint: The command that installs it.
    """

    def __init__(self, module: str, extra: str, what: str) -> None:
        """Record the missing ``module``, the ``extra`` that brings it and ``what`` needs it."""
        self.module = module
        self.extra = extra
        self.hint = f'uv add "as-deploy[{extra}]"  (or: pip install "as-deploy[{extra}]")'
        super().__init__(
            f"{what} needs {module!r}, which is not installed; it comes with the "
            f"{extra!r} extra: {self.hint}",
            name=module,
        )
