"""The Backend contract: how a workload becomes something the engine can time.

A backend turns a :class:`~as_bench.workloads.Workload` into a :class:`PreparedModel` for
one device and batch size (exporting to ONNX, TFLite or Core ML on the fly where it must).
The engine times :meth:`PreparedModel.bench_call`; the runner compares
:meth:`PreparedModel.predict` with the reference backend so a fast wrong answer is caught.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy.typing as npt

from as_bench.workloads._base import Workload

__all__ = ["Backend", "PreparedModel"]

Array = npt.NDArray[Any]


@dataclass
class PreparedModel:
    """A model loaded in one runtime, on one device, for one batch size.

    Attributes:
        backend: The backend's name.
        device: The device string it runs on.
        batch_size: The batch size it was prepared for.
        predict: Runs a batch given as NumPy arrays and returns NumPy outputs (complete:
            any asynchronous work is finished). Used for output checks and accuracy.
        bench_call: A zero-argument callable that runs one batch on inputs already placed
            on the device and returns the runtime's raw output (a tensor, an MLX array, a
            list of arrays), so the engine's device timer can synchronise on it.
        timing_device: The device whose timer the engine must use for ``bench_call``:
            the torch device for PyTorch backends (their calls return before the GPU is
            done), ``"mlx"`` for MLX (lazy arrays), ``"cpu"`` for runtimes whose call
            returns finished host data (ONNX Runtime, LiteRT, Core ML).
        model_size_bytes: Size of the model as this backend stores it (file on disk for
            exported formats, parameters and buffers for in-memory frameworks).
        info: Facts about how it ran, recorded in results: providers actually used,
            compute units, compile mode, library versions, file paths.
        close: Frees resources (sessions, temporary files); safe to call twice.
    """

    backend: str
    device: str
    batch_size: int
    predict: Callable[[tuple[Array, ...]], list[Array]]
    bench_call: Callable[[], Any]
    timing_device: str = "cpu"
    model_size_bytes: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None


class Backend(ABC):
    """A way to run a workload: PyTorch eager or compiled, ONNX Runtime, LiteRT, Core ML, MLX.

    Attributes:
        name: Registry name (``"torch"``, ``"torch-compile"``, ``"onnxruntime"``,
            ``"tflite"``, ``"coreml"``, ``"mlx"``).
        extra: The as-bench extra that installs what it needs.
    """

    name: str
    extra: str

    @abstractmethod
    def is_available(self) -> bool:
        """Whether its libraries are installed and the platform can run it (no import cost)."""

    @abstractmethod
    def devices(self) -> list[str]:
        """The devices on this machine it can run on (imports its library)."""

    @abstractmethod
    def prepare(
        self, workload: Workload, device: str, batch_size: int, workdir: Path
    ) -> PreparedModel:
        """Load (exporting if needed) ``workload`` for ``device`` and ``batch_size``.

        Args:
            workload: What to run.
            device: One of :meth:`devices`.
            batch_size: Items per call.
            workdir: A folder for exported files; the caller owns and removes it.

        Raises:
            MissingExtraError: Its libraries are not installed.
            DeviceUnavailableError: ``device`` is not one it can use here.
            BackendError: Export or loading failed (the message says which step).
        """
