"""Hardware probing: what machine a measurement ran on, in a versioned record.

:func:`probe` collects a :class:`HardwareInfo` once per process: OS, CPU, memory, the
interpreter, library versions and thread settings everywhere; chip, core types, GPU
cores, unified memory, macOS version, low-power mode and thermal state on Apple Silicon;
the CPU governor and cgroup limits on Linux; each NVIDIA GPU where there is a driver::

    from as_bench.probe import probe, summary_rows

    info = probe()
    for label, value in summary_rows(info):
        ...

The parsers of the platform tools' output are public and pure, so other tools (and the
tests, on outputs captured from real Macs) can use them without the machine.

Importing this package imports no heavy library; torch is asked about CUDA devices only
where an NVIDIA driver is present, and then in a child process.
"""

from as_bench.probe._apple import (
    ChipName,
    apple_silicon_from,
    core_counts,
    parse_chip,
    parse_sysctl,
    parse_sysctl_values,
    perf_levels_from_sysctl,
)
from as_bench.probe._common import library_versions, thread_settings
from as_bench.probe._cuda import (
    parse_nvidia_driver_version,
    parse_nvidia_smi_csv,
    parse_torch_cuda_report,
)
from as_bench.probe._linux import (
    parse_cfs_quota,
    parse_cpu_max,
    parse_cpuinfo_model,
    parse_memory_max,
    parse_os_release,
    parse_proc_cgroup,
    read_cgroup_limits,
    read_cpu_governor,
)
from as_bench.probe._pmset import parse_pmset_lowpowermode, parse_pmset_therm, parse_sw_vers
from as_bench.probe._probe import probe
from as_bench.probe._records import (
    AppleGpuInfo,
    AppleSiliconInfo,
    CgroupLimits,
    CpuInfo,
    CudaDeviceInfo,
    HardwareInfo,
    LinuxInfo,
    MacHardwareOverview,
    MemoryInfo,
    OsInfo,
    PerfLevel,
    PythonInfo,
    ThermalInfo,
)
from as_bench.probe._summary import format_bytes, summary_rows
from as_bench.probe._system_profiler import (
    parse_memory_size,
    parse_number_processors,
    parse_system_profiler_displays,
    parse_system_profiler_hardware,
)

__all__ = [
    "AppleGpuInfo",
    "AppleSiliconInfo",
    "CgroupLimits",
    "ChipName",
    "CpuInfo",
    "CudaDeviceInfo",
    "HardwareInfo",
    "LinuxInfo",
    "MacHardwareOverview",
    "MemoryInfo",
    "OsInfo",
    "PerfLevel",
    "PythonInfo",
    "ThermalInfo",
    "apple_silicon_from",
    "core_counts",
    "format_bytes",
    "library_versions",
    "parse_cfs_quota",
    "parse_chip",
    "parse_cpu_max",
    "parse_cpuinfo_model",
    "parse_memory_max",
    "parse_memory_size",
    "parse_number_processors",
    "parse_nvidia_driver_version",
    "parse_nvidia_smi_csv",
    "parse_os_release",
    "parse_pmset_lowpowermode",
    "parse_pmset_therm",
    "parse_proc_cgroup",
    "parse_sw_vers",
    "parse_sysctl",
    "parse_sysctl_values",
    "parse_system_profiler_displays",
    "parse_system_profiler_hardware",
    "parse_torch_cuda_report",
    "perf_levels_from_sysctl",
    "probe",
    "read_cgroup_limits",
    "read_cpu_governor",
    "summary_rows",
    "thread_settings",
]
