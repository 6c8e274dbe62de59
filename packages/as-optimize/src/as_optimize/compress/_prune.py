"""Pruning: structured channel pruning that removes channels, and magnitude pruning.

Two torch-side stages (see :mod:`as_optimize.compress._pipeline`):

- ``prune-channels`` (:class:`ChannelPruning`, :func:`prune_channels`): the model is traced
  with ``torch.fx``; a ``Conv1d``/``Conv2d``/``Linear`` layer whose outputs reach exactly
  one other such layer, through channel-wise operators only (BatchNorm, activations,
  pooling, dropout, a flatten into a ``Linear``), loses its weakest output channels. The
  layers are rebuilt smaller and dense (the producer's output channels, the BatchNorm's
  features and the consumer's input channels are sliced), so the model really has fewer
  parameters and fewer operations, on every runtime. Channels are ranked by the L1 norm
  of their weights, times the BatchNorm's scale when one follows. The model's outputs are
  never pruned (their shape is the workload's contract), nor channels that reach a
  residual add, a concatenation or more than one layer (they would have to be pruned
  alike everywhere): those layers are skipped, with the reason.
- ``prune-magnitude`` (:class:`MagnitudePruning`, :func:`magnitude_prune`): the smallest
  weights (globally, or within each layer) are set to zero. The tensors keep their shape,
  so dense kernels (ONNX Runtime's, every CPU backend's) do not get any faster and the
  file does not shrink until it is compressed; the search measures the candidate and its
  report says so. It pays on runtimes with sparse kernels, or before a compressor.

Both may fine-tune the pruned model from the original (knowledge distillation through
:func:`~as_optimize.compress._finetune.train_from_teacher`) on the search's training data.
Magnitude pruning then prunes gradually: the sparsity rises over the first half of the
steps (Zhu and Gupta's cubic schedule) and the masks are re-applied after every step, so
the zeroed weights stay zero.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from as_core.extras import require
from as_optimize.compress._techniques import ApplyContext
from as_optimize.exceptions import CompressionError, CompressionInputError, MissingExtraError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "ChannelPruning",
    "LayerPlan",
    "MagnitudePruning",
    "apply_masks",
    "channel_plan",
    "magnitude_masks",
    "magnitude_prune",
    "prunable",
    "prune_channels",
    "sparsity_at",
]

#: Layer types whose output channels may be pruned.
_PRODUCERS = ("Conv1d", "Conv2d", "Linear")

#: Modules that act on each channel alone and have no per-channel parameters.
_ELEMENTWISE_MODULES = (
    "ReLU",
    "ReLU6",
    "GELU",
    "SiLU",
    "Sigmoid",
    "Tanh",
    "LeakyReLU",
    "ELU",
    "Hardswish",
    "Hardsigmoid",
    "Mish",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Identity",
)
_POOL_MODULES = (
    "MaxPool1d",
    "MaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
)
_ELEMENTWISE_FUNCTIONS = (
    "relu",
    "relu6",
    "gelu",
    "silu",
    "sigmoid",
    "tanh",
    "leaky_relu",
    "elu",
    "hardswish",
    "hardsigmoid",
    "mish",
    "dropout",
)
_POOL_FUNCTIONS = (
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
)
_ELEMENTWISE_METHODS = ("relu", "sigmoid", "tanh", "contiguous")
_MERGES = {
    operator.add: "a residual add",
    operator.iadd: "a residual add",
    operator.mul: "an elementwise product",
    operator.sub: "a subtraction",
}


def _torch() -> Any:
    return require("torch", "compress", error=MissingExtraError)


@dataclass(frozen=True)
class LayerPlan:
    """What channel pruning does with one layer.

    Attributes:
        name: The layer's qualified name in the model (``features.0``).
        kind: Its type (``Conv2d``, ``Linear``).
        channels: Its number of output channels (features, for a ``Linear``).
        prunable: Whether its output channels may be pruned.
        why: The reason, in words, either way.
        batchnorm: The BatchNorm that follows it, when one does.
        consumer: The layer its outputs feed.
        spatial: Inputs of the consumer per channel (greater than 1 after a flatten).
    """

    name: str
    kind: str
    channels: int
    prunable: bool
    why: str
    batchnorm: str | None = None
    consumer: str | None = None
    spatial: int = 1


def _trace(model: Any) -> Any:
    fx = _torch().fx
    try:
        return fx.symbolic_trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError, ... from user code
        raise CompressionError(
            f"channel pruning: torch.fx cannot trace the model ({type(exc).__name__}: {exc}); "
            "a forward with data-dependent control flow cannot be pruned this way"
        ) from exc


def _propagate_shapes(traced: Any, example_inputs: Sequence[Any]) -> None:
    torch = _torch()
    from torch.fx.passes.shape_prop import ShapeProp

    tensors = [torch.as_tensor(np.array(a)) for a in example_inputs]
    try:
        with torch.no_grad():
            ShapeProp(traced).propagate(*tensors)
    except Exception as exc:
        raise CompressionError(
            f"channel pruning: the traced model failed on the example inputs: {exc}"
        ) from exc


def _shape(node: Any) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return None if shape is None else tuple(int(d) for d in shape)


def _name_of(target: Any) -> str:
    return str(getattr(target, "__name__", target))


def _only_input(node: Any, source: Any) -> bool:
    """Whether ``source`` is ``node``'s first argument and no other argument is a node."""
    fx = _torch().fx
    if not node.args or node.args[0] is not source:
        return False
    rest = [*node.args[1:], *node.kwargs.values()]
    return not any(isinstance(a, fx.Node) for a in rest)


def _flatten_dims(node: Any) -> tuple[int, int]:
    args = list(node.args[1:])
    start = node.kwargs.get("start_dim", args[0] if args else 0)
    end = node.kwargs.get("end_dim", args[1] if len(args) > 1 else -1)
    return int(start), int(end)


@dataclass
class _Walk:
    """The state of one producer's walk to its consumer."""

    batchnorm: str | None = None
    flattened: bool = False
    spatial: int = 1
    consumer: str | None = None
    why: str = ""
    steps: list[str] = field(default_factory=list)


def _walk(
    producer: Any, kind: str, channels: int, modules: Mapping[str, Any], calls: Mapping[str, int]
) -> _Walk:
    """Follow ``producer``'s output through channel-wise operators to one consumer layer."""
    walk = _Walk()
    node = producer
    conv = kind != "Linear"
    while True:
        users = list(node.users)
        if not users:
            walk.why = "its output is not used"
            return walk
        if len(users) > 1:
            walk.why = (
                f"its channels reach {len(users)} operators "
                f"({', '.join(u.name for u in users)}); all would have to be pruned alike"
            )
            return walk
        (user,) = users
        if user.op == "output":
            walk.why = "its outputs are the model's outputs, whose shape must not change"
            return walk
        if user.op == "call_module":
            going = _module_step(user, node, conv, channels, modules, calls, walk)
        elif user.op in ("call_function", "call_method"):
            going = _function_step(user, node, conv, walk)
        else:
            walk.why = f"its channels reach {user.op} {user.name}"
            going = False
        if not going:
            return walk
        node = user


def _module_step(
    user: Any,
    node: Any,
    conv: bool,
    channels: int,
    modules: Mapping[str, Any],
    calls: Mapping[str, int],
    walk: _Walk,
) -> bool:
    """One ``call_module`` on the way; ``False`` when the walk ends (consumer or reason)."""
    module = modules[str(user.target)]
    mkind = type(module).__name__
    target = str(user.target)
    if mkind in _PRODUCERS:
        walk.why = _consumer_why(user, node, conv, channels, module, calls, walk)
        if not walk.why:
            walk.consumer = target
        return False
    if mkind in ("BatchNorm1d", "BatchNorm2d"):
        shape = _shape(node)
        on_channels = shape is not None and (conv or len(shape) == 2)
        if (
            walk.batchnorm is not None
            or walk.flattened
            or module.num_features != channels
            or not on_channels
            or calls.get(target, 0) != 1
        ):
            walk.why = f"its channels reach {target} ({mkind}), which cannot be sliced"
            return False
        walk.batchnorm = target
    elif mkind in _ELEMENTWISE_MODULES or (mkind in _POOL_MODULES and conv and not walk.flattened):
        pass
    elif mkind == "Flatten" and conv and not walk.flattened:
        shape = _shape(node)
        if module.start_dim != 1 or module.end_dim != -1 or shape is None:
            walk.why = f"{target} flattens other axes than the channels' and after"
            return False
        walk.flattened = True
        walk.spatial = math.prod(shape[2:])
    else:
        walk.why = f"its channels reach {target} ({mkind}), which is not channel-wise"
        return False
    walk.steps.append(target)
    return True


def _consumer_why(
    user: Any,
    node: Any,
    conv: bool,
    channels: int,
    module: Any,
    calls: Mapping[str, int],
    walk: _Walk,
) -> str:
    """Why the layer ``module`` cannot take sliced input channels; ``""`` when it can."""
    target = str(user.target)
    mkind = type(module).__name__
    if not _only_input(user, node):
        return f"{target} takes its channels with other inputs"
    if calls.get(target, 0) != 1:
        return f"its consumer {target} is called {calls.get(target, 0)} times"
    if mkind == "Linear":
        if conv and not walk.flattened:
            return f"{target} (Linear) reads a channel axis it was not flattened into"
        got = int(module.in_features)
    else:
        if walk.flattened or module.groups != 1 or not conv:
            return f"its consumer {target} ({mkind}) does not take whole channels"
        got = int(module.in_channels)
    expected = channels * walk.spatial
    if got != expected:
        return f"its consumer {target} takes {got} inputs, not {expected} ({channels} channels)"
    return ""


def _function_step(user: Any, node: Any, conv: bool, walk: _Walk) -> bool:
    """One ``call_function``/``call_method`` on the way; ``False`` when the walk ends."""
    name = _name_of(user.target) if user.op == "call_function" else str(user.target)
    if user.op == "call_function" and user.target in _MERGES:
        walk.why = f"its channels reach {_MERGES[user.target]} ({user.name})"
        return False
    if name in ("add", "add_", "sub", "mul", "mul_"):
        walk.why = f"its channels reach {name} ({user.name}), a residual or merge"
        return False
    if name in ("cat", "stack", "concat", "concatenate"):
        walk.why = f"its channels reach a concatenation ({user.name})"
        return False
    if not _only_input(user, node):
        walk.why = f"its channels reach {name} ({user.name}) with other tensors"
        return False
    if user.op == "call_function":
        elementwise = name in _ELEMENTWISE_FUNCTIONS
        pooling = name in _POOL_FUNCTIONS and conv and not walk.flattened
    else:
        elementwise = name in _ELEMENTWISE_METHODS
        pooling = False
    if elementwise or pooling:
        pass
    elif name == "flatten" and conv and not walk.flattened:
        shape = _shape(node)
        if _flatten_dims(user) != (1, -1) or shape is None:
            walk.why = f"{user.name} flattens other axes than the channels' and after"
            return False
        walk.flattened = True
        walk.spatial = math.prod(shape[2:])
    else:
        walk.why = f"its channels reach {name} ({user.name}), which is not channel-wise"
        return False
    walk.steps.append(user.name)
    return True


def _calls(traced: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in traced.graph.nodes:
        if node.op == "call_module":
            counts[str(node.target)] = counts.get(str(node.target), 0) + 1
    return counts


def channel_plan(model: Any, example_inputs: Sequence[Any]) -> list[LayerPlan]:
    """Which layers channel pruning can shrink, and why each other one is skipped.

    Args:
        model: The torch module (not changed).
        example_inputs: One batch of inputs (NumPy or tensors), to follow the shapes.

    Returns:
        One plan per ``Conv1d``/``Conv2d``/``Linear`` layer, in the order of the graph.

    Raises:
        CompressionError: The model cannot be traced with ``torch.fx`` or run.
        MissingExtraError: torch is not installed.
    """
    traced = _trace(model)
    _propagate_shapes(traced, example_inputs)
    modules = dict(traced.named_modules())
    calls = _calls(traced)
    used_params = {
        str(n.target).rsplit(".", 1)[0] for n in traced.graph.nodes if n.op == "get_attr"
    }
    plans: list[LayerPlan] = []
    seen: set[str] = set()
    for node in traced.graph.nodes:
        if node.op != "call_module":
            continue
        target = str(node.target)
        module = modules[target]
        kind = type(module).__name__
        if kind not in _PRODUCERS or target in seen:
            continue
        seen.add(target)
        channels = int(module.out_features if kind == "Linear" else module.out_channels)
        if calls[target] != 1:
            why = f"it is called {calls[target]} times (shared weights)"
            plans.append(LayerPlan(target, kind, channels, False, why))
            continue
        if target in used_params:
            why = "its parameters are also read directly by the forward"
            plans.append(LayerPlan(target, kind, channels, False, why))
            continue
        if kind != "Linear" and module.groups != 1:
            why = f"grouped convolution (groups={module.groups})"
            plans.append(LayerPlan(target, kind, channels, False, why))
            continue
        shape = _shape(node)
        axis_ok = shape is not None and (
            shape[-1] == channels if kind == "Linear" else shape[1] == channels
        )
        if not axis_ok:
            why = f"its output {shape} does not carry its {channels} channels where expected"
            plans.append(LayerPlan(target, kind, channels, False, why))
            continue
        walk = _walk(node, kind, channels, modules, calls)
        if walk.consumer is None:
            plans.append(LayerPlan(target, kind, channels, False, walk.why))
            continue
        through = f" through {', '.join(walk.steps)}" if walk.steps else ""
        why = f"its {channels} output channels feed {walk.consumer} alone{through}"
        plans.append(
            LayerPlan(
                target,
                kind,
                channels,
                True,
                why,
                batchnorm=walk.batchnorm,
                consumer=walk.consumer,
                spatial=walk.spatial if walk.flattened else 1,
            )
        )
    return plans


def prunable(model: Any, example_inputs: Sequence[Any]) -> tuple[bool, str]:
    """Whether :func:`prune_channels` can remove channels from ``model``, and why, in words.

    Never raises for a model it cannot handle: a trace that fails is a ``False`` with the
    reason.
    """
    try:
        plans = channel_plan(model, example_inputs)
    except CompressionError as exc:
        return False, str(exc)
    if not plans:
        return False, "the model has no Conv1d, Conv2d or Linear layer"
    chosen = [p.name for p in plans if p.prunable]
    skipped = "; ".join(f"{p.name}: {p.why}" for p in plans if not p.prunable)
    if not chosen:
        return False, f"no layer whose channels feed exactly one other layer ({skipped})"
    why = f"prunes the output channels of {', '.join(chosen)}"
    return True, f"{why}; skips {skipped}" if skipped else why


def _l1_scores(module: Any, batchnorm: Any) -> Any:
    torch = _torch()
    weight = module.weight.detach()
    scores = weight.abs().reshape(weight.shape[0], -1).sum(dim=1)
    if batchnorm is not None:
        scale = torch.ones_like(scores)
        if batchnorm.weight is not None:
            scale = batchnorm.weight.detach().abs()
        if batchnorm.running_var is not None:
            scale = scale / torch.sqrt(batchnorm.running_var.detach() + batchnorm.eps)
        scores = scores * scale
    return scores


def _kept(channels: int, ratio: float) -> int:
    return max(1, min(channels, math.floor((1.0 - ratio) * channels + 0.5)))


def _set_module(root: Any, name: str, module: Any) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _param(tensor: Any) -> Any:
    torch = _torch()
    return torch.nn.Parameter(tensor.detach().clone().contiguous())


def _sliced_layer(module: Any, out_index: Any | None, in_index: Any | None) -> Any:
    """A new dense layer like ``module`` with only the given output and input channels."""
    torch = _torch()
    weight = module.weight.detach()
    bias = None if module.bias is None else module.bias.detach()
    if out_index is not None:
        weight = weight[out_index]
        bias = None if bias is None else bias[out_index]
    if in_index is not None:
        weight = weight[:, in_index]
    out_n, in_n = int(weight.shape[0]), int(weight.shape[1])
    kind = type(module).__name__
    with torch.device("meta"):
        if kind == "Linear":
            new = torch.nn.Linear(in_n, out_n, bias=bias is not None)
        else:
            cls = torch.nn.Conv1d if kind == "Conv1d" else torch.nn.Conv2d
            new = cls(
                in_n,
                out_n,
                kernel_size=module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                groups=1,
                bias=bias is not None,
                padding_mode=module.padding_mode,
            )
    new.weight = _param(weight.to(module.weight.dtype))
    if bias is not None:
        new.bias = _param(bias)
    new.train(module.training)
    return new


def _sliced_batchnorm(module: Any, index: Any) -> Any:
    torch = _torch()
    cls = type(module)
    new = cls(
        len(index),
        eps=module.eps,
        momentum=module.momentum,
        affine=module.affine,
        track_running_stats=module.track_running_stats,
    )
    with torch.no_grad():
        if module.affine:
            new.weight = _param(module.weight[index])
            new.bias = _param(module.bias[index])
        if module.track_running_stats:
            new.running_mean.copy_(module.running_mean[index])
            new.running_var.copy_(module.running_var[index])
            new.num_batches_tracked.copy_(module.num_batches_tracked)
    new.train(module.training)
    return new


def prune_channels(model: Any, ratio: float, example_inputs: Sequence[Any]) -> nn.Module:
    """A copy of ``model`` with ``ratio`` of each prunable layer's output channels removed.

    Every layer :func:`channel_plan` finds prunable keeps its ``round((1 - ratio) * C)``
    (at least one) output channels with the largest L1 weight norm (times the following
    BatchNorm's scale), in their order; the BatchNorm and the consumer layer's inputs are
    sliced to match (after a flatten, the consumer's inputs are sliced by whole spatial
    blocks). The result is the same module class as ``model`` with smaller dense layers, in
    the mode ``model`` was in; ``model`` is not changed. Without fine-tuning the outputs
    move (the removed channels contributed); ``ratio=0`` returns an identical copy.

    Args:
        model: The fp32 torch module.
        ratio: The share of output channels to remove, in ``[0, 1)``.
        example_inputs: One batch of inputs (NumPy arrays or tensors).

    Raises:
        CompressionInputError: ``ratio`` is out of range.
        CompressionError: The model cannot be traced, has no prunable layer, or the pruned
            model's outputs do not have the original shapes.
        MissingExtraError: torch is not installed.
    """
    torch = _torch()
    if not 0.0 <= ratio < 1.0:
        raise CompressionInputError(
            f"channel pruning: ratio must be in [0, 1) (the share removed), not {ratio}"
        )
    plans = [p for p in channel_plan(model, example_inputs) if p.prunable]
    if not plans:
        _, why = prunable(model, example_inputs)
        raise CompressionError(f"channel pruning: nothing to prune: {why}")
    pruned = copy.deepcopy(model)
    out_index: dict[str, Any] = {}
    in_index: dict[str, Any] = {}
    bn_index: dict[str, Any] = {}
    for plan in plans:
        keep = _kept(plan.channels, ratio)
        if keep == plan.channels:
            continue
        module = pruned.get_submodule(plan.name)
        batchnorm = pruned.get_submodule(plan.batchnorm) if plan.batchnorm else None
        scores = _l1_scores(module, batchnorm)
        index = torch.sort(torch.topk(scores, keep, sorted=False).indices).values
        out_index[plan.name] = index
        if plan.batchnorm:
            bn_index[plan.batchnorm] = index
        assert plan.consumer is not None  # a prunable plan has its consumer
        if plan.spatial > 1:  # flattened: whole spatial blocks per channel
            block = torch.arange(plan.spatial)
            in_index[plan.consumer] = (index[:, None] * plan.spatial + block).reshape(-1)
        else:
            in_index[plan.consumer] = index
    with torch.no_grad():
        for name in sorted(set(out_index) | set(in_index)):
            old = pruned.get_submodule(name)
            _set_module(pruned, name, _sliced_layer(old, out_index.get(name), in_index.get(name)))
        for name, index in bn_index.items():
            _set_module(pruned, name, _sliced_batchnorm(pruned.get_submodule(name), index))
    _check_outputs(model, pruned, example_inputs)
    result: nn.Module = pruned
    return result


def _outputs(model: Any, example_inputs: Sequence[Any]) -> list[tuple[int, ...]]:
    torch = _torch()
    tensors = [torch.as_tensor(np.array(a)) for a in example_inputs]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(*tensors)
    finally:
        model.train(was_training)
    items = out if isinstance(out, (tuple, list)) else [out]
    return [tuple(getattr(o, "shape", ())) for o in items]


def _check_outputs(model: Any, pruned: Any, example_inputs: Sequence[Any]) -> None:
    before = _outputs(model, example_inputs)
    try:
        after = _outputs(pruned, example_inputs)
    except Exception as exc:
        raise CompressionError(f"channel pruning: the pruned model fails to run: {exc}") from exc
    if before != after:
        raise CompressionError(
            f"channel pruning: the pruned model's outputs {after} differ in shape from {before}"
        )


# --- magnitude pruning ----------------------------------------------------------------

_SCOPES = ("global", "layer")


def _weights(model: Any) -> dict[str, Any]:
    """The weight tensors magnitude pruning acts on: every Conv and Linear weight."""
    torch = _torch()
    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    return {
        f"{name}.weight" if name else "weight": module.weight
        for name, module in model.named_modules()
        if isinstance(module, kinds)
    }


def magnitude_masks(model: Any, sparsity: float, scope: str = "global") -> dict[str, Any]:
    """Masks (1 keeps, 0 prunes) zeroing the ``sparsity`` share of smallest weights.

    Args:
        model: The torch module; its Conv and Linear weights are ranked by magnitude.
        sparsity: The share of those weights to zero, in ``[0, 1)``.
        scope: ``"global"`` ranks all weights together (layers with small weights lose
            more), ``"layer"`` zeroes ``sparsity`` of each layer.

    Returns:
        One boolean mask per weight, keyed by parameter name (``features.0.weight``).

    Raises:
        CompressionInputError: ``sparsity`` or ``scope`` is out of range.
        CompressionError: The model has no Conv or Linear weight.
    """
    torch = _torch()
    if not 0.0 <= sparsity < 1.0:
        raise CompressionInputError(
            f"magnitude pruning: sparsity must be in [0, 1), not {sparsity}"
        )
    if scope not in _SCOPES:
        raise CompressionInputError(f"magnitude pruning: scope {scope!r} is not one of {_SCOPES}")
    weights = _weights(model)
    if not weights:
        raise CompressionError("magnitude pruning: the model has no Conv or Linear weight")

    def threshold_mask(values: Any, flat: Any) -> Any:
        count = math.floor(sparsity * flat.numel())
        if count == 0:
            return torch.ones_like(values, dtype=torch.bool)
        # Exactly ``count`` zeros: the indices of the smallest magnitudes (ties broken by
        # position), not a threshold that ties could push past the asked sparsity.
        mask = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
        mask[torch.topk(flat, count, largest=False, sorted=False).indices] = False
        return mask

    with torch.no_grad():
        if scope == "layer":
            return {
                name: threshold_mask(w, w.detach().abs().reshape(-1)).reshape(w.shape)
                for name, w in weights.items()
            }
        flat = torch.cat([w.detach().abs().reshape(-1).float() for w in weights.values()])
        mask = threshold_mask(flat, flat)
        masks: dict[str, Any] = {}
        start = 0
        for name, w in weights.items():
            masks[name] = mask[start : start + w.numel()].reshape(w.shape)
            start += w.numel()
        return masks


def apply_masks(model: Any, masks: Mapping[str, Any]) -> None:
    """Zero, in place, the weights of ``model`` where ``masks`` (from :func:`magnitude_masks`) is 0.

    Raises:
        CompressionError: A mask names no parameter of ``model`` or has another shape.
    """
    torch = _torch()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            param = params.get(name)
            if param is None or tuple(param.shape) != tuple(mask.shape):
                raise CompressionError(
                    f"magnitude pruning: the mask for {name} matches no parameter of the model"
                )
            param.mul_(mask.to(param.dtype))


def magnitude_prune(model: Any, sparsity: float, scope: str = "global") -> nn.Module:
    """A copy of ``model`` with the ``sparsity`` share of smallest Conv/Linear weights zeroed.

    The tensors keep their shapes: dense kernels (ONNX Runtime's on CPU, most backends')
    multiply the zeros like any other weight, so the model is not faster and its file is no
    smaller until compressed; measure it on the runtime that will run it. ``model`` is not
    changed.

    Args:
        model: The fp32 torch module.
        sparsity: The share of weights to zero, in ``[0, 1)``.
        scope: ``"global"`` (one ranking over all layers) or ``"layer"`` (per layer).

    Raises:
        CompressionInputError: ``sparsity`` or ``scope`` is out of range.
        CompressionError: The model has no Conv or Linear weight.
    """
    pruned = copy.deepcopy(model)
    apply_masks(pruned, magnitude_masks(pruned, sparsity, scope))
    result: nn.Module = pruned
    return result


def sparsity_at(step: int, ramp_steps: int, final: float, initial: float = 0.0) -> float:
    """Sparsity at optimizer step ``step`` of a gradual schedule (Zhu and Gupta, 2017).

    ``initial + (final - initial) * (1 - (1 - step / ramp_steps) ** 3)``: it rises fast at
    first, while the network can still recover, and levels off at ``final`` when
    ``step >= ramp_steps``.
    """
    if ramp_steps <= 0 or step >= ramp_steps:
        return final
    progress = max(step, 0) / ramp_steps
    return initial + (final - initial) * (1.0 - (1.0 - progress) ** 3)


class _GradualMasks:
    """``after_step`` hook: raises the sparsity on schedule and re-applies the masks."""

    def __init__(self, final: float, scope: str, ramp_steps: int, updates: int = 16) -> None:
        self.final = final
        self.scope = scope
        self.ramp_steps = max(1, ramp_steps)
        self.every = max(1, self.ramp_steps // max(1, updates))
        self.step = 0
        self.masks: dict[str, Any] | None = None
        self.sparsity = 0.0

    def __call__(self, model: Any) -> None:
        self.step += 1
        due = self.step % self.every == 0 or self.step >= self.ramp_steps
        target = sparsity_at(self.step, self.ramp_steps, self.final)
        if self.masks is None or (due and target > self.sparsity):
            # Pruned weights are zero, so they rank smallest again: masks only grow.
            self.masks = magnitude_masks(model, target, self.scope)
            self.sparsity = target
        apply_masks(model, self.masks)


# --- the stages -------------------------------------------------------------------------


def _knob(knobs: Mapping[str, Any], name: str, default: Any, stage: str) -> Any:
    value = knobs.get(name, default)
    if value is None:
        raise CompressionInputError(f"{stage}: knob {name!r} has no value")
    return value


def _check_knobs(knobs: Mapping[str, Any], allowed: set[str], stage: str) -> None:
    unknown = set(knobs) - allowed
    if unknown:
        raise CompressionInputError(f"{stage}: unknown knobs {sorted(unknown)}")


def _run_dir(context: ApplyContext, stage: str, knobs: Mapping[str, Any]) -> Path:
    if context.work_dir is None:
        raise CompressionInputError(
            f"{stage}: fine-tuning needs a scratch folder (context.work_dir) for its run"
        )
    label = "-".join(f"{k}{v}" for k, v in sorted(knobs.items()))
    return Path(context.work_dir) / f"{stage}-{label}".replace("/", "_")


def _task(context: ApplyContext) -> str | None:
    task = getattr(context.workload, "task", None)
    return task if task in ("classification", "embedding", "regression") else None


def _fine_tune(
    student: Any,
    teacher: Any,
    context: ApplyContext,
    stage: str,
    knobs: Mapping[str, Any],
    epochs: int,
    lr: float,
    batch_size: int,
    after_step: Callable[[Any], None] | None = None,
) -> Any:
    from as_optimize.compress._finetune import train_from_teacher

    assert context.training is not None  # checked by the caller
    return train_from_teacher(
        student,
        teacher,
        context.training,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        temperature=2.0,
        alpha=0.5,
        seed=context.seed,
        run_dir=_run_dir(context, stage, knobs),
        after_step=after_step,
        task=_task(context),
    )


def _needs_model(context: ApplyContext, stage: str) -> tuple[bool, str]:
    if context.torch_model is None:
        return False, f"{stage} works on the torch model; the workload has none"
    if context.example_inputs is None:
        return False, f"{stage} needs example inputs to trace the model"
    return True, ""


@dataclass
class ChannelPruning:
    """Structured channel pruning (:func:`prune_channels`), optionally fine-tuned.

    Attributes:
        ratios: Shares of output channels removed per prunable layer, most promising
            first (half the channels kept: 0.26 of the digits CNN's parameters, 1.3x
            faster in ONNX Runtime, within a point of accuracy once fine-tuned).
        epochs: Fine-tuning epochs to try (``0``: the pruned model as it is; on the
            digits CNN half the channels without fine-tuning cost 14 points, with 3
            epochs 1.4, with 10 under one).
        lr: Fine-tuning learning rate (Adam).
        batch_size: Fine-tuning batch size.
    """

    ratios: Sequence[float] = (0.5, 0.25, 0.75)
    epochs: Sequence[int] = (10,)
    lr: float = 1e-3
    batch_size: int = 64
    name: str = "prune-channels"
    description: str = (
        "removes the weakest output channels (L1 norm) of convolutions and dense layers, "
        "then fine-tunes the smaller model from the original"
    )
    when_it_pays: str = (
        "convolutional and dense models on any runtime: the layers are really smaller, so "
        "the file, the memory and the compute shrink with the ratio. Without fine-tuning "
        "accuracy drops fast with the ratio; a few epochs of distillation on the training "
        "data recover most of it"
    )

    def __post_init__(self) -> None:
        """Check the knob values where they are given."""
        for ratio in self.ratios:
            if not 0.0 <= ratio < 1.0:
                raise CompressionInputError(f"{self.name}: ratio must be in [0, 1), not {ratio}")
        for epochs in self.epochs:
            if epochs < 0:
                raise CompressionInputError(f"{self.name}: epochs must be >= 0, not {epochs}")

    def applies_to(self, context: ApplyContext) -> tuple[bool, str]:
        """It applies when a layer's channels feed exactly one other layer."""
        ok, why = _needs_model(context, self.name)
        if not ok:
            return ok, why
        assert context.example_inputs is not None
        ok, why = prunable(context.torch_model, context.example_inputs)
        if ok and context.training is None and any(e > 0 for e in self.epochs):
            why += "; no training data, so the pruned models are not fine-tuned"
        return ok, why

    def knobs(self) -> list[dict[str, Any]]:
        """Every ratio x epochs setting, fine-tuned first, ratios in the order given."""
        return [
            {"ratio": float(r), "epochs": int(e), "lr": float(self.lr)}
            for e in sorted(self.epochs, reverse=True)
            for r in self.ratios
        ]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Ratio, fine-tuning epochs and learning rate."""
        return {
            "ratio": tuple(float(r) for r in self.ratios),
            "epochs": tuple(sorted({int(e) for e in self.epochs})),
            "lr": (float(self.lr),),
        }

    def transform(self, model: Any, knobs: Mapping[str, Any], context: ApplyContext) -> Any:
        """Prune ``model``'s channels by ``knobs["ratio"]``, then fine-tune if asked.

        Fine-tuning distills from ``context.torch_model`` (the unpruned model) on
        ``context.training``; without training data the pruned model is returned as it is.
        """
        _check_knobs(knobs, {"ratio", "epochs", "lr"}, self.name)
        ratio = float(_knob(knobs, "ratio", 0.5, self.name))
        epochs = int(_knob(knobs, "epochs", 0, self.name))
        lr = float(_knob(knobs, "lr", self.lr, self.name))
        if context.example_inputs is None:
            raise CompressionInputError(f"{self.name}: no example inputs to trace the model")
        pruned = prune_channels(model, ratio, context.example_inputs)
        if epochs > 0 and context.training is not None:
            teacher = model if context.torch_model is None else context.torch_model
            pruned = _fine_tune(
                pruned, teacher, context, self.name, knobs, epochs, lr, self.batch_size
            )
        return pruned.eval()


@dataclass
class MagnitudePruning:
    """Unstructured magnitude pruning (:func:`magnitude_prune`), gradual when fine-tuned.

    Attributes:
        sparsities: Shares of Conv/Linear weights set to zero.
        epochs: Fine-tuning epochs to try; with ``0`` the weights are zeroed at once, with
            more the sparsity rises over the first ``ramp`` share of the steps.
        scope: ``"global"`` or ``"layer"`` ranking of the weights.
        lr: Fine-tuning learning rate (Adam).
        batch_size: Fine-tuning batch size.
        ramp: Share of the fine-tuning steps over which the sparsity rises to its value.
    """

    sparsities: Sequence[float] = (0.5, 0.8)
    epochs: Sequence[int] = (3,)
    scope: str = "global"
    lr: float = 1e-3
    batch_size: int = 64
    ramp: float = 0.5
    name: str = "prune-magnitude"
    description: str = (
        "sets the smallest weights to zero (unstructured), pruned gradually while "
        "fine-tuning from the original"
    )
    when_it_pays: str = (
        "runtimes with sparse kernels, or a file compressed for download: dense kernels "
        "(ONNX Runtime's on CPU among them) multiply the zeros like any weight, so the "
        "latency and the file do not change; the search measures it and says so"
    )

    def __post_init__(self) -> None:
        """Check the knob values where they are given."""
        for sparsity in self.sparsities:
            if not 0.0 <= sparsity < 1.0:
                raise CompressionInputError(
                    f"{self.name}: sparsity must be in [0, 1), not {sparsity}"
                )
        if self.scope not in _SCOPES:
            raise CompressionInputError(f"{self.name}: scope {self.scope!r} not in {_SCOPES}")
        if not 0.0 < self.ramp <= 1.0:
            raise CompressionInputError(f"{self.name}: ramp must be in (0, 1], not {self.ramp}")

    def applies_to(self, context: ApplyContext) -> tuple[bool, str]:
        """It applies to any model with a Conv or Linear weight."""
        if context.torch_model is None:
            return False, f"{self.name} works on the torch model; the workload has none"
        weights = _weights(context.torch_model)
        if not weights:
            return False, "the model has no Conv or Linear weight"
        count = sum(int(w.numel()) for w in weights.values())
        why = (
            f"zeroes weights among {count} in {len(weights)} Conv/Linear layers; dense "
            "kernels do not run faster on zeros"
        )
        if context.training is None and any(e > 0 for e in self.epochs):
            why += "; no training data, so the weights are zeroed at once, not fine-tuned"
        return True, why

    def knobs(self) -> list[dict[str, Any]]:
        """Every sparsity x epochs setting, fine-tuned first."""
        return [
            {"sparsity": float(s), "epochs": int(e), "scope": self.scope, "lr": float(self.lr)}
            for e in sorted(self.epochs, reverse=True)
            for s in self.sparsities
        ]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Sparsity, fine-tuning epochs, scope and learning rate."""
        return {
            "sparsity": tuple(float(s) for s in self.sparsities),
            "epochs": tuple(sorted({int(e) for e in self.epochs})),
            "scope": _SCOPES,
            "lr": (float(self.lr),),
        }

    def transform(self, model: Any, knobs: Mapping[str, Any], context: ApplyContext) -> Any:
        """Zero ``knobs["sparsity"]`` of the weights, gradually while fine-tuning if asked."""
        _check_knobs(knobs, {"sparsity", "epochs", "scope", "lr"}, self.name)
        sparsity = float(_knob(knobs, "sparsity", 0.5, self.name))
        epochs = int(_knob(knobs, "epochs", 0, self.name))
        scope = str(_knob(knobs, "scope", self.scope, self.name))
        lr = float(_knob(knobs, "lr", self.lr, self.name))
        if epochs <= 0 or context.training is None:
            return magnitude_prune(model, sparsity, scope).eval()
        magnitude_masks(model, sparsity, scope)  # checks the knobs before any training
        steps = epochs * math.ceil(len(context.training) / self.batch_size)
        hook = _GradualMasks(sparsity, scope, math.ceil(self.ramp * steps))
        student = copy.deepcopy(model)
        teacher = model if context.torch_model is None else context.torch_model
        student = _fine_tune(
            student, teacher, context, self.name, knobs, epochs, lr, self.batch_size, hook
        )
        # The schedule ends at the asked sparsity whatever the number of steps was.
        final = magnitude_masks(student, sparsity, scope)
        apply_masks(student, final)
        return student.eval()
