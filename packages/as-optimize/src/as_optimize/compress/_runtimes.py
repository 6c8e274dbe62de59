"""Runtimes and targets: which child evaluates a candidate, and what a target measures.

A technique's ``runtime`` names the child evaluator its candidates run in: a module run
as ``python -m MODULE SPEC`` with the JSON spec contract documented in
:mod:`as_optimize.compress._child`. :data:`RUNTIMES` maps each runtime to its module;
:func:`register_runtime` adds one (a plugin's own runtime).

A target (``as-optimize run --target``) is where the models are meant to run.
:func:`plan_target` says which runtimes it measures, on which torch device, and what the
reference is (the model every candidate's quality and speed are compared with):

- ``cpu``: ONNX Runtime's CPU provider and torch on the CPU; the reference is the fp32
  ONNX model (eager torch is reported beside it).
- ``cuda``: torch on the GPU, and ONNX Runtime's CUDA provider when the installed ONNX
  Runtime has it; the reference is eager torch fp32 on the GPU.
- ``mps``: torch on Apple's GPU (macOS); the reference is eager torch fp32 on ``mps``.
- ``coreml``: Core ML (macOS to run; elsewhere candidates are converted and sized, and
  reported "not measured"); the reference is eager torch fp32 on the CPU.
- ``tflite``: LiteRT on the CPU; the reference is eager torch fp32 on the CPU.

Hardware that is missing is a :class:`~as_optimize.exceptions.CompressionInputError`
naming it, except Core ML's prediction off macOS (see above).
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
from collections.abc import Callable
from dataclasses import dataclass

from as_optimize.exceptions import CompressionInputError

__all__ = [
    "RUNTIMES",
    "TARGETS",
    "TargetPlan",
    "child_module",
    "evaluator_available",
    "plan_target",
    "register_runtime",
]

#: Runtime name -> the module that evaluates its candidates (``python -m MODULE SPEC``).
RUNTIMES: dict[str, str] = {
    "onnxruntime": "as_optimize.compress._child",
    "torch": "as_optimize.compress._child_torch",
    "litert": "as_optimize.compress._child_litert",
    "coreml": "as_optimize.compress._child_coreml",
}

#: The targets ``--target`` accepts.
TARGETS: tuple[str, ...] = ("cpu", "cuda", "mps", "coreml", "tflite")

#: Why Core ML candidates are not measured off macOS.
COREML_OFF_MACOS = "Core ML prediction needs macOS"


def register_runtime(runtime: str, module: str) -> None:
    """Evaluate candidates of ``runtime`` with ``python -m module SPEC``.

    Raises:
        CompressionInputError: An empty name or module.
    """
    if not runtime or not module:
        raise CompressionInputError("a runtime needs a name and an evaluator module")
    RUNTIMES[runtime] = module


def child_module(runtime: str) -> str:
    """The evaluator module of ``runtime``.

    Raises:
        CompressionInputError: No evaluator is known for ``runtime``.
    """
    module = RUNTIMES.get(runtime)
    if module is None:
        raise CompressionInputError(
            f"no evaluator for runtime {runtime!r}; known: {sorted(RUNTIMES)} "
            "(as_optimize.compress.register_runtime adds one)"
        )
    return module


def evaluator_available(runtime: str) -> tuple[bool, str]:
    """Whether ``runtime``'s evaluator module can be imported, and why not."""
    module = RUNTIMES.get(runtime)
    if module is None:
        return False, f"no evaluator for runtime {runtime!r}"
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return False, f"the evaluator of runtime {runtime!r} ({module}) is not installed"
    return True, f"evaluated by {module}"


@dataclass(frozen=True)
class TargetPlan:
    """What a target measures.

    Attributes:
        target: The target's name.
        device: The torch device of eager torch and of torch candidates.
        runtimes: The runtimes whose candidates are tried, in order.
        reference: ``onnx`` (the fp32 ONNX model is the reference) or ``eager`` (eager
            torch fp32 on ``device`` is).
        measured: Whether candidates can run here; ``False`` for Core ML off macOS.
        why_not_measured: The reason when they cannot.
        notes: What was left out and why (an ONNX Runtime without the CUDA provider).
    """

    target: str
    device: str
    runtimes: tuple[str, ...]
    reference: str
    measured: bool = True
    why_not_measured: str = ""
    notes: tuple[str, ...] = ()

    @property
    def reference_name(self) -> str:
        """The reference in words."""
        if self.reference == "onnx":
            return "fp32 ONNX"
        return f"eager torch fp32 ({self.device})"


def _cuda_available() -> bool:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _mps_available() -> bool:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return False
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _ort_providers() -> tuple[str, ...]:
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError:
        return ()
    return tuple(ort.get_available_providers())


def plan_target(
    target: str,
    *,
    system: str | None = None,
    cuda_available: Callable[[], bool] = _cuda_available,
    mps_available: Callable[[], bool] = _mps_available,
    ort_providers: Callable[[], tuple[str, ...]] = _ort_providers,
) -> TargetPlan:
    """What ``target`` measures on this machine.

    Args:
        target: One of :data:`TARGETS`.
        system: ``platform.system()`` (given in tests).
        cuda_available: Whether torch sees a CUDA GPU.
        mps_available: Whether torch sees Apple's GPU.
        ort_providers: ONNX Runtime's available execution providers.

    Raises:
        CompressionInputError: An unknown target, or one whose hardware is missing.
    """
    system = platform.system() if system is None else system
    if target == "cpu":
        return TargetPlan("cpu", "cpu", ("onnxruntime", "torch"), "onnx")
    if target == "cuda":
        if not cuda_available():
            raise CompressionInputError(
                "--target cuda needs a CUDA GPU that torch can use; torch.cuda.is_available() "
                "is False here (no GPU, no driver, or a CPU-only torch build)"
            )
        if "CUDAExecutionProvider" in ort_providers():
            return TargetPlan("cuda", "cuda", ("torch", "onnxruntime"), "eager")
        return TargetPlan(
            "cuda",
            "cuda",
            ("torch",),
            "eager",
            notes=(
                "ONNX Runtime candidates are not tried: the installed onnxruntime has no "
                "CUDAExecutionProvider (onnxruntime-gpu has)",
            ),
        )
    if target == "mps":
        if system != "Darwin":
            raise CompressionInputError(
                f"--target mps needs macOS with Apple silicon; this machine runs {system}"
            )
        if not mps_available():
            raise CompressionInputError(
                "--target mps needs torch's MPS backend; torch.backends.mps.is_available() "
                "is False here"
            )
        return TargetPlan("mps", "mps", ("torch",), "eager")
    if target == "coreml":
        if system == "Darwin":
            return TargetPlan("coreml", "cpu", ("coreml",), "eager")
        if system == "Linux":
            return TargetPlan(
                "coreml",
                "cpu",
                ("coreml",),
                "eager",
                measured=False,
                why_not_measured=COREML_OFF_MACOS,
            )
        raise CompressionInputError(
            f"--target coreml needs macOS to run Core ML models (or Linux, to convert and "
            f"size them); this machine runs {system}"
        )
    if target == "tflite":
        return TargetPlan("tflite", "cpu", ("litert",), "eager")
    raise CompressionInputError(f"--target {target!r} is not one of {', '.join(TARGETS)}")
