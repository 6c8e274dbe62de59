"""LiteRT (TensorFlow Lite) backend: litert-torch converts, ai-edge-litert runs on the CPU.

A ``.tflite`` model has static shapes, so the workload is converted once per batch size;
the file is cached in the work folder as ``<workload>-bs<batch size>.tflite`` and reused
while it exists. :meth:`TFLiteBackend.convert` can also quantize on the way, with
litert-torch's PT2E quantizer (``quantization="dynamic-int8"``: int8 weights, activations
quantized per call; ``"int8"``: full integer, weights, activations and the model's float
inputs and outputs int8, calibrated on representative data). The interpreter's call copies
inputs in and outputs out, so what :meth:`PreparedModel.bench_call` returns is finished
host data (``timing_device="cpu"``).
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from as_bench.backends._base import Array, Backend, PreparedModel
from as_bench.backends._file_backends import (
    TensorSpec,
    check_inputs,
    dist_version,
    env_default,
    load_torch_model,
    path_size,
    torch_args,
)
from as_bench.exceptions import BackendError, DeviceUnavailableError, MissingExtraError
from as_bench.workloads._base import Workload
from as_core.extras import is_installed, require
from as_core.runtime import (
    RuntimeOptions,
    available_cpus,
    litert_interpreter,
    litert_signature_order,
)

__all__ = ["QUANTIZATIONS", "TFLiteBackend", "TFLiteQuantization"]

#: How :meth:`TFLiteBackend.convert` quantizes: not at all, dynamic-range or full integer.
TFLiteQuantization = Literal["none", "dynamic-int8", "int8"]
QUANTIZATIONS: tuple[str, ...] = ("none", "dynamic-int8", "int8")

logger = logging.getLogger(__name__)

# litert-torch stores 64-bit integer inputs as 32-bit unless asked otherwise (most
# on-device runtimes have no int64 kernels), so token ids arrive as int64 and go in as
# int32. That is the only dtype change we make on the caller's behalf.
_ALLOWED_CASTS = frozenset({("int64", "int32")})


def _spec(details: dict[str, Any]) -> TensorSpec:
    return (
        str(details["name"]),
        tuple(int(d) for d in details["shape"]),
        np.dtype(details["dtype"]),
    )


def _renamed(specs: list[TensorSpec], names: Sequence[str]) -> list[TensorSpec]:
    if len(names) != len(specs):
        return specs
    return [(name, shape, dtype) for name, (_, shape, dtype) in zip(names, specs, strict=True)]


def _describe(specs: Sequence[TensorSpec]) -> list[dict[str, Any]]:
    return [{"name": n, "shape": list(s), "dtype": d.name} for n, s, d in specs]


def _convert_quantized(
    litert_torch: Any,
    model: Any,
    args: tuple[Any, ...],
    quantization: str,
    representative: Sequence[Sequence[Array]] | None,
    per_channel: bool,
) -> Any:
    """PT2E: export, insert observers, calibrate, quantize, then convert with the config."""
    import torch

    pt2e_quantizer: Any = importlib.import_module("litert_torch.quantize.pt2e_quantizer")
    quant_config: Any = importlib.import_module("litert_torch.quantize.quant_config")
    # torchao ships with litert-torch: its PT2E flow is the one litert-torch's quantizer
    # plugs into (torch.ao.quantization's is deprecated).
    pt2e: Any = importlib.import_module("torchao.quantization.pt2e")
    quantize_pt2e: Any = importlib.import_module("torchao.quantization.pt2e.quantize_pt2e")

    dynamic = quantization == "dynamic-int8"
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(
            is_per_channel=per_channel, is_dynamic=dynamic
        )
    )
    exported = torch.export.export(model, args).module()
    prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        # Weight observers need one pass even without data (per-channel scales are
        # filled on the first call); full integer calibrates on every batch given.
        for batch in [args] if dynamic or not representative else representative:
            prepared(*(batch if batch is args else torch_args(batch)))
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    pt2e.move_exported_model_to_eval(converted)
    config = quant_config.QuantConfig(pt2e_quantizer=quantizer)
    return litert_torch.convert(converted, args, quant_config=config)


class _Runner:
    """One interpreter with its input and output tensors resolved, in argument order."""

    def __init__(self, interpreter: Any) -> None:
        self._interpreter: Any = interpreter
        signatures = interpreter.get_signature_list()
        if len(signatures) == 1:
            # The signature names inputs args_0.. and outputs output_0.. in the torch
            # model's order; the flat tensor lists carry no such promise.
            runner = interpreter.get_signature_runner(next(iter(signatures)))
            ins, outs = runner.get_input_details(), runner.get_output_details()
            input_details = [ins[name] for name in litert_signature_order(list(ins))]
            output_details = [outs[name] for name in litert_signature_order(list(outs))]
        else:
            input_details = interpreter.get_input_details()
            output_details = interpreter.get_output_details()
        self.inputs = [_spec(d) for d in input_details]
        self.outputs = [_spec(d) for d in output_details]
        self._input_index = [int(d["index"]) for d in input_details]
        self._output_index = [int(d["index"]) for d in output_details]

    def run(self, arrays: Sequence[Array]) -> list[Array]:
        """Copy inputs in, invoke, copy outputs out (arrays must already be checked)."""
        interpreter = self._interpreter
        if interpreter is None:
            raise BackendError("tflite: the model was closed; prepare it again")
        try:
            for index, array in zip(self._input_index, arrays, strict=True):
                interpreter.set_tensor(index, array)
            interpreter.invoke()
            return [interpreter.get_tensor(index) for index in self._output_index]
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"tflite: invoke failed: {exc}") from exc

    def close(self) -> None:
        self._interpreter = None


class TFLiteBackend(Backend):
    """Runs workloads as LiteRT (``.tflite``) models on the CPU.

    The interpreter is opened by :func:`as_core.runtime.litert_interpreter` with the
    backend's :class:`~as_core.runtime.RuntimeOptions` (:attr:`runtime`), as as-deploy
    opens it; ``info["runtime_options"]`` records them.

    Args:
        num_threads: Interpreter threads (``RuntimeOptions.intra_op_threads``); ``None``
            means every CPU this process may use. Only some kernels (convolutions, fully
            connected through XNNPACK) use them.
    """

    name = "tflite"
    extra = "tflite"

    def __init__(self, num_threads: int | None = None) -> None:
        """Configure the interpreter's thread count (see the class docstring)."""
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.num_threads = num_threads
        self.runtime = RuntimeOptions(intra_op_threads=num_threads)

    def is_available(self) -> bool:
        """Whether the converter, the runtime and torch are installed (no import)."""
        return all(map(is_installed, ("litert_torch", "ai_edge_litert", "torch")))

    def devices(self) -> list[str]:
        """``["cpu"]``: this backend uses the interpreter's CPU kernels only."""
        require("ai_edge_litert.interpreter", self.extra, error=MissingExtraError)
        return ["cpu"]

    def convert(
        self,
        workload: Workload,
        batch_size: int,
        workdir: Path,
        *,
        quantization: TFLiteQuantization = "none",
        representative: Sequence[Sequence[Array]] | None = None,
        per_channel: bool = True,
    ) -> Path:
        """Convert the workload for one batch size, or reuse the file already converted.

        Args:
            workload: Its model must be a ``torch.nn.Module``.
            batch_size: The static batch size baked into the file.
            workdir: Folder for the ``.tflite`` file (created if missing).
            quantization: ``"none"`` (fp32), ``"dynamic-int8"`` (int8 weights of linear
                and convolution layers, activations quantized by the kernels per call) or
                ``"int8"`` (full integer: weights and activations int8, the ranges
                calibrated on ``representative``; the file's float inputs and outputs
                become int8 too, with their scale and zero point in the tensor details).
                Both go through litert-torch's PT2E quantizer
                (``litert_torch.quantize.pt2e_quantizer``).
            representative: For ``"int8"``: batches of ``batch_size`` rows, one array per
                model input, run through the model to calibrate activation ranges.
            per_channel: One weight scale per output channel (else one per tensor).

        Returns:
            Path of the ``.tflite`` file. fp32 and dynamic-range files are cached as
            ``<workload>-bs<N>[-dynamic-int8[-per-tensor]].tflite``; a full-integer file
            depends on its data, so it is written again each time.

        Raises:
            BackendError: The conversion failed, or ``"int8"`` got no representative data.
            ValueError: An unknown ``quantization``.
        """
        if quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
        if quantization == "int8" and not representative:
            raise BackendError(
                "tflite: full-integer int8 needs representative data to calibrate on"
            )
        safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", workload.name)
        suffix = "" if quantization == "none" else f"-{quantization}"
        if quantization != "none" and not per_channel:
            suffix += "-per-tensor"
        path = Path(workdir) / f"{safe_name}-bs{batch_size}{suffix}.tflite"
        if path.is_file() and quantization != "int8":
            logger.debug("reusing %s", path)
            return path
        litert_torch = require("litert_torch", self.extra, error=MissingExtraError)
        model = load_torch_model(workload, self.name)
        args = torch_args(workload.inputs(batch_size))
        what = "" if quantization == "none" else f", {quantization}"
        logger.info("converting %r (batch size %d%s) to %s", workload.name, batch_size, what, path)
        try:
            # litert-torch prints a progress tree to stdout by default; a library call
            # must not, so it is off unless the user asked for it in the environment.
            with env_default("LITERT_TORCH_SHOW_PROGRESS", "n"):
                if quantization == "none":
                    edge_model = litert_torch.convert(model, args)
                else:
                    edge_model = _convert_quantized(
                        litert_torch, model, args, quantization, representative, per_channel
                    )
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(path.name + ".partial")
                edge_model.export(str(partial))
            partial.replace(path)  # atomic: a crash never leaves a truncated model behind
        except Exception as exc:
            msg = (
                f"tflite: converting workload {workload.name!r} (batch size {batch_size}"
                f"{what}) with litert-torch failed: {type(exc).__name__}: {exc}"
            )
            raise BackendError(msg) from exc
        return path

    def prepare(
        self, workload: Workload, device: str, batch_size: int, workdir: Path
    ) -> PreparedModel:
        """Convert (or reuse) the ``.tflite`` file and load it in a LiteRT interpreter.

        Raises:
            DeviceUnavailableError: ``device`` is not ``"cpu"``.
            BackendError: Conversion, loading, or the first input check failed.
        """
        if device != "cpu":
            raise DeviceUnavailableError(f"tflite runs on 'cpu' only, not {device!r}")
        require("ai_edge_litert.interpreter", self.extra, error=MissingExtraError)
        path = self.convert(workload, batch_size, workdir)
        threads = self.runtime.intra_op_threads or available_cpus()
        try:
            runner = _Runner(litert_interpreter(path, self.runtime))
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"tflite: loading {path} failed: {exc}") from exc

        # Name tensors as the workload does: the file's names are generic (args_0, ...).
        runner.inputs = _renamed(runner.inputs, workload.input_names)
        runner.outputs = _renamed(runner.outputs, workload.output_names)

        def predict(inputs: tuple[Array, ...]) -> list[Array]:
            return runner.run(check_inputs(self.name, inputs, runner.inputs, _ALLOWED_CASTS))

        bench_inputs = check_inputs(
            self.name, workload.inputs(batch_size), runner.inputs, _ALLOWED_CASTS
        )
        info: dict[str, Any] = {
            "converter": f"litert-torch {dist_version('litert-torch')}",
            "runtime": f"ai-edge-litert {dist_version('ai-edge-litert')}",
            "num_threads": threads,
            "runtime_options": self.runtime.describe(),
            "model_path": str(path),
            "inputs": _describe(runner.inputs),
            "outputs": _describe(runner.outputs),
        }
        return PreparedModel(
            backend=self.name,
            device=device,
            batch_size=batch_size,
            predict=predict,
            bench_call=lambda: runner.run(bench_inputs),
            timing_device="cpu",
            model_size_bytes=path_size(path),
            info=info,
            close=runner.close,
        )
