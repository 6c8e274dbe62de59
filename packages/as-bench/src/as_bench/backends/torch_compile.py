"""``torch.compile`` backend: the workload's module compiled by TorchInductor.

Compilation happens in :meth:`~as_bench.backends.Backend.prepare`, followed by one call
so that the compile (and the first call's code generation) is never inside a timed sample;
its duration is recorded as ``info["compile_seconds"]``. On the CPU, Inductor generates
C++ and needs a C++ compiler (gcc or clang) on ``PATH``.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from as_bench.backends.torch_eager import TorchEagerBackend, outputs_to_numpy
from as_bench.exceptions import BackendError

if TYPE_CHECKING:
    import torch

__all__ = ["COMPILE_MODES", "TorchCompileBackend"]

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
