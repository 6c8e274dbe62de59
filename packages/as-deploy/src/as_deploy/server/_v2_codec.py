"""Tensors of the Open Inference Protocol (KServe v2): JSON data and binary tensor data.

A v2 inference request is a JSON header, optionally followed by binary tensor data (the
binary tensor data extension): the ``Inference-Header-Content-Length`` header gives the
JSON's length, and each input with ``parameters.binary_data_size`` takes that many bytes
of what follows, in input order. Binary data is little-endian, row-major, without
padding; a BOOL is one byte (0 or 1); a BYTES element is a 4-byte little-endian length
and then its bytes. Responses are built the same way: outputs asked for as binary come
after the JSON, each with its ``binary_data_size``.

Everything here checks its input against the model's manifest and raises a
:class:`~as_deploy.exceptions.ServerError` whose message says what is wrong and where
(``inputs[0] ('input'): shape [2, 8, 8] does not fit the model's [-1, 1, 8, 8]``):
:class:`BadRequestError` (400) for anything the client sent wrong,
:class:`PayloadTooLargeError` (413) over the element limit.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from as_deploy.exceptions import (
    BadRequestError,
    PayloadTooLargeError,
    ServerError,
    UnsupportedMediaTypeError,
)
from as_deploy.manifest import Manifest, TensorSpec
from as_deploy.runtime import Array

__all__ = [
    "HEADER_LENGTH",
    "EncodedResponse",
    "InferRequest",
    "RequestedOutput",
    "datatype_of",
    "decode_body",
    "decode_inputs",
    "encode_response",
    "metadata_shape",
    "parse_request",
    "requested_outputs",
    "split_body",
]

HEADER_LENGTH = "Inference-Header-Content-Length"
"""The header giving the length of the JSON part of a body that carries binary data."""

#: Manifest dtype -> protocol datatype.
_DATATYPES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "bfloat16": "BF16",
    "string": "BYTES",
}

#: Numpy dtype kind+size of an output -> protocol datatype (outputs may hold any of them).
_NUMPY_DATATYPES: dict[str, str] = {
    "b1": "BOOL",
    "u1": "UINT8",
    "u2": "UINT16",
    "u4": "UINT32",
    "u8": "UINT64",
    "i1": "INT8",
    "i2": "INT16",
    "i4": "INT32",
    "i8": "INT64",
    "f2": "FP16",
    "f4": "FP32",
    "f8": "FP64",
}

#: Protocol datatype -> little-endian numpy dtype (BYTES is handled on its own).
_WIRE: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("u1"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}

_LENGTH = struct.Struct("<I")


def datatype_of(dtype: str) -> str:
    """Return the protocol datatype (``"FP32"``) of a manifest dtype (``"float32"``)."""
    return _DATATYPES[dtype]


def _array_datatype(array: Array) -> str:
    if array.dtype.kind in "OUS":
        return "BYTES"
    return _NUMPY_DATATYPES[f"{array.dtype.kind}{array.dtype.itemsize}"]


def metadata_shape(spec: TensorSpec) -> list[int]:
    """Return the manifest shape as the protocol writes it: ``-1`` for a dynamic dimension."""
    return [-1 if dim is None else dim for dim in spec.shape]


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
    return repr(value)


# -- the body ----------------------------------------------------------------------------


def decode_body(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo the request's ``Content-Encoding`` (gzip, deflate), to at most ``max_bytes``.

    Raises:
        UnsupportedMediaTypeError: An encoding other than gzip, deflate or identity.
        PayloadTooLargeError: The decompressed body is over ``max_bytes``.
        BadRequestError: The compressed data is corrupt or cut short.
    """
    name = (encoding or "identity").strip().lower()
    if name == "identity":
        return body
    if name not in ("gzip", "deflate"):
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or none",
            code="unsupported_encoding",
        )
    # gzip: a gzip header; deflate: the zlib format (what HTTP's "deflate" means).
    inflater = zlib.decompressobj(wbits=31 if name == "gzip" else 15)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadRequestError(
            f"the {name} body cannot be decompressed: {exc}", code="bad_encoding"
        ) from None
    if len(out) > max_bytes:
        raise PayloadTooLargeError(
            f"the request body is over {max_bytes} bytes once decompressed; the limit is "
            f"{max_bytes} bytes",
            code="body_too_large",
            detail={"max_body_bytes": max_bytes},
        )
    if not inflater.eof:
        raise BadRequestError(f"the {name} body is cut short", code="bad_encoding")
    return out


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """Split ``body`` into its JSON header and the binary tensor data after it.

    Args:
        body: The whole request body.
        header_length: The ``Inference-Header-Content-Length`` header, if sent.

    Raises:
        BadRequestError: The header is not a whole number, or larger than the body.
    """
    if header_length is None:
        return body, b""
    text = header_length.strip()
    if not text.isdigit():
        raise BadRequestError(
            f"the {HEADER_LENGTH} header must be the JSON header's length in bytes, "
            f"got {header_length!r}",
            code="bad_header_length",
        )
    length = int(text)
    if length > len(body):
        raise BadRequestError(
            f"the {HEADER_LENGTH} header says the JSON header is {length} bytes, but the "
            f"body holds only {len(body)} bytes",
            code="bad_header_length",
            detail={"header_length": length, "body_bytes": len(body)},
        )
    return body[:length], body[length:]


# -- the request -------------------------------------------------------------------------


@dataclass
class _Input:
    index: int
    name: str
    shape: list[int]
    datatype: str
    data: Any = None
    binary_size: int | None = None

    @property
    def where(self) -> str:
        return f"inputs[{self.index}] ({self.name!r})"


@dataclass
class RequestedOutput:
    """One output a request asks for.

    Attributes:
        name: The output's name.
        binary: Whether to send it as binary data after the JSON.
        classification: Return the top ``classification`` classes instead (0: off).
    """

    name: str
    binary: bool
    classification: int = 0


@dataclass
class InferRequest:
    """A v2 inference request, read but not yet checked against a model.

    Attributes:
        id: The request's ``id``, echoed in the response.
        inputs: The inputs, in request order.
        outputs: The outputs asked for; ``None`` when the request names none (all of them).
        binary_output: The ``binary_data_output`` parameter (the default of every output).
    """

    id: str | None
    inputs: list[_Input]
    outputs: list[RequestedOutput] | None
    binary_output: bool = False


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError(
            f"{where}.parameters must be an object, got {_kind(value)}", code="invalid_request"
        )
    return value


def _flag(parameters: dict[str, Any], key: str, where: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise BadRequestError(
            f"{where}.parameters.{key} must be true or false, got {_kind(value)}",
            code="invalid_request",
        )
    return value


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequestError(
            f"{what} must be a whole number of at least 0, got {_kind(value)}",
            code="invalid_request",
        )
    return value


def _no_shared_memory(parameters: dict[str, Any], where: str) -> None:
    shared = sorted(key for key in parameters if key.startswith("shared_memory"))
    if shared:
        raise BadRequestError(
            f"{where}: shared memory ({', '.join(shared)}) is not supported by this server; "
            "send the tensor in the body (JSON data or binary data)",
            code="unsupported_parameter",
        )


def _parse_input(index: int, item: Any) -> _Input:
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise BadRequestError(
            f"{where} must be an object with name, shape, datatype and data, got {_kind(item)}",
            code="invalid_request",
        )
    name = item.get("name")
    if not isinstance(name, str):
        raise BadRequestError(
            f"{where}.name must be a string, got {_kind(name)}", code="invalid_request"
        )
    where = f"inputs[{index}] ({name!r})"
    shape = item.get("shape")
    if not isinstance(shape, list):
        raise BadRequestError(
            f"{where}.shape must be a list of whole numbers, got {_kind(shape)}",
            code="invalid_request",
        )
    dims = [_count(dim, f"{where}.shape[{i}]") for i, dim in enumerate(shape)]
    datatype = item.get("datatype")
    if not isinstance(datatype, str):
        raise BadRequestError(
            f"{where}.datatype must be a string such as 'FP32', got {_kind(datatype)}",
            code="invalid_request",
        )
    parameters = _parameters(item.get("parameters"), where)
    _no_shared_memory(parameters, where)
    size = parameters.get("binary_data_size")
    parsed = _Input(index=index, name=name, shape=dims, datatype=datatype)
    if size is not None:
        parsed.binary_size = _count(size, f"{where}.parameters.binary_data_size")
        if "data" in item:
            raise BadRequestError(
                f"{where} has both 'data' and parameters.binary_data_size; give one of them",
                code="invalid_request",
            )
    elif "data" not in item:
        raise BadRequestError(
            f"{where} has no data: give 'data' (JSON) or parameters.binary_data_size "
            "(binary data after the JSON header)",
            code="invalid_request",
        )
    else:
        parsed.data = item["data"]
    return parsed


def _parse_output(index: int, item: Any, default_binary: bool) -> RequestedOutput:
    where = f"outputs[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        got = _kind(item.get("name")) if isinstance(item, dict) else _kind(item)
        raise BadRequestError(
            f"{where} must be an object with a string 'name', got {got}", code="invalid_request"
        )
    name = item["name"]
    where = f"outputs[{index}] ({name!r})"
    parameters = _parameters(item.get("parameters"), where)
    _no_shared_memory(parameters, where)
    binary = _flag(parameters, "binary_data", where) if "binary_data" in parameters else None
    classes = _count(parameters.get("classification", 0), f"{where}.parameters.classification")
    return RequestedOutput(
        name=name, binary=default_binary if binary is None else binary, classification=classes
    )


def parse_request(data: Any) -> InferRequest:
    """Read a decoded v2 inference request's structure (not yet its tensors' data).

    Raises:
        BadRequestError: Not an object, no inputs, or a field of the wrong type.
    """
    if not isinstance(data, dict):
        raise BadRequestError(
            f'the JSON header must be an object {{"inputs": [...]}}, got {_kind(data)}',
            code="invalid_request",
        )
    request_id = data.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError(
            f"'id' must be a string, got {_kind(request_id)}", code="invalid_request"
        )
    parameters = _parameters(data.get("parameters"), "request")
    binary_output = _flag(parameters, "binary_data_output", "request")
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        got = "nothing" if inputs is None else _kind(inputs) if inputs else "an empty list"
        raise BadRequestError(
            f"'inputs' must be a non-empty list of input tensors, got {got}",
            code="invalid_request",
        )
    outputs = data.get("outputs")
    if outputs is not None and not isinstance(outputs, list):
        raise BadRequestError(
            f"'outputs' must be a list of requested outputs, got {_kind(outputs)}",
            code="invalid_request",
        )
    return InferRequest(
        id=request_id,
        inputs=[_parse_input(i, item) for i, item in enumerate(inputs)],
        outputs=(
            None
            if outputs is None
            else [_parse_output(i, item, binary_output) for i, item in enumerate(outputs)]
        ),
        binary_output=binary_output,
    )


# -- checking inputs against the manifest --------------------------------------------------


def _check_names(request: InferRequest, manifest: Manifest) -> dict[str, TensorSpec]:
    specs = {spec.name: spec for spec in manifest.inputs}
    names = [item.name for item in request.inputs]
    expected = list(specs)
    repeated = sorted({name for name in names if names.count(name) > 1})
    missing = [name for name in expected if name not in names]
    unknown = [name for name in names if name not in specs]
    if repeated or missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing input(s) {missing}")
        if unknown:
            parts.append(f"unknown input(s) {unknown}")
        if repeated:
            parts.append(f"input(s) given more than once {repeated}")
        raise BadRequestError(
            f"inputs: {' and '.join(parts)}; model {manifest.name} takes {expected}",
            code="invalid_inputs",
            detail={"missing": missing, "unknown": unknown, "expected": expected},
        )
    return specs


def _check_tensor(item: _Input, spec: TensorSpec) -> None:
    expected = _DATATYPES[spec.dtype]
    if item.datatype != expected:
        raise BadRequestError(
            f"{item.where}: datatype {item.datatype!r} does not match the model's {expected}",
            code="invalid_datatype",
            detail={"input": item.name, "expected": expected, "got": item.datatype},
        )
    if expected not in _WIRE and expected != "BYTES":
        raise BadRequestError(
            f"{item.where}: datatype {expected} is not supported by this server",
            code="unsupported_datatype",
        )
    fits = len(item.shape) == len(spec.shape) and all(
        (want is None and got >= 1) or got == want
        for want, got in zip(spec.shape, item.shape, strict=True)
    )
    if not fits:
        raise BadRequestError(
            f"{item.where}: shape {item.shape} does not fit the model's "
            f"{metadata_shape(spec)} (-1: any size from 1)",
            code="invalid_shape",
            detail={"input": item.name, "expected": metadata_shape(spec), "got": item.shape},
        )


def decode_inputs(
    request: InferRequest, binary: bytes, manifest: Manifest, max_elements: int
) -> dict[str, Array]:
    """Check the request's inputs against ``manifest`` and return them as arrays.

    Args:
        request: The parsed request.
        binary: The bytes after the JSON header (binary tensor data), possibly empty.
        manifest: The model's manifest.
        max_elements: The most tensor elements one request may hold, in all.

    Raises:
        BadRequestError: Names, datatype, shape or data that do not fit, or binary data
            sizes that do not add up to the bytes after the JSON header.
        PayloadTooLargeError: More than ``max_elements`` elements.
    """
    specs = _check_names(request, manifest)
    for item in request.inputs:
        _check_tensor(item, specs[item.name])
    elements = sum(math.prod(item.shape) for item in request.inputs)
    if elements > max_elements:
        raise PayloadTooLargeError(
            f"inputs: the request holds too many tensor elements ({elements}); the limit is "
            f"{max_elements} per request",
            code="too_many_elements",
            detail={"elements": elements, "max_elements": max_elements},
        )
    arrays: dict[str, Array] = {}
    offset = 0
    for item in request.inputs:
        if item.binary_size is None:
            arrays[item.name] = _from_json(item)
            continue
        end = offset + item.binary_size
        if end > len(binary):
            raise BadRequestError(
                f"{item.where}: parameters.binary_data_size is {item.binary_size} bytes but "
                f"only {len(binary) - offset} bytes of binary data are left after the JSON "
                f"header (its length is the {HEADER_LENGTH} header)",
                code="bad_binary_size",
                detail={"input": item.name, "binary_data_size": item.binary_size},
            )
        arrays[item.name] = _from_binary(item, binary[offset:end])
        offset = end
    if offset != len(binary):
        raise BadRequestError(
            f"the body holds {len(binary)} bytes after the JSON header but the inputs' "
            f"binary_data_size add up to {offset}",
            code="bad_binary_size",
            detail={"binary_bytes": len(binary), "binary_data_size_total": offset},
        )
    return arrays


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise BadRequestError(
            f"{where}.data must be a list (flat or nested, row-major), got {_kind(data)}",
            code="invalid_data",
        )
    types = set(map(type, data))
    if list not in types:
        return data
    if types != {list}:
        raise BadRequestError(
            f"{where}.data mixes lists and values at one level; nest evenly or send a flat list",
            code="invalid_data",
        )
    flat: list[Any] = []
    for child in data:
        flat.extend(_flatten(child, where))
    return flat


_JSON_TYPES: dict[str, tuple[frozenset[type], str]] = {
    "BOOL": (frozenset({bool}), "true or false"),
    "BYTES": (frozenset({str}), "a string"),
    "FP16": (frozenset({int, float}), "a number"),
    "FP32": (frozenset({int, float}), "a number"),
    "FP64": (frozenset({int, float}), "a number"),
}


def _from_json(item: _Input) -> Array:
    flat = _flatten(item.data, item.where)
    count = math.prod(item.shape)
    if len(flat) != count:
        raise BadRequestError(
            f"{item.where}: data holds {len(flat)} elements but shape {item.shape} needs {count}",
            code="invalid_data",
            detail={"input": item.name, "elements": len(flat), "expected": count},
        )
    allowed, words = _JSON_TYPES.get(item.datatype, (frozenset({int}), "an integer"))
    if not set(map(type, flat)) <= allowed:
        position = next(i for i, value in enumerate(flat) if type(value) not in allowed)
        raise BadRequestError(
            f"{item.where}.data: element {position} (row-major) must be {words} for "
            f"{item.datatype}, got {_kind(flat[position])}",
            code="invalid_data",
            detail={"input": item.name, "element": position},
        )
    if item.datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = flat
        return array.reshape(item.shape)
    wire = _WIRE[item.datatype]
    if item.datatype.startswith("FP"):
        try:
            values = np.array(flat, dtype=np.float64)
        except OverflowError:  # an integer literal beyond float64 (10**400)
            raise BadRequestError(
                f"{item.where}.data holds a number out of range for {item.datatype}",
                code="out_of_range",
            ) from None
        return _finite(item, values).astype(wire.newbyteorder("=")).reshape(item.shape)
    if item.datatype == "BOOL":
        return np.array(flat, dtype=np.bool_).reshape(item.shape)
    info = np.iinfo(wire)
    try:
        ints = np.array(flat, dtype=np.int64)
    except OverflowError:
        ints = np.array(flat, dtype=object)
    out = np.asarray((ints < info.min) | (ints > info.max), dtype=bool)
    if out.any():
        position = int(np.argmax(out))
        raise BadRequestError(
            f"{item.where}.data: element {position} (row-major) is out of range for "
            f"{item.datatype} ({info.min} to {info.max})",
            code="out_of_range",
            detail={"input": item.name, "element": position},
        )
    return ints.astype(wire.newbyteorder("=")).reshape(item.shape)


def _finite(item: _Input, values: Array) -> Array:
    """Refuse NaN, infinities and values beyond the datatype's range (flat index named)."""
    limit = float(np.finfo(_WIRE[item.datatype]).max)
    bad = ~np.isfinite(values) | (np.abs(values) > limit)
    if bad.any():
        position = int(np.argmax(bad))
        value = float(values[position])
        why = (
            "is not finite" if not math.isfinite(value) else f"is out of range (|x| <= {limit:.6g})"
        )
        raise BadRequestError(
            f"{item.where}: element {position} (row-major) {why} for {item.datatype}",
            code="not_finite" if not math.isfinite(value) else "out_of_range",
            detail={"input": item.name, "element": position},
        )
    return values


def _from_binary(item: _Input, raw: bytes) -> Array:
    count = math.prod(item.shape)
    if item.datatype == "BYTES":
        return _bytes_elements(item, raw, count)
    wire = _WIRE[item.datatype]
    need = count * wire.itemsize
    if len(raw) != need:
        raise BadRequestError(
            f"{item.where}: parameters.binary_data_size is {len(raw)} bytes but shape "
            f"{item.shape} of {item.datatype} needs {need} bytes",
            code="bad_binary_size",
            detail={"input": item.name, "binary_data_size": len(raw), "expected": need},
        )
    values = np.frombuffer(raw, dtype=wire)
    if item.datatype == "BOOL":
        if values.size and int(values.max()) > 1:
            position = int(np.argmax(values > 1))
            raise BadRequestError(
                f"{item.where}: element {position} (row-major) is byte {int(values[position])}; "
                "a BOOL is one byte, 0 or 1",
                code="invalid_data",
                detail={"input": item.name, "element": position},
            )
        return values.astype(np.bool_).reshape(item.shape)
    if item.datatype.startswith("FP"):
        _finite(item, values.astype(np.float64))
    # A native-order, aligned, writable copy: runtimes may refuse a view of the body.
    return values.astype(wire.newbyteorder("=")).reshape(item.shape)


def _bytes_elements(item: _Input, raw: bytes, count: int) -> Array:
    elements: list[str] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequestError(
                f"{item.where}: BYTES element {len(elements)} has a cut-short 4-byte length",
                code="invalid_data",
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadRequestError(
                f"{item.where}: BYTES element {len(elements)} says {length} bytes but only "
                f"{len(raw) - offset} are left in its binary data",
                code="invalid_data",
            )
        chunk = raw[offset : offset + length]
        try:
            elements.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadRequestError(
                f"{item.where}: BYTES element {len(elements)} is not UTF-8 text; the model "
                "takes strings",
                code="invalid_data",
            ) from None
        offset += length
    if len(elements) != count:
        raise BadRequestError(
            f"{item.where}: the binary data holds {len(elements)} BYTES elements but shape "
            f"{item.shape} needs {count}",
            code="invalid_data",
        )
    array = np.empty(count, dtype=object)
    array[:] = elements
    return array.reshape(item.shape)


def requested_outputs(request: InferRequest, manifest: Manifest) -> list[RequestedOutput]:
    """Return the outputs to send: those asked for, or every output of the model.

    Raises:
        BadRequestError: An output the model does not have, one asked for twice, or a
            classification of an output that is not class scores.
    """
    names = [spec.name for spec in manifest.outputs]
    if request.outputs is None:
        return [RequestedOutput(name, request.binary_output) for name in names]
    seen: set[str] = set()
    for index, wanted in enumerate(request.outputs):
        where = f"outputs[{index}] ({wanted.name!r})"
        if wanted.name not in names:
            raise BadRequestError(
                f"{where}: model {manifest.name} has no such output; it has {names}",
                code="invalid_outputs",
                detail={"unknown": wanted.name, "outputs": names},
            )
        if wanted.name in seen:
            raise BadRequestError(f"{where} is asked for twice", code="invalid_outputs")
        seen.add(wanted.name)
        spec = next(spec for spec in manifest.outputs if spec.name == wanted.name)
        if wanted.classification and (
            len(spec.shape) not in (1, 2) or spec.dtype not in ("float16", "float32", "float64")
        ):
            raise BadRequestError(
                f"{where}: classification needs an output of class scores (a [batch, classes] "
                f"or [classes] float tensor); this one is {spec.dtype} {metadata_shape(spec)}",
                code="invalid_outputs",
            )
    return list(request.outputs)


# -- the response ------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedResponse:
    """A response body and the length of its JSON part when binary data follows it."""

    body: bytes
    header_length: int | None

    @property
    def media_type(self) -> str:
        """``application/octet-stream`` with binary data, ``application/json`` without."""
        return "application/json" if self.header_length is None else "application/octet-stream"


def _classify(array: Array, count: int, labels: list[str] | None) -> Array:
    """Top ``count`` classes per row as ``"score:index[:label]"`` strings (BYTES)."""
    rows = array.reshape(1, -1) if array.ndim == 1 else array
    count = min(count, rows.shape[1])
    order = np.argsort(-rows.astype(np.float64), axis=1, kind="stable")[:, :count]
    named = labels if labels is not None and len(labels) == rows.shape[1] else None
    out = np.empty((rows.shape[0], count), dtype=object)
    for r in range(rows.shape[0]):
        for k, index in enumerate(order[r]):
            text = f"{float(rows[r, index]):f}:{int(index)}"
            out[r, k] = f"{text}:{named[int(index)]}" if named is not None else text
    return out.reshape(count) if array.ndim == 1 else out


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _json_data(name: str, array: Array, datatype: str) -> list[Any]:
    if datatype != "BYTES":
        return list(array.ravel().tolist())
    values = []
    for value in array.ravel().tolist():
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise ServerError(
                    f"output {name!r} holds bytes that are not UTF-8 text; ask for it with "
                    "parameters.binary_data true",
                    code="non_text_output",
                ) from None
        values.append(str(value))
    return values


def _binary_data(array: Array, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in array.ravel().tolist():
            data = _as_bytes(value)
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=_WIRE[datatype]).tobytes()


def encode_response(
    manifest: Manifest,
    request_id: str | None,
    outputs: Mapping[str, Array],
    wanted: list[RequestedOutput],
) -> EncodedResponse:
    """Build the response body: JSON outputs inline, binary ones after the JSON header.

    Raises:
        BadRequestError: A JSON output holds values that are not finite (NaN, infinity),
            which JSON cannot carry (binary outputs carry them).
        ServerError: A BYTES output asked for as JSON holds bytes that are not UTF-8.
    """
    described: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for item in wanted:
        array = outputs[item.name]
        if item.classification:
            array = _classify(array, item.classification, manifest.labels)
        datatype = _array_datatype(array)
        entry: dict[str, Any] = {
            "name": item.name,
            "datatype": datatype,
            "shape": [int(dim) for dim in array.shape],
        }
        if item.binary:
            blob = _binary_data(array, datatype)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _json_data(item.name, array, datatype)
        described.append(entry)
    body: dict[str, Any] = {"model_name": manifest.name, "model_version": manifest.version}
    if request_id is not None:
        body["id"] = request_id
    body["outputs"] = described
    try:
        header = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except ValueError:
        raise BadRequestError(
            f"model {manifest.name}/{manifest.version} gave values that are not finite (NaN "
            "or infinity) for these inputs, which JSON cannot carry: send values in the range "
            "the model expects, or ask for the outputs as binary data (parameters.binary_data)",
            code="non_finite_output",
        ) from None
    if not blobs:
        return EncodedResponse(header, None)
    return EncodedResponse(header + b"".join(blobs), len(header))
