"""The external-data files an ONNX model reads, found without loading the model or its weights.

:func:`check_external_data` refuses a verified ONNX model that would read a file its
manifest does not list (so a file whose sha256 nobody checked), or a file outside its
version folder; the ONNX runner calls it before ONNX Runtime opens the model.

An ONNX tensor can keep its values in another file: its ``external_data`` entries name the
file (``location``, relative to the model file's folder) and ONNX Runtime reads it when the
session is created. :func:`external_data_locations` walks the model's protobuf encoding
directly (the wire format, no ``onnx`` package needed, so the server's core install can
check it) and returns every such location: initializers and sparse initializers of the main
graph, of every subgraph (``If``, ``Loop``, ``Scan`` bodies, at any depth), of functions
and of training graphs, and tensors held in node attributes. Embedded weights (``raw_data``)
are skipped by their length, never copied, so a caller can pass a memory map of a large file.

The walk uses an explicit stack, not recursion: a hostile file nested a million graphs deep
is walked like a flat one.
"""

from __future__ import annotations

import errno
import mmap
import os
import posixpath
import stat
from typing import TYPE_CHECKING, TypeAlias

from as_deploy.exceptions import IntegrityError, RepositoryError, UnsafePathError

if TYPE_CHECKING:
    from as_deploy.repository import LoadedModel

__all__ = ["ModelBytes", "check_external_data", "external_data_locations"]

ModelBytes: TypeAlias = bytes | bytearray | memoryview | mmap.mmap
"""What :func:`external_data_locations` reads: the bytes of a file, or a memory map of it."""

# Message kinds and, for each, the fields (numbers from onnx.proto) holding messages that
# can contain tensors. Every other field is skipped.
_MODEL, _TRAINING, _GRAPH, _NODE, _FUNCTION, _ATTRIBUTE, _SPARSE, _TENSOR = range(8)
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {7: _GRAPH, 20: _TRAINING, 25: _FUNCTION},  # graph, training_info, functions
    _TRAINING: {1: _GRAPH, 2: _GRAPH},  # initialization, algorithm
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},  # node, initializer, sparse_initializer
    _NODE: {5: _ATTRIBUTE},  # attribute
    _FUNCTION: {7: _NODE, 11: _ATTRIBUTE},  # node, attribute_proto
    # t, g, tensors, graphs, sparse_tensor, sparse_tensors
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},  # values, indices
}
_TENSOR_EXTERNAL_DATA = 13  # repeated StringStringEntryProto
_TENSOR_DATA_LOCATION = 14  # enum DataLocation; 1 is EXTERNAL
_EXTERNAL = 1
_VARINT, _FIXED64, _LENGTH, _START_GROUP, _END_GROUP, _FIXED32 = range(6)
# ONNX Runtime reads a tensor whose location starts with this from process memory.
_ORT_MEMORY_TAG = "*/_ORT_MEM_ADDR_/*"
_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


class _Reader:
    """Reads protobuf fields from ``data[start:end]``."""

    def __init__(self, data: memoryview, start: int, end: int) -> None:
        self.data = data
        self.pos = start
        self.end = end

    def varint(self) -> int:
        result = shift = 0
        data, end = self.data, self.end
        while True:
            if self.pos >= end:
                raise ValueError(f"truncated varint at byte {self.pos}")
            byte = data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift >= 70:
                raise ValueError(f"varint longer than 10 bytes at byte {self.pos}")

    def field(self) -> tuple[int, int, int, int]:
        """Return ``(number, wire type, value start, value end)``; varints hold the value."""
        key = self.varint()
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError(f"field number 0 at byte {self.pos}")
        if wire == _VARINT:
            value = self.varint()
            return number, wire, value, value
        if wire == _LENGTH:
            length = self.varint()
            start = self.pos
            if length > self.end - start:
                raise ValueError(f"field {number} at byte {start} runs past its message")
            self.pos = start + length
            return number, wire, start, self.pos
        if wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if size > self.end - self.pos:
                raise ValueError(f"field {number} at byte {self.pos} runs past its message")
            self.pos += size
            return number, wire, 0, 0
        if wire == _START_GROUP:
            self._skip_group(number)
            return number, wire, 0, 0
        raise ValueError(f"invalid wire type {wire} at byte {self.pos}")

    def _skip_group(self, number: int) -> None:
        open_groups = [number]
        while open_groups:
            key = self.varint()
            inner, wire = key >> 3, key & 7
            if wire == _END_GROUP:
                if inner != open_groups.pop():
                    raise ValueError(f"unbalanced group at byte {self.pos}")
            elif wire == _START_GROUP:
                open_groups.append(inner)
            elif wire == _VARINT:
                self.varint()
            elif wire == _LENGTH:
                length = self.varint()
                if length > self.end - self.pos:
                    raise ValueError(f"field {inner} at byte {self.pos} runs past its message")
                self.pos += length
            elif wire in (_FIXED64, _FIXED32):
                self.pos += 8 if wire == _FIXED64 else 4
                if self.pos > self.end:
                    raise ValueError(f"field {inner} runs past its message")
            else:
                raise ValueError(f"invalid wire type {wire} at byte {self.pos}")


def _entry(data: memoryview, start: int, end: int) -> tuple[bytes, bytes]:
    """A ``StringStringEntryProto``: ``(key, value)``."""
    reader = _Reader(data, start, end)
    key = value = b""
    while reader.pos < reader.end:
        number, wire, begin, stop = reader.field()
        if wire == _LENGTH and number == 1:
            key = bytes(data[begin:stop])
        elif wire == _LENGTH and number == 2:
            value = bytes(data[begin:stop])
    return key, value


def _tensor_location(data: memoryview, start: int, end: int) -> str | None:
    """The ``location`` of a tensor's external data; ``""`` if external without one."""
    reader = _Reader(data, start, end)
    location: str | None = None
    external = False
    while reader.pos < reader.end:
        number, wire, begin, stop = reader.field()
        if number == _TENSOR_EXTERNAL_DATA and wire == _LENGTH:
            key, value = _entry(data, begin, stop)
            if key == b"location":
                try:
                    location = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise ValueError(
                        f"an external-data location at byte {begin} is not UTF-8"
                    ) from None
        elif number == _TENSOR_DATA_LOCATION and wire == _VARINT:
            external = begin == _EXTERNAL
    if location is None and external:
        return ""
    return location


def external_data_locations(model: ModelBytes) -> list[str]:
    """Return every external-data ``location`` in the serialized ONNX model ``model``.

    Args:
        model: The bytes of a ``.onnx`` file (``bytes``, a ``memoryview``, an ``mmap``).

    Returns:
        The locations, one per tensor that has one (repeats included), as written in the
        file (relative to the model file's folder). A tensor marked external but without
        a location gives ``""``.

    Raises:
        ValueError: The bytes are not a well-formed protobuf message (truncated, a length
            past its message's end, an invalid wire type).
    """
    with memoryview(model) as view, view.cast("B") as data:
        return _walk(data)


def _walk(data: memoryview) -> list[str]:
    locations: list[str] = []
    stack: list[tuple[int, int, int]] = [(_MODEL, 0, len(data))]
    while stack:
        kind, start, end = stack.pop()
        if kind == _TENSOR:
            location = _tensor_location(data, start, end)
            if location is not None:
                locations.append(location)
            continue
        children = _CHILDREN[kind]
        reader = _Reader(data, start, end)
        while reader.pos < reader.end:
            number, wire, begin, stop = reader.field()
            child = children.get(number)
            if child is not None and wire == _LENGTH:
                stack.append((child, begin, stop))
    return locations


def _locations_in(path: os.PathLike[str] | str) -> list[str]:
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(f"{path} is a symlink; symlinks are refused") from exc
        raise RepositoryError(f"could not open {path}: {exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(f"{path} is not a regular file; only regular files are read")
        if info.st_size == 0:
            raise IntegrityError(f"{path} is empty, not an ONNX model")
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
            return external_data_locations(mapped)
    except ValueError as exc:
        raise IntegrityError(f"{path} is not an ONNX model (a protobuf file): {exc}") from None
    except OSError as exc:
        if isinstance(exc, RepositoryError):
            raise
        raise RepositoryError(f"could not read {path}: {exc}") from exc
    finally:
        os.close(fd)


def check_external_data(model: LoadedModel) -> None:
    """Refuse ``model`` if its ONNX file reads a file its manifest does not list.

    Every external-data location must be a relative path that stays inside the version
    folder and names a file of the manifest (whose size and sha256 the repository has
    checked). The model file is read through a memory map and walked, not loaded.

    Raises:
        IntegrityError: It reads a file the manifest does not list, has a tensor marked
            external without a location, or is not a well-formed ONNX protobuf file.
        UnsafePathError: It reads from outside its version folder (an absolute path,
            ``..`` leading out, ONNX Runtime's in-memory tag).
        RepositoryError: The file could not be read.
    """
    path = model.model_path
    locations = _locations_in(path)
    listed = {entry.path for entry in model.manifest.files}
    model_dir = posixpath.dirname(model.manifest.model_file.path)
    for location in dict.fromkeys(locations):
        where = f"{path} reads external data from {location!r}"
        if not location:
            raise IntegrityError(f"{path} has a tensor stored in another file with no location")
        if (
            "\\" in location
            or "\x00" in location
            or location.startswith(_ORT_MEMORY_TAG)
            or posixpath.isabs(location)
        ):
            raise UnsafePathError(
                f"{where}: not a relative path inside the version folder {model.directory}"
            )
        relative = posixpath.normpath(posixpath.join(model_dir, location))
        if relative == ".." or relative.startswith("../"):
            raise UnsafePathError(f"{where}, outside the version folder {model.directory}")
        if relative not in listed:
            raise IntegrityError(
                f"{where}, a file the manifest does not list, so its sha256 is not checked; "
                f"add {relative!r} to the manifest's files"
            )
