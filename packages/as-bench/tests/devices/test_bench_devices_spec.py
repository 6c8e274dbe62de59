"""get_device() and available_devices(): parsing, normalisation, availability errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

import as_bench.devices.cuda as cuda_module
import as_bench.devices.mlx as mlx_module
import as_bench.devices.mps as mps_module
from as_bench.devices import (
    CpuDevice,
    CudaDevice,
    Device,
    InvalidDeviceSpecError,
    MlxDevice,
    MpsDevice,
    available_devices,
    get_device,
)
from as_bench.exceptions import AsBenchError, DeviceUnavailableError


@pytest.mark.parametrize("spec", ["cpu", "CPU", "  cpu ", "cpu:0"])
def test_cpu_forms_normalise_to_cpu(spec: str) -> None:
    device = get_device(spec)
    assert isinstance(device, CpuDevice)
    assert device.name == "cpu"
    assert device.kind == "cpu"
    assert CpuDevice.is_available()


def test_a_device_passes_through() -> None:
    device = CpuDevice()
    assert get_device(device) is device
    assert device == CpuDevice() and hash(device) == hash(CpuDevice())
    assert repr(device) == "CpuDevice('cpu')"


@pytest.mark.parametrize(
    "spec", ["gpu", "cuda:", "cuda:x", "cuda:-1", "cpu:1", "mps:1", "mlx:0", "", 3, None]
)
def test_invalid_specs_name_the_valid_forms(spec: object) -> None:
    with pytest.raises(
        InvalidDeviceSpecError, match=r'valid forms are "cpu", "cuda", "cuda:N"'
    ) as info:
        get_device(spec)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, DeviceUnavailableError)
    assert isinstance(info.value, AsBenchError)


@pytest.mark.skipif(CudaDevice.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_unavailable_says_why(spec: str) -> None:
    with pytest.raises(DeviceUnavailableError, match="is not available") as info:
        get_device(spec)
    reason = CudaDevice.unavailable_reason()
    assert reason is not None
    assert reason in str(info.value)
    assert "torch.cuda.is_available() is False" in reason or "as-bench[torch]" in reason
    assert not any(name.startswith("cuda") for name in available_devices())


@pytest.mark.skipif(sys.platform == "darwin", reason="MPS may be available on macOS")
def test_mps_unavailable_off_macos_says_why() -> None:
    with pytest.raises(DeviceUnavailableError, match="MPS needs macOS on Apple Silicon"):
        get_device("mps")
    assert not MpsDevice.is_available()
    assert "mps" not in available_devices()


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuda_module, "torch_if_installed", lambda: None)
    monkeypatch.setattr(mps_module, "torch_if_installed", lambda: None)
    monkeypatch.setattr("as_bench.devices.mps.platform.system", lambda: "Darwin")
    for kind in (CudaDevice, MpsDevice):
        reason = kind.unavailable_reason()
        assert reason is not None and 'uv add "as-bench[torch]"' in reason
    with pytest.raises(DeviceUnavailableError, match=r"as-bench\[torch\]"):
        get_device("cuda:0")
    assert CudaDevice.device_count() == 0


def test_missing_mlx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlx_module, "is_installed", lambda module: False)
    assert not MlxDevice.is_available()
    with pytest.raises(DeviceUnavailableError, match=r'uv add "as-bench\[mlx\]"'):
        get_device("mlx")


def test_available_devices_lists_cpu_first_and_only_usable_ones() -> None:
    names = available_devices()
    assert names[0] == "cpu"
    assert len(names) == len(set(names))
    for name in names:
        device = get_device(name)
        assert isinstance(device, Device)
        assert device.name == name
        assert type(device).is_available()


def test_importing_devices_and_engine_loads_no_heavy_library() -> None:
    code = (
        "import sys, as_bench.devices, as_bench.engine, as_bench.stats\n"
        "from as_bench.devices import get_device\n"
        "get_device('cpu')\n"
        "heavy = [m for m in ('torch', 'mlx', 'mlx.core') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
