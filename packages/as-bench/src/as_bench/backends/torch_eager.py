"""PyTorch eager backend: the workload's module as it is, on ``cpu``, ``cuda:N`` or ``mps``.

It is also the reference the other backends are checked against. Inputs are converted to
tensors on the device once, in :meth:`TorchEagerBackend.prepare`, so that the timed call
is the model alone; every call runs under ``torch.inference_mode()``.
"""

from __future__ import annotations

import itertools
import logging
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from as_bench.backends._base import Array, Backend, PreparedModel
from as_bench.backends._file_backends import TensorSpec, check_inputs, load_torch_model
from as_bench.exceptions import BackendError, DeviceUnavailableError, MissingExtraError
from as_bench.workloads._base import Workload
from as_core.extras import is_installed, require

if TYPE_CHECKING:
    import torch

__all__ = ["TorchEagerBackend", "outputs_to_numpy", "torch_devices"]

logger = logging.getLogger(__name__)


def torch_devices() -> list[str]:
    """Devices torch can use here: ``cpu``, then ``cuda:N`` and ``mps`` when present."""
    require("torch", "torch", error=MissingExtraError)
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def _normalise(device: str) -> str:
    device = device.strip().lower()
    return {"cuda": "cuda:0", "mps:0": "mps", "cpu:0": "cpu"}.get(device, device)


def outputs_to_numpy(outputs: Any, backend: str) -> list[Array]:
    """A module's output (tensor, or tuple/list of tensors) as host NumPy arrays."""
    import torch

    items = outputs if isinstance(outputs, tuple | list) else (outputs,)
    arrays: list[Array] = []
    for item in items:
        if not isinstance(item, torch.Tensor):
            msg = f"{backend}: the model returned a {type(item).__name__}; expected tensors"
            raise BackendError(msg)
        arrays.append(item.detach().cpu().numpy())
    return arrays


def _size_bytes(model: torch.nn.Module) -> int:
    tensors = itertools.chain(model.parameters(), model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


class TorchEagerBackend(Backend):
    """Runs the workload's ``torch.nn.Module`` eagerly: the reference for output checks."""

    name = "torch"
    extra = "torch"

    def is_available(self) -> bool:
        """Whether torch is installed (no import)."""
        return is_installed("torch")

    def devices(self) -> list[str]:
        """``cpu``, every ``cuda:N`` torch sees, and ``mps`` on Apple Silicon."""
        return torch_devices()

    def _compile(
        self, model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], info: dict[str, Any]
    ) -> Callable[..., Any]:
        """Hook for subclasses: what to call instead of the module (eager: the module)."""
        return model

    def prepare(
        self, workload: Workload, device: str, batch_size: int, workdir: Path
    ) -> PreparedModel:
        """Move the model and one batch of inputs to ``device`` and run it once.

        ``workdir`` is unused: nothing is exported.

        Raises:
            MissingExtraError: torch is not installed.
            DeviceUnavailableError: torch cannot use ``device`` here.
            BackendError: The model cannot be built or fails on its inputs.
        """
        require("torch", self.extra, error=MissingExtraError)
        import torch

        device = _normalise(device)
        available = self.devices()
        if device not in available:
            msg = f"{self.name}: device {device!r} is not available here; available: {available}"
            raise DeviceUnavailableError(msg)
        arrays = workload.inputs(batch_size)
        names = list(workload.input_names)
        if len(names) != len(arrays):
            names = [f"input_{i}" for i in range(len(arrays))]
        expected: list[TensorSpec] = [
            (name, tuple(a.shape), a.dtype) for name, a in zip(names, arrays, strict=True)
        ]
        model = load_torch_model(workload, self.name).to(device)
        # np.array copies: torch.from_numpy warns on read-only arrays (the workloads' are).
        inputs = tuple(torch.from_numpy(np.array(a)).to(device) for a in arrays)
        info: dict[str, Any] = {
            "torch_version": torch.__version__,
            "device_name": _device_name(device),
            "num_threads": torch.get_num_threads(),
            "dtype": str(next(itertools.chain(model.parameters(), [torch.empty(0)])).dtype),
        }
        call = self._compile(model, inputs, info)

        def bench_call() -> Any:
            with torch.inference_mode():
                return call(*inputs)

        def predict(batch: tuple[Array, ...]) -> list[Array]:
            checked = check_inputs(self.name, batch, expected)
            tensors = tuple(torch.from_numpy(np.array(a)).to(device) for a in checked)
            with torch.inference_mode():
                return outputs_to_numpy(call(*tensors), self.name)

        try:
            outputs_to_numpy(bench_call(), self.name)  # fails here, not in the measurement
        except BackendError:
            raise
        except Exception as exc:
            msg = (
                f"{self.name}: the model of workload {workload.name!r} failed on {device} "
                f"with batch size {batch_size}: {type(exc).__name__}: {exc}"
            )
            raise BackendError(msg) from exc
        return PreparedModel(
            backend=self.name,
            device=device,
            batch_size=batch_size,
            predict=predict,
            bench_call=bench_call,
            timing_device=device,
            model_size_bytes=_size_bytes(model),
            info=info,
        )
