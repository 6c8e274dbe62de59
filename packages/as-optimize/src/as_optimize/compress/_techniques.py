"""Compression techniques as small plugins, and the ones built in (ONNX Runtime).

A technique (:class:`Technique`) says whether it applies to a model and why not, which
knob settings it offers, and turns the fp32 ONNX baseline into one candidate file per
setting. Built in:

- ``ort-dynamic-int8``: weights int8 ahead of time, activations quantized on the fly
  (:func:`onnxruntime.quantization.quantize_dynamic`); no data needed. Knobs: per-channel,
  ``keep``: how many of the most sensitive weighted nodes are spared, the nodes ranked on
  the calibration examples by what quantizing each alone costs
  (:mod:`as_optimize.compress._sensitivity`; one ranking per baseline, reused), and
  ``keep_as``: what they become (``fp32``; ``int8-weights``: 8-bit weight blocks in
  ``MatMulNBits``, activations quantized per block instead of per tensor; ``int8-stored``:
  int8 weights dequantized at load, fp32 arithmetic).
- ``ort-static-int8``: weights and activations int8 in QDQ format, activation ranges
  calibrated on the workload's data (:func:`onnxruntime.quantization.quantize_static`).
  Knobs: calibration method (MinMax, Entropy, Percentile), calibration size, per-channel,
  and which weighted operators stay fp32 (none, the first, the last, or both: the first
  and last layers are often the most sensitive to quantization).
- ``ort-int4-weight-only`` (in :func:`available_techniques`): MatMul weights and
  embedding tables stored as 4-bit blocks (``MatMulNBits``, ``GatherBlockQuantized``,
  from ``onnxruntime.quantization.matmul_nbits_quantizer``); Gemm is not rewritten. Knobs:
  block size, which operators (MatMul+Gather, MatMul, Gather), and ``then_int8``: dynamic
  int8 for the MatMuls left fp32 when only the embeddings go to 4 bits.
- ``ort-weight-storage`` (in :func:`available_techniques`; its own module,
  :mod:`as_optimize.compress._weight_storage`): weights stored as int8 per channel or
  4-bit blocks, dequantized once when the session opens; fp32 speed, a smaller file.
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
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
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
    "OrtInt4WeightOnly",
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


#: What the nodes spared from dynamic int8 become (``keep_as`` knob).
_KEEP_AS = ("fp32", "int8-weights", "int8-stored")


@dataclass
class OrtDynamicInt8:
    """ONNX Runtime dynamic int8: int8 weights, activations quantized per call.

    ``keep`` settings spare the most sensitive weighted nodes from dynamic int8; which
    ones is measured on the calibration examples (:mod:`as_optimize.compress._sensitivity`):
    each node is quantized alone and ranked by how far the outputs' mean cosine to the
    fp32 outputs falls. The ranking is measured once per baseline and weight-scale
    setting and reused by every setting of the process. ``keep_as`` says what the
    spared nodes become: ``fp32``, or ``int8-weights`` (MatMuls only; others stay fp32):
    ``MatMulNBits`` with 8-bit weights in blocks of 128 and int8 arithmetic on
    activations quantized per block (``accuracy_level`` 4), so the file stays about as
    small as with every node int8, and the activations' outliers no longer share one
    scale per tensor; or ``int8-stored``: int8 weights per channel dequantized when the
    session opens (:mod:`as_optimize.compress._weight_storage`), fp32 arithmetic.
    """

    per_channel: Sequence[bool] = (True, False)
    # One ranking (per-channel) serves every kept setting: on MiniLM, per-tensor with
    # nodes kept was larger and no better than per-channel, and its ranking costs as much.
    keep: Sequence[int] = (4, 8)
    keep_per_tensor: Sequence[int] = ()
    keep_as: str = "int8-weights"
    name: str = "ort-dynamic-int8"
    runtime: str = "onnxruntime"
    targets: tuple[str, ...] = ("cpu",)
    description: str = (
        "weights stored as int8; each call quantizes the activations from their current range"
    )
    when_it_pays: str = (
        "models dominated by MatMul weights (transformers, MLPs on 3-D inputs): the file "
        "shrinks about 4x and large matrix products run on int8 kernels; no data needed. "
        "Little gain where convolutions or Gemm dominate. Sparing the few nodes that "
        "quantize worst (keep) buys back accuracy for a little size and speed"
    )

    def __post_init__(self) -> None:
        """Check the numbers of nodes to spare and what they become."""
        for count in (*self.keep, *self.keep_per_tensor):
            if int(count) < 0:
                raise CompressionInputError(
                    f"{self.name}: keep must be 0 or more nodes, not {count}"
                )
        _check_keep_as(self.name, self.keep_as)

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
        """Each per-channel setting with every node quantized, then with nodes spared.

        ``keep`` appears in a setting only when it is not 0 (per-channel settings take
        :attr:`keep`, per-tensor ones :attr:`keep_per_tensor`), with ``keep_as``:
        :attr:`keep_as`, or ``fp32`` where ONNX Runtime has no MatMulNBits quantizer.
        """
        keep_as = self.keep_as if _nbits_quantizer() is not None else "fp32"
        settings: list[dict[str, Any]] = [{"per_channel": bool(pc)} for pc in self.per_channel]
        for pc in self.per_channel:
            for count in self.keep if pc else self.keep_per_tensor:
                setting = {"per_channel": bool(pc), "keep": int(count), "keep_as": keep_as}
                if int(count) and setting not in settings:
                    settings.append(setting)
        return settings

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Weight scales, how many nodes are spared, and what they become."""
        return {"per_channel": (True, False), "keep": (0, 2, 4, 8), "keep_as": _KEEP_AS}

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        """Quantize with :func:`onnxruntime.quantization.quantize_dynamic`.

        With ``keep`` above 0 the most sensitive nodes, ranked on ``context.calibration``
        (else the workload's example inputs), are excluded; with ``keep_as``
        ``int8-weights`` their MatMuls become 8-bit ``MatMulNBits`` first.
        """
        return self.build(baseline, knobs, output, context)

    def build(
        self,
        source: Path,
        knobs: Mapping[str, Any],
        output: Path,
        context: ApplyContext,
        *,
        ranked_on: Path | None = None,
        op_types: Sequence[str] | None = None,
    ) -> Path:
        """Quantize ``source`` as :meth:`apply` does, nodes ranked on another model.

        Args:
            source: The model to quantize.
            knobs: ``per_channel``, ``keep``, ``keep_as``.
            output: Where the candidate goes.
            context: The candidate's context (examples to rank nodes on, scratch folder).
            ranked_on: The fp32 model the sensitive nodes are ranked on (``source`` if
                ``None``); its node names must be ``source``'s (a model another quantizer
                rewrote in part, such as 4-bit embeddings).
            op_types: The operators to quantize (all the quantizer's if ``None``); only
                nodes of these types are spared.
        """
        quantization = _quantization()
        unknown = set(knobs) - {"per_channel", "keep", "keep_as"}
        if unknown:
            raise CompressionInputError(f"{self.name}: unknown knobs {sorted(unknown)}")
        per_channel = bool(knobs.get("per_channel", True))
        keep = int(knobs.get("keep", 0))
        keep_as = str(knobs.get("keep_as", "fp32"))
        _check_keep_as(self.name, keep_as, building=True)
        among = frozenset(op_types) if op_types is not None else None
        spared = (
            self.sensitive_nodes(ranked_on or source, per_channel, keep, context, among=among)
            if keep
            else []
        )
        excluded = [name for name, _ in spared]
        matmuls = [name for name, op_type in spared if op_type == "MatMul"]
        large = _total_size(source) > 1 << 30

        def dynamic(model: Path) -> Path:
            return _run_quantizer(
                self.name,
                output,
                lambda: quantization.quantize_dynamic(
                    model,
                    output,
                    per_channel=per_channel,
                    weight_type=quantization.QuantType.QInt8,
                    nodes_to_exclude=excluded,
                    op_types_to_quantize=list(op_types) if op_types is not None else None,
                    use_external_data_format=large,
                    # Shape inference cannot type what follows a contrib operator (a
                    # 4-bit GatherBlockQuantized); the model's tensors are fp32.
                    extra_options={"DefaultTensorType": 1},
                ),
            )

        if keep_as == "fp32" or (keep_as == "int8-weights" and not matmuls):
            return dynamic(source)
        if keep_as == "int8-stored":
            from as_optimize.compress._weight_storage import store_spared

            store_spared(dynamic(source), excluded, f"{self.name} (spared nodes stored int8)")
            return output
        if context.work_dir is not None:
            context.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=context.work_dir) as scratch:
            eight_bit = _weight_only(
                f"{self.name} (8-bit weights for {len(matmuls)} sensitive MatMuls)",
                source,
                Path(scratch) / "model.onnx",
                bits=8,
                block_size=128,  # on MiniLM as accurate as 32 and 0.7 ms faster
                ops=("MatMul",),
                only=matmuls,
                accuracy_level=4,
            )
            return dynamic(eight_bit)

    def sensitive_nodes(
        self,
        baseline: Path,
        per_channel: bool,
        keep: int,
        context: ApplyContext,
        *,
        among: frozenset[str] | None = None,
    ) -> list[tuple[str, str]]:
        """``(name, op_type)`` of the ``keep`` nodes whose quantization costs the most.

        ``among``: only nodes of these operators are counted (the ranking of every
        operator is measured once and reused).

        Raises:
            CompressionInputError: ``keep`` is negative, or there are no examples.
            CompressionError: ``keep`` would leave no node to quantize.
        """
        from as_optimize.compress._sensitivity import dynamic_int8_sensitivity

        if keep < 0:
            raise CompressionInputError(f"{self.name}: keep must be 0 or more, not {keep}")
        ops = WEIGHTED_OPS & _registry("IntegerOpsRegistry")
        ranking = dynamic_int8_sensitivity(
            baseline,
            context.input_names,
            _ranking_examples(self.name, context),
            per_channel=per_channel,
            op_types=ops,
            work_dir=context.work_dir,
        )
        nodes = [n for n in ranking.nodes if among is None or n.op_type in among]
        if keep >= len(nodes):
            raise CompressionError(
                f"{self.name}: sparing {keep} nodes leaves none of the model's "
                f"{len(nodes)} quantizable nodes to quantize"
            )
        return [(node.name, node.op_type) for node in nodes[:keep]]


def _check_keep_as(name: str, keep_as: str, *, building: bool = False) -> None:
    if keep_as not in _KEEP_AS:
        raise CompressionInputError(f"{name}: keep_as {keep_as!r} is not one of {_KEEP_AS}")
    if building and keep_as == "int8-weights" and _nbits_quantizer() is None:
        raise CompressionError(
            f"{name}: keep_as 'int8-weights' needs ONNX Runtime's MatMulNBits quantizer, "
            "which this version lacks"
        )


def _weight_only(
    what: str,
    baseline: Path,
    output: Path,
    *,
    bits: int,
    block_size: int,
    ops: tuple[str, ...],
    only: Sequence[str] | None = None,
    accuracy_level: int | None = None,
    symmetric: bool = False,
) -> Path:
    """Write ``baseline`` with the weights of ``ops`` (or of the nodes ``only``) in blocks.

    MatMul weights become ``MatMulNBits``, Gather tables ``GatherBlockQuantized``.

    Raises:
        CompressionError: The quantizer failed, or rewrote no node.
    """
    nbits = _nbits_quantizer()
    if nbits is None:
        raise CompressionError(f"{what}: this ONNX Runtime has no MatMulNBits quantizer")
    require("onnx", "compress", error=MissingExtraError)
    import onnx

    def quantize() -> None:
        model = onnx.load(str(baseline))
        config = nbits.DefaultWeightOnlyQuantConfig(
            block_size=block_size,
            is_symmetric=symmetric,
            accuracy_level=accuracy_level,
            op_types_to_quantize=ops,
            quant_axes=(("MatMul", 0), ("Gather", 1)),
            bits=bits,
        )
        # The quantizer's nodes_to_include adds to its operator types; the nodes of those
        # types outside ``only`` are excluded instead.
        others = (
            []
            if only is None
            else [n.name for n in model.graph.node if n.op_type in ops and n.name not in only]
        )
        quantizer = nbits.MatMulNBitsQuantizer(model, algo_config=config, nodes_to_exclude=others)
        quantizer.process()
        output.parent.mkdir(parents=True, exist_ok=True)
        quantizer.model.save_model_to_file(
            str(output), use_external_data_format=_total_size(baseline) > 1 << 30
        )

    _run_quantizer(what, output, quantize)
    written = {n.op_type for n in onnx.load(str(output), load_external_data=False).graph.node}
    if not written & INT4_OPS:
        raise CompressionError(
            f"{what}: no {' or '.join(ops)} weight of the model was stored in {bits} bits "
            "(weights must be initializers)"
        )
    return output


def _ranking_examples(name: str, context: ApplyContext) -> tuple[Array, ...]:
    """The examples nodes are ranked on: the calibration split, else example inputs."""
    if context.calibration is not None:
        return context.calibration
    inputs = getattr(context.workload, "inputs", None)
    if callable(inputs):
        return as_float32(tuple(inputs(16)))
    if context.example_inputs is not None:
        return as_float32(context.example_inputs)
    raise CompressionInputError(
        f"{name}: keep ranks nodes on data, and there are no calibration examples"
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


#: Which operators ``ort-int4-weight-only`` turns to 4 bits (``ops`` knob).
_INT4_OPS: dict[str, tuple[str, ...]] = {
    "MatMul+Gather": ("MatMul", "Gather"),
    "MatMul": ("MatMul",),
    "Gather": ("Gather",),
}

#: The block-quantized operators ONNX Runtime's weight-only quantizer writes.
INT4_OPS = frozenset({"MatMulNBits", "GatherBlockQuantized"})


def _nbits_quantizer() -> Any | None:
    """ONNX Runtime's weight-only quantizer module, or ``None`` when this one lacks it."""
    _quantization()
    try:
        module = importlib.import_module("onnxruntime.quantization.matmul_nbits_quantizer")
    except ImportError:
        return None
    needed = ("MatMulNBitsQuantizer", "DefaultWeightOnlyQuantConfig")
    return module if all(hasattr(module, name) for name in needed) else None


@dataclass
class OrtInt4WeightOnly:
    """ONNX Runtime 4-bit weight-only quantization (MatMulNBits, GatherBlockQuantized).

    Weights are stored as 4-bit integers in blocks of ``block_size`` values along the
    reduction axis, each block with its own fp32 scale and zero point; activations stay
    fp32 (``MatMulNBits`` dequantizes on the fly). MatMul weights become ``MatMulNBits``,
    embedding tables (Gather on an initializer) ``GatherBlockQuantized``; Gemm is not
    rewritten. With ``then_int8`` (only when the MatMuls are not in ``ops``) the MatMuls
    left in fp32 are quantized to dynamic int8 afterwards (per-channel): 4-bit
    embeddings, int8 matrix products; ``keep`` and ``keep_as`` then spare the most
    sensitive MatMuls as :class:`OrtDynamicInt8` does (ranked on the fp32 baseline).
    """

    block_sizes: Sequence[int] = (32, 128)
    settings: Sequence[tuple[str, bool]] = (("Gather", True), ("MatMul+Gather", False))
    #: Extra ``then_int8`` settings at the first block size: ``(keep, keep_as)``.
    spared: Sequence[tuple[int, str]] = ((4, "int8-weights"), (8, "int8-weights"))
    symmetric: bool = False
    name: str = "ort-int4-weight-only"
    runtime: str = "onnxruntime"
    targets: tuple[str, ...] = ("cpu",)
    description: str = (
        "weights stored as 4-bit blocks with their own scales (MatMulNBits, "
        "GatherBlockQuantized); activations stay fp32"
    )
    when_it_pays: str = (
        "large embedding tables and large MatMul weights: about 1/6 of the fp32 size. "
        "4-bit matrix weights cost more accuracy than int8 on small transformers; 4-bit "
        "embeddings with int8 MatMuls (then_int8) keep most of it"
    )

    def __post_init__(self) -> None:
        """Check the block sizes and operator sets."""
        for size in self.block_sizes:
            _check_block_size(self.name, int(size))
        for ops, then_int8 in self.settings:
            _check_int4_ops(self.name, ops, bool(then_int8))
        for count, keep_as in self.spared:
            if int(count) < 1:
                raise CompressionInputError(
                    f"{self.name}: spared settings keep 1 or more nodes, not {count}"
                )
            _check_keep_as(self.name, keep_as)

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        """MatMul and Gather weights become 4-bit blocks; Gemm is not rewritten."""
        if _nbits_quantizer() is None:
            return False, "this ONNX Runtime has no MatMulNBits weight-only quantizer"
        if op_type == "MatMul":
            return True, "4-bit weight blocks (MatMulNBits), activations fp32"
        if op_type == "Gather":
            return True, "4-bit embedding table blocks (GatherBlockQuantized)"
        if op_type == "Gemm":
            return False, "the weight-only quantizer rewrites MatMul, not Gemm; stays fp32"
        return False, "no weight the 4-bit quantizer rewrites; stays fp32"

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It applies when ONNX Runtime has the quantizer and the model a MatMul or Gather."""
        if _nbits_quantizer() is None:
            return False, (
                "this ONNX Runtime has no onnxruntime.quantization.matmul_nbits_quantizer "
                "(MatMulNBitsQuantizer)"
            )
        found = sorted(model.op_types & {"MatMul", "Gather"})
        if found:
            return True, f"stores the weights of {', '.join(found)} as 4-bit blocks"
        if "Gemm" in model.op_types:
            return False, "its weights are in Gemm, which the 4-bit quantizer does not rewrite"
        return False, "no MatMul or Gather weights to store in 4 bits"

    def knobs(self) -> list[dict[str, Any]]:
        """Each operator setting at each block size, then the spared settings.

        The spared ones (:attr:`spared`) are 4-bit Gather then int8 at the first block
        size, with sensitive MatMuls spared.
        """
        settings: list[dict[str, Any]] = [
            {"block_size": int(size), "ops": ops, "then_int8": bool(then_int8)}
            for ops, then_int8 in self.settings
            for size in self.block_sizes
        ]
        for count, keep_as in self.spared if self.block_sizes else ():
            settings.append(
                {
                    "block_size": int(self.block_sizes[0]),
                    "ops": "Gather",
                    "then_int8": True,
                    "keep": int(count),
                    "keep_as": keep_as,
                }
            )
        return settings

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Block size, the operators turned to 4 bits, and int8 for the rest."""
        return {
            "block_size": (32, 64, 128),
            "ops": tuple(_INT4_OPS),
            "then_int8": (False, True),
            "keep": (0, 4, 8),
            "keep_as": _KEEP_AS,
        }

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        """Quantize with ``MatMulNBitsQuantizer`` (and ``quantize_dynamic`` with then_int8)."""
        unknown = set(knobs) - {"block_size", "ops", "then_int8", "keep", "keep_as"}
        if unknown:
            raise CompressionInputError(f"{self.name}: unknown knobs {sorted(unknown)}")
        block_size = int(knobs.get("block_size", 32))
        ops = str(knobs.get("ops", "MatMul+Gather"))
        then_int8 = bool(knobs.get("then_int8", False))
        _check_block_size(self.name, block_size)
        _check_int4_ops(self.name, ops, then_int8)
        spare = spared_knobs(self.name, knobs, then_int8)
        what = f"{self.name} (block {block_size}, {ops})"

        def four_bit(target: Path) -> Path:
            return _weight_only(
                what,
                baseline,
                target,
                bits=4,
                block_size=block_size,
                ops=_INT4_OPS[ops],
                symmetric=self.symmetric,
            )

        if not then_int8:
            return four_bit(output)
        name = f"{self.name} (int8 MatMuls after 4-bit {ops})"
        return int8_matmuls_after(four_bit, name, baseline, spare, output, context)


def spared_knobs(name: str, knobs: Mapping[str, Any], then_int8: bool) -> dict[str, Any]:
    """``keep`` and ``keep_as`` of ``knobs``, which only a ``then_int8`` setting may give."""
    spare = {k: knobs[k] for k in ("keep", "keep_as") if k in knobs}
    if spare and not then_int8:
        raise CompressionInputError(
            f"{name}: keep and keep_as spare nodes from the int8 step; they need then_int8"
        )
    return spare


def int8_matmuls_after(
    first: Callable[[Path], Path],
    name: str,
    baseline: Path,
    spare: Mapping[str, Any],
    output: Path,
    context: ApplyContext,
) -> Path:
    """The model ``first`` writes, with its MatMuls then in dynamic int8, into ``output``.

    ``first`` gets a scratch path to write to. The MatMuls go to dynamic int8 per
    channel, the ``spare`` ones (``keep``, ``keep_as``) ranked on ``baseline``.
    """
    if context.work_dir is not None:
        context.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=context.work_dir) as scratch:
        stage = first(Path(scratch) / "model.onnx")
        return OrtDynamicInt8(name=name).build(
            stage,
            {"per_channel": True, **spare},
            output,
            context,
            ranked_on=baseline,
            op_types=["MatMul"],
        )


def _check_block_size(name: str, size: int) -> None:
    if size < 16 or size & (size - 1):
        raise CompressionInputError(
            f"{name}: block_size must be a power of two of at least 16, not {size}"
        )


def _check_int4_ops(name: str, ops: str, then_int8: bool) -> None:
    if ops not in _INT4_OPS:
        raise CompressionInputError(f"{name}: ops {ops!r} is not one of {tuple(_INT4_OPS)}")
    if then_int8 and "MatMul" in _INT4_OPS[ops]:
        raise CompressionInputError(
            f"{name}: then_int8 quantizes the MatMuls left in fp32, and ops {ops!r} already "
            "turns them to 4 bits; use it with ops 'Gather'"
        )


def _total_size(path: Path) -> int:
    """The model file's size with its external data files beside it."""
    return sum(f.stat().st_size for f in path.parent.glob(path.name + "*") if f.is_file())


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

    The built-in ONNX Runtime ones (:func:`default_techniques`) first, then weights
    stored quantized and dequantized at load
    (:class:`~as_optimize.compress._weight_storage.OrtWeightStorage`), then 4-bit
    weight-only (:class:`OrtInt4WeightOnly`), then those of the
    other runtimes' modules that are installed (torch through torchao, Core ML, LiteRT).
    A search tries those made for its target and lists the others as not applicable,
    with the reason.
    """
    from as_optimize.compress._weight_storage import OrtWeightStorage

    techniques: list[Technique] = [*default_techniques(), OrtWeightStorage(), OrtInt4WeightOnly()]
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
