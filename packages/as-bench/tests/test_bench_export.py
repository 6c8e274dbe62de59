"""``as_bench.export``: the public seam other packages (as-deploy) export workloads through."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

import as_bench.export as export
from as_bench.exceptions import WorkloadError
from as_bench.workloads import Workload


def test_public_names() -> None:
    assert sorted(export.__all__) == [
        "DEFAULT_OPSET",
        "convert_coreml",
        "convert_tflite",
        "describe_coreml",
        "export_onnx",
        "is_factory_spec",
        "load_torch_model",
        "load_workload",
        "parse_factory_spec",
        "torch_inputs",
    ]


def test_default_opset_is_the_onnx_backends_default() -> None:
    from as_bench.backends.onnxruntime import OnnxRuntimeBackend

    assert export.DEFAULT_OPSET == 18
    assert OnnxRuntimeBackend().opset == export.DEFAULT_OPSET
    default = inspect.signature(export.export_onnx).parameters["opset"].default
    assert default == export.DEFAULT_OPSET


def test_load_a_builtin_workload() -> None:
    workload = export.load_workload("mlp")
    assert isinstance(workload, Workload)
    assert workload.name == "mlp"
    assert not export.is_factory_spec("mlp")


def test_factory_specs_parse_and_a_bad_one_says_what_is_expected() -> None:
    assert export.parse_factory_spec("pkg.models:factory") == ("pkg.models", "factory")
    assert export.is_factory_spec("pkg.models:factory")
    with pytest.raises(WorkloadError, match=r"not 'pkg\.module:factory'"):
        export.parse_factory_spec("pkg.models")
    with pytest.raises(WorkloadError, match=r"not 'pkg\.module:factory'"):
        export.load_workload("not a module:factory")


def test_export_mlp_to_onnx_and_run_it_against_eager_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript", reason="exporting to ONNX needs the onnx extra")
    ort = pytest.importorskip("onnxruntime")

    workload = export.load_workload("mlp")
    path, dynamic = export.export_onnx(workload, 4, tmp_path / "onnx")
    assert path.is_file() and path.suffix == ".onnx"

    model = export.load_torch_model(workload)
    assert isinstance(model, torch.nn.Module) and not model.training
    # A batch size other than the one exported with works when the batch axis is dynamic.
    batch = 3 if dynamic else 4
    arrays = workload.inputs(batch)
    with torch.no_grad():
        expected = model(*export.torch_inputs(arrays))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]
    (got, *_) = session.run(None, dict(zip(names, arrays, strict=True)))
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_torch_inputs_share_memory_with_the_arrays() -> None:
    pytest.importorskip("torch")
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    (tensor,) = export.torch_inputs([array])
    array[0, 0] = 42.0
    assert tensor[0, 0].item() == 42.0
