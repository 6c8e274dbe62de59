"""probe() on the machine the tests run on; import hygiene; the record's schema."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

import as_bench
from as_bench.exceptions import ProbeError
from as_bench.probe import (
    CudaDeviceInfo,
    HardwareInfo,
    apple_silicon_from,
    parse_sysctl,
    parse_system_profiler_hardware,
    probe,
    summary_rows,
    thread_settings,
)
from as_bench.probe._common import THREAD_ENV_VARS, run_command
from as_bench.probe._macos import Command, collect_macos

FIXTURES = Path(__file__).parents[1] / "fixtures" / "macos"
HEAVY = ("torch", "onnxruntime", "coremltools", "mlx", "ai_edge_litert", "litert_torch")


def test_importing_probe_and_cli_imports_no_heavy_library() -> None:
    code = (
        "import json, sys\n"
        "import as_bench.probe, as_bench.cli\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout) == []


def test_live_probe_fields() -> None:
    info = probe()
    assert info.schema_version == 1
    assert info.os.system == platform.system() and info.os.release and info.os.platform
    assert info.python.version == platform.python_version()
    assert info.cpu.logical_cores is not None and info.cpu.logical_cores > 0
    assert info.cpu.physical_cores is None or info.cpu.physical_cores > 0
    assert info.cpu.model
    assert info.memory.total_bytes > 0
    assert info.libraries["as-bench"] == as_bench.__version__
    try:
        torch_version: str | None = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:  # a per-package run without extras
        torch_version = None
    assert info.libraries["torch"] == torch_version
    assert set(info.libraries) >= {"onnxruntime", "coremltools", "ai-edge-litert", "mlx"}
    assert set(THREAD_ENV_VARS) <= set(info.threads)
    if sys.platform.startswith("linux"):
        assert info.linux is not None and info.os.name
        assert info.apple_silicon is None
    rows = dict(summary_rows(info))
    assert rows["torch"] == (info.libraries["torch"] or "not installed")
    assert rows["Python"].startswith(platform.python_version())


def test_probe_round_trips_through_json_and_dict() -> None:
    info = probe()
    assert HardwareInfo.model_validate_json(info.model_dump_json()) == info
    assert HardwareInfo.model_validate(info.model_dump(mode="json")) == info


def test_probe_is_cached_and_refreshable() -> None:
    first = probe()
    second = probe()
    assert first == second and first is not second
    first.warnings.append("changed by a caller")
    assert "changed by a caller" not in probe().warnings
    fresh = probe(refresh=True)
    assert fresh.collected_at >= first.collected_at


def test_schema_rejects_unknown_fields_and_keeps_its_version() -> None:
    data = probe().model_dump(mode="json")
    data["surprise"] = 1
    with pytest.raises(ValidationError, match="surprise"):
        HardwareInfo.model_validate(data)
    assert HardwareInfo.model_fields["schema_version"].default == 1


def test_thread_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("MKL_NUM_THREADS", "auto")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    threads = thread_settings()
    assert threads["OMP_NUM_THREADS"] == 3
    assert threads["MKL_NUM_THREADS"] == "auto"
    assert threads["OPENBLAS_NUM_THREADS"] is None


@pytest.mark.slow  # imports torch in a child process
def test_thread_settings_read_torch_only_once_imported() -> None:
    code = (
        "import json, sys\n"
        "from as_bench.probe import thread_settings\n"
        "before = thread_settings()\n"
        "import torch\n"
        "torch.set_num_threads(2)\n"
        "after = thread_settings()\n"
        "print(json.dumps(['torch_intra_op' in before, after.get('torch_intra_op')]))\n"
    )
    pytest.importorskip("torch")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(done.stdout) == [False, 2]


def test_run_command_errors() -> None:
    with pytest.raises(ProbeError, match="not installed or not on PATH"):
        run_command(["as-bench-no-such-tool-xyz"], timeout=5)
    with pytest.raises(ProbeError, match=r"did not finish within 0\.5 s"):
        run_command([sys.executable, "-c", "import time; time.sleep(10)"], timeout=0.5)
    fail = [sys.executable, "-c", "import sys; print('partial'); sys.exit('went wrong')"]
    with pytest.raises(ProbeError, match="status 1: went wrong"):
        run_command(fail, timeout=30)
    assert run_command(fail, timeout=30, check=False).strip() == "partial"


def _cat(path: Path) -> tuple[str, ...]:
    return (
        sys.executable,
        "-c",
        "import sys; sys.stdout.write(open(sys.argv[1]).read())",
        str(path),
    )


def test_collect_macos_wiring_with_captured_outputs(tmp_path: Path) -> None:
    # The live path (subprocesses, timeouts, parsing, combining) fed by real captures of
    # one M5 Max, the pmset/sw_vers captures, and one tool that is missing.
    commands = {
        "sysctl": Command(_cat(FIXTURES / "m5-max-sysctl-perflevel.txt"), 30, check=False),
        "system_profiler": Command(
            _cat(FIXTURES / "m5-max-system_profiler-SPHardwareDataType.json"), 30
        ),
        "pmset_therm": Command(_cat(FIXTURES / "m1-pro-pmset-therm.txt"), 30),
        "pmset": Command(("as-bench-no-such-pmset",), 30),
        "sw_vers": Command(_cat(FIXTURES / "m1-pro-10core-sw_vers.txt"), 30),
    }
    facts = collect_macos(commands)
    apple = facts.apple_silicon
    assert apple is not None
    assert (apple.chip, apple.performance_cores, apple.efficiency_cores) == ("Apple M5 Max", 18, 0)
    assert apple.gpu is None and apple.low_power_mode is None
    assert apple.thermal is not None and apple.thermal.state == "nominal"
    assert (facts.cpu_model, facts.os_name) == ("Apple M5 Max", "macOS 13.6.3 (22G436)")
    assert len(facts.warnings) == 2
    assert any("SPDisplaysDataType" in w for w in facts.warnings)
    assert any("as-bench-no-such-pmset" in w and "not installed" in w for w in facts.warnings)


def test_summary_rows_for_apple_silicon_and_cuda() -> None:
    apple = apple_silicon_from(
        sysctl=parse_sysctl((FIXTURES / "m5-max-sysctl-perflevel.txt").read_text()),
        hardware=parse_system_profiler_hardware(
            (FIXTURES / "m5-max-system_profiler-SPHardwareDataType.json").read_text()
        ),
    )
    base = probe()
    cuda = CudaDeviceInfo(
        index=0,
        name="NVIDIA H100 80GB HBM3",
        memory_total_bytes=80 * 2**30,
        compute_capability="9.0",
        driver_version="550.54.15",
        cuda_driver_version="12.4",
        source="nvidia-smi",
    )
    info = base.model_copy(
        update={
            "apple_silicon": apple,
            "cuda_devices": [cuda],
            "libraries": {"torch": "2.14.1", "mlx": None},
            "collected_at": datetime.now(UTC),
        }
    )
    rows = summary_rows(info)
    assert ("Chip", "Apple M5 Max in MacBook Pro Mac17,6") in rows
    assert ("Core types", "6 Super + 12 Performance") in rows
    assert ("P / E cores", "18 performance, 0 efficiency") in rows
    assert ("Unified memory", "128.0 GiB") in rows
    assert ("cuda:0", "NVIDIA H100 80GB HBM3, 80.0 GiB, compute 9.0") in rows
    assert ("NVIDIA driver", "550.54.15, CUDA 12.4") in rows
    assert ("mlx", "not installed") in rows


@pytest.mark.macos
def test_live_apple_silicon() -> None:
    # A bool local: mypy would take a bare sys.platform test as always true on Linux and
    # call the rest of the test unreachable.
    on_apple_silicon = sys.platform == "darwin" and platform.machine() == "arm64"
    if not on_apple_silicon:
        pytest.skip("needs macOS on Apple Silicon (arm64 Python)")
    facts = collect_macos()
    apple = facts.apple_silicon
    assert apple is not None, facts.warnings
    assert apple.chip.startswith("Apple M") and apple.generation is not None
    assert apple.perf_levels and all(lv.physical_cores for lv in apple.perf_levels)
    assert sum(lv.physical_cores or 0 for lv in apple.perf_levels) <= (
        probe().cpu.logical_cores or 0
    )
    if apple.virtual:
        assert apple.performance_cores is None or apple.performance_cores >= 0
    else:
        assert apple.performance_cores and apple.performance_cores > 0
        assert apple.efficiency_cores is not None
        assert apple.gpu is not None and apple.gpu.cores and apple.gpu.cores > 0
    assert apple.unified_memory_bytes == probe().memory.total_bytes
    assert apple.macos_version == platform.mac_ver()[0]
    assert apple.thermal is not None
    assert facts.os_name and facts.os_name.startswith("macOS ")
