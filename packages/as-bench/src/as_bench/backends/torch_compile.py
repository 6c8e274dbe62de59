"""``torch.compile`` backend: the workload's module compiled by TorchInductor.

Compilation happens in :meth:`~as_bench.backends.Backend.prepare`, followed by one call
so that the compile (and the first call's code generation) is never inside a timed sample;
its duration is recorded as ``info["compile_seconds"]``. On the CPU, Inductor generates
C++ and needs a C++ compiler (gcc or clang) on ``PATH``.

``torch-compile-cudagraphs`` (:class:`TorchCompileCudaGraphsBackend`) is the same with
``mode="reduce-overhead"``: Inductor's code replayed as CUDA graphs, one launch per call
instead of one per kernel, which is what small, launch-bound models need on a GPU (on an
H200, default-mode ``torch-compile`` was slower than eager on both small workloads). It
is a backend of its own so that its results, and the recommendation, keep it apart from
default-mode ``torch-compile``. CUDA only: on the CPU and MPS, Inductor skips CUDA graphs
("skipping cudagraphs due to cpu device") and the mode is default-mode compile under
another name, so those devices are not offered.
"""

from __future__ import annotations

import platform
import shutil
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from as_bench.backends.torch_eager import TorchEagerBackend, outputs_to_numpy
from as_bench.exceptions import BackendError, DeviceUnavailableError

if TYPE_CHECKING:
    import torch

__all__ = ["COMPILE_MODES", "TorchCompileBackend", "TorchCompileCudaGraphsBackend"]

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class TorchCompileBackend(TorchEagerBackend):
    """Runs the workload's module through ``torch.compile``.

    Args:
        mode: ``torch.compile`` mode: ``"default"``, ``"reduce-overhead"`` (CUDA graphs on
            NVIDIA GPUs), ``"max-autotune"`` or ``"max-autotune-no-cudagraphs"``.
        fullgraph: Fail instead of falling back to eager at a graph break.
        dynamic: Passed to ``torch.compile``; ``False`` because a prepared model always
            sees one batch size, so shape-specialised code is what should be measured.
    """

    name = "torch-compile"
    extra = "torch"

    def __init__(self, mode: str = "default", *, fullgraph: bool = False, dynamic: bool = False):
        """Record the compile options (see the class docstring)."""
        if mode not in COMPILE_MODES:
            msg = f"torch-compile: unknown mode {mode!r}; use one of {', '.join(COMPILE_MODES)}"
            raise BackendError(msg)
        self.mode = mode
        self.fullgraph = fullgraph
        self.dynamic = dynamic

    def _compile(
        self, model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], info: dict[str, Any]
    ) -> Callable[..., Any]:
        import torch

        # A fresh dynamo state per prepared model: a sweep over many batch sizes would
        # otherwise reach dynamo's recompile limit, after which it silently runs eager
        # code and the "compiled" figures would be eager ones.
        torch._dynamo.reset()
        compiled = torch.compile(
            model, mode=self.mode, fullgraph=self.fullgraph, dynamic=self.dynamic
        )
        start = time.perf_counter()
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                # Inductor advises TF32 matmuls on GPUs that have them; as-bench compiles
                # in the model's own precision on purpose (outputs are checked against
                # eager fp32), so the advice is noise, and an error under -W error.
                warnings.filterwarnings(
                    "ignore", message="TensorFloat32 tensor cores", category=UserWarning
                )
                outputs_to_numpy(compiled(*inputs), self.name)  # to host: waits for the GPU
        except Exception as exc:
            device = inputs[0].device.type if inputs else "cpu"
            hint = ""
            if device == "cpu" and not any(map(shutil.which, ("c++", "g++", "clang++"))):
                hint = "; on the CPU, Inductor needs a C++ compiler (g++ or clang++) on PATH"
            msg = f"torch-compile: compiling failed: {type(exc).__name__}: {exc}{hint}"
            raise BackendError(msg) from exc
        info.update(
            compile_seconds=time.perf_counter() - start,
            compile_mode=self.mode,
            compile_backend="inductor",
            fullgraph=self.fullgraph,
            dynamic=self.dynamic,
        )
        return compiled


CUDA_GRAPHS_NEED = (
    "torch-compile-cudagraphs needs an NVIDIA GPU: CUDA graphs (torch.compile "
    'mode="reduce-overhead") exist only on CUDA, and on the CPU or MPS Inductor skips them, '
    "which would measure default-mode torch-compile under another name"
)


class TorchCompileCudaGraphsBackend(TorchCompileBackend):
    """``torch.compile(mode="reduce-overhead")``: Inductor's code replayed as CUDA graphs.

    Every call starts a new CUDA-graph step (``torch.compiler.cudagraph_mark_step_begin``,
    as an inference loop should), so a replay may reuse the previous call's output memory:
    an output is valid until the next call. The backend never keeps one across calls:
    :meth:`~as_bench.backends.PreparedModel.predict` copies each call's outputs to the
    host before anything else runs, and the engine discards what it times. How many graphs
    Inductor refused to capture (a CPU op, a mutated input) is recorded as
    ``info["cudagraph_skips"]``; above 0 the figures are partly default-mode compile.

    Args:
        fullgraph: As :class:`TorchCompileBackend`.
        dynamic: As :class:`TorchCompileBackend`.
    """

    name = "torch-compile-cudagraphs"
    extra = "torch"

    def __init__(self, *, fullgraph: bool = False, dynamic: bool = False) -> None:
        """Compile with ``mode="reduce-overhead"`` (see the class docstring)."""
        super().__init__("reduce-overhead", fullgraph=fullgraph, dynamic=dynamic)

    def is_available(self) -> bool:
        """Whether torch is installed, off macOS (no CUDA there); the GPU is checked later."""
        return platform.system() != "Darwin" and super().is_available()

    def devices(self) -> list[str]:
        """Every ``cuda:N`` torch sees.

        Raises:
            DeviceUnavailableError: No CUDA device here (the message says why, and why
                the CPU and MPS are not offered).
        """
        cuda = [d for d in super().devices() if d.startswith("cuda")]
        if not cuda:
            raise DeviceUnavailableError(f"{CUDA_GRAPHS_NEED}; {_no_cuda_reason()}")
        return cuda

    def _compile(
        self, model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], info: dict[str, Any]
    ) -> Callable[..., Any]:
        import torch
        from torch._dynamo.utils import counters

        if inputs and inputs[0].device.type != "cuda":
            raise DeviceUnavailableError(f"{CUDA_GRAPHS_NEED}; got {inputs[0].device}")
        mark_step: Callable[[], None] = torch.compiler.cudagraph_mark_step_begin
        skips_before = int(counters["inductor"]["cudagraph_skips"])
        mark_step()  # the compile's own first call starts a step too
        compiled = super()._compile(model, inputs, info)
        skips = int(counters["inductor"]["cudagraph_skips"]) - skips_before
        info["cudagraph_skips"] = max(skips, 0)

        def call(*args: Any) -> Any:
            mark_step()  # a new step: the previous call's outputs may be overwritten
            return compiled(*args)

        return call


def _no_cuda_reason() -> str:
    from as_bench.devices import CudaDevice

    return CudaDevice.unavailable_reason() or "torch sees no CUDA device"
