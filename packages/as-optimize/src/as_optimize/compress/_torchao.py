"""Techniques that run in torch: torchao quantization and plain half precision.

Each technique's candidate is a folder, ``model.torch/``, holding the fp32 model's weights
(``model.safetensors``) and ``technique.json`` (the technique, its knobs, and how to
rebuild the module). The evaluator (``python -m as_optimize.compress._child_torch``)
rebuilds the fp32 module from the workload (``as_bench.export.load_workload``), loads the
weights, applies the same transformation on the device it measures (:func:`prepare`;
torchao's quantization is deterministic for given weights), scores and times it.

- ``torchao-int8-dynamic``: ``Int8DynamicActivationInt8WeightConfig``: ``nn.Linear``
  weights int8 (per row or per tensor), activations quantized to int8 at each call.
  Knob ``granularity``. Targets cpu, cuda.
- ``torchao-int8-weight-only``: ``Int8WeightOnlyConfig``: ``nn.Linear`` weights int8
  per row, dequantized in the matrix product. Targets cpu, cuda.
- ``torchao-int4-weight-only``: ``Int4WeightOnlyConfig`` in tinygemm's tile-packed
  format (a bf16 model): 4-bit weights in groups (knob ``group_size``), each layer's
  input size padded to a multiple of 1024 (small layers grow). torchao has no
  CPU kernel for it here: the plain format needs the ``mslk`` package, the int32 one
  says it does not support the CPU, and the tile-packed one needs CUDA (the error
  texts are probed, :func:`probe`). Target cuda.
- ``torchao-float8-dynamic``: ``Float8DynamicActivationFloat8WeightConfig``: e4m3
  weights and activations (a bf16 model), per row or per tensor scales. Needs a CUDA
  GPU with compute capability 8.9 or more (Ada, Hopper). Target cuda.
- ``torch-half``: ``module.to(float16 | bfloat16)``, inputs cast, outputs read back as
  float32. Targets cpu, cuda, mps; on the CPU fp16 is usually much slower than fp32
  (few CPUs compute in fp16), bf16 runs at fp32's speed or better where the CPU has
  bf16 instructions.

torchao quantizes ``nn.Linear`` layers only: convolutions and embeddings stay fp32.
Quantized modules run in eager mode (no ``torch.compile``): torchao's int8 kernels pay
off mostly on CUDA and under compilation; in eager mode on the CPU the dynamic int8
linear quantizes and dequantizes in Python-level ops and was slower than fp32 on the
``mlp`` workload here. The measurement decides.

The folder holds fp32 weights, so its size on disk is the fp32 model's; the evaluator's
result carries ``weight_bytes`` (the transformed module's parameters and buffers in
memory, torchao's packed tensors counted by their inner tensors).
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.metadata
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from as_core.extras import require
from as_optimize.compress._distill import STUDENT_LAYERS
from as_optimize.compress._techniques import ApplyContext, ModelFacts, Technique
from as_optimize.exceptions import CompressionError, CompressionInputError, MissingExtraError

__all__ = [
    "ARTIFACT_SUFFIX",
    "Float8Dynamic",
    "Int4WeightOnly",
    "Int8Dynamic",
    "Int8WeightOnly",
    "TechniqueUnavailable",
    "TorchHalf",
    "load_fp32",
    "prepare",
    "probe",
    "torch_techniques",
    "weight_bytes",
]

#: The candidate folder's suffix (``model.torch/``).
ARTIFACT_SUFFIX = ".torch"
FORMAT = 1

#: Layer types an ``nn.Sequential`` model (a distilled student) is rebuilt from.
_SEQUENTIAL_LAYERS = STUDENT_LAYERS

_LINEAR_OPS = frozenset({"Gemm", "MatMul"})


class TechniqueUnavailable(Exception):
    """The technique cannot run on this device here; the message says why."""


def _torch() -> Any:
    return require("torch", "compress", error=MissingExtraError)


#: Why a torchao technique cannot run when torchao is missing (the torchao extra has it).
NO_TORCHAO = 'torchao is not installed (uv add "as-optimize[torchao]")'


def _quantization() -> Any:
    """``torchao.quantization``.

    Raises:
        TechniqueUnavailable: torchao is not installed.
    """
    try:
        return importlib.import_module("torchao.quantization")
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "torchao":
            raise
        raise TechniqueUnavailable(NO_TORCHAO) from exc


def torchao_version() -> str | None:
    """Torchao's version, or ``None`` when it is not installed."""
    try:
        return importlib.metadata.version("torchao")
    except importlib.metadata.PackageNotFoundError:
        return None


# -- rebuilding the fp32 module -------------------------------------------------------


def _layer_spec(layer: Any) -> dict[str, Any]:
    name = type(layer).__name__
    params = inspect.signature(type(layer).__init__).parameters
    constants = set(getattr(type(layer), "__constants__", ()))
    kwargs: dict[str, Any] = {}
    for key in params:
        if key == "bias":
            kwargs["bias"] = getattr(layer, "bias", None) is not None
        elif key in constants:
            value = getattr(layer, key)
            kwargs[key] = list(value) if isinstance(value, tuple) else value
    return {"type": name, "kwargs": kwargs}


@functools.lru_cache(maxsize=4)
def _workload_shapes(workload_spec: str) -> dict[str, tuple[int, ...]]:
    """The state dict's shapes of the model the evaluator builds for ``workload_spec``."""
    from as_bench.export import load_torch_model, load_workload

    model = load_torch_model(load_workload(workload_spec), "torchao")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _architecture(model: Any, workload_spec: str) -> dict[str, Any]:
    """How the evaluator rebuilds ``model``: from the workload, resized, or a Sequential.

    The workload is rebuilt from ``workload_spec``, as the evaluator will (a pipeline's
    context holds the stage's model as its workload, not the one the evaluator gets).
    """
    torch = _torch()
    state = model.state_dict()
    failure = ""
    reference: dict[str, tuple[int, ...]] | None = None
    if workload_spec:
        try:
            reference = _workload_shapes(workload_spec)
        except Exception as exc:  # as-bench's WorkloadError, BackendError, ...
            failure = f" (workload {workload_spec!r} does not load: {exc})"
    if reference is not None:
        if list(reference) == list(state):
            same = all(reference[k] == tuple(state[k].shape) for k in state)
            return {"kind": "workload" if same else "resized"}
    if isinstance(model, torch.nn.Sequential):
        layers = list(model.children())
        unsupported = sorted({type(m).__name__ for m in layers} - _SEQUENTIAL_LAYERS)
        if not unsupported:
            return {"kind": "sequential", "layers": [_layer_spec(m) for m in layers]}
        raise CompressionError(
            f"the evaluator cannot rebuild an nn.Sequential with {', '.join(unsupported)}"
        )
    raise CompressionError(
        f"the evaluator cannot rebuild this {type(model).__name__}: its weights do not fit "
        f"the workload's model{failure} and it is no nn.Sequential of standard layers"
    )


def _build_sequential(layers: Sequence[Mapping[str, Any]]) -> Any:
    torch = _torch()
    built = []
    for spec in layers:
        name = str(spec["type"])
        if name not in _SEQUENTIAL_LAYERS:
            raise CompressionError(f"technique.json names an unknown layer type {name!r}")
        kwargs = {
            k: tuple(v) if isinstance(v, list) else v for k, v in dict(spec["kwargs"]).items()
        }
        built.append(getattr(torch.nn, name)(**kwargs))
    return torch.nn.Sequential(*built)


def _resize_to(model: Any, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Replace the layers whose weights have other shapes in ``shapes`` (a pruned model)."""
    torch = _torch()
    nn = torch.nn
    for name, module in list(model.named_modules()):
        weight = shapes.get(f"{name}.weight" if name else "weight")
        if weight is None or tuple(module.weight.shape) == weight:
            continue
        has_bias = getattr(module, "bias", None) is not None
        new: Any
        if isinstance(module, nn.Linear):
            new = nn.Linear(weight[1], weight[0], bias=has_bias)
        elif isinstance(module, (nn.Conv1d, nn.Conv2d)):
            new = type(module)(
                weight[1] * module.groups,
                weight[0],
                kernel_size=module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                groups=module.groups,
                bias=has_bias,
                padding_mode=module.padding_mode,
            )
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            new = type(module)(
                weight[0],
                eps=module.eps,
                momentum=module.momentum,
                affine=module.affine,
                track_running_stats=module.track_running_stats,
            )
        elif isinstance(module, nn.LayerNorm):
            new = nn.LayerNorm(weight, eps=module.eps, elementwise_affine=module.elementwise_affine)
        elif isinstance(module, nn.Embedding):
            new = nn.Embedding(weight[0], weight[1], padding_idx=module.padding_idx)
        else:
            raise CompressionError(
                f"layer {name} ({type(module).__name__}) has weights of shape {weight}, not "
                f"{tuple(module.weight.shape)}, and the evaluator cannot resize that type"
            )
        model.set_submodule(name, new)


def save_fp32(model: Any, folder: Path, facts: Mapping[str, Any], workload_spec: str) -> None:
    """Write ``model``'s weights and ``technique.json`` (with how to rebuild it) to ``folder``.

    ``workload_spec`` is what the evaluator gets as ``spec["workload"]``.
    """
    safetensors_torch = require("safetensors.torch", "compress", error=MissingExtraError)
    folder.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().float()
    architecture = _architecture(model, workload_spec)
    safetensors_torch.save_model(model, str(folder / "model.safetensors"))
    parameters = int(sum(p.numel() for p in model.parameters()))
    document = {"format": FORMAT, **facts, "architecture": architecture, "parameters": parameters}
    (folder / "technique.json").write_text(json.dumps(document, indent=2), encoding="utf-8")


def read_facts(folder: Path) -> dict[str, Any]:
    """``technique.json`` of a candidate folder.

    Raises:
        CompressionError: It is missing or not the format this version writes.
    """
    path = Path(folder) / "technique.json"
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CompressionError(f"cannot read the candidate's {path}: {exc}") from exc
    if not isinstance(facts, dict) or facts.get("format") != FORMAT:
        raise CompressionError(f"{path} is not a torch candidate of format {FORMAT}")
    return facts


def load_fp32(folder: Path, workload_spec: str) -> Any:
    """The candidate's fp32 module (CPU, eval mode) with its weights loaded.

    Raises:
        CompressionError: The folder is not a candidate, or its weights do not fit.
    """
    from as_bench.export import load_torch_model, load_workload

    safetensors_torch = require("safetensors.torch", "compress", error=MissingExtraError)
    facts = read_facts(folder)
    architecture = facts["architecture"]
    kind = architecture["kind"]
    weights = Path(folder) / "model.safetensors"
    if kind == "sequential":
        model = _build_sequential(architecture["layers"])
    else:
        model = load_torch_model(load_workload(workload_spec), "torchao")
        if kind == "resized":
            with safetensors_torch.safe_open(str(weights), framework="pt") as f:
                shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            _resize_to(model, shapes)
    try:
        safetensors_torch.load_model(model, str(weights), strict=True)
    except RuntimeError as exc:
        raise CompressionError(
            f"the candidate's weights do not fit its {kind} model: {exc}".replace("\n", " ")
        ) from exc
    return model.float().eval()


# -- the transformations --------------------------------------------------------------


def _linear_only(module: Any, fqn: str) -> bool:
    return type(module).__name__ == "Linear"


def _config(technique: str, knobs: Mapping[str, Any]) -> tuple[Any, Any]:
    """Torchao's config for ``technique`` and the dtype the model must be in first."""
    torch = _torch()
    q = _quantization()
    if technique == "torchao-int8-dynamic":
        granularity = q.PerTensor() if knobs.get("granularity") == "per_tensor" else q.PerRow()
        config = q.Int8DynamicActivationInt8WeightConfig(
            granularity=granularity, set_inductor_config=False
        )
        return config, torch.float32
    if technique == "torchao-int8-weight-only":
        return q.Int8WeightOnlyConfig(set_inductor_config=False), torch.float32
    if technique == "torchao-int4-weight-only":
        formats = importlib.import_module(
            "torchao.quantization.quantize_.workflows.int4.int4_packing_format"
        )
        config = q.Int4WeightOnlyConfig(
            group_size=int(knobs.get("group_size", 128)),
            int4_packing_format=formats.Int4PackingFormat.TILE_PACKED_TO_4D,
            set_inductor_config=False,
        )
        return config, torch.bfloat16
    if technique == "torchao-float8-dynamic":
        granularity = q.PerTensor() if knobs.get("granularity") == "per_tensor" else q.PerRow()
        config = q.Float8DynamicActivationFloat8WeightConfig(
            granularity=granularity, set_inductor_config=False
        )
        return config, torch.bfloat16
    raise CompressionInputError(f"no torch transformation named {technique!r}")


def prepare(model: Any, technique: str, knobs: Mapping[str, Any], device: str) -> Any:
    """``model`` (fp32) transformed by ``technique`` with ``knobs``, on ``device``.

    The model is changed in place and returned, in eval mode.

    Raises:
        TechniqueUnavailable: The transformation cannot run on ``device`` here (no kernel,
            a GPU too old); the message is torchao's error.
        CompressionInputError: An unknown technique or knob value.
    """
    torch = _torch()
    model = model.to(device).eval()
    if technique == "torch-half":
        dtype = str(knobs.get("dtype", "float16"))
        if dtype not in ("float16", "bfloat16"):
            raise CompressionInputError(f"torch-half: dtype {dtype!r} is not float16 or bfloat16")
        return model.to(getattr(torch, dtype))
    if technique == "torchao-float8-dynamic" and device.startswith("cuda"):
        capability = torch.cuda.get_device_capability(device)
        if capability < (8, 9):
            raise TechniqueUnavailable(
                f"float8 needs a CUDA GPU with compute capability 8.9 or more (Ada, Hopper); "
                f"this one ({torch.cuda.get_device_name(device)}) has "
                f"{capability[0]}.{capability[1]}"
            )
    config, dtype = _config(technique, knobs)
    model = model.to(dtype)
    try:
        _quantization().quantize_(model, config, filter_fn=_linear_only)
    except (ImportError, NotImplementedError, AssertionError, RuntimeError) as exc:
        text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        raise TechniqueUnavailable(f"{technique} on {device}: {text}") from exc
    return model.eval()


@functools.cache
def probe(technique: str, device: str, knobs: tuple[tuple[str, Any], ...] = ()) -> str | None:
    """``None`` when ``technique`` quantizes and runs a small ``Linear`` on ``device``.

    Otherwise the reason, with torchao's error text. Cached per process.
    """
    torch = _torch()
    try:
        layer = torch.nn.Sequential(torch.nn.Linear(256, 256))
        prepared = prepare(layer, technique, dict(knobs), device)
        dtype = next(prepared.parameters()).dtype if technique == "torch-half" else None
        with torch.inference_mode():
            prepared(torch.ones(2, 256, device=device, dtype=dtype or _compute_dtype(technique)))
    except TechniqueUnavailable as exc:
        return str(exc)
    except Exception as exc:
        return f"{technique} on {device}: {type(exc).__name__}: {exc}".replace("\n", " ")
    return None


def _compute_dtype(technique: str) -> Any:
    torch = _torch()
    if technique in ("torchao-int4-weight-only", "torchao-float8-dynamic"):
        return torch.bfloat16
    return torch.float32


def compute_dtype(model: Any) -> Any:
    """The floating dtype a prepared model takes its inputs in (that of its first float)."""
    torch = _torch()
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def _tensor_bytes(tensor: Any) -> int:
    flatten = getattr(tensor, "__tensor_flatten__", None)
    if flatten is not None and type(tensor).__name__ != "Parameter":
        names, _ = flatten()
        return sum(_tensor_bytes(getattr(tensor, name)) for name in names)
    inner = getattr(tensor, "data", tensor)
    if inner is not tensor and hasattr(inner, "__tensor_flatten__"):
        return _tensor_bytes(inner)
    return int(tensor.numel() * tensor.element_size())


def weight_bytes(model: Any) -> int:
    """Bytes of ``model``'s parameters and buffers in memory, torchao tensors unpacked."""
    seen: set[int] = set()
    total = 0
    for tensor in (*model.parameters(), *model.buffers()):
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += _tensor_bytes(tensor)
    return total


def quantized_weights(model: Any) -> dict[str, str]:
    """Each ``Linear`` weight's storage: torchao's tensor class and its data dtype."""
    torch = _torch()
    found: dict[str, str] = {}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        weight = module.weight
        kind = type(weight.data if type(weight).__name__ == "Parameter" else weight).__name__
        inner = getattr(weight, "qdata", None)
        dtype = inner.dtype if inner is not None else weight.dtype
        found[name] = f"{kind}:{str(dtype).removeprefix('torch.')}"
    return found


# -- the techniques -------------------------------------------------------------------


def _local_device() -> str:
    torch = _torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class _TorchTechnique:
    """What the torch techniques share: the candidate folder, knob checks, Linear facts."""

    name: str = ""
    runtime: str = "torch"
    targets: tuple[str, ...] = ("cpu", "cuda")
    description: str = ""
    when_it_pays: str = ""

    def _knob_values(self) -> dict[str, tuple[Any, ...]]:
        return {}

    def knobs(self) -> list[dict[str, Any]]:
        """One setting per value of its knob (or one setting without knobs)."""
        values = self._knob_values()
        if not values:
            return [{}]
        ((key, options),) = values.items()
        return [{key: value} for value in options]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """The knob's values."""
        return self._knob_values()

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        """Torchao changes ``nn.Linear`` layers (``Gemm``, ``MatMul`` in ONNX) only."""
        if op_type in _LINEAR_OPS:
            return True, "nn.Linear weights quantized by torchao"
        return False, "torchao quantizes nn.Linear layers only; stays as it is"

    def _linear_facts(self, model: ModelFacts) -> tuple[bool, str]:
        if torchao_version() is None:
            return False, NO_TORCHAO
        found = sorted(model.op_types & _LINEAR_OPS)
        if not found:
            return False, "torchao quantizes nn.Linear layers; the model has none"
        return True, f"quantizes the nn.Linear layers ({', '.join(found)} in ONNX)"

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It applies when the model has ``nn.Linear`` layers."""
        return self._linear_facts(model)

    def _check(self, knobs: Mapping[str, Any]) -> None:
        values = self._knob_values()
        for key, value in knobs.items():
            if key not in values:
                raise CompressionInputError(f"{self.name}: unknown knob {key!r}")
            if value not in values[key]:
                raise CompressionInputError(
                    f"{self.name}: {key} {value!r} is not one of {values[key]}"
                )

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        """Write ``model.torch/`` beside ``output``: fp32 weights and ``technique.json``.

        ``baseline`` (the ONNX file) is not used; the weights are ``context.torch_model``'s
        (the workload's model, or a torch stage's). The transformation itself happens in
        the evaluator, on its device.

        Raises:
            CompressionInputError: Unknown knobs, or no torch model in the context.
            CompressionError: The model cannot be rebuilt by the evaluator.
        """
        self._check(knobs)
        if context.torch_model is None:
            raise CompressionInputError(f"{self.name}: needs the torch model in its context")
        folder = output.with_suffix(ARTIFACT_SUFFIX)
        facts = {
            "technique": self.name,
            "knobs": dict(knobs),
            "torch": str(_torch().__version__),
            "torchao": torchao_version(),
        }
        spec = context.workload_spec or str(getattr(context.workload, "name", ""))
        save_fp32(context.torch_model, folder, facts, spec)
        return folder


@dataclass
class Int8Dynamic(_TorchTechnique):
    """torchao int8 weights and int8 activations quantized per call, ``nn.Linear`` only."""

    granularities: Sequence[str] = ("per_row", "per_tensor")
    name: str = "torchao-int8-dynamic"
    description: str = (
        "torchao: nn.Linear weights int8, activations quantized to int8 at each call (torch)"
    )
    when_it_pays: str = (
        "large Linear layers on CUDA (int8 matrix products, best under torch.compile): "
        "a quarter of the Linear weights' memory. In eager mode on the CPU the per-call "
        "quantization usually costs more than it saves"
    )

    def _knob_values(self) -> dict[str, tuple[Any, ...]]:
        return {"granularity": tuple(self.granularities)}


@dataclass
class Int8WeightOnly(_TorchTechnique):
    """torchao int8 weights per row, dequantized in the product; ``nn.Linear`` only."""

    name: str = "torchao-int8-weight-only"
    description: str = "torchao: nn.Linear weights int8 per row, activations stay float (torch)"
    when_it_pays: str = (
        "memory-bound Linear layers (small batches, large weights, as in language models "
        "decoding on a GPU): a quarter of the weights' memory traffic; little accuracy lost"
    )


@dataclass
class Int4WeightOnly(_TorchTechnique):
    """torchao int4 weights in groups (tinygemm's format on CUDA); ``nn.Linear`` only."""

    group_sizes: Sequence[int] = (128, 64, 32)
    name: str = "torchao-int4-weight-only"
    targets: tuple[str, ...] = ("cuda",)
    description: str = (
        "torchao: nn.Linear weights 4-bit in groups, bf16 activations (tinygemm, CUDA)"
    )
    when_it_pays: str = (
        "large Linear layers on CUDA at small batches: an eighth of fp32's weight memory. "
        "tinygemm pads each layer's input size to a multiple of 1024, so small layers grow "
        "instead (the evaluator's weight_bytes shows it); layers whose input size is not a "
        "multiple of the group size stay bf16"
    )

    def _knob_values(self) -> dict[str, tuple[Any, ...]]:
        return {"group_size": tuple(int(g) for g in self.group_sizes)}

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It needs ``nn.Linear`` layers and torchao's int4 kernel, which needs CUDA."""
        ok, why = self._linear_facts(model)
        if not ok:
            return ok, why
        device = _local_device()
        failure = probe(self.name, device)
        if failure is not None:
            what = "no x86 CPU kernel in torchao here" if device == "cpu" else "fails here"
            return False, f"int4 weight-only has {what}: {failure}"
        return True, f"{why}; 4-bit groups on {device}"


@dataclass
class Float8Dynamic(_TorchTechnique):
    """torchao float8 (e4m3) weights and activations; ``nn.Linear`` only; CUDA >= 8.9."""

    granularities: Sequence[str] = ("per_row", "per_tensor")
    name: str = "torchao-float8-dynamic"
    targets: tuple[str, ...] = ("cuda",)
    description: str = "torchao: nn.Linear weights and activations float8 e4m3 (CUDA, sm89+)"
    when_it_pays: str = (
        "compute-bound Linear layers on Ada or Hopper GPUs (float8 tensor cores): about "
        "twice bf16's throughput on large matrix products; a quarter of fp32's weights"
    )

    def _knob_values(self) -> dict[str, tuple[Any, ...]]:
        return {"granularity": tuple(self.granularities)}

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It needs ``nn.Linear`` layers and a CUDA GPU of compute capability 8.9 or more."""
        ok, why = self._linear_facts(model)
        if not ok:
            return ok, why
        torch = _torch()
        if not torch.cuda.is_available():
            return False, (
                "float8 needs a CUDA GPU with compute capability 8.9 or more (Ada, Hopper); "
                "torch sees no CUDA GPU here"
            )
        failure = probe(self.name, "cuda")
        if failure is not None:
            return False, failure
        return True, f"{why}; float8 on {torch.cuda.get_device_name()}"


@dataclass
class TorchHalf(_TorchTechnique):
    """The whole module in fp16 or bf16 (``module.to(dtype)``); inputs cast, outputs fp32."""

    dtypes: Sequence[str] = ("float16", "bfloat16")
    name: str = "torch-half"
    targets: tuple[str, ...] = ("cpu", "cuda", "mps")
    description: str = "torch: every weight and activation in float16 or bfloat16"
    when_it_pays: str = (
        "GPUs (CUDA, Apple's MPS), which compute in half precision natively: half the "
        "weights and often faster. On the CPU float16 is usually much slower than fp32; "
        "bfloat16 keeps fp32's speed or beats it where the CPU has bf16 instructions"
    )

    def _knob_values(self) -> dict[str, tuple[Any, ...]]:
        return {"dtype": tuple(self.dtypes)}

    def supports_op(self, op_type: str) -> tuple[bool, str]:
        """Every float operator runs in half precision."""
        return True, "runs in half precision"

    def applies_to(self, model: ModelFacts) -> tuple[bool, str]:
        """It applies to every float model; on the CPU it says fp16 is usually slow."""
        if not model.op_types:
            return False, "the model has no operators"
        return True, (
            "converts every weight and activation (on the CPU float16 usually runs slower "
            "than fp32; bfloat16 needs the CPU's bf16 instructions to be fast)"
        )


def torch_techniques() -> list[Technique]:
    """The torch-runtime techniques with their default knobs."""
    return [Int8Dynamic(), Int8WeightOnly(), Int4WeightOnly(), Float8Dynamic(), TorchHalf()]
