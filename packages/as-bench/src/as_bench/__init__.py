"""as-bench: measurements of ML models you can trust, on Apple Silicon, Linux CPUs and NVIDIA GPUs.

The engine synchronises asynchronous devices (CUDA, MPS, MLX) and reports device time and
end-to-end latency apart, sizes inner loops so timer overhead stays below 0.01% of a
sample, warms up until stable and stops when the median's confidence interval is tight::

    import as_bench

    m = as_bench.measure(fn, x, device="cuda")
    print(m.latency.stats.median, m.device_time.stats.median, m.converged)

Importing ``as_bench`` imports no torch, onnxruntime, coremltools, mlx or LiteRT: public
names resolve on first use, and each backend loads its library when it is asked to run.
"""

import typing as _typing

from as_bench._version import __version__
from as_bench.exceptions import (
    AsBenchError,
    BackendError,
    CorruptResultError,
    DeviceUnavailableError,
    MeasurementError,
    MissingExtraError,
    OutputMismatchError,
    ProbeError,
    ResultStoreError,
    SuiteError,
    WorkloadError,
)
from as_core.lazy import lazy_exports as _lazy_exports

if _typing.TYPE_CHECKING:
    from as_bench.backends import Backend, PreparedModel, available_backends, get_backend
    from as_bench.devices import Device, available_devices, get_device
    from as_bench.engine import MeasureOptions, measure
    from as_bench.measurement import Measurement, MemoryReport, TimingSeries, WarmupReport
    from as_bench.probe import HardwareInfo
    from as_bench.probe import probe as probe_hardware
    from as_bench.results import BenchmarkResult, ResultStore, read_results
    from as_bench.stats import Stats, summarize
    from as_bench.suite import Suite, load_suite, run_suite
    from as_bench.workloads import Dataset, Workload, get_workload

# public name -> (module, attribute): imported on first access.
_LAZY: dict[str, tuple[str, str]] = {
    "Backend": ("as_bench.backends", "Backend"),
    "PreparedModel": ("as_bench.backends", "PreparedModel"),
    "available_backends": ("as_bench.backends", "available_backends"),
    "get_backend": ("as_bench.backends", "get_backend"),
    "Device": ("as_bench.devices", "Device"),
    "available_devices": ("as_bench.devices", "available_devices"),
    "get_device": ("as_bench.devices", "get_device"),
    "MeasureOptions": ("as_bench.engine", "MeasureOptions"),
    "measure": ("as_bench.engine", "measure"),
    "Measurement": ("as_bench.measurement", "Measurement"),
    "MemoryReport": ("as_bench.measurement", "MemoryReport"),
    "TimingSeries": ("as_bench.measurement", "TimingSeries"),
    "WarmupReport": ("as_bench.measurement", "WarmupReport"),
    "HardwareInfo": ("as_bench.probe", "HardwareInfo"),
    # `probe` is the subpackage's name, so the function is exported under another one.
    "probe_hardware": ("as_bench.probe", "probe"),
    "BenchmarkResult": ("as_bench.results", "BenchmarkResult"),
    "ResultStore": ("as_bench.results", "ResultStore"),
    "read_results": ("as_bench.results", "read_results"),
    "run_suite": ("as_bench.suite", "run_suite"),
    "Stats": ("as_bench.stats", "Stats"),
    "summarize": ("as_bench.stats", "summarize"),
    "Suite": ("as_bench.suite", "Suite"),
    "load_suite": ("as_bench.suite", "load_suite"),
    "Dataset": ("as_bench.workloads", "Dataset"),
    "Workload": ("as_bench.workloads", "Workload"),
    "get_workload": ("as_bench.workloads", "get_workload"),
}

__all__ = [
    "AsBenchError",
    "Backend",
    "BackendError",
    "BenchmarkResult",
    "CorruptResultError",
    "Dataset",
    "Device",
    "DeviceUnavailableError",
    "HardwareInfo",
    "MeasureOptions",
    "Measurement",
    "MeasurementError",
    "MemoryReport",
    "MissingExtraError",
    "OutputMismatchError",
    "PreparedModel",
    "ProbeError",
    "ResultStore",
    "ResultStoreError",
    "Stats",
    "Suite",
    "SuiteError",
    "TimingSeries",
    "WarmupReport",
    "Workload",
    "WorkloadError",
    "__version__",
    "available_backends",
    "available_devices",
    "get_backend",
    "get_device",
    "get_workload",
    "load_suite",
    "measure",
    "probe_hardware",
    "read_results",
    "run_suite",
    "summarize",
]

# Public names resolve on first use (as_core.lazy), so that importing as_bench stays light.
__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, __all__)
