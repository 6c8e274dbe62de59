"""Compression techniques as small plugins, and the ones built in (ONNX Runtime).

A technique (:class:`Technique`) says whether it applies to a model and why not, which
knob settings it offers, and turns the fp32 ONNX baseline into one candidate file per
setting. Built in:

- ``ort-dynamic-int8``: weights int8 ahead of time, activations quantized on the fly
  (:func:`onnxruntime.quantization.quantize_dynamic`); no data needed. Knob: per-channel.
- ``ort-static-int8``: weights and activations int8 in QDQ format, activation ranges
  calibrated on the workload's data (:func:`onnxruntime.quantization.quantize_static`).
  Knobs: calibration method (MinMax, Entropy, Percentile), calibration size, per-channel,
  and which weighted operators stay fp32 (none, the first, the last, or both: the first
  and last layers are often the most sensitive to quantization).
- ``ort-fp16``: weights and activations fp16, inputs and outputs kept fp32
  (``onnxruntime.transformers.float16``). Its session opens in the evaluation's child
  process like every candidate's, so a runtime that crashes on it rejects the candidate.

A technique may also offer ``search_space()``: for each knob, the values a search
(``as-optimize run --search optuna``) may choose from; without it the search chooses
among the values its ``knobs()`` settings use.

Which ONNX operators a quantizer rewrites is read from ONNX Runtime's own registries, so
the reasons given for a layer follow the installed version.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from as_core.extras import require
from as_optimize.compress._data import TrainingData
from as_optimize.exceptions import CompressionError, CompressionInputError, MissingExtraError

__all__ = [
    "ApplyContext",
    "Fp16",
    "ModelFacts",
    "OrtDynamicInt8",
    "OrtStaticInt8",
    "Technique",
    "available_techniques",
    "default_techniques",
    "layer_support",
]

Array = npt.NDArray[Any]

#: The ONNX operators a torch layer type usually exports to (``torch.onnx``, opset 18).
LAYER_OPS: dict[str, tuple[str, ...]] = {
    "Conv1d": ("Conv",),
    "Conv2d": ("Conv",),
    "Conv3d": ("Conv",),
    "ConvTranspose1d": ("ConvTranspose",),
    "ConvTranspose2d": ("ConvTranspose",),
    "Linear": ("Gemm", "MatMul"),
    "Bilinear": ("MatMul",),
    "Embedding": ("Gather",),
    "LSTM": ("LSTM",),
    "ReLU": ("Relu",),
    "ReLU6": ("Clip",),
    "GELU": ("Gelu",),
    "SiLU": ("Sigmoid", "Mul"),
    "Sigmoid": ("Sigmoid",),
    "Tanh": ("Tanh",),
    "Softmax": ("Softmax",),
    "MaxPool1d": ("MaxPool",),
    "MaxPool2d": ("MaxPool",),
    "AvgPool2d": ("AveragePool",),
    "AdaptiveAvgPool2d": ("ReduceMean",),
    "BatchNorm1d": ("BatchNormalization",),
    "BatchNorm2d": ("BatchNormalization",),
    "LayerNorm": ("LayerNormalization",),
    "Flatten": ("Reshape",),
    "Dropout": (),
    "Identity": (),
}

#: Operators whose weights a quantizer stores as int8 (the ones that shrink a file).
WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Gather", "LSTM", "Attention"})


@dataclass(frozen=True)
class ModelFacts:
    """What a technique may look at to decide whether it applies.

    Attributes:
        task: The workload's task (``classification``, ``embedding``, ``regression``).
        has_data: Whether the workload has data to calibrate on.
        op_types: The ONNX operators of the model (from the exported graph, or from the
            torch layer types through :data:`LAYER_OPS` when nothing was exported).
    """

    task: str
    has_data: bool
    op_types: frozenset[str]


@dataclass(frozen=True)
class ApplyContext:
    """What :meth:`Technique.apply` (and a pipeline's torch stage) gets besides the knobs.

    Every field but ``input_names`` has a default, so a technique written for the ONNX
    baseline alone keeps working; the search fills them all.

    Attributes:
        input_names: The model's input names, in order.
        calibration: Calibration inputs, one array per model input (first axis = examples),
            taken apart from the examples candidates are scored on; ``None`` without data.
        workload: The as-bench ``Workload`` object (its inputs, names, task, data). In a
            pipeline, a copy whose ``make_model`` gives the stage's model.
        workload_spec: The workload as given to ``as_bench.export.load_workload`` (a
            built-in name or ``pkg.module:factory``), so another process can rebuild it.
        torch_model: The fp32 torch module in eval mode on the CPU. Shared: a technique or
            stage must ``copy.deepcopy`` it before changing anything in it.
        example_inputs: The workload's example inputs at batch 1 (NumPy, one per input).
        training: Examples a technique may train on (:class:`TrainingData`): the
            workload's training split when it has one, else the calibration examples
            (with their labels for classifiers); ``None`` without data. Never the
            examples candidates are scored on.
        seed: Seed for anything random (initialisation, data order).
        work_dir: A scratch folder of the candidate's own; ``None`` outside a search.
        target: The search's target (``cpu``, ``cuda``, ``mps``, ``coreml``, ``tflite``).
        device: The torch device the target measures on (``cpu``, ``cuda``, ``mps``).
    """

    input_names: Sequence[str]
    calibration: tuple[Array, ...] | None = None
    workload: Any = None
    workload_spec: str = ""
    torch_model: Any = None
    example_inputs: tuple[Array, ...] | None = None
    training: TrainingData | None = None
    seed: int = 0
    work_dir: Path | None = None
    target: str = "cpu"
    device: str = "cpu"


@runtime_checkable
class Technique(Protocol):
    """A compression technique: one candidate file per knob setting.

    A technique whose ``runtime`` is not ``onnxruntime`` gets the ONNX baseline too but
    may ignore it: it builds from ``context.torch_model`` (a copy) and writes its own
    artifact, a file or a folder with its own suffix, beside ``output``, and returns its
    path. Its candidates are evaluated by that runtime's child
    (:data:`~as_optimize.compress._runtimes.RUNTIMES`).

    Attributes:
        name: Short unique name (``ort-static-int8``).
        runtime: The runtime its candidates run on (``onnxruntime``, ``torch``,
            ``litert``, ``coreml``).
        targets: The ``--target`` values it is tried on (``("cpu",)``); a search on
            another target lists it as not applicable, with the reason.
        description: One line for people.
        when_it_pays: When it is worth it, for people.
    """

    name: str
    runtime: str
    targets: tuple[str, ...]
    description: str
    when_it_pays: str

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """Whether it applies to ``model``, and why (or why not), in words."""
        ...

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        """Whether it changes an ONNX operator of this type, and why (or why not)."""
        ...

    def knobs(self) -> list[dict[str, Any]]:
        """The settings to try, most promising first; each is one candidate."""
        ...

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        """Write the candidate for ``knobs`` and return its path (a file or a folder).

        ``output`` is ``candidates/<id>/model.onnx``; an ONNX technique writes there, a
        technique of another runtime writes its own artifact in that folder (``model.pt``,
        ``model.tflite``, ``model.mlpackage``). Scratch files go under
        ``context.work_dir``. A setting that cannot be built raises
        :class:`~as_optimize.exceptions.CompressionError` with the reason.
        """
        ...


def layer_support(technique: Technique, layer_type: str) -> tuple[bool, str]:
    """Whether ``technique`` changes a torch layer of ``layer_type``, and why, in words."""
    ops = LAYER_OPS.get(layer_type)
    if ops is None:
        return False, f"no known ONNX form for {layer_type}; the run's candidates tell"
    if not ops:
        return False, f"{layer_type} exports to no operator at inference"
    verdicts = [(op, *technique.supports_op(op)) for op in ops]
    if all(ok for _, ok, _ in verdicts):
        return True, "; ".join(f"{op}: {why}" for op, _, why in verdicts)
    if any(ok for _, ok, _ in verdicts):
        return True, "partly: " + "; ".join(f"{op}: {why}" for op, _, why in verdicts)
    return False, "; ".join(f"{op}: {why}" for op, _, why in verdicts)


def _quantization() -> Any:
    require("onnxruntime", "compress", error=MissingExtraError)
    return importlib.import_module("onnxruntime.quantization")


def _registry(kind: str) -> frozenset[str]:
    _quantization()
    registry = importlib.import_module("onnxruntime.quantization.registry")
    table: Mapping[str, Any] = getattr(registry, kind)
    return frozenset(table)


def _run_quantizer(what: str, output: Path, call: Any) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    # The quantizers log advice through the root logger for every model (pre-processing,
    # shape inference) at WARNING; the candidate's evaluation says what matters.
    # Histogram calibration prints its progress to stdout, where a command's table or
    # JSON goes; it is dropped.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # numpy's overflow warnings from a histogram that cannot be built; the
            # quantizer's own error says what failed.
            warnings.simplefilter("ignore", RuntimeWarning)
            call()
    except Exception as exc:  # the quantizers raise bare Exceptions, ValueErrors, ...
        raise CompressionError(f"{what} failed on the baseline model: {exc}") from exc
    finally:
        root.setLevel(level)
    return output


@dataclass
class OrtDynamicInt8:
    """ONNX Runtime dynamic int8: int8 weights, activations quantized per call."""

    per_channel: Sequence[bool] = (True, False)
    name: str = "ort-dynamic-int8"
    runtime: str = "onnxruntime"
    targets: tuple[str, ...] = ("cpu",)
    description: str = (
        "weights stored as int8; each call quantizes the activations from their current range"
    )
    when_it_pays: str = (
        "models dominated by MatMul weights (transformers, MLPs on 3-D inputs): the file "
        "shrinks about 4x and large matrix products run on int8 kernels; no data needed. "
        "Little gain where convolutions or Gemm dominate"
    )

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        """Operators in ONNX Runtime's dynamic (integer-op) registry are rewritten."""
        if op_type in _registry("IntegerOpsRegistry"):
            return True, "int8 weights, activations quantized per call"
        if op_type == "Gemm":
            return False, "Gemm is not among ONNX Runtime's dynamic int8 operators"
        return False, "not among ONNX Runtime's dynamic int8 operators; stays fp32"

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It applies when the model has weights in an operator the quantizer rewrites."""
        found = sorted(model.op_types & WEIGHTED_OPS & _registry("IntegerOpsRegistry"))
        if found:
            return True, f"quantizes the weights of {', '.join(found)}"
        return False, "no operator with weights that dynamic int8 quantizes (Gemm is not one)"

    def knobs(self) -> list[dict[str, Any]]:
        """One candidate per per-channel setting."""
        return [{"per_channel": bool(pc)} for pc in self.per_channel]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Per-channel or per-tensor weight scales."""
        return {"per_channel": (True, False)}

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        """Quantize with :func:`onnxruntime.quantization.quantize_dynamic`."""
        quantization = _quantization()
        unknown = set(knobs) - {"per_channel"}
        if unknown:
            raise CompressionInputError(f"{self.name}: unknown knobs {sorted(unknown)}")
        return _run_quantizer(
            self.name,
            output,
            lambda: quantization.quantize_dynamic(
                baseline,
                output,
                per_channel=bool(knobs.get("per_channel", True)),
                weight_type=quantization.QuantType.QInt8,
            ),
        )


class _Reader:
    """Feeds calibration examples one by one (ONNX Runtime's CalibrationDataReader)."""

    def __init__(self, names: Sequence[str], arrays: tuple[Array, ...], size: int) -> None:
        self._feeds = [
            {name: array[i : i + 1] for name, array in zip(names, arrays, strict=True)}
            for i in range(size)
        ]
        self._next = 0

    def get_next(self) -> dict[str, Array] | None:
        if self._next >= len(self._feeds):
            return None
        self._next += 1
        return self._feeds[self._next - 1]

    def rewind(self) -> None:
        self._next = 0


_METHODS = ("MinMax", "Entropy", "Percentile")

#: Which weighted operators static int8 leaves in fp32 (``exclude`` knob).
_EXCLUDE = ("none", "first", "last", "first+last")


def _excluded_nodes(baseline: Path, ops: frozenset[str], which: str) -> list[str]:
    """The names of the first and/or last operators of ``ops`` in ``baseline``'s graph."""
    if which == "none":
        return []
    require("onnx", "compress", error=MissingExtraError)
    import onnx

    graph = onnx.load(str(baseline), load_external_data=False).graph
    weighted = [node for node in graph.node if node.op_type in ops]
    if not weighted:
        return []
    if any(not node.name for node in weighted):
        raise CompressionInputError(
            f"exclude {which!r}: the model's {weighted[0].op_type} nodes have no names to exclude"
        )
    chosen = []
    if which in ("first", "first+last"):
        chosen.append(weighted[0].name)
    if which in ("last", "first+last") and weighted[-1].name not in chosen:
        chosen.append(weighted[-1].name)
    return chosen


@dataclass
class OrtStaticInt8:
    """ONNX Runtime static int8 (QDQ): weights and activations int8, calibrated on data."""

    methods: Sequence[str] = ("MinMax", "Percentile", "Entropy")
    sizes: Sequence[int] = (64,)
    per_channel: Sequence[bool] = (True, False)
    excluded: Sequence[str] = ("none",)
    search_sizes: Sequence[int] = (16, 32, 64, 128, 256)
    name: str = "ort-static-int8"
    runtime: str = "onnxruntime"
    targets: tuple[str, ...] = ("cpu",)
    description: str = (
        "weights and activations int8 (QDQ); activation ranges calibrated on the workload's data"
    )
    when_it_pays: str = (
        "convolutional and fully-connected models on CPU: every quantized operator runs on "
        "int8 kernels with no per-call range computation. Needs representative data; a bad "
        "calibration (too few examples, outliers) costs accuracy, which the gate catches"
    )

    def __post_init__(self) -> None:
        """Check the knob values where they are given."""
        for method in self.methods:
            if method not in _METHODS:
                raise CompressionInputError(
                    f"{self.name}: calibration method {method!r} is not one of {_METHODS}"
                )
        for which in self.excluded:
            if which not in _EXCLUDE:
                raise CompressionInputError(
                    f"{self.name}: exclude {which!r} is not one of {_EXCLUDE}"
                )
        for size in (*self.sizes, *self.search_sizes):
            if size < 1:
                raise CompressionInputError(
                    f"{self.name}: calibration size must be at least 1, not {size}"
                )

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        """Operators in ONNX Runtime's QDQ registry run in int8."""
        if op_type in _registry("QDQRegistry"):
            if op_type in WEIGHTED_OPS:
                return True, "int8 weights and activations"
            return True, "runs between int8 QDQ pairs"
        return False, "not in ONNX Runtime's QDQ registry; stays fp32 between Dequantize/Quantize"

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It applies when there is data to calibrate on and an operator to quantize."""
        if not model.has_data:
            return False, "needs data to calibrate activation ranges; the workload has none"
        found = sorted(model.op_types & WEIGHTED_OPS & _registry("QDQRegistry"))
        if found:
            return True, f"quantizes {', '.join(found)} and the activations between them"
        return False, "no operator with weights in ONNX Runtime's QDQ registry"

    def knobs(self) -> list[dict[str, Any]]:
        """Every method x size x per-channel (x exclude) combination, methods first.

        ``exclude`` appears in a setting only when other values than ``"none"`` are asked.
        """
        settings: list[dict[str, Any]] = [
            {"method": method, "size": int(size), "per_channel": bool(pc)}
            for pc in self.per_channel
            for method in self.methods
            for size in self.sizes
        ]
        if tuple(self.excluded) == ("none",):
            return settings
        return [{**knobs, "exclude": which} for which in self.excluded for knobs in settings]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Calibration method and size, per-channel, and the operators kept in fp32."""
        return {
            "method": tuple(self.methods),
            "size": tuple(sorted({int(s) for s in (*self.search_sizes, *self.sizes)})),
            "per_channel": (True, False),
            "exclude": _EXCLUDE,
        }

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        """Calibrate on ``context.calibration`` and quantize to QDQ."""
        quantization = _quantization()
        unknown = set(knobs) - {"method", "size", "per_channel", "exclude"}
        if unknown:
            raise CompressionInputError(f"{self.name}: unknown knobs {sorted(unknown)}")
        which = str(knobs.get("exclude", "none"))
        if which not in _EXCLUDE:
            raise CompressionInputError(f"{self.name}: exclude {which!r} is not one of {_EXCLUDE}")
        method = str(knobs.get("method", "MinMax"))
        if method not in _METHODS:
            raise CompressionInputError(
                f"{self.name}: calibration method {method!r} is not one of {_METHODS}"
            )
        size = int(knobs.get("size", 64))
        if context.calibration is None:
            raise CompressionInputError(f"{self.name}: no calibration data for this workload")
        available = int(context.calibration[0].shape[0])
        if not 1 <= size <= available:
            raise CompressionInputError(
                f"{self.name}: calibration size {size} is not between 1 and the {available} "
                "calibration examples available"
            )
        reader = _Reader(context.input_names, context.calibration, size)
        ops = WEIGHTED_OPS & _registry("QDQRegistry")
        excluded = _excluded_nodes(baseline, ops, which)
        return _run_quantizer(
            f"{self.name} ({method}, {size} examples)",
            output,
            lambda: quantization.quantize_static(
                baseline,
                output,
                reader,
                quant_format=quantization.QuantFormat.QDQ,
                per_channel=bool(knobs.get("per_channel", True)),
                activation_type=quantization.QuantType.QInt8,
                weight_type=quantization.QuantType.QInt8,
                calibrate_method=getattr(quantization.CalibrationMethod, method),
                nodes_to_exclude=excluded,
            ),
        )


@dataclass
class Fp16:
    """fp16 weights and activations, fp32 inputs and outputs."""

    name: str = "ort-fp16"
    runtime: str = "onnxruntime"
    # Evaluated with ONNX Runtime's CUDA provider on --target cuda (onnxruntime-gpu).
    targets: tuple[str, ...] = ("cpu", "cuda")
    description: str = "weights and activations fp16; inputs and outputs stay fp32"
    when_it_pays: str = (
        "GPUs and Apple's Neural Engine, which run fp16 natively: half the file and often "
        "faster. On ONNX Runtime's CPU provider most operators have no fp16 kernel and run "
        "behind Cast nodes, so on CPU it halves the file and rarely the latency"
    )
    keep_io_types: bool = True

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        """Every float operator is converted."""
        return True, "converted to fp16"

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It applies to every float model."""
        if not model.op_types:
            return False, "the model has no operators"
        return True, "converts every float weight and activation"

    def knobs(self) -> list[dict[str, Any]]:
        """One setting: inputs and outputs kept fp32."""
        return [{"keep_io_types": self.keep_io_types}]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Inputs and outputs kept fp32 (callers feed and read fp32)."""
        return {"keep_io_types": (self.keep_io_types,)}

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        """Convert with ``onnxruntime.transformers.float16.convert_float_to_float16``."""
        require("onnx", "compress", error=MissingExtraError)
        require("onnxruntime", "compress", error=MissingExtraError)
        import onnx

        float16: Any = importlib.import_module("onnxruntime.transformers.float16")

        unknown = set(knobs) - {"keep_io_types"}
        if unknown:
            raise CompressionInputError(f"{self.name}: unknown knobs {sorted(unknown)}")
        output.parent.mkdir(parents=True, exist_ok=True)
        try:
            model = onnx.load(str(baseline))
            converted = float16.convert_float_to_float16(
                model, keep_io_types=bool(knobs.get("keep_io_types", True))
            )
            onnx.save(converted, str(output))
        except Exception as exc:
            raise CompressionError(f"{self.name} failed on the baseline model: {exc}") from exc
        return output


#: Modules offering techniques of other runtimes, and the function that lists them; a
#: module not installed is skipped. Its techniques are tried on their own ``targets``.
_PLUGIN_TECHNIQUES: tuple[tuple[str, str], ...] = (
    ("as_optimize.compress._torchao", "torch_techniques"),
    ("as_optimize.compress._coreml", "coreml_techniques"),
    ("as_optimize.compress._litert", "litert_techniques"),
)


def default_techniques() -> list[Technique]:
    """The built-in ONNX Runtime techniques with their default knobs."""
    return [OrtDynamicInt8(), OrtStaticInt8(), Fp16()]


def available_techniques() -> list[Technique]:
    """Every technique available, for every target: what a search tries by default.

    The built-in ONNX Runtime ones (:func:`default_techniques`) first, then those of the
    other runtimes' modules that are installed (torch through torchao, Core ML, LiteRT).
    A search tries those made for its target and lists the others as not applicable,
    with the reason.
    """
    techniques = default_techniques()
    for module_name, function in _PLUGIN_TECHNIQUES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        make = getattr(module, function, None)
        if make is not None:
            techniques.extend(make())
    return techniques


def as_float32(arrays: tuple[Array, ...]) -> tuple[Array, ...]:
    """Writable copies, floats as float32 (ONNX Runtime wants exact dtypes, torch writable)."""
    return tuple(
        np.array(a, dtype=np.float32 if a.dtype.kind == "f" else a.dtype, order="C", copy=True)
        for a in arrays
    )
