"""NVIDIA GPUs: nvidia-smi and /proc parsing, torch's report, and the live collection."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from as_bench.exceptions import ProbeError
from as_bench.probe import (
    CudaDeviceInfo,
    parse_nvidia_driver_version,
    parse_nvidia_smi_csv,
    parse_torch_cuda_report,
)
from as_bench.probe._cuda import collect_cuda_devices

MiB = 2**20

# The output format nvidia-smi documents for
# --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader
SMI = """\
NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15, 9.0
NVIDIA A100-SXM4-40GB, 40960 MiB, 550.54.15, 8.0
"""


def test_nvidia_smi_csv() -> None:
    devices = parse_nvidia_smi_csv(SMI)
    assert devices == [
        CudaDeviceInfo(
            index=0,
            name="NVIDIA H100 80GB HBM3",
            memory_total_bytes=81559 * MiB,
            driver_version="550.54.15",
            compute_capability="9.0",
            source="nvidia-smi",
        ),
        CudaDeviceInfo(
            index=1,
            name="NVIDIA A100-SXM4-40GB",
            memory_total_bytes=40960 * MiB,
            driver_version="550.54.15",
            compute_capability="8.0",
            source="nvidia-smi",
        ),
    ]


def test_nvidia_smi_csv_old_driver_form_and_not_available_values() -> None:
    # Drivers before compute_cap existed are queried without it: three fields.
    (old,) = parse_nvidia_smi_csv("Tesla K80, 11441 MiB, 470.82.01\n")
    assert (old.name, old.memory_total_bytes, old.compute_capability) == (
        "Tesla K80",
        11441 * MiB,
        None,
    )
    (unknown,) = parse_nvidia_smi_csv("NVIDIA GH200 480GB, [N/A], 560.35.03, 9.0\n")
    assert unknown.memory_total_bytes is None
    assert parse_nvidia_smi_csv("\n") == []


@pytest.mark.parametrize("text", ["garbage\n", "NVIDIA X, lots, 550.54.15, 9.0\n"])
def test_nvidia_smi_csv_rejects(text: str) -> None:
    with pytest.raises(ProbeError, match="nvidia-smi"):
        parse_nvidia_smi_csv(text)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        (
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.129.03  "
            "Thu Oct 19 18:56:32 UTC 2023\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n",
            "535.129.03",
        ),
        (
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build  "
            "(dvs-builder@U16-I3-B03-4-3)  Tue Mar  5 22:15:33 UTC 2024\n",
            "550.54.15",
        ),
        ("nothing here\n", None),
    ],
)
def test_proc_driver_version(text: str, version: str | None) -> None:
    assert parse_nvidia_driver_version(text) == version


def test_torch_report_parsing() -> None:
    report = {
        "cuda_runtime": "12.8",
        "devices": [
            {
                "index": 0,
                "name": "NVIDIA H100 80GB HBM3",
                "total_memory": 85_520_809_984,
                "major": 9,
                "minor": 0,
                "multi_processor_count": 132,
            }
        ],
    }
    runtime, devices = parse_torch_cuda_report(json.dumps(report))
    assert runtime == "12.8"
    assert devices == [
        CudaDeviceInfo(
            index=0,
            name="NVIDIA H100 80GB HBM3",
            memory_total_bytes=85_520_809_984,
            compute_capability="9.0",
            multiprocessor_count=132,
            cuda_runtime_version="12.8",
            source="torch",
        )
    ]
    with pytest.raises(ProbeError, match="torch CUDA report"):
        parse_torch_cuda_report('{"devices": []}')
    with pytest.raises(ProbeError, match="torch CUDA report"):
        parse_torch_cuda_report("Traceback (most recent call last):")


@pytest.mark.slow  # imports torch in a child process
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_torch_child_report_parses_on_this_machine() -> None:
    # The child the probe starts where an NVIDIA driver is present, run here for real.
    done = subprocess.run(
        [sys.executable, "-m", "as_bench.probe._torch_cuda"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    runtime, devices = parse_torch_cuda_report(done.stdout)
    import torch

    assert runtime == torch.version.cuda
    assert len(devices) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


def _has_nvidia_driver() -> bool:
    return shutil.which("nvidia-smi") is not None


@pytest.mark.skipif(_has_nvidia_driver(), reason="this machine has an NVIDIA driver")
def test_no_driver_means_no_devices_and_no_torch() -> None:
    code = (
        "import json, sys\n"
        "from as_bench.probe._cuda import collect_cuda_devices\n"
        "devices, warnings = collect_cuda_devices()\n"
        "print(json.dumps([len(devices), warnings, 'torch' in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == [0, [], False]


_STUB = """#!/bin/sh
case "$1" in
  *compute_cap*)
    if [ -n "$STUB_OLD_DRIVER" ]; then
      echo 'Field "compute_cap" is not a valid field to query.'; exit 2
    fi
    echo 'NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15, 9.0' ;;
  *) echo 'Tesla K80, 11441 MiB, 470.82.01' ;;
esac
"""


@pytest.mark.slow  # the probe's torch child imports torch
@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in nvidia-smi is a sh script")
@pytest.mark.skipif(_has_nvidia_driver(), reason="this machine has a real NVIDIA driver")
@pytest.mark.parametrize("old_driver", [False, True])
def test_collection_falls_back_to_nvidia_smi(
    old_driver: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in nvidia-smi (this machine has none) that answers like a new or an old
    # driver; torch, asked for real in its child process, sees no CUDA device here.
    stub = tmp_path / "nvidia-smi"
    stub.write_text(_STUB, encoding="utf-8")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    if old_driver:
        monkeypatch.setenv("STUB_OLD_DRIVER", "1")
    devices, warnings = collect_cuda_devices()
    assert warnings == []
    (device,) = devices
    assert device.source == "nvidia-smi"
    if old_driver:
        assert (device.name, device.compute_capability) == ("Tesla K80", None)
        assert device.driver_version == "470.82.01"
    else:
        assert (device.name, device.compute_capability) == ("NVIDIA H100 80GB HBM3", "9.0")
        assert device.memory_total_bytes == 81559 * MiB
        assert device.driver_version == "550.54.15"


@pytest.mark.gpu
def test_live_cuda_devices() -> None:
    torch = pytest.importorskip("torch", reason="torch is needed to know CUDA is usable")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: torch.cuda.is_available() is false")
    devices, warnings = collect_cuda_devices()
    assert warnings == []
    assert len(devices) == torch.cuda.device_count()
    for device in devices:
        props = torch.cuda.get_device_properties(device.index)
        assert device.source == "torch"
        assert device.name == props.name
        assert device.memory_total_bytes == props.total_memory
        assert device.compute_capability == f"{props.major}.{props.minor}"
        assert device.driver_version and device.driver_version[0].isdigit()
        assert device.cuda_driver_version and "." in device.cuda_driver_version
        assert device.cuda_runtime_version == torch.version.cuda
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,memory.total,driver_version,compute_cap",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        parsed = parse_nvidia_smi_csv(smi.stdout)
        assert {d.name for d in parsed} >= {d.name for d in devices}
        assert parsed[0].driver_version == devices[0].driver_version
