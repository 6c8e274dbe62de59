"""Helpers shared by the backends that export a torch model to a file (LiteRT, Core ML).

Nothing here imports a heavy library at module import time.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from as_bench.exceptions import BackendError, MissingExtraError
from as_bench.workloads._base import Workload
from as_core.extras import require

__all__ = [
    "TensorSpec",
    "check_inputs",
    "dist_version",
    "env_default",
    "load_torch_model",
    "path_size",
    "torch_args",
]

logger = logging.getLogger(__name__)

Array = npt.NDArray[Any]
#: (name, shape, dtype) of one model input or output, as a runtime reports it.
TensorSpec = tuple[str, tuple[int, ...], np.dtype[Any]]


def dist_version(distribution: str) -> str | None:
    """Installed version of ``distribution`` from its metadata (no import), or ``None``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def load_torch_model(workload: Workload, backend: str) -> Any:
    """Build the workload's torch model in eval mode, or raise a :class:`BackendError`."""
    torch = require("torch", "torch", error=MissingExtraError)
    try:
        model = workload.make_model()
    except Exception as exc:
        msg = f"{backend}: building the model of workload {workload.name!r} failed: {exc}"
        raise BackendError(msg) from exc
    if not isinstance(model, torch.nn.Module):
        msg = (
            f"{backend}: workload {workload.name!r} must build a torch.nn.Module to be "
            f"exported, got {type(model).__name__}"
        )
        raise BackendError(msg)
    return model.eval()


def torch_args(inputs: Sequence[Array]) -> tuple[Any, ...]:
    """The NumPy inputs as CPU torch tensors that share their memory."""
    torch = require("torch", "torch", error=MissingExtraError)
    return tuple(torch.from_numpy(np.ascontiguousarray(array)) for array in inputs)


def check_inputs(
    backend: str,
    inputs: Sequence[Array],
    expected: Sequence[TensorSpec],
    allowed_casts: frozenset[tuple[str, str]] = frozenset(),
) -> list[Array]:
    """Check inputs against what the model expects; cast where the exporter changed dtypes.

    Args:
        backend: Backend name, for messages.
        inputs: One array per model input, in order.
        expected: ``(name, shape, dtype)`` per model input, in order.
        allowed_casts: ``(from, to)`` dtype names the exporter itself introduced (LiteRT
            stores int64 inputs as int32); any other mismatch is an error.

    Returns:
        The arrays, cast where allowed, C-contiguous.

    Raises:
        BackendError: Wrong number of inputs, or a shape or dtype that does not match.
    """
    if len(inputs) != len(expected):
        names = [name for name, _, _ in expected]
        msg = f"{backend}: expected {len(expected)} inputs {names}, got {len(inputs)}"
        raise BackendError(msg)
    checked: list[Array] = []
    for array, (name, shape, dtype) in zip(inputs, expected, strict=True):
        if tuple(array.shape) != shape:
            msg = f"{backend}: input {name!r} expected shape {shape}, got {tuple(array.shape)}"
            raise BackendError(msg)
        if array.dtype != dtype:
            if (array.dtype.name, dtype.name) not in allowed_casts:
                msg = f"{backend}: input {name!r} expected dtype {dtype}, got {array.dtype}"
                raise BackendError(msg)
            array = array.astype(dtype)
        checked.append(np.ascontiguousarray(array))
    return checked


def path_size(path: Path) -> int:
    """Size in bytes of a file, or of every file under a folder (a ``.mlpackage``)."""
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


@contextmanager
def env_default(name: str, value: str) -> Iterator[None]:
    """Set environment variable ``name`` to ``value`` for a block unless the user set it."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)
