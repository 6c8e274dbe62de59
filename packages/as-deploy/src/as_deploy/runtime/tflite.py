"""The LiteRT runner for ``.tflite`` models (the ``tflite`` extra: ai-edge-litert).

The interpreter is opened by :func:`as_core.runtime.litert_interpreter`, the one LiteRT
setup that the benchmark and the exporter's parity check use as well.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from as_core.runtime import litert_interpreter, litert_signature_order
from as_deploy.exceptions import RunnerError
from as_deploy.repository import LoadedModel
from as_deploy.runtime._base import Array, RunnerOptions, require

__all__ = ["TFLiteRunner", "signature_tensors"]

logger = logging.getLogger(__name__)


def signature_tensors(interpreter: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The interpreter's input and output tensor details, in argument order.

    With one signature, each detail's ``"name"`` is the signature's name (``args_0``),
    which gives the argument order; otherwise the file's own tensor details.
    """
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        return list(interpreter.get_input_details()), list(interpreter.get_output_details())
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    ins, outs = runner.get_input_details(), runner.get_output_details()
    return (
        [{**ins[k], "name": k} for k in litert_signature_order(list(ins))],
        [{**outs[k], "name": k} for k in litert_signature_order(list(outs))],
    )


def _match(wanted: list[str], details: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Pair manifest tensor names with the file's tensors: by name, else by position.

    Converters name tensors generically (``serving_default_args_0``); the manifest lists
    them in the model's argument order, which is the order of the signature's names.
    """
    by_name = {str(d["name"]): d for d in details}
    if set(wanted) <= set(by_name):
        return {name: by_name[name] for name in wanted}
    ordered = [by_name[name] for name in litert_signature_order(list(by_name))]
    return dict(zip(wanted, ordered, strict=True))


class TFLiteRunner:
    """Runs ``.tflite`` models in a LiteRT ``Interpreter``.

    An interpreter is not thread-safe, so :meth:`run` holds a lock. When a request's
    shape differs from the tensor's current one (another batch size), the input is
    resized and the tensors reallocated; a model whose shapes are baked in refuses that
    with a :class:`RunnerError`.

    Args:
        options: ``intra_op_threads`` becomes the interpreter's thread count (every CPU
            this process may use when ``None``).
    """

    def __init__(self, options: RunnerOptions | None = None) -> None:
        """Keep the options; nothing loads until :meth:`load`."""
        self.options = options or RunnerOptions()
        self._interpreter: Any = None
        self._inputs: dict[str, dict[str, Any]] = {}
        self._outputs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def load(self, model: LoadedModel) -> None:
        """Create the interpreter and pair its tensors with the manifest's.

        Raises:
            MissingRuntimeError: ai-edge-litert is not installed.
            RunnerError: LiteRT refused the file, or it has another number of tensors.
        """
        manifest = model.manifest
        where = f"{manifest.name}/{manifest.version}"
        require("ai_edge_litert.interpreter", "tflite", f"the TFLite model {where}")
        try:
            interpreter = litert_interpreter(model.model_path, self.options)
            inputs, outputs = signature_tensors(interpreter)
        except (RuntimeError, ValueError) as exc:
            raise RunnerError(f"{where}: LiteRT could not load {model.model_path}: {exc}") from exc
        wanted_in = [spec.name for spec in manifest.inputs]
        wanted_out = [spec.name for spec in manifest.outputs]
        if len(inputs) != len(wanted_in) or len(outputs) != len(wanted_out):
            raise RunnerError(
                f"{where}: the manifest lists {len(wanted_in)} inputs and {len(wanted_out)} "
                f"outputs, {model.model_path} has {len(inputs)} and {len(outputs)}"
            )
        self._inputs = _match(wanted_in, inputs)
        self._outputs = _match(wanted_out, outputs)
        self._interpreter = interpreter
        logger.debug("LiteRT interpreter for %s", where)

    def run(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run one inference (one at a time per model).

        Raises:
            RunnerError: The model is not loaded, cannot take this shape, or LiteRT failed.
        """
        with self._lock:
            interpreter = self._interpreter
            if interpreter is None:
                raise RunnerError("the TFLite model is not loaded")
            try:
                self._resize(interpreter, inputs)
                for name, detail in self._inputs.items():
                    interpreter.set_tensor(int(detail["index"]), inputs[name])
                interpreter.invoke()
                return {
                    name: np.array(interpreter.get_tensor(int(detail["index"])))
                    for name, detail in self._outputs.items()
                }
            except (RuntimeError, ValueError) as exc:
                raise RunnerError(f"LiteRT failed: {exc}") from exc

    def _resize(self, interpreter: Any, inputs: Mapping[str, Array]) -> None:
        changed = False
        for name, detail in self._inputs.items():
            shape = tuple(inputs[name].shape)
            if tuple(int(d) for d in detail["shape"]) != shape:
                interpreter.resize_tensor_input(int(detail["index"]), list(shape), strict=False)
                detail["shape"] = np.array(shape, dtype=np.int32)
                changed = True
        if changed:
            interpreter.allocate_tensors()

    def close(self) -> None:
        """Drop the interpreter."""
        with self._lock:
            self._interpreter = None
