"""Loading a workload's model and exporting it to a file: as-bench's public export seam.

This is what other packages (as-deploy's exporter) and users build on to turn a workload
(a built-in name or ``pkg.module:factory``) into the torch model, its example inputs and
an ONNX, Core ML or TFLite file, exactly as the benchmark backends do. Nothing here
imports torch or a converter until a function runs; a missing one raises
:class:`~as_bench.exceptions.MissingExtraError` with the ``uv add`` command.

>>> from as_bench.export import load_workload, export_onnx
>>> workload = load_workload("mlp")                                 # doctest: +SKIP
>>> path, dynamic = export_onnx(workload, 1, Path("out"))           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from as_bench.workloads._base import Workload

__all__ = [
    "DEFAULT_OPSET",
    "convert_coreml",
    "convert_tflite",
    "describe_coreml",
    "export_onnx",
    "is_factory_spec",
    "load_torch_model",
    "load_workload",
    "parse_factory_spec",
    "torch_inputs",
]

#: The ONNX opset exports use unless told otherwise: every current runtime supports it.
DEFAULT_OPSET = 18


def parse_factory_spec(spec: str) -> tuple[str, str]:
    """Split ``"pkg.module:factory"`` into the module and the attribute.

    Raises:
        WorkloadError: ``spec`` is not of that form.
    """
    from as_bench.workloads._loader import parse_spec

    return parse_spec(spec)


def is_factory_spec(spec: str) -> bool:
    """Whether ``spec`` looks like ``pkg.module:factory`` (not a built-in name)."""
    from as_bench.workloads._loader import is_factory_spec as looks_like_factory

    return looks_like_factory(spec)


def load_workload(spec: str) -> Workload:
    """The workload named by ``spec``: a built-in (``"digits-cnn"``) or ``pkg.module:factory``.

    Raises:
        WorkloadError: Unknown name, malformed spec, or the factory failed.
        MissingExtraError: A built-in needs a library that is not installed.
    """
    from as_bench.workloads import get_workload

    return get_workload(spec)


def load_torch_model(workload: Workload, purpose: str = "export") -> Any:
    """The workload's ``torch.nn.Module`` in eval mode.

    Args:
        workload: The workload.
        purpose: Who asks, for error messages (a backend or format name).

    Raises:
        BackendError: The factory failed or did not build a ``torch.nn.Module``.
        MissingExtraError: torch is not installed.
    """
    from as_bench.backends._file_backends import load_torch_model as load

    return load(workload, purpose)


def torch_inputs(inputs: Sequence[Any]) -> tuple[Any, ...]:
    """NumPy arrays as CPU torch tensors that share their memory."""
    from as_bench.backends._file_backends import torch_args

    return torch_args(inputs)


def export_onnx(
    workload: Workload, batch_size: int, folder: Path, *, opset: int = DEFAULT_OPSET
) -> tuple[Path, bool]:
    """Export ``workload`` to ONNX in ``folder``, as the ``onnxruntime`` backend does.

    The batch axis is dynamic where the model allows it (traced with at least two rows);
    otherwise the file has ``batch_size`` baked in.

    Returns:
        The ``.onnx`` file and whether its batch axis is dynamic.

    Raises:
        BackendError: The export failed.
        MissingExtraError: torch, onnx or onnxscript is not installed.
    """
    from as_bench.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(opset=opset).export(workload, batch_size, Path(folder))


def convert_tflite(
    workload: Workload,
    batch_size: int,
    folder: Path,
    *,
    quantization: Literal["none", "dynamic-int8", "int8"] = "none",
    representative: Sequence[Sequence[Any]] | None = None,
    per_channel: bool = True,
) -> Path:
    """Convert ``workload`` to a ``.tflite`` file with litert-torch, batch baked in.

    Args:
        workload: The workload; its model must be a ``torch.nn.Module``.
        batch_size: The static batch size of the file.
        folder: Where the file goes (created if missing).
        quantization: ``"none"`` (fp32), ``"dynamic-int8"`` (int8 weights, activations
            quantized per call) or ``"int8"`` (full integer, calibrated on
            ``representative``; the file's float inputs and outputs are int8 too), with
            litert-torch's PT2E quantizer.
        representative: For ``"int8"``: batches of ``batch_size`` rows, one array per
            model input.
        per_channel: One weight scale per output channel (else one per tensor).

    Raises:
        BackendError: The conversion failed, or ``"int8"`` got no representative data.
        MissingExtraError: litert-torch is not installed.
    """
    from as_bench.backends.tflite import TFLiteBackend

    return TFLiteBackend().convert(
        workload,
        batch_size,
        Path(folder),
        quantization=quantization,
        representative=representative,
        per_channel=per_channel,
    )


def convert_coreml(
    workload: Workload,
    batch_size: int,
    folder: Path,
    *,
    precision: Literal["fp32", "fp16"] = "fp32",
    minimum_deployment_target: str | None = None,
) -> Path:
    """Convert ``workload`` to a Core ML ML program (``.mlpackage``) with coremltools.

    Conversion runs on Linux and macOS; prediction only on macOS.

    Raises:
        BackendError: The conversion failed.
        MissingExtraError: coremltools is not installed.
    """
    from as_bench.backends.coreml import CoreMLBackend

    kwargs: dict[str, Any] = {"precision": precision}
    if minimum_deployment_target is not None:
        kwargs["minimum_deployment_target"] = minimum_deployment_target
    return CoreMLBackend(**kwargs).convert(workload, batch_size, Path(folder))


def describe_coreml(path: Path) -> dict[str, Any]:
    """The inputs, outputs and metadata of a converted ``.mlpackage``, read with coremltools."""
    from as_bench.backends.coreml import CoreMLBackend

    return CoreMLBackend().describe(Path(path))
