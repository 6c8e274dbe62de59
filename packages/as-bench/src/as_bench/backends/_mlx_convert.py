"""Translate a torch module into an MLX forward function, node by node of its FX graph.

``torch.fx.symbolic_trace`` gives the order in which the model calls its layers (for
``nn.Sequential`` and for custom ``forward`` methods alike); each call of a supported
layer, function or tensor method becomes an MLX operation, and anything else is refused
by name at conversion time.

Layout: torch convolutions are NCHW, MLX's are NHWC. A 4-D value is moved to NHWC when
a convolution or pooling layer needs it and stays there through element-wise layers;
every layer that depends on axis order (``Linear``, ``Flatten``, ``Softmax``, reshapes,
outputs) first moves it back to NCHW, so flatten order and outputs match torch exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from as_bench.backends import _mlx_ops as ops
from as_bench.backends._mlx_ops import Value
from as_bench.exceptions import BackendError, MissingExtraError
from as_core.extras import require

__all__ = ["SUPPORTED_MODULES", "MLXModel", "convert_module"]

SUPPORTED_MODULES = (
    "Linear",
    "Conv2d",
    "ReLU",
    "GELU",
    "Tanh",
    "Sigmoid",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d(1)",
    "Flatten",
    "Dropout",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "Softmax",
    "LogSoftmax",
    "Identity",
)

Op = Callable[..., Value]


@dataclass
class MLXModel:
    """A converted model: a forward function over MLX arrays and the weights it holds.

    Attributes:
        forward: Takes one ``mx.array`` per model input (torch layout) and returns a list
            of lazy ``mx.array`` outputs (torch layout, float32).
        parameters: Every weight array the forward function captured.
        num_inputs: How many inputs ``forward`` takes.
        layers: Count of converted layers by torch type name, for reports.
    """

    forward: Callable[..., list[Any]]
    parameters: list[Any]
    num_inputs: int
    layers: dict[str, int] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of all weights."""
        return sum(int(p.nbytes) for p in self.parameters)


class _Builder:
    """Turns torch layers into MLX closures, collecting the weights they capture."""

    def __init__(self, dtype: Any) -> None:
        self.mx = require("mlx.core", "mlx", error=MissingExtraError)
        self.nn = require("mlx.nn", "mlx", error=MissingExtraError)
        self.dtype = dtype
        self.parameters: list[Any] = []

    def weight(self, tensor: Any, *, transpose: tuple[int, ...] | None = None) -> Any:
        array = tensor.detach().to("cpu").float().numpy()
        if transpose is not None:
            array = array.transpose(transpose)
        converted = self.mx.array(array).astype(self.dtype)
        self.parameters.append(converted)
        return converted

    def constant(self, tensor: Any) -> Any:
        """A tensor the graph reads directly; floating ones take the compute dtype."""
        if tensor.is_floating_point():
            return self.weight(tensor)
        converted = self.mx.array(tensor.detach().to("cpu").numpy())
        self.parameters.append(converted)
        return converted

    def module(self, path: str, module: Any) -> Op:
        kind = type(module).__name__
        convert = getattr(self, f"_m_{kind}", None)
        if convert is None or type(module).__module__.split(".")[0] != "torch":
            raise _unsupported(path, kind)
        op: Op = convert(path, module)
        return op

    # Element-wise layers keep the layout they are given.
    def _m_ReLU(self, path: str, m: Any) -> Op:
        return ops.relu

    def _m_Tanh(self, path: str, m: Any) -> Op:
        return ops.tanh

    def _m_Sigmoid(self, path: str, m: Any) -> Op:
        return ops.sigmoid

    def _m_GELU(self, path: str, m: Any) -> Op:
        return lambda v: ops.gelu(v, approximate=m.approximate)

    def _m_Identity(self, path: str, m: Any) -> Op:
        return ops.identity

    # Dropout is the identity in eval mode, which is how every backend runs a model.
    _m_Dropout = _m_Dropout1d = _m_Dropout2d = _m_AlphaDropout = _m_Identity

    def _m_Linear(self, path: str, m: Any) -> Op:
        w = self.weight(m.weight, transpose=(1, 0))  # (in, out): x @ w
        b = None if m.bias is None else self.weight(m.bias)

        def linear(v: Value) -> Value:
            y = ops.logical(v).array @ w
            return Value(y if b is None else y + b)

        return linear

    def _m_Conv2d(self, path: str, m: Any) -> Op:
        if m.padding_mode != "zeros":
            raise _unsupported(path, f"Conv2d with padding_mode={m.padding_mode!r}")
        pads = _conv_padding(m.padding, m.kernel_size, m.dilation)
        w = self.weight(m.weight, transpose=(0, 2, 3, 1))  # OIHW -> OHWI
        b = None if m.bias is None else self.weight(m.bias)
        mx = self.mx
        symmetric = all(lo == hi for lo, hi in pads)
        padding = tuple(lo for lo, _ in pads) if symmetric else (0, 0)

        def conv2d(v: Value) -> Value:
            x = ops.nhwc(v).array
            if not symmetric:  # "same" padding with an even kernel pads one side more
                x = mx.pad(x, [(0, 0), *pads, (0, 0)])
            y = mx.conv2d(
                x, w, stride=m.stride, padding=padding, dilation=m.dilation, groups=m.groups
            )
            return Value(y if b is None else y + b, nhwc=True)

        return conv2d

    def _m_MaxPool2d(self, path: str, m: Any) -> Op:
        if m.ceil_mode or m.return_indices or _pair(m.dilation) != (1, 1):
            raise _unsupported(path, "MaxPool2d with ceil_mode, return_indices or dilation")
        pool = self.nn.MaxPool2d(m.kernel_size, m.stride or m.kernel_size, m.padding)
        return lambda v: Value(pool(ops.nhwc(v).array), nhwc=True)

    def _m_AvgPool2d(self, path: str, m: Any) -> Op:
        # MLX pads average pooling with zeros and counts them: count_include_pad=True.
        padded = _pair(m.padding) != (0, 0)
        if m.ceil_mode or m.divisor_override is not None or (padded and not m.count_include_pad):
            detail = "AvgPool2d with ceil_mode, divisor_override or count_include_pad=False"
            raise _unsupported(path, detail)
        pool = self.nn.AvgPool2d(m.kernel_size, m.stride or m.kernel_size, m.padding)
        return lambda v: Value(pool(ops.nhwc(v).array), nhwc=True)

    def _m_AdaptiveAvgPool2d(self, path: str, m: Any) -> Op:
        if _pair(m.output_size) != (1, 1):
            raise _unsupported(path, f"AdaptiveAvgPool2d({m.output_size}) (only output 1)")
        return lambda v: Value(ops.nhwc(v).array.mean(axis=(1, 2), keepdims=True), nhwc=True)

    def _m_Flatten(self, path: str, m: Any) -> Op:
        return lambda v: ops.flatten(v, m.start_dim, m.end_dim)

    def _m_Softmax(self, path: str, m: Any) -> Op:
        if m.dim is None:
            raise _unsupported(path, "Softmax(dim=None) (give dim explicitly)")
        return lambda v: ops.softmax(v, m.dim)

    def _m_LogSoftmax(self, path: str, m: Any) -> Op:
        if m.dim is None:
            raise _unsupported(path, "LogSoftmax(dim=None) (give dim explicitly)")
        return lambda v: ops.log_softmax(v, m.dim)

    def _m_BatchNorm2d(self, path: str, m: Any) -> Op:
        if m.running_mean is None or m.running_var is None:
            raise _unsupported(path, f"{type(m).__name__} without running statistics")
        # Eval-mode batch norm is an affine map per channel: fold it into scale and shift.
        scale = (m.running_var.detach().double() + m.eps).rsqrt()
        if m.weight is not None:
            scale = scale * m.weight.detach().double()
        shift = -m.running_mean.detach().double() * scale
        if m.bias is not None:
            shift = shift + m.bias.detach().double()
        s, t = self.weight(scale), self.weight(shift)

        def batch_norm(v: Value) -> Value:
            if v.array.ndim == 4:
                x = ops.nhwc(v).array
                return Value(x * s + t, nhwc=True)
            x = v.array  # (N, C) or (N, C, L): channels on axis 1
            extra = (1,) * (x.ndim - 2)
            return Value(x * s.reshape(-1, *extra) + t.reshape(-1, *extra))

        return batch_norm

    _m_BatchNorm1d = _m_BatchNorm2d

    def _m_LayerNorm(self, path: str, m: Any) -> Op:
        axes = tuple(range(-len(m.normalized_shape), 0))
        w = None if m.weight is None else self.weight(m.weight)
        b = None if m.bias is None else self.weight(m.bias)
        mx = self.mx

        def layer_norm(v: Value) -> Value:
            x = ops.logical(v).array
            mean = x.mean(axis=axes, keepdims=True)
            var = mx.square(x - mean).mean(axis=axes, keepdims=True)
            y = (x - mean) * mx.rsqrt(var + m.eps)
            y = y if w is None else y * w
            return Value(y if b is None else y + b)

        return layer_norm


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _conv_padding(padding: Any, kernel: Any, dilation: Any) -> list[tuple[int, int]]:
    """(before, after) padding of H and W, as torch applies it."""
    if padding == "valid":
        return [(0, 0), (0, 0)]
    if padding == "same":  # torch puts the odd extra row/column at the end
        totals = [d * (k - 1) for d, k in zip(_pair(dilation), _pair(kernel), strict=True)]
        return [(t // 2, t - t // 2) for t in totals]
    return [(p, p) for p in _pair(padding)]


def _unsupported(path: str, what: str) -> BackendError:
    msg = (
        f"MLX backend cannot convert {path or '<model>'}: {what}; "
        f"supported modules: {', '.join(SUPPORTED_MODULES)}; "
        f"functions and methods: {', '.join(ops.SUPPORTED_CALLS)}"
    )
    return BackendError(msg)


def convert_module(model: Any, precision: str = "fp32") -> MLXModel:
    """Convert a torch module (eval mode) into an :class:`MLXModel`.

    Args:
        model: A ``torch.nn.Module`` built from supported layers and calls.
        precision: ``"fp32"`` or ``"fp16"`` weights and compute; floating inputs are cast
            on entry, and fp16 outputs are returned as float32.

    Raises:
        BackendError: The model cannot be traced, or uses a layer, function or tensor
            method outside the supported set (the message names it).
    """
    torch = require("torch", "torch", error=MissingExtraError)
    mx = require("mlx.core", "mlx", error=MissingExtraError)
    builder = _Builder({"fp32": mx.float32, "fp16": mx.float16}[precision])
    try:
        graph_module = torch.fx.symbolic_trace(model.eval())
    except Exception as exc:
        msg = f"MLX backend cannot trace the model with torch.fx: {type(exc).__name__}: {exc}"
        raise BackendError(msg) from exc
    program = _Program(builder.dtype, torch.fx.Node)
    modules = dict(graph_module.named_modules())
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":  # torch.fx's name for a graph input
            program.inputs.append(node.name)
        elif node.op == "call_module":
            module = modules[node.target]
            program.add(node, builder.module(node.target, module))
            kind = type(module).__name__
            program.layers[kind] = program.layers.get(kind, 0) + 1
        elif node.op in ("call_function", "call_method"):
            op = ops.lookup(node.op, node.target)
            if op is None:
                name = getattr(node.target, "__name__", str(node.target))
                kind = "function" if node.op == "call_function" else "tensor method"
                raise _unsupported(node.name, f"{kind} {name}")
            program.add(node, op)
        elif node.op == "get_attr":  # a parameter or buffer used by a function call
            constant = Value(builder.constant(_attr(graph_module, node.target)))
            program.add(node, lambda c=constant: c, no_args=True)
        elif node.op == "output":
            program.set_outputs(node.args[0])
    return MLXModel(
        forward=program.forward,
        parameters=builder.parameters,
        num_inputs=len(program.inputs),
        layers=program.layers,
    )


class _Program:
    """The converted steps in graph order, and the forward function that runs them."""

    def __init__(self, dtype: Any, node_type: type[Any]) -> None:
        self.mx = require("mlx.core", "mlx", error=MissingExtraError)
        self.dtype = dtype
        self.node_type = node_type
        self.inputs: list[str] = []
        self.steps: list[tuple[str, Op, Any, Any]] = []
        self.outputs: list[Any] = []
        self.layers: dict[str, int] = {}

    def add(self, node: Any, op: Op, *, no_args: bool = False) -> None:
        args, kwargs = ((), {}) if no_args else (node.args, node.kwargs)
        self.steps.append((node.name, op, args, kwargs))

    def set_outputs(self, result: Any) -> None:
        outputs = list(result) if isinstance(result, tuple | list) else [result]
        if not all(isinstance(out, self.node_type) for out in outputs):
            raise _unsupported("<outputs>", "outputs other than a tensor or a tuple of tensors")
        self.outputs = outputs

    def _resolve(self, arg: Any, env: dict[str, Any]) -> Any:
        if isinstance(arg, self.node_type):
            return env[arg.name]
        if isinstance(arg, tuple | list):
            return type(arg)(self._resolve(a, env) for a in arg)
        if isinstance(arg, dict):
            return {key: self._resolve(value, env) for key, value in arg.items()}
        return arg

    def forward(self, *arrays: Any) -> list[Any]:
        """Run the steps on one ``mx.array`` per input; the outputs stay lazy."""
        mx, dtype = self.mx, self.dtype
        if len(arrays) != len(self.inputs):
            raise ValueError(f"expected {len(self.inputs)} inputs {self.inputs}, got {len(arrays)}")
        env: dict[str, Any] = {}
        for name, a in zip(self.inputs, arrays, strict=True):
            cast = a.dtype != dtype and mx.issubdtype(a.dtype, mx.floating)
            env[name] = Value(a.astype(dtype) if cast else a)
        for name, op, args, kwargs in self.steps:
            env[name] = op(*self._resolve(args, env), **self._resolve(kwargs, env))
        results = [ops.logical(env[out.name]).array for out in self.outputs]
        # fp16 compute still answers in float32, as the other backends do.
        return [r.astype(mx.float32) if r.dtype == mx.float16 else r for r in results]


def _attr(graph_module: Any, target: str) -> Any:
    obj = graph_module
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj
