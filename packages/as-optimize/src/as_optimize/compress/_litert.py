"""LiteRT techniques: ``.tflite`` candidates converted with litert-torch, int8 or fp32.

Each converts the workload's torch model at batch 1 with
:func:`as_bench.export.convert_tflite`, which quantizes through litert-torch's PT2E
quantizer (``litert_torch.quantize.pt2e_quantizer`` with
``QuantConfig(pt2e_quantizer=...)``):

- ``litert-fp32``: the plain conversion, the reference a LiteRT search compares with.
- ``litert-dynamic-int8``: dynamic-range int8: the weights of linear and convolution
  layers int8, activations quantized by the kernels per call; no data needed. Knob:
  per-channel weight scales.
- ``litert-int8``: full integer: weights and activations int8, activation ranges
  calibrated on the workload's calibration examples (``ApplyContext.calibration``); the
  file's float inputs and outputs become int8 with a scale and zero point, which the
  evaluator (:mod:`as_optimize.compress._child_litert`) applies. Knobs: per-channel,
  calibration size.

What litert-torch 0.10 offers, read from its package: ``convert(..., quant_config=)``
takes a PT2E quantizer (dynamic or static int8, symmetric, per-channel or per-tensor;
annotated layers: linear, addmm, conv (+relu); static also quantizes pooling, add, mul,
cat) or a generative recipe (weight-only int8/int4 and fp16 through AI Edge Quantizer),
which applies only to models built with its generative API, so it is not offered here.
Its ``use_v2`` converter takes no quantization at all. Other layers (LSTMs, attention's
matrix products) stay float; a model with none of the annotated layers gains nothing,
which ``applies_to`` says. Embedding tables stay float in full-integer files, but the
dynamic-range conversion stores them int8 with a non-zero zero point, which LiteRT's
``EMBEDDING_LOOKUP`` kernel refuses (ai-edge-litert 2.3): the file does not open (MiniLM,
or any ``nn.Embedding``). Every candidate is therefore opened once when built, and one
LiteRT cannot open is refused with the interpreter's reason.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from as_optimize.compress._techniques import ApplyContext, ModelFacts, Technique
from as_optimize.exceptions import CompressionError, CompressionInputError

__all__ = [
    "LiteRTDynamicInt8",
    "LiteRTFp32",
    "LiteRTInt8",
    "litert_techniques",
]

Quantization = Literal["none", "dynamic-int8", "int8"]

#: ONNX operators of the layers litert-torch's PT2E quantizer annotates (linear, conv).
_QUANTIZED_OPS = frozenset({"Conv", "Gemm", "MatMul"})
#: Operators it leaves float.
_FLOAT_OPS = frozenset({"ConvTranspose", "Gather", "LSTM", "Attention"})


def _convert(
    name: str,
    context: ApplyContext,
    output: Path,
    quantization: Quantization,
    representative: list[tuple[Any, ...]] | None = None,
    per_channel: bool = True,
) -> Path:
    """Convert at batch 1 into ``output``'s folder; the file is ``<output stem>.tflite``."""
    import as_bench
    from as_bench.export import convert_tflite

    if context.workload is None:
        raise CompressionInputError(f"{name}: needs the workload in its context")
    target = output.with_suffix(".tflite")
    scratch = (context.work_dir or output.parent) / f"litert-{quantization}"
    try:
        path = convert_tflite(
            context.workload,
            1,
            scratch,
            quantization=quantization,
            representative=representative,
            per_channel=per_channel,
        )
    except as_bench.MissingExtraError:
        raise
    except as_bench.AsBenchError as exc:
        raise CompressionError(f"{name}: {exc}") from exc
    _check_opens(name, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return target


def _check_opens(name: str, path: Path) -> None:
    """Refuse a file LiteRT's interpreter cannot open (allocate), with its reason."""
    from as_core.runtime import RuntimeOptions, litert_interpreter

    try:
        litert_interpreter(path, RuntimeOptions(intra_op_threads=1))
    except (RuntimeError, ValueError) as exc:
        reason = str(exc).replace("\n", " ")
        hint = (
            " (litert-torch's dynamic-range conversion stores embedding tables with a "
            "non-zero zero point, which LiteRT's EMBEDDING_LOOKUP kernel refuses)"
            if "EMBEDDING_LOOKUP" in reason
            else ""
        )
        raise CompressionError(
            f"{name}: LiteRT cannot open the converted file: {reason}{hint}"
        ) from exc


def _quantizable(model: ModelFacts) -> list[str]:
    return sorted(model.op_types & _QUANTIZED_OPS)


def _check(name: str, knobs: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(knobs) - allowed
    if unknown:
        raise CompressionInputError(f"{name}: unknown knobs {sorted(unknown)}")


def _supports(op_type: str) -> tuple[bool, str]:
    if op_type in _QUANTIZED_OPS:
        return True, "int8 weights (litert-torch's PT2E quantizer annotates linear and conv)"
    if op_type in _FLOAT_OPS:
        return False, "litert-torch's PT2E quantizer does not annotate it; stays float"
    return False, "no weights to quantize"


@dataclass
class LiteRTFp32:
    """The workload converted to LiteRT as it is, fp32: the reference for LiteRT."""

    name: str = "litert-fp32"
    runtime: str = "litert"
    targets: tuple[str, ...] = ("tflite",)
    description: str = "the torch model converted to a .tflite file with litert-torch, fp32"
    when_it_pays: str = (
        "the baseline on LiteRT: what the conversion alone costs or gains against eager "
        "torch, and what the int8 candidates are measured against"
    )

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        """Every operator is converted as it is."""
        return True, "converted to its LiteRT builtin in fp32"

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It applies to every model litert-torch converts (the candidate tells)."""
        if not model.op_types:
            return False, "the model has no operators"
        return True, "converts the model with litert-torch"

    def knobs(self) -> list[dict[str, Any]]:
        """One setting."""
        return [{}]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """No knobs."""
        return {}

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        """Convert with :func:`as_bench.export.convert_tflite` (``baseline`` is unused)."""
        _check(self.name, knobs, set())
        return _convert(self.name, context, output, "none")


@dataclass
class LiteRTDynamicInt8:
    """LiteRT dynamic-range int8: int8 weights, activations quantized by the kernels."""

    per_channel: Sequence[bool] = (True, False)
    name: str = "litert-dynamic-int8"
    runtime: str = "litert"
    targets: tuple[str, ...] = ("tflite",)
    description: str = (
        "linear and conv weights int8; LiteRT's kernels quantize activations per call"
    )
    when_it_pays: str = (
        "on phones and small CPUs without data: the file shrinks about 4x and "
        "fully-connected layers run on int8 kernels; convolutions gain less"
    )

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        """Linear and conv layers get int8 weights; embedding tables break the file."""
        if op_type == "Gather":
            return False, (
                "embedding tables come out int8 with a non-zero zero point, which LiteRT's "
                "EMBEDDING_LOOKUP kernel refuses: such a file does not open"
            )
        return _supports(op_type)

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It applies when the model has linear or conv layers."""
        found = _quantizable(model)
        if found:
            caveat = (
                "; an embedding lookup (Gather) makes a file LiteRT refuses, which the build checks"
                if "Gather" in model.op_types
                else ""
            )
            return True, f"int8 weights for {', '.join(found)}{caveat}"
        return False, "no linear or conv layer, the only ones litert-torch's quantizer handles"

    def knobs(self) -> list[dict[str, Any]]:
        """One setting per per-channel choice."""
        return [{"per_channel": bool(pc)} for pc in self.per_channel]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Per-channel or per-tensor weight scales."""
        return {"per_channel": (True, False)}

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        """Convert with PT2E dynamic int8 (``baseline`` is unused)."""
        _check(self.name, knobs, {"per_channel"})
        return _convert(
            self.name,
            context,
            output,
            "dynamic-int8",
            per_channel=bool(knobs.get("per_channel", True)),
        )


@dataclass
class LiteRTInt8:
    """LiteRT full-integer int8, activation ranges calibrated on the workload's data."""

    per_channel: Sequence[bool] = (True, False)
    sizes: Sequence[int] = (64,)
    search_sizes: Sequence[int] = (16, 32, 64, 128)
    name: str = "litert-int8"
    runtime: str = "litert"
    targets: tuple[str, ...] = ("tflite",)
    description: str = (
        "weights, activations, inputs and outputs int8; ranges calibrated on the "
        "workload's calibration examples"
    )
    when_it_pays: str = (
        "integer-only hardware (microcontrollers, DSPs, NPUs behind LiteRT delegates) and "
        "convolutional models on small CPUs; needs representative data, and the gate "
        "catches a calibration that costs accuracy"
    )

    def __post_init__(self) -> None:
        """Check the calibration sizes."""
        for size in (*self.sizes, *self.search_sizes):
            if size < 1:
                raise CompressionInputError(
                    f"{self.name}: calibration size must be at least 1, not {size}"
                )

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        """Linear and conv layers run int8; so do pooling, add, mul and cat between them."""
        return _supports(op_type)

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It applies with calibration data and linear or conv layers."""
        if not model.has_data:
            return False, "needs data to calibrate activation ranges; the workload has none"
        found = _quantizable(model)
        if found:
            return True, f"int8 weights and activations for {', '.join(found)}"
        return False, "no linear or conv layer, the only ones litert-torch's quantizer handles"

    def knobs(self) -> list[dict[str, Any]]:
        """Every per-channel x calibration-size combination."""
        return [
            {"per_channel": bool(pc), "size": int(size)}
            for pc in self.per_channel
            for size in self.sizes
        ]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Per-channel scales and the number of calibration examples."""
        return {
            "per_channel": (True, False),
            "size": tuple(sorted({int(s) for s in (*self.search_sizes, *self.sizes)})),
        }

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        """Calibrate on ``context.calibration`` (one example per call) and convert."""
        _check(self.name, knobs, {"per_channel", "size"})
        if context.calibration is None:
            raise CompressionInputError(f"{self.name}: no calibration data for this workload")
        size = int(knobs.get("size", 64))
        available = int(context.calibration[0].shape[0])
        if not 1 <= size <= available:
            raise CompressionInputError(
                f"{self.name}: calibration size {size} is not between 1 and the {available} "
                "calibration examples available"
            )
        rows = [tuple(a[i : i + 1] for a in context.calibration) for i in range(size)]
        return _convert(
            self.name,
            context,
            output,
            "int8",
            representative=rows,
            per_channel=bool(knobs.get("per_channel", True)),
        )


def litert_techniques() -> list[Technique]:
    """The LiteRT techniques with their default knobs (fp32 first, the reference)."""
    return [LiteRTFp32(), LiteRTDynamicInt8(), LiteRTInt8()]
