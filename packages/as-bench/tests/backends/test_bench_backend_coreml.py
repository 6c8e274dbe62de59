"""Core ML backend: conversion is checked everywhere, prediction on macOS (Apple Silicon)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_core.extras import is_installed, require

torch = pytest.importorskip("torch")
if not is_installed("coremltools"):
    pytest.skip("coremltools is not installed (as-bench[coreml])", allow_module_level=True)
from torch import nn  # noqa: E402  (typed, so nn.Module can be subclassed)

from as_bench.backends.coreml import COMPUTE_UNITS, CoreMLBackend  # noqa: E402
from as_bench.exceptions import BackendError, DeviceUnavailableError  # noqa: E402
from as_bench.workloads._base import Workload  # noqa: E402


def _ct() -> Any:
    """coremltools, imported when a test first needs it: importing it takes seconds, which
    collection (in every xdist worker) would otherwise pay."""
    return require("coremltools", "coreml")


ON_APPLE_SILICON = sys.platform == "darwin" and platform.machine() == "arm64"


def _workload(
    make_model: Callable[[], Any],
    shape: tuple[int, ...],
    name: str,
    input_names: tuple[str, ...] = ("pixels",),
) -> Workload:
    def make_inputs(batch_size: int) -> tuple[np.ndarray, ...]:
        rng = np.random.default_rng(batch_size)
        return (rng.standard_normal((batch_size, *shape)).astype(np.float32),)

    def build() -> Any:
        torch.manual_seed(0)
        return make_model().eval()

    return Workload(
        name=name, description="test model", task="classification", make_model=build,
        make_inputs=make_inputs, input_names=input_names, output_names=("logits",),
    )  # fmt: skip


def _mlp() -> Any:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10))


def _cnn() -> Any:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10)
    )


MLP = _workload(_mlp, (16,), "mlp")
CNN = _workload(_cnn, (1, 8, 8), "cnn")


def _program_ops(path: Path) -> list[str]:
    spec = _ct().models.MLModel(str(path), skip_model_load=True).get_spec()
    return [
        op.type
        for function in spec.mlProgram.functions.values()
        for block in function.block_specializations.values()
        for op in block.operations
    ]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize(
    ("workload", "shape"), [(MLP, [3, 16]), (CNN, [3, 1, 8, 8])], ids=["mlp", "cnn"]
)
def test_conversion_writes_an_ml_program_with_the_workload_interface(
    workload: Workload, shape: list[int], precision: Any, tmp_path: Path
) -> None:
    path = CoreMLBackend().convert(workload, 3, tmp_path, precision=precision)
    assert path == tmp_path / f"{workload.name}-bs3-{precision}.mlpackage" and path.is_dir()
    assert not list(tmp_path.glob(".partial-*"))
    # Read back independently of the backend's own describe().
    spec = _ct().models.MLModel(str(path), skip_model_load=True).get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    assert [i.name for i in spec.description.input] == ["pixels"]
    assert list(spec.description.input[0].type.multiArrayType.shape) == shape
    assert [o.name for o in spec.description.output] == ["logits"]
    described = CoreMLBackend().describe(path)
    assert described["spec_version"] >= 7  # macOS13 target
    # Inputs and outputs stay float32 at the interface even for an fp16 program.
    assert described["inputs"] == [{"name": "pixels", "shape": shape, "dtype": "float32"}]
    assert described["outputs"] == [{"name": "logits", "shape": [3, 10], "dtype": "float32"}]
    ops = _program_ops(path)
    assert "linear" in ops and ("conv" in ops) == (workload is CNN)
    # fp16 programs cast their float32 input in and their output back out; fp32 ones do not.
    assert ("cast" in ops) == (precision == "fp16")


def test_conversion_is_cached_per_batch_size_and_precision(tmp_path: Path) -> None:
    backend = CoreMLBackend()
    first = backend.convert(MLP, 2, tmp_path)
    stamp = (first / "Manifest.json").stat().st_mtime_ns
    assert backend.convert(MLP, 2, tmp_path) == first
    assert (first / "Manifest.json").stat().st_mtime_ns == stamp
    assert backend.convert(MLP, 4, tmp_path) != first
    assert (
        CoreMLBackend(precision="fp16").convert(MLP, 2, tmp_path).name == "mlp-bs2-fp16.mlpackage"
    )


def test_input_names_must_match_the_model(tmp_path: Path) -> None:
    two_names = _workload(_mlp, (16,), "named", input_names=("a", "b"))
    with pytest.raises(BackendError, match=r"names 2 inputs \['a', 'b'\], the model has 1"):
        CoreMLBackend().convert(two_names, 1, tmp_path)


def test_unconvertible_model_names_the_step(tmp_path: Path) -> None:
    class Unsupported(nn.Module):
        def forward(self, x: Any) -> Any:
            return torch.lgamma(x)  # coremltools has no conversion for lgamma

    workload = _workload(Unsupported, (4,), "lgamma")
    with pytest.raises(
        BackendError, match=r"coreml: converting with coremltools workload 'lgamma'.*lgamma"
    ):
        CoreMLBackend().convert(workload, 2, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written is left to be reused


def test_tracer_warnings_are_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Branchy(nn.Module):
        def forward(self, x: Any) -> Any:
            return x * 2 if x.sum() > 0 else x  # the trace keeps one branch: a TracerWarning

    with caplog.at_level("INFO", logger="as_bench.backends.coreml"):
        path = CoreMLBackend().convert(_workload(Branchy, (4,), "branchy"), 2, tmp_path)
    assert path.is_dir()
    assert "TorchScript tracer: Converting a tensor to a Python boolean" in caplog.text


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="precision"):
        CoreMLBackend(precision="int8")  # type: ignore[arg-type]
    assert set(COMPUTE_UNITS.values()) == {"CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"}
    for unit in COMPUTE_UNITS.values():
        assert hasattr(_ct().ComputeUnit, unit)


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the behaviour off macOS")
def test_off_macos_there_are_no_devices_and_prepare_says_why(tmp_path: Path) -> None:
    backend = CoreMLBackend()
    assert backend.name == "coreml" and backend.extra == "coreml"
    assert not backend.is_available()
    assert backend.devices() == []
    with pytest.raises(DeviceUnavailableError, match="Core ML prediction needs macOS"):
        backend.prepare(MLP, "coreml-cpu", 2, tmp_path)


def test_prepare_plumbing_with_the_runtime_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What prepare() does on macOS, checked here with Core ML's runtime (macOS-only)
    replaced by a recorder; the real runtime is exercised by the macOS tests below."""
    import as_bench.backends.coreml as coreml_module

    real_model = _ct().models.MLModel
    calls: dict[str, Any] = {}

    class RecordingModel:
        def __init__(self, path: str, compute_units: Any) -> None:
            calls["compute_units"] = compute_units
            self._real = real_model(path, skip_model_load=True)

        def get_spec(self) -> Any:
            return self._real.get_spec()

        def predict(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            calls["feed"] = feed
            return {"logits": feed["pixels"][:, :10] * 2}

    backend = CoreMLBackend(precision="fp16")
    backend.convert(MLP, 3, tmp_path)  # for real, before the converter's MLModel is replaced
    monkeypatch.setattr(coreml_module, "_on_macos", lambda: True)
    monkeypatch.setattr("as_bench.backends.coreml.platform.machine", lambda: "arm64")
    monkeypatch.setattr(_ct().models, "MLModel", RecordingModel)
    assert backend.devices() == list(COMPUTE_UNITS)
    prepared = backend.prepare(MLP, "coreml-ane", 3, tmp_path)
    assert calls["compute_units"] == _ct().ComputeUnit.CPU_AND_NE
    inputs = MLP.inputs(3)
    (got,) = prepared.predict(inputs)
    np.testing.assert_array_equal(calls["feed"]["pixels"], inputs[0])
    np.testing.assert_array_equal(got, inputs[0][:, :10] * 2)
    assert set(prepared.bench_call()) == {"logits"}
    assert prepared.timing_device == "cpu" and prepared.device == "coreml-ane"
    path = tmp_path / "mlp-bs3-fp16.mlpackage"
    assert prepared.info["model_path"] == str(path)
    assert prepared.info["compute_units"] == "CPU_AND_NE" and prepared.info["precision"] == "fp16"
    assert prepared.info["inputs"] == [{"name": "pixels", "shape": [3, 16], "dtype": "float32"}]
    assert prepared.model_size_bytes == sum(
        f.stat().st_size for f in path.rglob("*") if f.is_file()
    )
    with pytest.raises(BackendError, match=r"'pixels' expected shape \(3, 16\), got \(2, 16\)"):
        prepared.predict(MLP.inputs(2))
    with pytest.raises(DeviceUnavailableError, match="unknown device 'cpu'"):
        backend.prepare(MLP, "cpu", 3, tmp_path)
    prepared.close()
    with pytest.raises(BackendError, match="closed"):
        prepared.bench_call()


def test_importing_the_module_imports_no_heavy_library() -> None:
    code = (
        "import sys, as_bench.backends.coreml as m; m.CoreMLBackend().is_available(); "
        "heavy = {'torch', 'coremltools'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_backend_imports_coremltools_under_warnings_as_errors() -> None:
    # coremltools and torchao have invalid escape sequences in docstrings; without cached
    # bytecode, -W error turns them into a SyntaxError unless the backend's import
    # tolerates that one message (pytest.importorskip above hides all warnings).
    code = (
        "from as_core.extras import require; "
        "from as_bench.exceptions import MissingExtraError; "
        "require('coremltools', 'coreml', error=MissingExtraError)"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, env=env)


# --- macOS on Apple Silicon: prediction -------------------------------------------------


def _torch_outputs(workload: Workload, batch_size: int) -> np.ndarray:
    with torch.no_grad():
        inputs = (torch.from_numpy(a) for a in workload.inputs(batch_size))
        return workload.make_model()(*inputs).numpy()  # type: ignore[no-any-return]


@pytest.mark.macos
@pytest.mark.skipif(not ON_APPLE_SILICON, reason="Core ML prediction needs macOS on Apple Silicon")
@pytest.mark.parametrize(("precision", "atol"), [("fp32", 1e-4), ("fp16", 1e-2)])
@pytest.mark.parametrize("device", list(COMPUTE_UNITS))
@pytest.mark.parametrize("workload", [MLP, CNN], ids=["mlp", "cnn"])
def test_predictions_match_torch(
    workload: Workload, device: str, precision: Any, atol: float, tmp_path: Path
) -> None:
    backend = CoreMLBackend(precision=precision)
    assert device in backend.devices()
    prepared = backend.prepare(workload, device, 3, tmp_path)
    got = prepared.predict(workload.inputs(3))
    assert len(got) == 1 and got[0].dtype == np.float32
    np.testing.assert_allclose(got[0], _torch_outputs(workload, 3), atol=atol, rtol=atol)
    raw = prepared.bench_call()
    assert set(raw) == {"logits"}
    assert prepared.timing_device == "cpu"
    assert prepared.info["compute_units"] == COMPUTE_UNITS[device]
    assert prepared.info["precision"] == precision and prepared.info["spec_version"] >= 7
    assert prepared.model_size_bytes is not None and prepared.model_size_bytes > 0
    prepared.close()
    with pytest.raises(BackendError, match="closed"):
        prepared.bench_call()


@pytest.mark.macos
@pytest.mark.skipif(not ON_APPLE_SILICON, reason="Core ML prediction needs macOS on Apple Silicon")
def test_wrong_input_shape_names_expected_and_got(tmp_path: Path) -> None:
    prepared = CoreMLBackend().prepare(MLP, "coreml-cpu", 3, tmp_path)
    with pytest.raises(BackendError, match=r"'pixels' expected shape \(3, 16\), got \(2, 16\)"):
        prepared.predict(MLP.inputs(2))
    with pytest.raises(DeviceUnavailableError, match="unknown device 'cpu'"):
        CoreMLBackend().prepare(MLP, "cpu", 3, tmp_path)
