"""LiteRT backend: litert-torch converts small torch models, the interpreter reproduces them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_core.extras import first_missing

torch = pytest.importorskip("torch")
# Looked up, not imported: importing litert-torch takes seconds, which collection (in every
# xdist worker) would pay; the backend imports it when a test converts.
_MISSING = first_missing(["litert_torch", "ai_edge_litert"])
if _MISSING is not None:
    pytest.skip(f"{_MISSING} is not installed (as-bench[tflite])", allow_module_level=True)
from torch import nn  # noqa: E402  (typed, so nn.Module can be subclassed)

from as_bench.backends.tflite import TFLiteBackend  # noqa: E402
from as_bench.exceptions import BackendError, DeviceUnavailableError  # noqa: E402
from as_bench.workloads._base import Workload  # noqa: E402


def _workload(
    make_model: Callable[[], Any],
    make_inputs: Callable[[int], tuple[np.ndarray, ...]],
    name: str,
    input_names: tuple[str, ...] = ("input",),
    output_names: tuple[str, ...] = ("output",),
) -> Workload:
    def build() -> Any:
        torch.manual_seed(0)
        return make_model().eval()

    return Workload(
        name=name, description="test model", task="classification", make_model=build,
        make_inputs=make_inputs, input_names=input_names, output_names=output_names,
    )  # fmt: skip


def _normal(*shape: int) -> Callable[[int], tuple[np.ndarray, ...]]:
    def make(batch_size: int) -> tuple[np.ndarray, ...]:
        rng = np.random.default_rng(batch_size)
        return (rng.standard_normal((batch_size, *shape)).astype(np.float32),)

    return make


def _mlp() -> Any:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10))


def _cnn() -> Any:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10)
    )


MLP = _workload(_mlp, _normal(16), "mlp")
CNN = _workload(_cnn, _normal(1, 8, 8), "cnn")


def _torch_outputs(workload: Workload, inputs: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    with torch.no_grad():
        out = workload.make_model()(*(torch.from_numpy(a) for a in inputs))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One folder for the module: converted files are cached by batch size, as in a run.
    return tmp_path_factory.mktemp("tflite")


@pytest.mark.parametrize("workload", [MLP, CNN], ids=["mlp", "cnn"])
def test_outputs_match_torch(workload: Workload, workdir: Path) -> None:
    prepared = TFLiteBackend(num_threads=2).prepare(workload, "cpu", 3, workdir)
    inputs = workload.inputs(3)
    got = prepared.predict(inputs)
    want = _torch_outputs(workload, inputs)
    assert len(got) == 1 and got[0].shape == (3, 10) and got[0].dtype == np.float32
    np.testing.assert_allclose(got[0], want[0], atol=1e-5, rtol=1e-4)
    bench = prepared.bench_call()  # finished host data on the workload's own inputs
    np.testing.assert_array_equal(bench[0], got[0])
    path = workdir / f"{workload.name}-bs3.tflite"
    assert prepared.model_size_bytes == path.stat().st_size > 0
    assert prepared.timing_device == "cpu" and prepared.device == "cpu"
    info = prepared.info
    assert info["model_path"] == str(path) and info["num_threads"] == 2
    assert info["converter"].startswith("litert-torch ") and "None" not in info["converter"]
    assert info["runtime"].startswith("ai-edge-litert ")
    assert info["inputs"][0]["name"] == "input" and info["inputs"][0]["dtype"] == "float32"
    assert info["inputs"][0]["shape"] == [3, *workload.inputs(1)[0].shape[1:]]
    assert info["outputs"] == [{"name": "output", "shape": [3, 10], "dtype": "float32"}]
    prepared.close()


def test_converted_files_are_cached_per_batch_size(workdir: Path) -> None:
    backend = TFLiteBackend()
    first = backend.convert(MLP, 5, workdir)
    stamp = first.stat().st_mtime_ns
    assert backend.convert(MLP, 5, workdir) == first
    assert first.stat().st_mtime_ns == stamp  # reused, not converted again
    other = backend.prepare(MLP, "cpu", 2, workdir)
    assert other.info["inputs"][0]["shape"] == [2, 16]  # a separate file, static shape
    assert not list(workdir.glob("*.partial"))


def test_wrong_shape_and_dtype_name_expected_and_got(workdir: Path) -> None:
    prepared = TFLiteBackend().prepare(MLP, "cpu", 3, workdir)
    with pytest.raises(BackendError, match=r"'input' expected shape \(3, 16\), got \(4, 16\)"):
        prepared.predict(MLP.inputs(4))
    with pytest.raises(BackendError, match="'input' expected dtype float32, got float64"):
        prepared.predict((MLP.inputs(3)[0].astype(np.float64),))
    with pytest.raises(BackendError, match="expected 1 inputs"):
        prepared.predict((*MLP.inputs(3), *MLP.inputs(3)))


class _TwoInTwoOut(nn.Module):
    """Inputs of different shapes and an int64 one, so a mix-up cannot go unnoticed."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 4)
        self.proj = nn.Linear(6, 4)

    def forward(self, ids: Any, features: Any) -> Any:
        pooled = self.embed(ids).mean(dim=1)
        return pooled + self.proj(features), self.proj(features) * 2


def _ids_and_features(batch_size: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(batch_size)
    ids = rng.integers(0, 20, size=(batch_size, 7), dtype=np.int64)
    return ids, rng.standard_normal((batch_size, 6)).astype(np.float32)


def test_several_inputs_and_outputs_keep_their_order(workdir: Path) -> None:
    workload = _workload(
        _TwoInTwoOut, _ids_and_features, "two", ("ids", "features"), ("mixed", "scaled")
    )
    prepared = TFLiteBackend().prepare(workload, "cpu", 2, workdir)
    # litert-torch stores the int64 ids as int32; the backend casts them on the way in.
    assert [i["dtype"] for i in prepared.info["inputs"]] == ["int32", "float32"]
    assert [o["name"] for o in prepared.info["outputs"]] == ["mixed", "scaled"]
    inputs = workload.inputs(2)
    for got, want in zip(prepared.predict(inputs), _torch_outputs(workload, inputs), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)


def test_quantized_conversions_are_smaller_and_name_their_mode(workdir: Path) -> None:
    backend = TFLiteBackend()
    fp32 = backend.convert(MLP, 1, workdir)
    dynamic = backend.convert(MLP, 1, workdir, quantization="dynamic-int8")
    assert dynamic.name == "mlp-bs1-dynamic-int8.tflite"
    assert backend.convert(
        MLP, 1, workdir, quantization="dynamic-int8", per_channel=False
    ).name == ("mlp-bs1-dynamic-int8-per-tensor.tflite")
    rows = [MLP.inputs(1) for _ in range(4)]
    full = backend.convert(MLP, 1, workdir, quantization="int8", representative=rows)
    assert full.name == "mlp-bs1-int8.tflite"
    # int8 weight matrices save 3 of every 4 bytes; the model is so small that the graph,
    # the biases and the scales are most of the file, so the saving is what is checked.
    matrices = sum(p.numel() * 4 for p in MLP.make_model().parameters() if p.dim() == 2)
    assert fp32.stat().st_size - dynamic.stat().st_size > 0.5 * matrices
    module = __import__("ai_edge_litert.interpreter", fromlist=["Interpreter"])
    for path, io_dtype in ((dynamic, np.float32), (full, np.int8)):
        interpreter = module.Interpreter(model_path=str(path))
        weights = {
            tuple(d["shape"]): d["dtype"]
            for d in interpreter.get_tensor_details()
            if tuple(d["shape"]) in {(32, 16), (10, 32)}
        }
        assert weights == {(32, 16): np.int8, (10, 32): np.int8}, path.name
        details = interpreter.get_input_details()[0]
        assert details["dtype"] == io_dtype, path.name
    assert details["quantization"][0] > 0  # the full-integer input's scale
    with pytest.raises(BackendError, match="needs representative data"):
        backend.convert(MLP, 1, workdir, quantization="int8")
    with pytest.raises(ValueError, match="quantization must be one of"):
        backend.convert(MLP, 1, workdir, quantization="int4")  # type: ignore[arg-type]


def test_conversion_failure_names_the_step(tmp_path: Path) -> None:
    def broken() -> Any:
        raise RuntimeError("no weights here")

    workload = _workload(broken, _normal(4), "broken")
    with pytest.raises(BackendError, match="building the model of workload 'broken' failed"):
        TFLiteBackend().prepare(workload, "cpu", 1, tmp_path)


def test_devices_and_refusals(tmp_path: Path) -> None:
    backend = TFLiteBackend()
    assert backend.name == "tflite" and backend.extra == "tflite"
    assert backend.is_available() and backend.devices() == ["cpu"]
    with pytest.raises(DeviceUnavailableError, match="'cpu' only"):
        backend.prepare(MLP, "cuda", 1, tmp_path)
    with pytest.raises(ValueError, match="num_threads"):
        TFLiteBackend(num_threads=0)


def test_close_releases_the_interpreter(workdir: Path) -> None:
    prepared = TFLiteBackend().prepare(MLP, "cpu", 3, workdir)
    prepared.close()
    prepared.close()  # safe twice
    with pytest.raises(BackendError, match="closed"):
        prepared.bench_call()


def test_importing_the_module_imports_no_heavy_library() -> None:
    code = (
        "import sys, as_bench.backends.tflite as m; m.TFLiteBackend().is_available(); "
        "heavy = {'torch', 'litert_torch', 'ai_edge_litert'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
