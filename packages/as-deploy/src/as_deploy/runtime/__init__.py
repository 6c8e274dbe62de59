"""Model runners: one per model format, behind the small :class:`ModelRunner` protocol.

ONNX Runtime runs ``onnx`` models (the default, always installed). LiteRT runs
``tflite`` models (``uv add "as-deploy[tflite]"``) and Core ML runs ``coreml`` models on
macOS (``uv add "as-deploy[coreml]"``); a missing runtime raises
:class:`MissingRuntimeError` with that command. Runtimes import when a model loads, not
when this package does. Every runner takes :class:`as_core.runtime.RuntimeOptions`
(``RunnerOptions`` is the same class), the runtime setup the benchmark shares.
:func:`class_probabilities` turns a classifier's outputs into probabilities per label.
"""

from __future__ import annotations

from as_core.runtime import RuntimeOptions
from as_deploy.exceptions import MissingRuntimeError, RunnerError
from as_deploy.repository import LoadedModel
from as_deploy.runtime._base import Array, ModelRunner, RunnerOptions, numpy_dtype
from as_deploy.runtime._scores import class_probabilities

__all__ = [
    "Array",
    "MissingRuntimeError",
    "ModelRunner",
    "RunnerError",
    "RunnerOptions",
    "RuntimeOptions",
    "class_probabilities",
    "create_runner",
    "load_runner",
    "numpy_dtype",
]


def create_runner(model_format: str, options: RunnerOptions | None = None) -> ModelRunner:
    """Return an unloaded runner for ``model_format`` (``"onnx"``, ``"tflite"``, ``"coreml"``).

    Raises:
        RunnerError: No runner knows the format.
    """
    if model_format == "onnx":
        from as_deploy.runtime.onnx import OnnxRunner

        return OnnxRunner(options)
    if model_format == "tflite":
        from as_deploy.runtime.tflite import TFLiteRunner

        return TFLiteRunner(options)
    if model_format == "coreml":
        from as_deploy.runtime.coreml import CoreMLRunner

        return CoreMLRunner(options)
    raise RunnerError(f"no runner for the model format {model_format!r}")


def load_runner(model: LoadedModel, options: RunnerOptions | None = None) -> ModelRunner:
    """Create the runner for ``model``'s format and load the model into it.

    Raises:
        MissingRuntimeError: The format's runtime is not installed.
        RunnerError: The runtime refused the model.
        IntegrityError: An ONNX model reads a file its manifest does not list.
        UnsafePathError: An ONNX model reads a file outside its version folder.
    """
    runner = create_runner(model.manifest.format, options)
    runner.load(model)
    return runner
