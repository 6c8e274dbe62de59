"""Evaluating a LiteRT candidate: ``python -m as_optimize.compress._child_litert SPEC``.

The spec and the result follow :mod:`as_optimize.compress._child`'s contract; the
candidate (``artifact``) is a ``.tflite`` file, opened with ai-edge-litert's interpreter
through :func:`as_core.runtime.litert_interpreter` (``threads`` as its thread count).

A ``.tflite`` file has a fixed batch (the LiteRT techniques convert at batch 1). For
another number of rows the child resizes the inputs (``resize_tensor_input``) and
checks that the outputs follow; a graph that bakes its batch in (a ``Reshape`` to a
constant shape, as a flattened CNN has) cannot be resized, and then each call runs the
file's batch once per slice of rows: the scoring outputs are the same, and the latency
of a larger batch is that of the calls in a row, which the result's warnings say.

Full-integer files have int8 inputs and outputs: float inputs are quantized with the
input's scale and zero point, and outputs dequantized with theirs, inside the timed call
(a caller of such a model does the same).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from as_core.runtime import litert_signature_order
from as_optimize.compress._child import latency_entry, run_child, score


def _input_converter(detail: dict[str, Any]) -> Any:
    """A function that gives an input array the tensor's dtype, quantizing float data.

    Built once per tensor: on a model this small, the numpy checks would otherwise cost
    as much as the int8 call itself.
    """
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        low, high = float(info.min), float(info.max)
        inverse, offset = np.float32(1.0 / scale), np.float32(zero)

        def quantize(array: Any) -> Any:
            if array.dtype.kind != "f":
                return np.ascontiguousarray(array, dtype=dtype)
            scaled = array * inverse
            scaled += offset
            np.rint(scaled, out=scaled)
            np.clip(scaled, low, high, out=scaled)
            return scaled.astype(dtype)

        return quantize
    return lambda array: np.ascontiguousarray(array, dtype=dtype)


def _output_converter(detail: dict[str, Any]) -> Any:
    """A function that gives an output array as float32, dequantizing integer data."""
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(np.dtype(detail["dtype"]), np.integer) and scale:
        factor, offset = np.float32(scale), np.float32(zero)

        def dequantize(array: Any) -> Any:
            values = array.astype(np.float32)
            values -= offset
            values *= factor
            return values

        return dequantize
    return lambda array: np.asarray(array, dtype=np.float32)


class LiteRTModel:
    """A ``.tflite`` file in an interpreter, run on any number of rows (first output).

    Args:
        path: The ``.tflite`` file.
        threads: Interpreter threads; ``None`` for every CPU this process may use.
    """

    def __init__(self, path: Path, threads: int | None) -> None:
        """Open the file (see the class docstring)."""
        from as_core.runtime import RuntimeOptions

        self.path = Path(path)
        self.options = RuntimeOptions(intra_op_threads=threads)
        self._open()
        self.file_batch = self.batch
        #: Why the batch cannot be resized (``None`` while it can, or before trying).
        self.fixed: str | None = None

    def _open(self) -> None:
        from as_core.runtime import litert_interpreter

        interpreter = litert_interpreter(self.path, self.options)
        signatures = interpreter.get_signature_list()
        if len(signatures) == 1:
            # The signature names inputs args_0.. and outputs output_0.. in the torch
            # model's order; the flat tensor lists carry no such promise.
            runner = interpreter.get_signature_runner(next(iter(signatures)))
            ins, outs = runner.get_input_details(), runner.get_output_details()
            self.inputs = [ins[name] for name in litert_signature_order(list(ins))]
            self.outputs = [outs[name] for name in litert_signature_order(list(outs))]
        else:
            self.inputs = interpreter.get_input_details()
            self.outputs = interpreter.get_output_details()
        self.interpreter = interpreter
        self.batch = int(self.inputs[0]["shape"][0])
        self._feeds = [(int(d["index"]), _input_converter(d)) for d in self.inputs]
        self._output = (int(self.outputs[0]["index"]), _output_converter(self.outputs[0]))

    def _invoke(self, arrays: Sequence[Any]) -> Any:
        interpreter = self.interpreter
        for (index, convert), array in zip(self._feeds, arrays, strict=True):
            interpreter.set_tensor(index, convert(array))
        interpreter.invoke()
        index, convert = self._output
        return convert(interpreter.get_tensor(index))

    def _resize(self, rows: int) -> bool:
        """Make the inputs ``rows`` long; ``False`` (and the file's batch back) if it cannot."""
        if rows == self.batch:
            return True
        if self.fixed is not None:
            return False
        try:
            for detail in self.inputs:
                shape = [rows, *(int(d) for d in detail["shape"][1:])]
                self.interpreter.resize_tensor_input(detail["index"], shape)
            self.interpreter.allocate_tensors()
            self.batch = rows
            return True
        except (RuntimeError, ValueError) as exc:
            self.fixed = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            self._open()  # a failed resize can leave the interpreter unusable
            return False

    def run(self, arrays: Sequence[Any]) -> Any:
        """The first output on ``arrays`` (float32), whatever their number of rows."""
        rows = int(arrays[0].shape[0])
        if self._resize(rows):
            got = self._invoke(arrays)
            if got.shape[:1] == (rows,):
                return got
            # It resized but the batch did not follow (a constant reshape): fixed batch.
            self.fixed = f"outputs of {got.shape[0]} rows for {rows} input rows after resizing"
            self._open()
        step = self.file_batch
        if rows % step:
            raise ValueError(f"{rows} rows do not split into the file's batch of {step}")
        self._resize(step)
        return np.concatenate(
            [self._invoke([a[i : i + step] for a in arrays]) for i in range(0, rows, step)]
        )


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Open the file, score, measure; the result as plain values."""
    import as_bench

    started = time.perf_counter()
    model = LiteRTModel(Path(spec.get("artifact") or spec["model"]), spec.get("threads"))
    open_s = time.perf_counter() - started
    count = len(spec["input_names"])

    score(spec, model.run)

    latency: dict[str, Any] = {}
    options = as_bench.MeasureOptions(**spec["measure"])
    with np.load(spec["bench_inputs"]) as bench:
        for batch in spec["batch_sizes"]:
            feeds = [bench[f"b{batch}_in{i}"] for i in range(count)]
            model.run(feeds)  # resizes, or finds the batch fixed, before timing
            notes = []
            if model.batch != int(batch):
                notes.append(
                    f"batch {batch}: the file's batch {model.file_batch} does not resize "
                    f"({model.fixed}); timed as {int(batch) // model.file_batch} calls in a row"
                )
            m = as_bench.measure(model.run, feeds, device="cpu", options=options)
            latency[str(batch)] = latency_entry(m, notes)
    return {
        "session_open_s": open_s,
        "providers": ["litert-cpu"],
        "runtime_options": model.options.describe(),
        "latency": latency,
        "file_batch": model.file_batch,
        "resizable": model.fixed is None,
        "io_dtypes": {
            "inputs": [np.dtype(d["dtype"]).name for d in model.inputs],
            "outputs": [np.dtype(d["dtype"]).name for d in model.outputs],
        },
    }


def main(argv: list[str]) -> int:
    """Run the spec named by ``argv[0]``; exit 0 with the result written, 1 on an error."""
    return run_child(evaluate, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
