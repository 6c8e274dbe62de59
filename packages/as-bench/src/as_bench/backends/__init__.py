"""Backends: the runtimes a workload can be measured in, and checks of their answers.

>>> from as_bench.backends import backend_names
>>> backend_names()
['torch', 'torch-compile', 'torch-compile-cudagraphs', 'onnxruntime', 'tflite', 'coreml', 'mlx']

Backends are registered by module path and imported when asked for, so importing this
package imports no torch, onnxruntime, coremltools, mlx or litert, and a backend whose
module is missing from an install is left out of :func:`available_backends`.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from as_bench.backends._base import Backend, PreparedModel
from as_bench.backends.quality import OutputCheckResult, check_outputs, compare_outputs, evaluate
from as_bench.exceptions import BackendError

__all__ = [
    "Backend",
    "OutputCheckResult",
    "PreparedModel",
    "available_backends",
    "backend_names",
    "check_outputs",
    "compare_outputs",
    "evaluate",
    "get_backend",
]

logger = logging.getLogger(__name__)

# name -> "module:Class". The reference backend ("torch") comes first.
_REGISTRY: dict[str, str] = {
    "torch": "as_bench.backends.torch_eager:TorchEagerBackend",
    "torch-compile": "as_bench.backends.torch_compile:TorchCompileBackend",
    "torch-compile-cudagraphs": "as_bench.backends.torch_compile:TorchCompileCudaGraphsBackend",
    "onnxruntime": "as_bench.backends.onnxruntime:OnnxRuntimeBackend",
    "tflite": "as_bench.backends.tflite:TFLiteBackend",
    "coreml": "as_bench.backends.coreml:CoreMLBackend",
    "mlx": "as_bench.backends.mlx:MLXBackend",
}


def backend_names() -> list[str]:
    """Every registered backend name, installed or not."""
    return list(_REGISTRY)


def get_backend(name: str, **options: Any) -> Backend:
    """A new backend of the registered ``name``, with ``options`` passed to its constructor.

    Example: ``get_backend("torch-compile", mode="max-autotune")``.

    Raises:
        BackendError: ``name`` is not registered, its module or class is missing, or it
            rejects ``options``.
    """
    target = _REGISTRY.get(name.strip().lower())
    if target is None:
        msg = f"unknown backend {name!r}; registered backends: {', '.join(_REGISTRY)}"
        raise BackendError(msg)
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the module exists; something it imports is missing: show that
        msg = f"backend {name!r}: its module {module_name} is not part of this as-bench install"
        raise BackendError(msg) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise BackendError(f"backend {name!r}: {module_name} defines no {class_name}")
    try:
        backend: Backend = cls(**options)
    except TypeError as exc:
        raise BackendError(f"backend {name!r}: bad options {options}: {exc}") from exc
    return backend


def available_backends() -> list[Backend]:
    """One default instance of every backend whose libraries are installed on this platform.

    Cheap: it asks each backend's :meth:`~Backend.is_available`, which imports nothing
    heavy. A backend whose module is missing or fails to import is left out (logged).
    """
    found: list[Backend] = []
    for name in _REGISTRY:
        try:
            backend = get_backend(name)
        except (BackendError, ImportError) as exc:
            logger.debug("backend %s left out: %s", name, exc)
            continue
        if backend.is_available():
            found.append(backend)
    return found
