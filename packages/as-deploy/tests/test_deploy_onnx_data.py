"""Finding the external-data files an ONNX model reads, without loading it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from as_deploy._onnx_data import external_data_locations


def _external(name: str, location: str) -> onnx.TensorProto:
    tensor = numpy_helper.from_array(np.ones((2, 2), dtype=np.float32), name)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return tensor


def _graph(
    name: str, initializers: list[onnx.TensorProto], nodes: list[onnx.NodeProto]
) -> onnx.GraphProto:
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    return helper.make_graph(nodes, name, [], [out], initializers)


def test_every_place_a_tensor_can_be_is_walked() -> None:
    branch = _graph("then", [_external("b", "in-branch.bin")], [])
    attribute_tensor = helper.make_node("Constant", [], ["c"], value=_external("c", "attr.bin"))
    node_with_graphs = helper.make_node(
        "If", ["cond"], ["y"], then_branch=branch, else_branch=_graph("else", [], [])
    )
    sparse = onnx.SparseTensorProto()
    sparse.values.CopyFrom(_external("sv", "sparse-values.bin"))
    sparse.indices.CopyFrom(numpy_helper.from_array(np.array([0], dtype=np.int64), "si"))
    sparse.dims.extend([4])
    graph = _graph("main", [_external("w", "weights.bin")], [attribute_tensor, node_with_graphs])
    graph.sparse_initializer.append(sparse)
    function = helper.make_function(
        "local",
        "f",
        [],
        ["out"],
        [helper.make_node("Constant", [], ["out"], value=_external("fc", "function.bin"))],
        [helper.make_opsetid("", 17)],
    )
    model = helper.make_model(graph, functions=[function])
    training = model.training_info.add()
    training.initialization.CopyFrom(_graph("init", [_external("t", "training.bin")], []))
    embedded = numpy_helper.from_array(np.zeros(1000, dtype=np.float32), "embedded")
    model.graph.initializer.append(embedded)

    found = external_data_locations(model.SerializeToString())

    assert sorted(found) == sorted(
        [
            "weights.bin",
            "attr.bin",
            "in-branch.bin",
            "sparse-values.bin",
            "function.bin",
            "training.bin",
        ]
    )


def test_a_tensor_marked_external_without_a_location_is_reported() -> None:
    tensor = numpy_helper.from_array(np.ones(2, dtype=np.float32), "w")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    model = helper.make_model(_graph("g", [tensor], []))
    assert external_data_locations(model.SerializeToString()) == [""]


def test_a_model_without_external_data_has_none() -> None:
    weights = numpy_helper.from_array(np.ones((64, 64), dtype=np.float32), "w")
    model = helper.make_model(_graph("g", [weights], []))
    assert external_data_locations(model.SerializeToString()) == []


def test_subgraphs_nested_deeper_than_the_stack_are_walked() -> None:
    # 20,000 If nodes, each in the branch of the one above: recursion would overflow.
    depth = 20_000
    inner = _graph("g", [_external("w", "deep.bin")], []).SerializeToString()

    def field(number: int, payload_size: int) -> bytes:
        key = bytes([(number << 3) | 2]) if number < 16 else _varint((number << 3) | 2)
        return key + _varint(payload_size)

    # Built from the inside out, as headers only: graph.node(1) > node.attribute(5) >
    # attribute.g(6) > graph ..., under model.graph(7).
    headers: list[bytes] = []
    size = len(inner)
    for _ in range(depth):
        for number in (6, 5, 1):
            header = field(number, size)
            headers.append(header)
            size += len(header)
    headers.append(field(7, size))
    data = b"".join(reversed(headers)) + inner
    assert external_data_locations(data) == ["deep.bin"]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        pytest.param(b"\x3a\x10\x0a", "runs past its message", id="truncated"),
        pytest.param(b"\x0f", "invalid wire type 7", id="wire-type-7"),
        pytest.param(b"\x08" + b"\xff" * 11, "varint longer than 10 bytes", id="long-varint"),
        pytest.param(b"\x00", "field number 0", id="field-0"),
        pytest.param(b"\x0c", "invalid wire type 4", id="stray-end-group"),
    ],
)
def test_malformed_bytes_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        external_data_locations(data)


def test_unknown_groups_are_skipped() -> None:
    group = b"\x0b" + b"\x08\x01" + b"\x0c"  # field 1: start group, a varint, end group
    weights = helper.make_model(_graph("g", [_external("w", "w.bin")], [])).SerializeToString()
    assert external_data_locations(group + weights) == ["w.bin"]
