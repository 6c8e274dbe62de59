"""Reading predict requests: JSON with a nesting limit, and inputs checked into arrays.

Everything here raises a :class:`~as_deploy.exceptions.ServerError` whose message says
what is wrong and where (``inputs.input[0][0][3][2] is not finite``), never a bare
``ValueError`` or ``RecursionError`` that would become a 500.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from as_deploy.exceptions import BadRequestError, InvalidInputError, PayloadTooLargeError
from as_deploy.manifest import Manifest, TensorSpec
from as_deploy.runtime import Array, RunnerError, class_probabilities, numpy_dtype

__all__ = [
    "batch_rows",
    "check_depth",
    "check_finite_outputs",
    "format_spec_shape",
    "outputs_json",
    "parse_json",
    "predictions",
    "to_array",
    "to_arrays",
]

_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def check_depth(body: bytes, max_depth: int) -> None:
    """Refuse ``body`` if its arrays and objects nest deeper than ``max_depth``.

    It runs before ``json.loads``, whose recursion would otherwise end in a
    ``RecursionError`` (or, for a long enough body, a crash). Counting brackets with numpy
    is fast but also counts brackets inside strings, so only a body over the limit that
    holds strings is counted again exactly.

    Raises:
        BadRequestError: The nesting is deeper than ``max_depth``.
    """
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return  # fewer openers than the limit cannot nest deeper than it
    raw = np.frombuffer(body, dtype=np.uint8)
    step = np.zeros(raw.shape, dtype=np.int8)
    step[(raw == ord("[")) | (raw == ord("{"))] = 1
    step[(raw == ord("]")) | (raw == ord("}"))] = -1
    depth = np.cumsum(step, dtype=np.int64)
    if depth.size == 0 or int(depth.max()) <= max_depth:
        return
    if b'"' in body:
        _check_depth_exactly(body, max_depth)
        return
    offset = int(np.argmax(depth > max_depth))
    raise _too_deep(offset, max_depth)


def _check_depth_exactly(body: bytes, max_depth: int) -> None:
    level = 0
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token[0] in _OPEN:
            level += 1
            if level > max_depth:
                raise _too_deep(match.start(), max_depth)
        elif token[0] in _CLOSE:
            level -= 1


def _too_deep(offset: int, max_depth: int) -> BadRequestError:
    return BadRequestError(
        f"the JSON body nests arrays/objects deeper than {max_depth} levels (at byte {offset})",
        code="too_deep",
        detail={"offset": offset, "max_depth": max_depth},
    )


def parse_json(body: bytes, max_depth: int) -> Any:
    """Decode a request body as JSON, refusing nesting deeper than ``max_depth``.

    ``NaN`` and ``Infinity`` literals decode (as Python does) so that the input check can
    say which element is not finite.

    Raises:
        BadRequestError: Empty, not UTF-8, too deep, or malformed JSON (line and column).
    """
    if not body.strip():
        raise BadRequestError(
            'the request body is empty; expected a JSON object {"inputs": {...}}',
            code="malformed_json",
        )
    check_depth(body, max_depth)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(
            f"the request body is not UTF-8 text (byte {exc.start})", code="malformed_json"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequestError(
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            code="malformed_json",
            detail={"line": exc.lineno, "column": exc.colno},
        ) from None
    except RecursionError:  # a second guard; check_depth should have refused it
        raise _too_deep(0, max_depth) from None
    except ValueError as exc:  # e.g. an integer literal over Python's 4300-digit limit
        raise BadRequestError(
            f"malformed JSON: {exc}", code="malformed_json", detail=None
        ) from None


def format_spec_shape(spec: TensorSpec) -> str:
    """Return the manifest shape as a person reads it: ``[N, 1, 8, 8]``."""
    dims = [
        ("N" if index == 0 else "*") if dim is None else str(dim)
        for index, dim in enumerate(spec.shape)
    ]
    return "[" + ", ".join(dims) + "]"


def _where(prefix: str, index: Sequence[int]) -> str:
    return prefix + "".join(f"[{i}]" for i in index)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, float):
        return f"{value!r} (a float)"
    return repr(value)


def _allowed_types(dtype: str) -> tuple[frozenset[type], str]:
    if dtype.startswith("float"):
        return frozenset({float, int}), "a number"
    if dtype.startswith(("int", "uint")):
        return frozenset({int}), "an integer"
    if dtype == "bool":
        return frozenset({bool}), "true or false"
    return frozenset({str}), "a string"


def _infer_shape(value: Any) -> list[int]:
    shape: list[int] = []
    node = value
    while isinstance(node, list):
        shape.append(len(node))
        if not node:
            break
        node = node[0]
    return shape


def _check_shape(prefix: str, spec: TensorSpec, shape: list[int]) -> None:
    fits = len(shape) == len(spec.shape) and all(
        (want is None and got >= 1) or got == want
        for want, got in zip(spec.shape, shape, strict=True)
    )
    if not fits:
        raise InvalidInputError(
            f"{prefix}: expected shape {format_spec_shape(spec)}, got {shape}",
            code="invalid_shape",
            detail={"input": spec.name, "expected": spec.shape, "got": shape},
        )


def _walk(
    node: Any,
    shape: list[int],
    depth: int,
    index: tuple[int, ...],
    prefix: str,
    allowed: tuple[frozenset[type], str],
    dtype: str,
) -> None:
    if not isinstance(node, list) or len(node) != shape[depth]:
        got = f"{len(node)} items" if isinstance(node, list) else _kind(node)
        raise InvalidInputError(
            f"{_where(prefix, index)}: expected a list of {shape[depth]} items "
            f"(shape {shape}), got {got}; nested lists must not be ragged",
            code="invalid_shape",
            detail={"location": _where(prefix, index)},
        )
    if depth == len(shape) - 1:
        types, words = allowed
        if not set(map(type, node)) <= types:
            position = next(i for i, item in enumerate(node) if type(item) not in types)
            where = _where(prefix, (*index, position))
            raise InvalidInputError(
                f"{where}: expected {words} for {dtype}, got {_kind(node[position])}",
                code="invalid_dtype",
                detail={"location": where, "dtype": dtype},
            )
        return
    for position, child in enumerate(node):
        _walk(child, shape, depth + 1, (*index, position), prefix, allowed, dtype)


def _fits(value: list[Any], shape: list[int], types: frozenset[type]) -> bool:
    """Whether :func:`_walk` would pass ``value``: one level at a time, no recursion."""
    level = [value]
    for depth, size in enumerate(shape):
        if set(map(type, level)) != {list} or set(map(len, level)) != {size}:
            return False  # (an empty level too: _walk decides)
        if depth < len(shape) - 1:
            level = list(itertools.chain.from_iterable(level))
    return set(map(type, itertools.chain.from_iterable(level))) <= types


def _first_bad(mask: Array) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _convert(value: Any, spec: TensorSpec, prefix: str) -> Array:
    dtype = spec.dtype
    target = numpy_dtype(dtype)
    if dtype.startswith("float"):
        try:
            array = np.array(value, dtype=np.float64)
        except OverflowError:  # an integer literal beyond float64 (10**400)
            raise InvalidInputError(
                f"{prefix} holds a number out of range for {dtype}", code="out_of_range"
            ) from None
        finite = np.isfinite(array)
        if not finite.all():
            where = _where(prefix, _first_bad(~finite))
            raise InvalidInputError(
                f"{where} is not finite", code="not_finite", detail={"location": where}
            )
        limit = float(np.finfo(target).max)
        over = np.abs(array) > limit
        if over.any():
            where = _where(prefix, _first_bad(over))
            raise InvalidInputError(
                f"{where} is out of range for {dtype} (|x| <= {limit:.6g})",
                code="out_of_range",
                detail={"location": where, "dtype": dtype},
            )
        return array.astype(target)
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(target)
        try:
            array = np.array(value, dtype=np.int64)
        except OverflowError:
            array = np.array(value, dtype=object)
        out = (array < info.min) | (array > info.max)
        if np.any(out):
            where = _where(prefix, _first_bad(np.asarray(out, dtype=bool)))
            raise InvalidInputError(
                f"{where} is out of range for {dtype} ({info.min} to {info.max})",
                code="out_of_range",
                detail={"location": where, "dtype": dtype},
            )
        return array.astype(target)
    return np.array(value, dtype=target)


def to_array(value: Any, spec: TensorSpec, budget: int, max_elements: int) -> Array:
    """Check one input's JSON ``value`` against ``spec`` and return it as an array.

    Args:
        value: The decoded JSON for the input.
        spec: The manifest's spec of the input.
        budget: How many elements this request may still hold.
        max_elements: The per-request limit, for the message.

    Raises:
        InvalidInputError: Wrong shape (ragged too), dtype, or a value out of range.
        PayloadTooLargeError: More elements than ``budget``.
    """
    prefix = f"inputs.{spec.name}"
    try:
        numpy_dtype(spec.dtype)
    except RunnerError as exc:
        raise InvalidInputError(f"{prefix}: {exc}", code="unsupported_dtype") from None
    shape = _infer_shape(value)
    _check_shape(prefix, spec, shape)
    elements = math.prod(shape)
    if elements > budget:
        raise PayloadTooLargeError(
            f"{prefix}: the request holds too many tensor elements ({elements} here); "
            f"the limit is {max_elements} per request",
            code="too_many_elements",
            detail={"input": spec.name, "elements": elements, "max_elements": max_elements},
        )
    allowed = _allowed_types(spec.dtype)
    if shape:
        if not _fits(value, shape, allowed[0]):
            _walk(value, shape, 0, (), prefix, allowed, spec.dtype)  # says where
    elif type(value) not in allowed[0]:
        raise InvalidInputError(
            f"{prefix}: expected {allowed[1]} for {spec.dtype}, got {_kind(value)}",
            code="invalid_dtype",
            detail={"location": prefix, "dtype": spec.dtype},
        )
    return _convert(value, spec, prefix)


def to_arrays(data: Any, manifest: Manifest, max_elements: int) -> dict[str, Array]:
    """Check a decoded predict request against the manifest and return its input arrays.

    Raises:
        InvalidInputError: Not ``{"inputs": {...}}``, missing or unknown input names,
            inputs that do not fit their specs, or batch sizes that differ.
        PayloadTooLargeError: More than ``max_elements`` elements in all.
    """
    if not isinstance(data, dict):
        raise InvalidInputError(
            f'the body must be a JSON object {{"inputs": {{...}}}}, got {_kind(data)}',
            code="invalid_body",
        )
    unknown = sorted(set(data) - {"inputs"})
    if unknown:
        raise InvalidInputError(
            f"unknown field(s) {unknown} in the body; it holds only 'inputs'",
            code="invalid_body",
            detail={"unknown": unknown},
        )
    inputs = data.get("inputs")
    if not isinstance(inputs, dict):
        got = "nothing" if inputs is None else _kind(inputs)
        raise InvalidInputError(
            f"'inputs' must be an object mapping each input name to a nested list, got {got}",
            code="invalid_body",
        )
    expected = [spec.name for spec in manifest.inputs]
    missing = [name for name in expected if name not in inputs]
    extra = sorted(set(inputs) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing input(s) {missing}")
        if extra:
            parts.append(f"unknown input(s) {extra}")
        raise InvalidInputError(
            f"inputs: {' and '.join(parts)}; the model takes {expected}",
            code="invalid_inputs",
            detail={"missing": missing, "unknown": extra, "expected": expected},
        )
    arrays: dict[str, Array] = {}
    budget = max_elements
    for spec in manifest.inputs:
        array = to_array(inputs[spec.name], spec, budget, max_elements)
        budget -= array.size
        arrays[spec.name] = array
    batch_rows(arrays, manifest)
    return arrays


def batch_rows(arrays: dict[str, Array], manifest: Manifest) -> int | None:
    """Return the request's batch size, or ``None`` if the model cannot be batched.

    A model can be batched when every input's and output's first dimension is dynamic.

    Raises:
        InvalidInputError: The inputs' batch sizes differ.
    """
    specs = [*manifest.inputs, *manifest.outputs]
    if not all(spec.shape and spec.shape[0] is None for spec in specs):
        return None
    sizes = {name: int(array.shape[0]) for name, array in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise InvalidInputError(
            f"inputs: every input must have the same batch size (first dimension), got {sizes}",
            code="invalid_shape",
            detail={"batch_sizes": sizes},
        )
    return next(iter(sizes.values()))


def check_finite_outputs(
    manifest: Manifest, inputs: dict[str, Array], outputs: dict[str, Array]
) -> None:
    """Refuse a prediction whose outputs hold NaN or infinity.

    The inputs were checked finite and in range for their dtype, so a non-finite output
    comes from values too large for the model's arithmetic (``3e38`` in every pixel
    overflows a float32 sum): the client can fix it, so it is a 422 that says so, not a
    server error.

    Raises:
        InvalidInputError: An output is not finite; the message names the first such
            element and the largest input magnitude.
    """
    for name, array in outputs.items():
        if array.dtype.kind not in "fc":
            continue
        finite = np.isfinite(array)
        if finite.all():
            continue
        where = _where(f"outputs.{name}", _first_bad(~finite))
        largest = max(
            (float(np.abs(a).max()) for a in inputs.values() if a.size and a.dtype.kind in "fiu"),
            default=0.0,
        )
        raise InvalidInputError(
            f"model {manifest.name}/{manifest.version} gave a value that is not finite "
            f"({where}) for these inputs: they are valid numbers, but too large for the "
            f"model's arithmetic (the largest |input| is {largest:.6g}); send values in the "
            "range the model expects",
            code="non_finite_output",
            detail={"location": where, "max_abs_input": largest},
        )


def predictions(manifest: Manifest, outputs: dict[str, Array]) -> list[dict[str, Any]] | None:
    """Return the top class of each row, or ``None`` when the model has no class scores.

    There are predictions when the manifest has labels and exactly one output, 2-D, with
    one score per label; the score is the softmax probability of the top class
    (:func:`as_deploy.runtime.class_probabilities`).
    """
    labels = manifest.labels
    probabilities = class_probabilities(labels, outputs)
    if probabilities is None or labels is None:
        return None
    top = probabilities.argmax(axis=1)
    return [
        {"index": int(i), "label": labels[int(i)], "score": float(probabilities[row, i])}
        for row, i in enumerate(top)
    ]


def outputs_json(outputs: dict[str, Array]) -> dict[str, Any]:
    """Return the outputs as nested lists (what ``tolist`` gives)."""
    return {name: array.tolist() for name, array in outputs.items()}
