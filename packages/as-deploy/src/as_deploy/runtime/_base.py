"""The :class:`ModelRunner` protocol, the options every runner takes, and dtype mapping."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from as_core import extras
from as_core.runtime import RuntimeOptions
from as_deploy.exceptions import MissingExtraError, RunnerError
from as_deploy.repository import LoadedModel

__all__ = [
    "Array",
    "ModelRunner",
    "RunnerOptions",
    "check_names",
    "numpy_dtype",
    "require",
]

Array = npt.NDArray[Any]
"""A numpy array of any dtype."""

# Manifest dtypes and the numpy dtype that holds them. bfloat16 has no numpy dtype; a model
# with such an input is refused when a request arrives.
_NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "float64": np.dtype(np.float64),
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "int64": np.dtype(np.int64),
    "int32": np.dtype(np.int32),
    "int16": np.dtype(np.int16),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "bool": np.dtype(np.bool_),
    "string": np.dtype(object),
}


def numpy_dtype(dtype: str) -> np.dtype[Any]:
    """Return the numpy dtype for a manifest dtype name.

    Raises:
        RunnerError: The dtype has no numpy equivalent (``bfloat16``).
    """
    try:
        return _NUMPY_DTYPES[dtype]
    except KeyError:
        raise RunnerError(f"dtype {dtype!r} is not supported by the server") from None


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingRuntimeError` naming the extra to install.

    Args:
        module: The runtime's import name (``"ai_edge_litert.interpreter"``).
        extra: The as-deploy extra that installs it (``"tflite"``).
        what: What needs it, for the message (``"the TFLite model m/1"``).
    """
    return extras.require(module, extra, error=MissingExtraError, feature=what)


RunnerOptions = RuntimeOptions
"""How the runners run models: :class:`as_core.runtime.RuntimeOptions`, the one runtime
setup the benchmark (as-bench) shares, so a benchmark measures what the server runs.
``RunnerOptions`` is the name the runners used before; it is the same class."""


@runtime_checkable
class ModelRunner(Protocol):
    """Runs one model version: :meth:`load` once, then :meth:`run` from any thread.

    Inputs and outputs are keyed by the manifest's tensor names; arrays already have the
    manifest's dtypes and shapes (the server checks them before calling :meth:`run`).
    """

    def load(self, model: LoadedModel) -> None:
        """Load the verified model; raises :class:`RunnerError` if the runtime refuses it."""
        ...

    def run(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run one inference and return every manifest output by name."""
        ...

    def close(self) -> None:
        """Release the model; the runner cannot run afterwards."""
        ...


def check_names(model: LoadedModel, kind: str, expected: list[str], actual: list[str]) -> None:
    """Raise :class:`RunnerError` if the model file's tensor names differ from the manifest's."""
    if sorted(expected) != sorted(actual):
        manifest = model.manifest
        raise RunnerError(
            f"{manifest.name}/{manifest.version}: the manifest's {kind} {sorted(expected)} "
            f"do not match the model file's {sorted(actual)} ({model.model_path})"
        )
