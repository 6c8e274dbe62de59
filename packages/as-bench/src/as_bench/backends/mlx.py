"""MLX backend: the workload's torch model translated layer by layer into MLX.

MLX runs on its default device: the GPU on Apple Silicon, the CPU on Linux (``mlx[cpu]``).
Its arrays are lazy: :meth:`PreparedModel.bench_call` only builds the graph and returns
the unevaluated outputs, and the engine's ``"mlx"`` timer evaluates them, which is where
the work happens. The torch layers it converts are listed in :data:`SUPPORTED_MODULES`;
the torch functions and tensor methods in ``as_bench.backends._mlx_ops.SUPPORTED_CALLS``.
"""

from __future__ import annotations

import logging
import platform
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np

from as_bench.backends._base import Array, Backend, PreparedModel
from as_bench.backends._file_backends import dist_version, load_torch_model
from as_bench.backends._mlx_convert import SUPPORTED_MODULES, convert_module
from as_bench.exceptions import BackendError, DeviceUnavailableError, MissingExtraError
from as_bench.workloads._base import Workload
from as_core.extras import is_installed, require

__all__ = ["SUPPORTED_MODULES", "MLXBackend"]

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16"]


def _platform_supported() -> bool:
    """MLX ships for macOS on Apple Silicon (Metal) and for Linux (``mlx[cpu]``, CUDA)."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    return sys.platform == "linux"


class MLXBackend(Backend):
    """Runs workloads as MLX computations on MLX's default device.

    Args:
        precision: ``"fp32"`` or ``"fp16"`` weights and compute; floating inputs are cast
            on entry and outputs returned as float32 either way.
        compile: Wrap the forward function in ``mx.compile`` (fuses element-wise work;
            the first call traces and compiles it).
    """

    name = "mlx"
    extra = "mlx"

    def __init__(self, precision: Precision = "fp32", compile: bool = False) -> None:
        """Configure conversion (see the class docstring)."""
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
        self.precision: Precision = precision
        self.compile = compile

    def is_available(self) -> bool:
        """Whether mlx and torch are installed on a platform MLX supports (no import)."""
        return _platform_supported() and is_installed("mlx") and is_installed("torch")

    def devices(self) -> list[str]:
        """``["mlx"]``: MLX chooses the processor itself (see the module docstring)."""
        require("mlx.core", self.extra, error=MissingExtraError)
        return ["mlx"]

    def prepare(
        self, workload: Workload, device: str, batch_size: int, workdir: Path
    ) -> PreparedModel:
        """Translate the workload's model to MLX and run it once to check it.

        ``workdir`` is unused: nothing is written to disk.

        Raises:
            DeviceUnavailableError: ``device`` is not ``"mlx"``.
            BackendError: The model uses something the converter does not support (the
                message names the layer) or its first run failed.
        """
        if device != "mlx":
            raise DeviceUnavailableError(f"mlx runs on device 'mlx' only, not {device!r}")
        mx = require("mlx.core", self.extra, error=MissingExtraError)
        converted = convert_module(load_torch_model(workload, self.name), self.precision)
        forward = mx.compile(converted.forward) if self.compile else converted.forward
        size, layers = converted.nbytes, dict(converted.layers)
        # The forward function is the only holder of the weights; close() empties this
        # list so that nothing the PreparedModel keeps refers to them any more.
        holder: list[Any] = [forward]
        del converted, forward

        def run(arrays: list[Any]) -> list[Any]:
            if not holder:
                raise BackendError("mlx: the model was closed; prepare it again")
            outputs: list[Any] = holder[0](*arrays)
            return outputs

        def predict(inputs: tuple[Array, ...]) -> list[Array]:
            try:
                outputs = run([mx.array(np.ascontiguousarray(a)) for a in inputs])
                mx.eval(outputs)
                return [np.array(o) for o in outputs]
            except BackendError:
                raise
            except (ValueError, RuntimeError, TypeError) as exc:
                raise BackendError(f"mlx: running the model failed: {exc}") from exc

        arrays = workload.inputs(batch_size)
        predict(arrays)  # fail here, with the cause, rather than inside the timer
        bench_inputs = [mx.array(np.ascontiguousarray(a)) for a in arrays]
        mx.eval(bench_inputs)  # resident before timing starts

        def close() -> None:
            holder.clear()
            bench_inputs.clear()

        info: dict[str, Any] = {
            "mlx": dist_version("mlx"),
            "default_device": str(mx.default_device()),
            "precision": self.precision,
            "compiled": self.compile,
            "layers": layers,
        }
        return PreparedModel(
            backend=self.name,
            device=device,
            batch_size=batch_size,
            predict=predict,
            bench_call=lambda: run(bench_inputs),
            timing_device="mlx",
            model_size_bytes=size,
            info=info,
            close=close,
        )
