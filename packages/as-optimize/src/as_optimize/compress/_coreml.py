"""Core ML techniques: weight compression of an ML program with ``coremltools.optimize``.

Each technique converts the workload's torch model to an fp32 ML program
(:func:`as_bench.export.convert_coreml`, batch 1; conversion runs on Linux too) and
compresses its weights with :mod:`coremltools.optimize.coreml`:

- ``coreml-palettize``: k-means palettization (:class:`OpPalettizerConfig`): each weight
  becomes an ``nbits`` index into a lookup table of 2**nbits values, one table per
  tensor (``per_tensor``) or per group of ``group_size`` output channels
  (``per_grouped_channel``). Knobs: ``nbits`` (2, 4, 6, 8), ``granularity``.
- ``coreml-linear-int8``: linear symmetric int8 weights with one scale per output
  channel (:class:`OpLinearQuantizerConfig`).
- ``coreml-prune``: magnitude pruning to ``target_sparsity`` (0.5, 0.75) stored sparse
  (:class:`OpMagnitudePrunerConfig`); without fine-tuning, the quality gate decides.

The candidate is ``<output stem>.mlpackage`` with ``<output stem>.coreml.json`` beside
it: the Core ML compute units it is meant to run on (``ALL`` unless the technique was
given others), the technique, the knobs and the versions. Its evaluator
(:mod:`as_optimize.compress._child_coreml`) loads it with those compute units; Core ML
prediction needs macOS, so elsewhere the candidate is sized and reported not measured.

The ML program targets macOS 15 / iOS 18: grouped-channel palettization needs it.
Weight tensors smaller than ``weight_threshold`` elements (coremltools' default, 2048)
stay fp32, as do biases.
"""

from __future__ import annotations

import importlib
import json
import shutil
import tempfile
import threading
import traceback
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from as_core.extras import require
from as_optimize.compress._techniques import ApplyContext, ModelFacts, Technique
from as_optimize.exceptions import CompressionError, CompressionInputError, MissingExtraError

__all__ = [
    "COMPUTE_UNITS",
    "DEPLOYMENT_TARGET",
    "CoreMLLinearInt8",
    "CoreMLPalettize",
    "CoreMLPrune",
    "conversion_check",
    "coreml_baseline",
    "coreml_techniques",
    "package_weight_bytes",
    "read_coreml_facts",
]

#: The ``coremltools.ComputeUnit`` members a candidate may name.
COMPUTE_UNITS: tuple[str, ...] = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")

#: The deployment target of the ML programs (grouped-channel palettization needs iOS 18).
DEPLOYMENT_TARGET = "macOS15"

#: ONNX operators whose weights the compressors reach (conv, linear, matmul weights).
_COMPRESSIBLE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Gather", "LSTM"})

_GRANULARITIES = ("per_tensor", "per_grouped_channel")
_NBITS = (2, 4, 6, 8)

# The fp32 ML program of each workload converted in this process (or why it failed), so
# that every candidate of a run starts from one conversion.
_converted: dict[tuple[int, str], Path | str] = {}
_lock = threading.Lock()


def _coremltools() -> Any:
    return require("coremltools", "coreml", error=MissingExtraError)


def coreml_baseline(workload: Any, folder: Path) -> Path:
    """The workload's fp32 ML program (batch 1), converted once per process and workload.

    Args:
        workload: The as-bench workload.
        folder: Where the first conversion writes its package.

    Raises:
        CompressionError: coremltools could not convert the model (its message says why).
    """
    key = (id(workload), str(getattr(workload, "name", "")))
    with _lock:
        known = _converted.get(key)
        if isinstance(known, str):
            raise CompressionError(known)
        if known is not None and known.is_dir():
            return known
        import as_bench
        from as_bench.export import convert_coreml

        try:
            path = convert_coreml(workload, 1, folder, minimum_deployment_target=DEPLOYMENT_TARGET)
        except as_bench.MissingExtraError:
            raise
        except as_bench.AsBenchError as exc:
            _converted[key] = f"Core ML conversion failed: {exc}"
            raise CompressionError(_converted[key]) from exc
        _converted[key] = path
        return path


def package_weight_bytes(package: Path) -> int:
    """Bytes of an ``.mlpackage``'s weight files (``Data/com.apple.CoreML/weights``)."""
    weights = Path(package) / "Data" / "com.apple.CoreML" / "weights"
    return sum(p.stat().st_size for p in weights.rglob("*") if p.is_file())


def read_coreml_facts(package: Path) -> dict[str, Any]:
    """The JSON written beside a candidate's ``.mlpackage`` (compute units, knobs, ...).

    Raises:
        CompressionInputError: There is none, or it is not a JSON object.
    """
    path = Path(package).with_suffix(".coreml.json")
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CompressionInputError(f"{path}: no readable Core ML facts ({exc})") from exc
    if not isinstance(facts, dict):
        raise CompressionInputError(f"{path}: expected a JSON object")
    return facts


def _weighted(model: ModelFacts) -> list[str]:
    return sorted(model.op_types & _COMPRESSIBLE_OPS)


def conversion_check(workload: Any) -> tuple[bool, str]:
    """Whether coremltools converts ``workload``'s model, and if not, its error's text.

    The conversion is kept (in a temporary folder) for the candidates that follow.
    """
    try:
        coreml_baseline(workload, Path(tempfile.mkdtemp(prefix="as-optimize-coreml-")))
    except CompressionError as exc:
        return False, str(exc)
    return True, "converts to a Core ML ML program"


def _applies(model: ModelFacts, what: str) -> tuple[bool, str]:
    """Whether there are weights to compress and the workload converts (when known).

    The facts carry no workload today; when they do (``model.workload``), the answer
    includes whether coremltools converts it, with its error as the reason.
    """
    found = _weighted(model)
    if not found:
        return False, "the model has no convolution, linear or embedding weights to compress"
    workload = getattr(model, "workload", None)
    if workload is not None:
        converts, why = conversion_check(workload)
        if not converts:
            return False, why
    return True, f"{what} the weights of {', '.join(found)} in the Core ML program"


@dataclass
class _CoreMLTechnique(ABC):
    """What the three techniques share: conversion, the compressor call, the facts file."""

    compute_units: str = "ALL"
    weight_threshold: int = 2048
    name: str = ""
    runtime: str = "coreml"
    targets: tuple[str, ...] = ("coreml",)
    description: str = ""
    when_it_pays: str = ""

    def __post_init__(self) -> None:
        """Check the compute units and threshold."""
        if self.compute_units not in COMPUTE_UNITS:
            raise CompressionInputError(
                f"{self.name}: compute units {self.compute_units!r} are not one of {COMPUTE_UNITS}"
            )
        if self.weight_threshold < 0:
            raise CompressionInputError(
                f"{self.name}: weight_threshold must be >= 0, not {self.weight_threshold}"
            )

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        """Weighted operators are compressed; the rest run as they were converted."""
        if op_type in _COMPRESSIBLE_OPS:
            return True, "its weights are compressed in the Core ML program"
        return False, "has no weights to compress; runs in fp32"

    @abstractmethod
    def _config(self, knobs: Mapping[str, Any]) -> tuple[Any, Any]:
        """The coremltools optimization config for ``knobs``, and the function applying it."""

    def _check_knobs(self, knobs: Mapping[str, Any], allowed: set[str]) -> None:
        unknown = set(knobs) - allowed
        if unknown:
            raise CompressionInputError(f"{self.name}: unknown knobs {sorted(unknown)}")

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        """Convert the workload (once per run), compress, write ``<stem>.mlpackage``.

        ``baseline`` (the fp32 ONNX file) is not used: Core ML converts from torch.

        Raises:
            CompressionInputError: Unknown knobs, or the context has no workload.
            CompressionError: Conversion or compression failed.
        """
        if context.workload is None:
            raise CompressionInputError(f"{self.name}: needs the workload in its context")
        ct = _coremltools()
        compress, config = self._config(knobs)
        folder = (context.work_dir or output.parent) / "coreml-fp32"
        fp32 = coreml_baseline(context.workload, folder)
        package = output.with_suffix(".mlpackage")
        partial = package.with_name(f".partial-{package.name}")
        shutil.rmtree(partial, ignore_errors=True)
        package.parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():
                # coremltools never cleans up the TemporaryDirectory it stages weights in,
                # so the garbage collector warns about it as soon as the pass returns.
                warnings.filterwarnings(
                    "ignore", message="Implicitly cleaning up", category=ResourceWarning
                )
                model = ct.models.MLModel(str(fp32), skip_model_load=True)
                optimize = importlib.import_module("coremltools.optimize.coreml")
                compressed = compress(model, optimize.OptimizationConfig(global_config=config))
                compressed.save(str(partial))
                if getattr(compressed, "is_temp_package", False):
                    # Its temporary package would otherwise stay until the process exits.
                    shutil.rmtree(compressed.package_path, ignore_errors=True)
                del model, compressed
        except Exception as exc:  # coremltools raises ValueError, NotImplementedError, ...
            traceback.clear_frames(exc.__traceback__)
            shutil.rmtree(partial, ignore_errors=True)
            raise CompressionError(
                f"{self.name} {dict(knobs)} failed on the Core ML program: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        shutil.rmtree(package, ignore_errors=True)
        partial.replace(package)
        facts = {
            "technique": self.name,
            "knobs": dict(knobs),
            "compute_units": self.compute_units,
            "minimum_deployment_target": DEPLOYMENT_TARGET,
            "precision": "fp32",
            "batch_size": 1,
            "weight_threshold": self.weight_threshold,
            "coremltools": str(getattr(ct, "__version__", "unknown")),
            "fp32_weight_bytes": package_weight_bytes(fp32),
            "weight_bytes": package_weight_bytes(package),
        }
        package.with_suffix(".coreml.json").write_text(
            json.dumps(facts, indent=2), encoding="utf-8"
        )
        return package


@dataclass
class CoreMLPalettize(_CoreMLTechnique):
    """k-means palettization of the weights of a Core ML program."""

    nbits: Sequence[int] = (4, 6, 8, 2)
    granularities: Sequence[str] = ("per_grouped_channel", "per_tensor")
    group_size: int = 16
    name: str = "coreml-palettize"
    description: str = (
        "weights stored as n-bit indices into k-means lookup tables (per tensor or per "
        "group of output channels); Core ML"
    )
    when_it_pays: str = (
        "on Apple devices where weights dominate: 4-bit grouped palettes make the file "
        "about 7x smaller, and the Neural Engine decompresses them on the fly. Fewer bits "
        "(2) usually cost too much accuracy without fine-tuning"
    )

    def __post_init__(self) -> None:
        """Check the knob values where they are given."""
        super().__post_init__()
        for bits in self.nbits:
            if bits not in _NBITS:
                raise CompressionInputError(f"{self.name}: nbits {bits} is not one of {_NBITS}")
        for granularity in self.granularities:
            if granularity not in _GRANULARITIES:
                raise CompressionInputError(
                    f"{self.name}: granularity {granularity!r} is not one of {_GRANULARITIES}"
                )
        if self.group_size < 1:
            raise CompressionInputError(f"{self.name}: group_size must be >= 1")

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It applies to a model with weights that converts to Core ML."""
        return _applies(model, "palettizes")

    def knobs(self) -> list[dict[str, Any]]:
        """Every nbits x granularity, in the order given (4-bit grouped first)."""
        return [
            {"nbits": int(bits), "granularity": granularity}
            for bits in self.nbits
            for granularity in self.granularities
        ]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Bits per weight and palette granularity."""
        return {"nbits": _NBITS, "granularity": _GRANULARITIES}

    def _config(self, knobs: Mapping[str, Any]) -> tuple[Any, Any]:
        self._check_knobs(knobs, {"nbits", "granularity"})
        bits = int(knobs.get("nbits", 4))
        granularity = str(knobs.get("granularity", "per_grouped_channel"))
        if bits not in _NBITS:
            raise CompressionInputError(f"{self.name}: nbits {bits} is not one of {_NBITS}")
        if granularity not in _GRANULARITIES:
            raise CompressionInputError(
                f"{self.name}: granularity {granularity!r} is not one of {_GRANULARITIES}"
            )
        optimize = importlib.import_module("coremltools.optimize.coreml")
        extra = {"group_size": self.group_size} if granularity == "per_grouped_channel" else {}
        config = optimize.OpPalettizerConfig(
            mode="kmeans",
            nbits=bits,
            granularity=granularity,
            weight_threshold=self.weight_threshold,
            **extra,
        )
        return optimize.palettize_weights, config


@dataclass
class CoreMLLinearInt8(_CoreMLTechnique):
    """Linear symmetric int8 weights, one scale per output channel, in a Core ML program."""

    name: str = "coreml-linear-int8"
    description: str = "weights linear symmetric int8 with per-channel scales; Core ML"
    when_it_pays: str = (
        "a safe first step on Apple devices: the weights shrink about 4x with little "
        "accuracy cost; on newer chips int8 weights also run natively"
    )

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It applies to a model with weights that converts to Core ML."""
        return _applies(model, "quantizes to int8")

    def knobs(self) -> list[dict[str, Any]]:
        """One setting: per-channel scales."""
        return [{"granularity": "per_channel"}]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Per-channel or per-tensor scales."""
        return {"granularity": ("per_channel", "per_tensor")}

    def _config(self, knobs: Mapping[str, Any]) -> tuple[Any, Any]:
        self._check_knobs(knobs, {"granularity"})
        granularity = str(knobs.get("granularity", "per_channel"))
        if granularity not in ("per_channel", "per_tensor"):
            raise CompressionInputError(
                f"{self.name}: granularity {granularity!r} is not per_channel or per_tensor"
            )
        optimize = importlib.import_module("coremltools.optimize.coreml")
        config = optimize.OpLinearQuantizerConfig(
            mode="linear_symmetric",
            dtype="int8",
            granularity=granularity,
            weight_threshold=self.weight_threshold,
        )
        return optimize.linear_quantize_weights, config


@dataclass
class CoreMLPrune(_CoreMLTechnique):
    """Magnitude pruning of a Core ML program's weights, stored sparse."""

    sparsities: Sequence[float] = (0.5, 0.75)
    name: str = "coreml-prune"
    description: str = (
        "the smallest weights set to zero and stored sparse (a bit mask and the rest); Core ML"
    )
    when_it_pays: str = (
        "size on Apple devices: 50% sparsity makes the weights about 0.53x; the Neural "
        "Engine skips zeros only in some layers, so latency gains vary. Without fine-tuning, "
        "high sparsity usually fails the quality gate"
    )

    def __post_init__(self) -> None:
        """Check the sparsities."""
        super().__post_init__()
        for sparsity in self.sparsities:
            if not 0.0 < sparsity < 1.0:
                raise CompressionInputError(
                    f"{self.name}: target sparsity must be between 0 and 1, not {sparsity}"
                )

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It applies to a model with weights that converts to Core ML."""
        return _applies(model, "prunes")

    def knobs(self) -> list[dict[str, Any]]:
        """One setting per target sparsity."""
        return [{"target_sparsity": float(s)} for s in self.sparsities]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Target sparsity."""
        return {"target_sparsity": (0.5, 0.625, 0.75)}

    def _config(self, knobs: Mapping[str, Any]) -> tuple[Any, Any]:
        self._check_knobs(knobs, {"target_sparsity"})
        sparsity = float(knobs.get("target_sparsity", 0.5))
        if not 0.0 < sparsity < 1.0:
            raise CompressionInputError(
                f"{self.name}: target sparsity must be between 0 and 1, not {sparsity}"
            )
        optimize = importlib.import_module("coremltools.optimize.coreml")
        config = optimize.OpMagnitudePrunerConfig(
            target_sparsity=sparsity, weight_threshold=self.weight_threshold
        )
        return optimize.prune_weights, config


def coreml_techniques() -> list[Technique]:
    """The Core ML techniques with their default knobs."""
    return [CoreMLPalettize(), CoreMLLinearInt8(), CoreMLPrune()]
