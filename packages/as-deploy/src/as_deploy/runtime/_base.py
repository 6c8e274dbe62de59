"""The :class:`ModelRunner` protocol, the options every runner takes, and dtype mapping."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from as_deploy.repository import LoadedModel
from as_deploy.runtime.errors import MissingRuntimeError, RunnerError

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
    """Import ``module`` or raise :class:`MissingRuntimeError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the module exists but one of its own imports is missing: show that
        raise MissingRuntimeError(module, extra, what) from exc


@dataclass(frozen=True)
class RunnerOptions:
    """Options every runner takes; a runner ignores those its runtime has no use for.

    Attributes:
        intra_op_threads: Threads inside one operator; ``None`` lets the runtime choose.
        inter_op_threads: Threads across operators; ``None`` lets the runtime choose.
        providers: ONNX Runtime execution providers in order; ``None`` is the CPU.
        spin_wait: Whether ONNX Runtime's idle worker threads spin waiting for work.
    """

    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    providers: tuple[str, ...] | None = None
    spin_wait: bool = False


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
