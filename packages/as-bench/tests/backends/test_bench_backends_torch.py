"""PyTorch eager and torch.compile backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from as_bench.backends import Backend, check_outputs, evaluate, get_backend
from as_bench.backends.torch_compile import TorchCompileBackend, TorchCompileCudaGraphsBackend
from as_bench.exceptions import BackendError, DeviceUnavailableError
from as_bench.workloads import Workload, get_workload

torch = pytest.importorskip("torch", reason="the torch backends need the torch extra")

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
needs_mps = pytest.mark.skipif(
    not torch.backends.mps.is_available(), reason="MPS needs macOS on Apple Silicon"
)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workload]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AS_BENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield get_workload("mlp")


def _direct(workload: Workload, batch_size: int) -> np.ndarray:
    model = workload.make_model()
    with torch.inference_mode():
        output = model(*(torch.from_numpy(np.array(a)) for a in workload.inputs(batch_size)))
    result: np.ndarray = output.numpy()
    return result


def test_eager_cpu_predicts_what_the_model_computes(mlp: Workload, tmp_path: Path) -> None:
    backend = get_backend("torch")
    assert isinstance(backend, Backend)
    assert backend.is_available()
    assert backend.devices()[0] == "cpu"
    prepared = backend.prepare(mlp, "cpu", 7, tmp_path)
    assert (prepared.backend, prepared.device, prepared.batch_size) == ("torch", "cpu", 7)
    assert prepared.timing_device == "cpu"
    assert prepared.model_size_bytes == 85002 * 4  # float32 parameters, no buffers
    assert prepared.info["torch_version"] == torch.__version__

    (output,) = prepared.predict(mlp.inputs(7))
    np.testing.assert_array_equal(output, _direct(mlp, 7))
    raw = prepared.bench_call()
    assert isinstance(raw, torch.Tensor) and raw.shape == (7, 10)
    assert not raw.requires_grad  # inference mode
    np.testing.assert_array_equal(raw.numpy(), output)
    prepared.close()
    prepared.close()


def test_eager_evaluate_pads_the_last_batch(mlp: Workload, tmp_path: Path) -> None:
    dataset = mlp.dataset
    assert dataset is not None
    model = mlp.make_model()
    with torch.inference_mode():
        logits = model(torch.from_numpy(np.array(dataset.inputs[0]))).numpy()
    expected = float(np.mean(logits.argmax(-1) == dataset.targets))
    prepared = get_backend("torch").prepare(mlp, "cpu", 7, tmp_path)  # 360 = 51 * 7 + 3
    assert evaluate(prepared, mlp) == {"accuracy": expected}
    assert expected >= 0.9


@pytest.mark.parametrize(
    ("make_inputs", "message"),
    [
        (
            lambda w: (w.inputs(7)[0][:, :60],),
            r"input 'input' expected shape \(7, 64\), got \(7, 60\)",
        ),
        (lambda w: (w.inputs(5)[0],), r"expected shape \(7, 64\), got \(5, 64\)"),
        (lambda w: (w.inputs(7)[0].astype(np.float64),), r"expected dtype float32, got float64"),
        (lambda w: (*w.inputs(7), w.inputs(7)[0]), r"expected 1 inputs \['input'\], got 2"),
    ],
)
def test_wrong_inputs_name_expected_and_got(
    mlp: Workload,
    tmp_path: Path,
    make_inputs: Callable[[Workload], tuple[np.ndarray, ...]],
    message: str,
) -> None:
    prepared = get_backend("torch").prepare(mlp, "cpu", 7, tmp_path)
    with pytest.raises(BackendError, match=message):
        prepared.predict(make_inputs(mlp))


def test_unavailable_device(mlp: Workload, tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailableError, match=r"device 'cuda:99' is not available"):
        get_backend("torch").prepare(mlp, "cuda:99", 1, tmp_path)
    if not torch.backends.mps.is_available():
        with pytest.raises(DeviceUnavailableError, match=r"'mps'"):
            get_backend("torch").prepare(mlp, "mps", 1, tmp_path)


def test_model_failing_on_its_inputs_fails_prepare(tmp_path: Path) -> None:
    broken = Workload(
        name="broken",
        description="inputs one column short",
        task="regression",
        make_model=lambda: torch.nn.Linear(4, 2).eval(),
        make_inputs=lambda n: (np.zeros((n, 3), np.float32),),
    )
    with pytest.raises(BackendError, match=r"torch: the model of workload 'broken' failed on cpu"):
        get_backend("torch").prepare(broken, "cpu", 2, tmp_path)


def test_compile_options_are_checked() -> None:
    backend = cast(TorchCompileBackend, get_backend("torch-compile", mode="max-autotune"))
    assert backend.mode == "max-autotune"
    with pytest.raises(BackendError, match=r"unknown mode 'fastest'"):
        get_backend("torch-compile", mode="fastest")
    with pytest.raises(BackendError, match=r"bad options"):
        get_backend("torch", mode="default")


@pytest.mark.slow
def test_compile_cpu_matches_eager(mlp: Workload, tmp_path: Path) -> None:
    prepared = get_backend("torch-compile").prepare(mlp, "cpu", 7, tmp_path)
    assert prepared.backend == "torch-compile"
    assert prepared.info["compile_seconds"] > 0
    assert prepared.info["compile_mode"] == "default"
    reference = get_backend("torch").prepare(mlp, "cpu", 7, tmp_path)
    inputs = mlp.inputs(7)
    check = check_outputs(
        reference.predict(inputs), prepared.predict(inputs), task=mlp.task, atol=1e-5, rtol=1e-4
    )
    assert check.passed, check.failures
    assert check.top1_agreement == 1.0
    assert isinstance(prepared.bench_call(), torch.Tensor)


@pytest.mark.gpu
@needs_cuda
def test_eager_cuda_matches_cpu(mlp: Workload, tmp_path: Path) -> None:
    assert "cuda:0" in get_backend("torch").devices()
    prepared = get_backend("torch").prepare(mlp, "cuda", 7, tmp_path)
    assert prepared.device == prepared.timing_device == "cuda:0"
    assert prepared.bench_call().device.type == "cuda"
    assert prepared.info["device_name"] == torch.cuda.get_device_name(0)
    reference = get_backend("torch").prepare(mlp, "cpu", 7, tmp_path)
    inputs = mlp.inputs(7)
    # TF32 matmuls on recent GPUs: compare loosely, classes must agree.
    check = check_outputs(
        reference.predict(inputs), prepared.predict(inputs), task=mlp.task, atol=1e-2, rtol=1e-2
    )
    assert check.passed, check.failures
    assert check.top1_agreement == 1.0
    assert evaluate(prepared, mlp)["accuracy"] >= 0.9


@pytest.mark.gpu
@pytest.mark.slow
@needs_cuda
def test_compile_cuda_matches_eager(mlp: Workload, tmp_path: Path) -> None:
    prepared = get_backend("torch-compile").prepare(mlp, "cuda:0", 7, tmp_path)
    reference = get_backend("torch").prepare(mlp, "cuda:0", 7, tmp_path)
    inputs = mlp.inputs(7)
    check = check_outputs(
        reference.predict(inputs), prepared.predict(inputs), task=mlp.task, atol=1e-3, rtol=1e-3
    )
    assert check.passed, check.failures


def test_cudagraphs_variant_is_a_backend_of_its_own() -> None:
    backend = get_backend("torch-compile-cudagraphs")
    assert isinstance(backend, TorchCompileCudaGraphsBackend)
    assert isinstance(backend, TorchCompileBackend)
    assert backend.name == "torch-compile-cudagraphs" and backend.mode == "reduce-overhead"
    plain = get_backend("torch-compile")
    assert isinstance(plain, TorchCompileBackend)
    assert plain.mode == "default"  # the plain one is unchanged
    with pytest.raises(BackendError, match="bad options"):
        get_backend("torch-compile-cudagraphs", mode="default")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cudagraphs_variant_without_cuda_is_skipped_with_the_reason(
    mlp: Workload, tmp_path: Path
) -> None:
    from as_bench.suite import load_suite, plan

    backend = get_backend("torch-compile-cudagraphs")
    with pytest.raises(DeviceUnavailableError, match="needs an NVIDIA GPU") as caught:
        backend.devices()
    assert "Inductor skips them" in str(caught.value)  # why the CPU is not offered
    assert "torch.cuda.is_available() is False" in str(caught.value)
    with pytest.raises(DeviceUnavailableError, match="needs an NVIDIA GPU"):
        backend.prepare(mlp, "cpu", 1, tmp_path)
    suite = load_suite(
        overrides={
            "workloads": ["mlp"],
            "backends": ["torch", "torch-compile-cudagraphs"],
            "devices": ["cpu"],
            "batch_sizes": [1],
            "results_dir": str(tmp_path / "results"),
        }
    )
    todo, skipped = plan(suite)
    assert {c.backend for c in todo} == {"torch"}
    (cudagraphs,) = skipped
    assert cudagraphs.combination.backend == "torch-compile-cudagraphs"
    assert "needs an NVIDIA GPU" in cudagraphs.message


@pytest.mark.gpu
@pytest.mark.slow
@needs_cuda
def test_cudagraphs_variant_matches_eager_and_is_measured_on_cuda(
    mlp: Workload, tmp_path: Path
) -> None:
    from as_bench.engine import MeasureOptions, measure

    backend = get_backend("torch-compile-cudagraphs")
    assert backend.devices() == [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    prepared = backend.prepare(mlp, "cuda:0", 1, tmp_path)
    assert prepared.timing_device == "cuda:0"
    assert prepared.info["compile_mode"] == "reduce-overhead"
    assert prepared.info["cudagraph_skips"] == 0  # really replayed as CUDA graphs
    # A replay may reuse the previous output's memory: keep a clone, not the output.
    first = prepared.bench_call().clone()
    second = prepared.bench_call()
    torch.testing.assert_close(first, second)
    reference = get_backend("torch").prepare(mlp, "cuda:0", 1, tmp_path)
    inputs = mlp.inputs(1)
    check = check_outputs(
        reference.predict(inputs), prepared.predict(inputs), task=mlp.task, atol=1e-3, rtol=1e-3
    )
    assert check.passed, check.failures
    assert evaluate(prepared, mlp)["accuracy"] >= 0.9
    m = measure(prepared.bench_call, device=prepared.timing_device, options=MeasureOptions.quick())
    assert m.device_time is not None and m.device_time.timer == "cuda_events"
    assert m.latency.stats.median > 0


@pytest.mark.macos
@needs_mps
def test_eager_mps_matches_cpu(mlp: Workload, tmp_path: Path) -> None:
    prepared = get_backend("torch").prepare(mlp, "mps", 7, tmp_path)
    assert prepared.device == prepared.timing_device == "mps"
    assert prepared.bench_call().device.type == "mps"
    reference = get_backend("torch").prepare(mlp, "cpu", 7, tmp_path)
    inputs = mlp.inputs(7)
    check = check_outputs(
        reference.predict(inputs), prepared.predict(inputs), task=mlp.task, atol=1e-3, rtol=1e-3
    )
    assert check.passed, check.failures
    assert check.top1_agreement == 1.0
