"""MLX versions of the torch functions and tensor methods the MLX converter accepts.

Each operation takes and returns :class:`Value` objects: an ``mx.array`` plus whether a
4-D array is held channels-last (NHWC) while torch means it as NCHW.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from as_bench.exceptions import MissingExtraError
from as_core.extras import require

__all__ = ["SUPPORTED_CALLS", "Value", "logical", "lookup", "nhwc"]

SUPPORTED_CALLS = (
    "+",
    "-",
    "*",
    "relu",
    "sigmoid",
    "tanh",
    "gelu",
    "flatten",
    "view",
    "reshape",
    "softmax",
    "log_softmax",
)


@functools.cache
def _mx() -> ModuleType:
    return require("mlx.core", "mlx", error=MissingExtraError)


@dataclass(frozen=True, slots=True)
class Value:
    """An MLX array as the converted graph passes it along.

    Attributes:
        array: The ``mx.array``.
        nhwc: ``True`` when a 4-D array is stored NHWC but means torch's NCHW.
    """

    array: Any
    nhwc: bool = False


def logical(v: Value) -> Value:
    """The value in torch's own axis order."""
    return Value(v.array.transpose(0, 3, 1, 2)) if v.nhwc else v


def nhwc(v: Value) -> Value:
    """The 4-D value channels-last, as MLX convolution and pooling want it."""
    if v.nhwc:
        return v
    if v.array.ndim != 4:
        raise ValueError(f"expected a 4-D (N, C, H, W) input, got shape {tuple(v.array.shape)}")
    return Value(v.array.transpose(0, 2, 3, 1), nhwc=True)


def identity(v: Value, *_: Any, **__: Any) -> Value:
    """The value itself (``Identity``, and ``Dropout`` in eval mode)."""
    return v


def relu(v: Value, inplace: bool = False) -> Value:
    """``max(x, 0)``, layout kept."""
    return Value(_mx().maximum(v.array, 0), v.nhwc)


def sigmoid(v: Value) -> Value:
    """Logistic sigmoid, layout kept."""
    return Value(_mx().sigmoid(v.array), v.nhwc)


def tanh(v: Value) -> Value:
    """Hyperbolic tangent, layout kept."""
    return Value(_mx().tanh(v.array), v.nhwc)


def gelu(v: Value, approximate: str = "none") -> Value:
    """GELU with torch's two definitions: exact (erf) or the tanh approximation."""
    mx, x = _mx(), v.array
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
        return Value(0.5 * x * (1 + mx.tanh(inner)), v.nhwc)
    if approximate != "none":
        raise ValueError(f"gelu: unknown approximate={approximate!r}")
    return Value(x * (1 + mx.erf(x / math.sqrt(2))) / 2, v.nhwc)


def flatten(v: Value, start_dim: int = 0, end_dim: int = -1) -> Value:
    """``torch.flatten`` on the NCHW view, so the element order matches torch."""
    x = logical(v).array
    shape = tuple(x.shape)
    if not shape:
        return Value(x.reshape(1))
    start, end = start_dim % len(shape), end_dim % len(shape)
    merged = math.prod(shape[start : end + 1])
    return Value(x.reshape(*shape[:start], merged, *shape[end + 1 :]))


def reshape(v: Value, *shape: Any) -> Value:
    """``Tensor.view`` / ``Tensor.reshape`` with sizes given as ints or one sequence."""
    sizes = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape
    return Value(logical(v).array.reshape(*(int(s) for s in sizes)))


def softmax(v: Value, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Value:
    """Softmax along torch's ``dim``."""
    if dim is None or dtype is not None:
        raise ValueError("softmax: give dim explicitly, without dtype")
    return Value(_mx().softmax(logical(v).array, axis=dim))


def log_softmax(v: Value, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Value:
    """Log-softmax along torch's ``dim``, stable: ``x - logsumexp(x)``."""
    if dim is None or dtype is not None:
        raise ValueError("log_softmax: give dim explicitly, without dtype")
    x = logical(v).array
    return Value(x - _mx().logsumexp(x, axis=dim, keepdims=True))


def _binary(fn: Callable[[Any, Any], Any]) -> Callable[..., Value]:
    def apply(a: Any, b: Any) -> Value:
        if isinstance(a, Value) and isinstance(b, Value):
            if a.nhwc == b.nhwc:  # same layout: no transposes needed
                return Value(fn(a.array, b.array), a.nhwc)
            return Value(fn(logical(a).array, logical(b).array))
        if isinstance(a, Value):  # tensor with a Python number
            return Value(fn(a.array, b), a.nhwc)
        return Value(fn(a, b.array), b.nhwc)

    return apply


@functools.cache
def _functions() -> dict[Any, Callable[..., Value]]:
    torch = require("torch", "torch", error=MissingExtraError)
    functional = torch.nn.functional
    add, sub, mul = _binary(operator.add), _binary(operator.sub), _binary(operator.mul)
    return {
        operator.add: add,
        torch.add: add,
        operator.sub: sub,
        torch.sub: sub,
        operator.mul: mul,
        torch.mul: mul,
        torch.relu: relu,
        functional.relu: relu,
        torch.sigmoid: sigmoid,
        functional.sigmoid: sigmoid,
        torch.tanh: tanh,
        functional.tanh: tanh,
        functional.gelu: gelu,
        torch.flatten: flatten,
        torch.softmax: softmax,
        functional.softmax: softmax,
        torch.log_softmax: log_softmax,
        functional.log_softmax: log_softmax,
    }


_METHODS: dict[str, Callable[..., Value]] = {
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "flatten": flatten,
    "view": reshape,
    "reshape": reshape,
    "softmax": softmax,
    "log_softmax": log_softmax,
}


def lookup(kind: str, target: Any) -> Callable[..., Value] | None:
    """The MLX operation for an FX ``call_function`` or ``call_method`` target, if any."""
    if kind == "call_method":
        return _METHODS.get(target)
    try:
        return _functions().get(target)
    except TypeError:  # an unhashable target cannot be one of ours
        return None
