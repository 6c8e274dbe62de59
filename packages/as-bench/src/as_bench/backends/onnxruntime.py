"""ONNX Runtime backend: export with ``torch.onnx`` (dynamo), run in an InferenceSession.

Devices: ``cpu`` (CPUExecutionProvider) everywhere; ``cuda:N`` when this onnxruntime build
has the CUDAExecutionProvider; ``coreml`` on macOS when it has the CoreMLExecutionProvider
(Core ML decides between CPU, GPU and Neural Engine; ORT runs what Core ML cannot on its
CPU provider). If ORT falls back to another provider than the one asked for, preparing
fails instead of measuring the wrong thing; ``info["providers"]`` is what the session uses.

``session.run`` returns finished host arrays on every provider, so ``timing_device`` is
``"cpu"``. The export marks the batch axis dynamic when the workload allows it, so one
file serves every batch size; a model whose code depends on the batch size is exported
with a static batch instead (logged).
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, cast, get_args

from as_bench.backends._base import Array, Backend, PreparedModel
from as_bench.backends._file_backends import (
    TensorSpec,
    check_inputs,
    dist_version,
    load_torch_model,
    path_size,
    torch_args,
)
from as_bench.exceptions import BackendError, DeviceUnavailableError, MissingExtraError
from as_bench.export import DEFAULT_OPSET
from as_bench.workloads._base import Workload
from as_core.extras import is_installed, require
from as_core.runtime import GraphOptimization, ProviderSpec, RuntimeOptions, onnxruntime_session

__all__ = ["OnnxRuntimeBackend"]

logger = logging.getLogger(__name__)

#: The graph optimization levels a backend accepts (ONNX Runtime's, by name).
_OPTIMIZATION: tuple[str, ...] = get_args(GraphOptimization)


class _DropFoldingNoise(logging.Filter):
    """Drops onnxscript's "Evaluation failed" warnings while we export.

    Its constant folder tries to evaluate nodes with symbolic (batch) shapes, fails as
    expected, skips them and logs a warning per node; the exported model is unaffected.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        # The exporter also says, four times per export, that it skips torchvision's ops
        # because torchvision is not installed: true, and irrelevant to these models.
        return not (
            message.startswith("Evaluation failed") or message.startswith("torchvision is not")
        )


_FOLDING_LOGGER = "onnxscript.optimizer._constant_folding"
_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


class OnnxRuntimeBackend(Backend):
    """Runs workloads as ONNX models in ONNX Runtime.

    The session is opened by :func:`as_core.runtime.onnxruntime_session` with the
    backend's :class:`~as_core.runtime.RuntimeOptions` (:attr:`runtime`), as as-deploy's
    server opens its sessions, so a benchmark measures what the server runs; idle worker
    threads do not spin unless ``spin_wait`` is set. ``info["runtime_options"]`` records them.

    Args:
        opset: ONNX opset to export with (:data:`as_bench.export.DEFAULT_OPSET` by default,
            supported by every current runtime).
        intra_op_num_threads: Threads for one operator; ``0`` lets ORT choose (one per
            physical core). ``RuntimeOptions.intra_op_threads``.
        graph_optimization_level: ``"disable"``, ``"basic"``, ``"extended"`` or ``"all"``.
            ``RuntimeOptions.graph_optimization``.
        spin_wait: Whether idle ORT worker threads spin waiting for work (faster to answer
            back-to-back calls, but they burn cores). ``RuntimeOptions.spin_wait``.
    """

    name = "onnxruntime"
    extra = "onnx"

    def __init__(
        self,
        *,
        opset: int = DEFAULT_OPSET,
        intra_op_num_threads: int = 0,
        graph_optimization_level: str = "all",
        spin_wait: bool = False,
    ) -> None:
        """Record the export and session options (see the class docstring)."""
        if graph_optimization_level not in _OPTIMIZATION:
            msg = (
                f"onnxruntime: graph_optimization_level {graph_optimization_level!r} is not "
                f"one of {', '.join(_OPTIMIZATION)}"
            )
            raise BackendError(msg)
        if intra_op_num_threads < 0:
            raise BackendError(
                f"onnxruntime: intra_op_num_threads must be >= 0, not {intra_op_num_threads}"
            )
        self.opset = opset
        self.intra_op_num_threads = intra_op_num_threads
        self.graph_optimization_level = graph_optimization_level
        #: The session options, CPU provider; :meth:`prepare` sets the device's providers.
        self.runtime = RuntimeOptions(
            intra_op_threads=intra_op_num_threads or None,
            spin_wait=spin_wait,
            graph_optimization=cast(GraphOptimization, graph_optimization_level),
        )

    def is_available(self) -> bool:
        """Whether ONNX Runtime and the exporter (torch, onnx, onnxscript) are installed."""
        return all(map(is_installed, ("onnxruntime", "onnx", "onnxscript", "torch")))

    def devices(self) -> list[str]:
        """``cpu``, plus ``cuda:N`` and ``coreml`` where this ORT build provides them."""
        ort = require("onnxruntime", self.extra, error=MissingExtraError)
        providers = ort.get_available_providers()
        devices = ["cpu"]
        if "CUDAExecutionProvider" in providers:
            count = 1
            if is_installed("torch"):
                import torch

                count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            devices += [f"cuda:{index}" for index in range(count)]
        if "CoreMLExecutionProvider" in providers:
            devices.append("coreml")
        return devices

    def _providers(self, device: str) -> list[ProviderSpec]:
        if device == "cpu":
            return ["CPUExecutionProvider"]
        if device == "coreml":
            return ["CoreMLExecutionProvider", "CPUExecutionProvider"]
        index = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]

    def export(self, workload: Workload, batch_size: int, folder: Path) -> tuple[Path, bool]:
        """Export the workload's torch model to ``folder/model.onnx`` (weights beside it).

        Returns:
            The ``.onnx`` path and whether its batch axis is dynamic.

        Raises:
            BackendError: The export failed (the message carries the exporter's reason).
        """
        torch = require("torch", self.extra, error=MissingExtraError)
        require("onnxscript", self.extra, error=MissingExtraError)
        model = load_torch_model(workload, self.name)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "model.onnx"
        if workload.dynamic_batch:
            # torch.export specialises a dimension whose example size is 1, so the example
            # batch has at least two rows; one Dim object ties every input's batch axis.
            args = torch_args(workload.inputs(max(batch_size, 2)))
            batch = torch.export.Dim("batch", min=1)
            try:
                self._export_once(model, args, path, workload, tuple({0: batch} for _ in args))
                return path, True
            except BackendError as exc:
                logger.warning(
                    "onnxruntime: %r did not export with a dynamic batch axis (%s); "
                    "exporting with a static batch of %d",
                    workload.name,
                    exc,
                    batch_size,
                )
        args = torch_args(workload.inputs(batch_size))
        self._export_once(model, args, path, workload, None)
        return path, False

    def _export_once(
        self,
        model: Any,
        args: tuple[Any, ...],
        path: Path,
        workload: Workload,
        dynamic_shapes: tuple[dict[int, Any], ...] | None,
    ) -> None:
        torch = require("torch", self.extra, error=MissingExtraError)
        noise = _DropFoldingNoise()
        for name in (_FOLDING_LOGGER, _REGISTRATION_LOGGER):
            logging.getLogger(name).addFilter(noise)
        try:
            with warnings.catch_warnings():
                # Inputs that share the batch Dim make the exporter warn that it names the axis
                # once; that is what we asked for, not a problem.
                warnings.filterwarnings(
                    "ignore", message="# The axis name: .* will not be used", category=UserWarning
                )
                torch.onnx.export(
                    model,
                    args,
                    str(path),
                    dynamo=True,
                    input_names=list(workload.input_names),
                    output_names=list(workload.output_names),
                    dynamic_shapes=dynamic_shapes,
                    opset_version=self.opset,
                    external_data=True,
                    verbose=False,
                )
        except Exception as exc:
            msg = (
                f"onnxruntime: exporting workload {workload.name!r} to ONNX (opset "
                f"{self.opset}) failed: {type(exc).__name__}: {exc}"
            )
            raise BackendError(msg) from exc
        finally:
            for name in (_FOLDING_LOGGER, _REGISTRATION_LOGGER):
                logging.getLogger(name).removeFilter(noise)

    def prepare(
        self, workload: Workload, device: str, batch_size: int, workdir: Path
    ) -> PreparedModel:
        """Export the workload into ``workdir`` and open an ORT session on ``device``.

        Raises:
            MissingExtraError: onnxruntime or the exporter is not installed.
            DeviceUnavailableError: ``device`` is not offered here, or ORT would not use
                the provider that ``device`` names.
            BackendError: Export or session creation failed, or the model's inputs are
                not what the workload provides.
        """
        ort = require("onnxruntime", self.extra, error=MissingExtraError)
        device = {"cuda": "cuda:0"}.get(device.strip().lower(), device.strip().lower())
        available = self.devices()
        if device not in available:
            msg = f"{self.name}: device {device!r} is not available here; available: {available}"
            raise DeviceUnavailableError(msg)
        safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", workload.name)
        start = time.perf_counter()
        path, dynamic = self.export(
            workload, batch_size, Path(workdir) / f"onnx-{safe_name}-bs{batch_size}"
        )
        export_seconds = time.perf_counter() - start

        requested = self._providers(device)
        runtime = replace(self.runtime, providers=tuple(requested))
        try:
            session = onnxruntime_session(path, runtime)
        except Exception as exc:
            msg = f"onnxruntime: loading {path} on {device} failed: {type(exc).__name__}: {exc}"
            raise BackendError(msg) from exc
        used: list[str] = list(session.get_providers())
        wanted = requested[0] if isinstance(requested[0], str) else requested[0][0]
        if wanted not in used:
            msg = (
                f"onnxruntime: asked for {wanted} for device {device!r} but the session uses "
                f"{used}; its libraries are probably missing (see ORT's log above)"
            )
            raise DeviceUnavailableError(msg)

        arrays = workload.inputs(batch_size)
        names = [node.name for node in session.get_inputs()]
        if len(names) != len(arrays):
            msg = (
                f"onnxruntime: the exported model takes inputs {names}, the workload gives "
                f"{len(arrays)} arrays"
            )
            raise BackendError(msg)
        expected: list[TensorSpec] = [
            (name, tuple(a.shape), a.dtype) for name, a in zip(names, arrays, strict=True)
        ]
        feeds = dict(zip(names, check_inputs(self.name, arrays, expected), strict=True))

        def bench_call() -> Any:
            # The session is looked up in this scope on every call, so close() can drop it.
            return session.run(None, feeds)

        def predict(batch: tuple[Array, ...]) -> list[Array]:
            checked = check_inputs(self.name, batch, expected)
            return list(session.run(None, dict(zip(names, checked, strict=True))))

        def close() -> None:
            nonlocal session
            session = None

        try:
            bench_call()  # fails here rather than inside the measurement
        except Exception as exc:
            msg = f"onnxruntime: running {path} on {device} failed: {type(exc).__name__}: {exc}"
            raise BackendError(msg) from exc
        info: dict[str, Any] = {
            "onnxruntime_version": dist_version("onnxruntime") or ort.__version__,
            "providers": used,
            "requested_providers": [p if isinstance(p, str) else p[0] for p in requested],
            "opset": self.opset,
            "dynamic_batch": dynamic,
            "intra_op_num_threads": self.intra_op_num_threads,
            "graph_optimization_level": self.graph_optimization_level,
            "runtime_options": runtime.describe(),
            "export_seconds": export_seconds,
            "model_path": str(path),
        }
        return PreparedModel(
            backend=self.name,
            device=device,
            batch_size=batch_size,
            predict=predict,
            bench_call=bench_call,
            timing_device="cpu",
            model_size_bytes=path_size(path.parent),
            info=info,
            close=close,
        )
