"""What a model is made of and where its time goes: the facts compression decisions rest on.

:func:`profile_workload` runs the workload's torch model on the CPU with forward hooks on
every leaf module (a module without children) and reports, per layer and per layer type:
parameters and their bytes by dtype, multiply-accumulates (Conv and Linear, from the
shapes the hooks see), the bytes of each layer's output (activation memory), the share of
the measured forward time (torch.profiler, one labelled range per leaf module), the
arithmetic intensity at batch 1 and at a larger batch against the machine's ridge point
(compute- or memory-bound), and which compression techniques apply to which layers.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any, Literal

from pydantic import BaseModel, Field

from as_core.extras import require
from as_optimize.compress._techniques import (
    LAYER_OPS,
    ModelFacts,
    Technique,
    default_techniques,
    layer_support,
)
from as_optimize.exceptions import CompressionInputError, MissingExtraError

__all__ = [
    "LayerProfile",
    "LayerTypeProfile",
    "MachineBalance",
    "ModelProfile",
    "TechniqueFit",
    "measure_machine_balance",
    "profile_workload",
]

#: The version of the profile's JSON layout; it grows when fields change meaning.
PROFILE_SCHEMA_VERSION = 1

Bound = Literal["compute", "memory", "not counted"]


class DtypeBytes(BaseModel):
    """Parameters of one dtype and the bytes they take."""

    parameters: int
    bytes: int


class LayerProfile(BaseModel):
    """One leaf module at batch 1 (intensity also at the larger batch).

    Attributes:
        name: The module's qualified name in the model (``features.0``).
        type: Its class name (``Conv2d``).
        parameters: Parameters it owns.
        bytes: Bytes those parameters take.
        macs: Multiply-accumulates of one batch-1 call; ``None`` for layer types whose
            MACs are not counted (everything but Conv and Linear).
        output_shape: The shape of its (first) output at batch 1.
        activation_bytes: Bytes of its outputs at batch 1.
        intensity: FLOPs (2 x MACs) per byte moved (weights, inputs and outputs read or
            written once) at batch 1 and at the larger batch; ``None`` where MACs are not
            counted.
        bound: ``compute`` when the intensity is above the machine's ridge point,
            ``memory`` below it, at batch 1 and at the larger batch.
    """

    name: str
    type: str
    parameters: int
    bytes: int
    macs: int | None
    output_shape: list[int]
    activation_bytes: int
    intensity: dict[str, float | None]
    bound: dict[str, Bound]


class LayerTypeProfile(BaseModel):
    """Every layer of one type together."""

    layers: int
    parameters: int
    bytes: int
    macs: int | None
    activation_bytes: int
    latency_share: float = Field(description="share of the profiled forward time, 0..1")


class TechniqueFit(BaseModel):
    """Whether a technique applies to the model, and to each layer type, with the reason."""

    technique: str
    applies: bool
    reason: str
    layer_types: dict[str, dict[str, Any]]


class MachineBalance(BaseModel):
    """The machine's rough compute-to-memory ratio (its roofline's ridge point).

    Attributes:
        peak_flops: FLOP/s of a large fp32 matrix product in torch on this CPU.
        bandwidth_bytes_s: Bytes/s of copying a buffer far larger than the caches.
        ridge_flops_per_byte: ``peak_flops / bandwidth_bytes_s``: a layer doing fewer
            FLOPs per byte it moves waits on memory, one doing more waits on arithmetic.
        source: ``measured`` (here, now, with the threads given) or ``given``.
        threads: Threads the figures were measured with.
    """

    peak_flops: float | None
    bandwidth_bytes_s: float | None
    ridge_flops_per_byte: float
    source: Literal["measured", "given"]
    threads: int


class ModelProfile(BaseModel):
    """The profile of one workload's model (``as-optimize profile --json``)."""

    schema_version: int = PROFILE_SCHEMA_VERSION
    workload: str
    task: str
    input_shapes: list[list[int]]
    large_batch: int
    parameters: int
    parameter_bytes: int
    by_dtype: dict[str, DtypeBytes]
    by_layer_type: dict[str, LayerTypeProfile]
    layers: list[LayerProfile]
    macs: dict[str, int]
    activation_bytes: dict[str, int]
    forward_time_s: float
    latency_outside_layers_share: float
    machine: MachineBalance
    bound: dict[str, Bound]
    techniques: list[TechniqueFit]


def _torch() -> Any:
    return require("torch", "compress", error=MissingExtraError)


def measure_machine_balance(threads: int, *, seconds: float = 0.3) -> MachineBalance:
    """Measure the CPU's fp32 matmul FLOP/s and copy bandwidth, roughly (a few tenths of s).

    Both are taken with torch on ``threads`` threads, the best of repeated calls over about
    ``seconds`` each: a rough ridge point for telling compute- from memory-bound layers,
    not a benchmark (a busy machine reads lower).
    """
    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        n = 1024
        a = torch.randn(n, n)
        b = torch.randn(n, n)
        best = _best_time(lambda: torch.mm(a, b), seconds)
        flops = 2.0 * n**3 / best
        src = torch.empty(64 * 2**20 // 4)  # 64 MiB, far beyond the last-level cache
        dst = torch.empty_like(src)
        best_copy = _best_time(lambda: dst.copy_(src), seconds)
        bandwidth = 2.0 * src.numel() * 4 / best_copy  # read once, written once
    finally:
        torch.set_num_threads(before)
    return MachineBalance(
        peak_flops=flops,
        bandwidth_bytes_s=bandwidth,
        ridge_flops_per_byte=flops / bandwidth,
        source="measured",
        threads=threads,
    )


def _best_time(fn: Any, seconds: float) -> float:
    fn()
    best = math.inf
    deadline = time.perf_counter() + seconds
    calls = 0
    while calls < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
        calls += 1
    return best


def _macs(module: Any, inputs: tuple[Any, ...], output: Any) -> int | None:
    torch = _torch()
    nn = torch.nn
    if isinstance(module, nn.modules.conv._ConvNd):
        # Every output element sums in_channels/groups x kernel products.
        kernel = math.prod(module.kernel_size)
        return int(output.numel() * (module.in_channels // module.groups) * kernel)
    if isinstance(module, nn.Linear):
        return int(output.numel() * module.in_features)
    return None


def _tensor_bytes(value: Any) -> int:
    torch = _torch()
    if isinstance(value, torch.Tensor):
        return int(value.numel() * value.element_size())
    if isinstance(value, (tuple, list)):
        return sum(_tensor_bytes(item) for item in value)
    if isinstance(value, dict):
        return sum(_tensor_bytes(item) for item in value.values())
    return 0


def _first_shape(value: Any) -> list[int]:
    torch = _torch()
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, (tuple, list)) and value:
        return _first_shape(value[0])
    if isinstance(value, dict) and value:
        return _first_shape(next(iter(value.values())))
    return []


def _leaf_modules(model: Any) -> list[tuple[str, Any]]:
    return [(name, m) for name, m in model.named_modules() if name and not list(m.children())]


def _trace(model: Any, args: tuple[Any, ...]) -> dict[str, dict[str, Any]]:
    """One forward pass with hooks: per leaf module, its MACs, I/O bytes and output shape."""
    torch = _torch()
    seen: dict[str, dict[str, Any]] = {}
    handles = []
    for name, module in _leaf_modules(model):

        def hook(mod: Any, inputs: tuple[Any, ...], output: Any, name: str = name) -> None:
            entry = seen.setdefault(
                name, {"macs": None, "in": 0, "out": 0, "shape": _first_shape(output)}
            )
            macs = _macs(mod, inputs, output)
            if macs is not None:
                entry["macs"] = (entry["macs"] or 0) + macs
            entry["in"] += _tensor_bytes(inputs)
            entry["out"] += _tensor_bytes(output)

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model(*args)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _profile_time(
    model: Any, args: tuple[Any, ...], iterations: int
) -> tuple[dict[str, float], float]:
    """Self-contained CPU time per leaf module type, and the forward's wall time (median)."""
    torch = _torch()
    from torch.profiler import ProfilerActivity, profile, record_function

    ranges: dict[str, Any] = {}
    handles = []
    for name, module in _leaf_modules(model):
        label = f"as_optimize::{type(module).__name__}::{name}"

        def enter(mod: Any, inputs: Any, label: str = label) -> None:
            ranges[label] = record_function(label)
            ranges[label].__enter__()

        def leave(mod: Any, inputs: Any, output: Any, label: str = label) -> None:
            ranges.pop(label).__exit__(None, None, None)

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    walls: list[float] = []
    try:
        with torch.inference_mode():
            for _ in range(3):
                model(*args)  # warm-up, outside the profile
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(iterations):
                    with record_function("as_optimize::forward"):
                        start = time.perf_counter()
                        model(*args)
                        walls.append(time.perf_counter() - start)
    finally:
        for handle in handles:
            handle.remove()
    per_type: dict[str, float] = defaultdict(float)
    forward_total = 0.0
    for event in prof.key_averages():
        if event.key == "as_optimize::forward":
            forward_total = event.cpu_time_total
        elif event.key.startswith("as_optimize::"):
            per_type[event.key.split("::")[1]] += event.cpu_time_total
    walls.sort()
    median = walls[len(walls) // 2]
    if forward_total <= 0:
        return {}, median
    return {kind: t / forward_total for kind, t in per_type.items()}, median


def _check(large_batch: int, threads: int, iterations: int, ridge: float | None) -> None:
    if large_batch < 2:
        raise CompressionInputError(f"--large-batch must be at least 2, not {large_batch}")
    if threads < 1:
        raise CompressionInputError(f"--threads must be at least 1, not {threads}")
    if iterations < 1:
        raise CompressionInputError(f"iterations must be at least 1, not {iterations}")
    if ridge is not None and not (math.isfinite(ridge) and ridge > 0):
        raise CompressionInputError(f"--ridge must be a positive FLOP/byte figure, not {ridge}")


def _dtypes(model: Any) -> dict[str, DtypeBytes]:
    by_dtype: dict[str, DtypeBytes] = {}
    for parameter in list(model.parameters()) + list(model.buffers()):
        dtype = str(parameter.dtype).removeprefix("torch.")
        entry = by_dtype.setdefault(dtype, DtypeBytes(parameters=0, bytes=0))
        entry.parameters += int(parameter.numel())
        entry.bytes += int(parameter.numel() * parameter.element_size())
    return by_dtype


def _intensity(
    weight_bytes: int, traces: dict[str, dict[str, Any]], ridge: float
) -> tuple[dict[str, float | None], dict[str, Bound]]:
    intensity: dict[str, float | None] = {}
    bound: dict[str, Bound] = {}
    for key, entry in traces.items():
        if entry["macs"] is None:
            intensity[key] = None
            bound[key] = "not counted"
            continue
        moved = weight_bytes + entry["in"] + entry["out"]
        value = 2.0 * entry["macs"] / moved if moved else math.inf
        intensity[key] = value
        bound[key] = "compute" if value > ridge else "memory"
    return intensity, bound


def _layers(
    model: Any, trace1: dict[str, Any], tracen: dict[str, Any], large: str, ridge: float
) -> list[LayerProfile]:
    layers: list[LayerProfile] = []
    for name, module in _leaf_modules(model):
        params = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        weight_bytes = sum(int(p.numel() * p.element_size()) for p in params)
        one = trace1.get(name)
        if one is None:
            continue  # never called in forward (an unused head, say)
        intensity, bound = _intensity(weight_bytes, {"batch_1": one, large: tracen[name]}, ridge)
        layers.append(
            LayerProfile(
                name=name,
                type=type(module).__name__,
                parameters=sum(int(p.numel()) for p in params),
                bytes=weight_bytes,
                macs=one["macs"],
                output_shape=one["shape"],
                activation_bytes=one["out"],
                intensity=intensity,
                bound=bound,
            )
        )
    return layers


def _by_type(layers: list[LayerProfile], shares: dict[str, float]) -> dict[str, LayerTypeProfile]:
    by_type: dict[str, LayerTypeProfile] = {}
    for layer in layers:
        entry = by_type.setdefault(
            layer.type,
            LayerTypeProfile(
                layers=0,
                parameters=0,
                bytes=0,
                macs=None,
                activation_bytes=0,
                latency_share=shares.get(layer.type, 0.0),
            ),
        )
        entry.layers += 1
        entry.parameters += layer.parameters
        entry.bytes += layer.bytes
        entry.activation_bytes += layer.activation_bytes
        if layer.macs is not None:
            entry.macs = (entry.macs or 0) + layer.macs
    return by_type


def _fits(workload: Any, layer_types: list[str], techniques: list[Technique]) -> list[TechniqueFit]:
    facts = ModelFacts(
        task=workload.task,
        has_data=workload.dataset is not None,
        op_types=frozenset(op for kind in layer_types for op in LAYER_OPS.get(kind, ())),
    )
    fits = []
    for technique in techniques:
        applies, reason = technique.applies_to(facts)
        per_type: dict[str, dict[str, Any]] = {}
        for kind in layer_types:
            ok, why = layer_support(technique, kind)
            per_type[kind] = {"applies": ok, "reason": why}
        fits.append(
            TechniqueFit(
                technique=technique.name,
                applies=applies,
                reason=f"{reason} (judged from the layer types)",
                layer_types=per_type,
            )
        )
    return fits


def _totals(
    traces: dict[str, dict[str, dict[str, Any]]], weight_bytes: int, ridge: float
) -> tuple[dict[str, int], dict[str, int], dict[str, Bound]]:
    macs: dict[str, int] = {}
    activations: dict[str, int] = {}
    bound: dict[str, Bound] = {}
    for key, trace in traces.items():
        macs[key] = sum(e["macs"] or 0 for e in trace.values())
        activations[key] = sum(e["out"] for e in trace.values())
        moved = weight_bytes + sum(e["in"] + e["out"] for e in trace.values())
        bound[key] = "compute" if moved and 2.0 * macs[key] / moved > ridge else "memory"
    return macs, activations, bound


def profile_workload(
    spec: str,
    *,
    large_batch: int = 64,
    threads: int = 1,
    iterations: int = 50,
    ridge_flops_per_byte: float | None = None,
    techniques: list[Technique] | None = None,
) -> ModelProfile:
    """Profile the model of workload ``spec`` (a built-in name or ``pkg.module:factory``).

    Args:
        spec: The workload, as ``as-bench`` names it.
        large_batch: The larger batch at which intensity is reported besides batch 1.
        threads: torch threads for the timed forward passes and the machine's balance.
        iterations: Profiled forward passes at batch 1.
        ridge_flops_per_byte: The machine's ridge point, if known; measured otherwise.
        techniques: The techniques to check; the built-in ones by default.

    Raises:
        CompressionInputError: ``spec`` names no workload, or a number is out of range.
    """
    _check(large_batch, threads, iterations, ridge_flops_per_byte)
    from as_optimize.compress._workloads import load

    workload, model = load(spec)
    torch = _torch()
    from as_bench.export import torch_inputs

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        args1 = torch_inputs(workload.inputs(1))
        trace1 = _trace(model, args1)
        tracen = _trace(model, torch_inputs(workload.inputs(large_batch)))
        shares, forward_s = _profile_time(model, args1, iterations)
    finally:
        torch.set_num_threads(before)
    if ridge_flops_per_byte is None:
        machine = measure_machine_balance(threads)
    else:
        machine = MachineBalance(
            peak_flops=None,
            bandwidth_bytes_s=None,
            ridge_flops_per_byte=ridge_flops_per_byte,
            source="given",
            threads=threads,
        )
    ridge = machine.ridge_flops_per_byte
    large = f"batch_{large_batch}"
    by_dtype = _dtypes(model)
    layers = _layers(model, trace1, tracen, large, ridge)
    by_type = _by_type(layers, shares)
    weight_total = sum(d.bytes for d in by_dtype.values())
    macs, activations, bound = _totals({"batch_1": trace1, large: tracen}, weight_total, ridge)
    return ModelProfile(
        workload=workload.name,
        task=workload.task,
        input_shapes=[list(a.shape) for a in workload.inputs(1)],
        large_batch=large_batch,
        parameters=sum(d.parameters for d in by_dtype.values()),
        parameter_bytes=weight_total,
        by_dtype=by_dtype,
        by_layer_type=by_type,
        layers=layers,
        macs=macs,
        activation_bytes=activations,
        forward_time_s=forward_s,
        latency_outside_layers_share=max(0.0, 1.0 - sum(shares.values())),
        machine=machine,
        bound=bound,
        techniques=_fits(
            workload,
            sorted(by_type),
            techniques if techniques is not None else default_techniques(),
        ),
    )
