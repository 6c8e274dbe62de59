"""MLX backend: torch models translated to MLX give torch's outputs (MLX runs on Linux CPU)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")
from torch import Tensor, nn  # noqa: E402  (typed, so nn.Module can be subclassed)

from as_bench.backends._base import PreparedModel  # noqa: E402
from as_bench.backends.mlx import MLXBackend  # noqa: E402
from as_bench.exceptions import BackendError, DeviceUnavailableError  # noqa: E402
from as_bench.workloads._base import Workload  # noqa: E402


def _workload(
    make_model: Callable[[], Any], shape: tuple[int, ...], name: str = "model"
) -> Workload:
    def make_inputs(batch_size: int) -> tuple[np.ndarray, ...]:
        rng = np.random.default_rng(batch_size)
        return (rng.standard_normal((batch_size, *shape)).astype(np.float32),)

    def build() -> Any:
        torch.manual_seed(0)
        return make_model().eval()

    return Workload(
        name=name, description="test model", task="classification",
        make_model=build, make_inputs=make_inputs,
    )  # fmt: skip


def _mlp() -> Any:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))


def _cnn() -> Any:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10)
    )


def _torch_outputs(workload: Workload, batch_size: int) -> list[np.ndarray]:
    with torch.no_grad():
        out = workload.make_model()(*(torch.from_numpy(a) for a in workload.inputs(batch_size)))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def _prepare(workload: Workload, tmp_path: Path, batch_size: int = 4, **kw: Any) -> PreparedModel:
    return MLXBackend(**kw).prepare(workload, "mlx", batch_size, tmp_path)


@pytest.mark.parametrize(("make", "shape"), [(_mlp, (16,)), (_cnn, (1, 8, 8))], ids=["mlp", "cnn"])
def test_outputs_match_torch(
    make: Callable[[], Any], shape: tuple[int, ...], tmp_path: Path
) -> None:
    workload = _workload(make, shape)
    prepared = _prepare(workload, tmp_path)
    got = prepared.predict(workload.inputs(4))
    want = _torch_outputs(workload, 4)
    assert len(got) == 1
    assert got[0].dtype == np.float32 and got[0].shape == want[0].shape
    np.testing.assert_allclose(got[0], want[0], atol=1e-4, rtol=1e-4)
    assert prepared.timing_device == "mlx" and prepared.device == "mlx"
    assert prepared.info["default_device"] == str(mx.default_device())
    assert prepared.info["compiled"] is False and prepared.info["precision"] == "fp32"


class _LayoutNet(nn.Module):
    """Layout-sensitive layers in one model: strides, groups, 'same' padding, batch norm,
    a residual add while channels-last, softmax over channels, flatten and view."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 4, padding="same", groups=2, bias=False)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.softmax = nn.Softmax(dim=1)
        self.fc_a = nn.Linear(8, 6)
        self.fc_b = nn.Linear(8 * 5 * 6, 6)
        self.act = nn.GELU(approximate="tanh")
        with torch.no_grad():  # non-trivial running statistics, as after training
            cast(Tensor, self.bn.running_mean).uniform_(-1, 1)
            cast(Tensor, self.bn.running_var).uniform_(0.5, 2)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.5, 0.5)

    def forward(self, x: Any) -> Any:
        y = torch.relu(self.bn(self.conv1(x)))  # (N, 8, 5, 6)
        z = self.pool(self.conv2(y)) + y
        a = self.gap(z).flatten(1)
        b = torch.flatten(self.softmax(z), 1).view(-1, 240)
        return self.act(self.fc_a(a) + self.fc_b(b)), torch.log_softmax(self.fc_b(b) * 2.0, dim=1)


def _norm_mlp() -> Any:
    model = nn.Sequential(
        nn.Linear(16, 32), nn.BatchNorm1d(32), nn.Tanh(), nn.LayerNorm(32), nn.Linear(32, 10),
        nn.Sigmoid(), nn.Identity(), nn.GELU(), nn.LogSoftmax(dim=-1),
    )  # fmt: skip
    with torch.no_grad():
        norm = cast(nn.BatchNorm1d, model[1])
        cast(Tensor, norm.running_mean).uniform_(-1, 1)
        cast(Tensor, norm.running_var).uniform_(0.5, 2)
    return model


# torch itself warns that its reference computation copies the input for the asymmetric
# padding; the point of the test is that the MLX side pads the same way.
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
def test_layout_sensitive_layers_match_torch(tmp_path: Path) -> None:
    workload = _workload(_LayoutNet, (3, 10, 11))
    got = _prepare(workload, tmp_path, batch_size=3).predict(workload.inputs(3))
    want = _torch_outputs(workload, 3)
    assert [g.shape for g in got] == [(3, 6), (3, 6)]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4)


def test_normalisation_and_activations_match_torch(tmp_path: Path) -> None:
    workload = _workload(_norm_mlp, (16,))
    got = _prepare(workload, tmp_path, batch_size=5).predict(workload.inputs(5))
    np.testing.assert_allclose(got[0], _torch_outputs(workload, 5)[0], atol=1e-4, rtol=1e-4)


def test_fp16_and_compile_stay_close_and_report_it(tmp_path: Path) -> None:
    workload = _workload(_cnn, (1, 8, 8))
    want = _torch_outputs(workload, 4)[0]
    fp32 = _prepare(workload, tmp_path)
    fp16 = _prepare(workload, tmp_path, precision="fp16")
    compiled = _prepare(workload, tmp_path, compile=True)
    got16 = fp16.predict(workload.inputs(4))[0]
    assert got16.dtype == np.float32  # fp16 compute, float32 answers
    np.testing.assert_allclose(got16, want, atol=2e-2, rtol=2e-2)
    assert not np.array_equal(got16, fp32.predict(workload.inputs(4))[0])  # really fp16
    np.testing.assert_allclose(compiled.predict(workload.inputs(4))[0], want, atol=1e-4)
    assert fp16.info["precision"] == "fp16" and compiled.info["compiled"] is True
    assert fp16.model_size_bytes is not None and fp32.model_size_bytes is not None
    assert fp16.model_size_bytes * 2 == fp32.model_size_bytes


def test_model_size_is_parameter_bytes(tmp_path: Path) -> None:
    workload = _workload(_mlp, (16,))
    params = sum(p.numel() * 4 for p in workload.make_model().parameters())
    assert _prepare(workload, tmp_path).model_size_bytes == params


def test_bench_call_returns_lazy_arrays_that_eval_computes(tmp_path: Path) -> None:
    wide = _workload(lambda: nn.Sequential(nn.Linear(64, 8192), nn.ReLU()), (64,))
    prepared = _prepare(wide, tmp_path, batch_size=256)
    before = mx.get_active_memory()
    outputs = prepared.bench_call()
    assert isinstance(outputs, list) and all(isinstance(o, mx.array) for o in outputs)
    built = mx.get_active_memory()
    mx.eval(outputs)
    evaluated = mx.get_active_memory()
    out_bytes = outputs[0].nbytes  # 256 x 8192 float32 = 8 MiB
    # Building the graph allocated (almost) nothing; evaluating it allocated the output.
    assert built - before < out_bytes // 8
    assert evaluated - before >= out_bytes
    np.testing.assert_allclose(
        np.array(outputs[0]), prepared.predict(wide.inputs(256))[0], atol=1e-5
    )


class _WithLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.rnn = nn.LSTM(4, 4)

    def forward(self, x: Any) -> Any:
        return self.rnn(self.proj(x))[0]


class _WithCumsum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x: Any) -> Any:
        return torch.cumsum(self.proj(x), dim=1)


def test_unsupported_module_is_named(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"cannot convert rnn: LSTM; supported modules: Linear"):
        _prepare(_workload(_WithLSTM, (3, 4)), tmp_path)


def test_unsupported_module_in_nested_sequential_gives_its_path(tmp_path: Path) -> None:
    def make() -> Any:
        return nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.ELU()))

    with pytest.raises(BackendError, match=r"cannot convert 1\.1: ELU"):
        _prepare(_workload(make, (4,)), tmp_path)


def test_unsupported_function_is_named(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"cannot convert cumsum: function cumsum"):
        _prepare(_workload(_WithCumsum, (4,)), tmp_path)


def test_unsupported_layer_option_is_named(tmp_path: Path) -> None:
    def make() -> Any:
        return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"))

    with pytest.raises(BackendError, match=r"0: Conv2d with padding_mode='reflect'"):
        _prepare(_workload(make, (1, 8, 8)), tmp_path)


def test_wrong_device_and_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailableError, match="'mlx' only"):
        MLXBackend().prepare(_workload(_mlp, (16,)), "cpu", 2, tmp_path)
    with pytest.raises(ValueError, match="precision"):
        MLXBackend(precision="int8")  # type: ignore[arg-type]


def test_wrong_input_shape_is_a_backend_error(tmp_path: Path) -> None:
    workload = _workload(_mlp, (16,))
    prepared = _prepare(workload, tmp_path)
    with pytest.raises(BackendError, match="running the model failed"):
        prepared.predict((np.zeros((4, 15), np.float32),))


def test_close_releases_the_model(tmp_path: Path) -> None:
    workload = _workload(_mlp, (16,))
    prepared = _prepare(workload, tmp_path)
    prepared.close()
    prepared.close()  # safe twice
    with pytest.raises(BackendError, match="closed"):
        prepared.predict(workload.inputs(4))
    with pytest.raises(BackendError, match="closed"):
        prepared.bench_call()


def test_backend_facts() -> None:
    backend = MLXBackend()
    assert backend.name == "mlx" and backend.extra == "mlx"
    assert backend.is_available()
    assert backend.devices() == ["mlx"]


def test_importing_the_module_imports_no_heavy_library() -> None:
    code = (
        "import sys, as_bench.backends.mlx as m; m.MLXBackend().is_available(); "
        "heavy = {'torch', 'mlx', 'mlx.core'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
