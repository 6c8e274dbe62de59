"""The records the hardware probe produces.

``HardwareInfo`` travels inside every stored result (as a plain mapping, see the
architecture notes), so it is a versioned pydantic model that rejects unknown fields: a
reader of version 1 must notice a version 2 record instead of silently dropping facts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AppleGpuInfo",
    "AppleSiliconInfo",
    "CgroupLimits",
    "CpuInfo",
    "CudaDeviceInfo",
    "HardwareInfo",
    "LinuxInfo",
    "MacHardwareOverview",
    "MemoryInfo",
    "OsInfo",
    "PerfLevel",
    "PerfLevelKind",
    "PythonInfo",
    "ThermalInfo",
]

HARDWARE_SCHEMA_VERSION = 1

PerfLevelKind = Literal["super", "performance", "efficiency", "standard", "unknown"]
ThermalState = Literal["nominal", "warning", "throttled"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OsInfo(_Record):
    """The operating system.

    Attributes:
        system: ``platform.system()``: ``"Darwin"``, ``"Linux"``, ``"Windows"``.
        release: The kernel release (``platform.release()``).
        name: The product name and version for people: ``"macOS 15.1 (24B83)"``,
            ``"Debian GNU/Linux 12 (bookworm)"``; ``None`` where it could not be read.
        machine: The machine architecture the interpreter runs as (``"arm64"``,
            ``"x86_64"``); ``"x86_64"`` on an Apple Silicon Mac means Rosetta.
        platform: ``platform.platform()``, the one-line summary.
    """

    system: str
    release: str
    name: str | None = None
    machine: str
    platform: str


class PythonInfo(_Record):
    """The interpreter that ran the probe.

    Attributes:
        version: ``platform.python_version()``, e.g. ``"3.11.9"``.
        implementation: ``"CPython"``, ``"PyPy"``.
        executable: ``sys.executable``.
    """

    version: str
    implementation: str
    executable: str


class CpuInfo(_Record):
    """The CPU as the operating system reports it.

    Attributes:
        model: The brand string (``"Apple M2 Ultra"``, ``"AMD EPYC 7R13 Processor"``).
        architecture: ``platform.machine()``.
        physical_cores: Physical cores, ``None`` where the OS does not say.
        logical_cores: Logical CPUs (hardware threads).
    """

    model: str | None = None
    architecture: str
    physical_cores: int | None = Field(default=None, ge=1)
    logical_cores: int | None = Field(default=None, ge=1)


class MemoryInfo(_Record):
    """Main memory (unified memory on Apple Silicon).

    Attributes:
        total_bytes: Installed memory the OS can use.
        available_bytes: Memory available to new allocations when the probe ran: a
            snapshot, useful to explain swapping in a result.
    """

    total_bytes: int = Field(gt=0)
    available_bytes: int | None = Field(default=None, ge=0)


class PerfLevel(_Record):
    """One of the core types of an Apple Silicon CPU (``sysctl hw.perflevelN.*``).

    macOS numbers levels from the fastest (``perflevel0``). Names seen so far are
    ``Performance`` and ``Efficiency`` (M1 to M4), ``Super`` (the top level of M5 chips,
    above ``Performance`` on the M5 Max), and ``Standard`` (virtual machines).

    Attributes:
        index: N in ``hw.perflevelN``.
        name: The level's own name (``hw.perflevelN.name``); ``None`` on macOS versions
            that did not publish names.
        kind: ``name`` normalised; a nameless level is ``performance``/``efficiency``
            when there are exactly two levels (the only layout of the Macs of that era),
            else ``unknown``.
        physical_cores: Physical cores of this type.
        logical_cores: Logical CPUs of this type.
        l1i_cache_bytes: L1 instruction cache per core.
        l1d_cache_bytes: L1 data cache per core.
        l2_cache_bytes: L2 cache per cluster.
        cpus_per_l2: Cores that share one L2 (the cluster size).
    """

    index: int = Field(ge=0)
    name: str | None = None
    kind: PerfLevelKind
    physical_cores: int | None = Field(default=None, ge=0)
    logical_cores: int | None = Field(default=None, ge=0)
    l1i_cache_bytes: int | None = Field(default=None, ge=0)
    l1d_cache_bytes: int | None = Field(default=None, ge=0)
    l2_cache_bytes: int | None = Field(default=None, ge=0)
    cpus_per_l2: int | None = Field(default=None, ge=0)


class MacHardwareOverview(_Record):
    """What ``system_profiler SPHardwareDataType`` says (JSON or text form).

    Attributes:
        chip: ``chip_type`` / ``Chip:``, e.g. ``"Apple M2 Ultra"``.
        model_name: ``machine_name``, e.g. ``"Mac Studio"``.
        model_identifier: ``machine_model``, e.g. ``"Mac14,14"``.
        memory_bytes: ``physical_memory`` (``"64 GB"``; Apple's GB are GiB).
        total_cores: All CPU cores.
        performance_cores: Cores of the faster types (``Super`` and ``Performance``).
        efficiency_cores: Efficiency cores.
    """

    chip: str | None = None
    model_name: str | None = None
    model_identifier: str | None = None
    memory_bytes: int | None = Field(default=None, gt=0)
    total_cores: int | None = Field(default=None, ge=1)
    performance_cores: int | None = Field(default=None, ge=0)
    efficiency_cores: int | None = Field(default=None, ge=0)


class AppleGpuInfo(_Record):
    """The integrated GPU of an Apple Silicon chip (``system_profiler SPDisplaysDataType``).

    Attributes:
        name: ``sppci_model``, e.g. ``"Apple M3 Max"``.
        cores: ``sppci_cores``: GPU cores.
        metal_support: The Metal support the GPU reports, for people (``"Metal 4"``,
            ``"Apple GPU family 7"``); ``None`` when absent.
    """

    name: str
    cores: int | None = Field(default=None, ge=1)
    metal_support: str | None = None


class ThermalInfo(_Record):
    """Thermal and power limits from ``pmset -g therm``.

    pmset prints a ``Note: No ... has been recorded`` line for each kind of warning that
    was never raised since boot; that is the normal state of an Apple Silicon Mac.

    Attributes:
        state: ``throttled`` when a CPU speed or scheduler limit is below 100%,
            ``warning`` when a thermal or performance warning level above 0 is recorded,
            else ``nominal``.
        thermal_warning_level: ``Thermal Warning Level = N``; ``None`` when none recorded.
        performance_warning_level: ``Performance Warning Level = N``; ``None`` when none.
        cpu_speed_limit: ``CPU_Speed_Limit`` in percent; ``None`` when not reported.
        cpu_scheduler_limit: ``CPU_Scheduler_Limit`` in percent.
        cpu_available_cpus: ``CPU_Available_CPUs``.
    """

    state: ThermalState
    thermal_warning_level: int | None = None
    performance_warning_level: int | None = None
    cpu_speed_limit: int | None = None
    cpu_scheduler_limit: int | None = None
    cpu_available_cpus: int | None = None


class AppleSiliconInfo(_Record):
    """Apple Silicon facts: chip, core types, GPU, unified memory, power and thermal state.

    Attributes:
        chip: The chip's name, e.g. ``"Apple M5 Max"`` or ``"Apple M1 (Virtual)"``.
        generation: N in ``MN`` (1 for M1 ... 5 for M5); ``None`` for an unknown name.
        variant: ``"Pro"``, ``"Max"``, ``"Ultra"``; ``None`` for the base chip.
        virtual: Whether this is a macOS virtual machine (``"(Virtual)"`` in the name).
        model_name: The Mac, e.g. ``"MacBook Pro"``.
        model_identifier: E.g. ``"Mac17,6"``.
        perf_levels: The core types, fastest first (``hw.perflevelN``).
        performance_cores: Cores of the ``Super`` and ``Performance`` levels; ``None``
            when no level could be classified (a virtual machine's ``Standard`` cores).
        efficiency_cores: Cores of the ``Efficiency`` level (0 on an M5 Max).
        gpu: The integrated GPU, ``None`` when ``system_profiler`` did not answer.
        unified_memory_bytes: ``hw.memsize`` (or ``physical_memory``).
        macos_version: ``sw_vers`` ProductVersion, e.g. ``"15.1"``.
        macos_build: ``sw_vers`` BuildVersion, e.g. ``"24B83"``.
        low_power_mode: ``pmset -g`` ``lowpowermode`` (or ``powermode`` 1 on Macs with a
            high-power mode); ``None`` when not reported.
        thermal: ``pmset -g therm``; ``None`` when it could not be read.
    """

    chip: str
    generation: int | None = Field(default=None, ge=1)
    variant: str | None = None
    virtual: bool = False
    model_name: str | None = None
    model_identifier: str | None = None
    perf_levels: list[PerfLevel] = Field(default_factory=list)
    performance_cores: int | None = Field(default=None, ge=0)
    efficiency_cores: int | None = Field(default=None, ge=0)
    gpu: AppleGpuInfo | None = None
    unified_memory_bytes: int | None = Field(default=None, gt=0)
    macos_version: str | None = None
    macos_build: str | None = None
    low_power_mode: bool | None = None
    thermal: ThermalInfo | None = None


class CgroupLimits(_Record):
    """The CPU and memory limits of the process's control group (containers, systemd).

    ``None`` limits mean unlimited (``max`` in cgroup v2, ``-1`` or the page-counter
    maximum in v1). Limits of ancestor groups apply too, so the tightest one is kept.

    Attributes:
        version: 2 (unified hierarchy), 1 (legacy or hybrid), ``None`` without cgroups.
        path: The process's group, from ``/proc/self/cgroup`` (v2 group, or v1 ``cpu``).
        cpu_limit_cores: CPU bandwidth limit in cores (``cpu.max`` quota / period).
        memory_limit_bytes: ``memory.max`` / ``memory.limit_in_bytes``.
    """

    version: Literal[1, 2] | None = None
    path: str | None = None
    cpu_limit_cores: float | None = Field(default=None, gt=0)
    memory_limit_bytes: int | None = Field(default=None, gt=0)


class LinuxInfo(_Record):
    """Linux facts that change how fast the same hardware runs.

    Attributes:
        cpu_governor: ``scaling_governor`` of the CPUs (``"performance"``,
            ``"powersave"``); several distinct ones are joined with commas; ``None``
            where cpufreq is not exposed (most VMs and containers).
        cgroup: The control-group limits.
        affinity_cpus: CPUs this process may run on (``os.sched_getaffinity``).
    """

    cpu_governor: str | None = None
    cgroup: CgroupLimits = CgroupLimits()
    affinity_cpus: int | None = Field(default=None, ge=1)


class CudaDeviceInfo(_Record):
    """One NVIDIA GPU.

    Attributes:
        index: The index: torch's (after ``CUDA_VISIBLE_DEVICES``) when torch answered,
            else ``nvidia-smi``'s.
        name: E.g. ``"NVIDIA H100 80GB HBM3"``.
        memory_total_bytes: Total device memory.
        compute_capability: E.g. ``"9.0"``.
        multiprocessor_count: Streaming multiprocessors (torch only).
        driver_version: The NVIDIA driver, e.g. ``"550.54.15"``.
        cuda_driver_version: The newest CUDA version the driver supports, e.g. ``"12.4"``.
        cuda_runtime_version: The CUDA runtime torch was built with, e.g. ``"12.8"``.
        source: Where the device facts came from: ``"torch"`` or ``"nvidia-smi"``.
    """

    index: int = Field(ge=0)
    name: str
    memory_total_bytes: int | None = Field(default=None, gt=0)
    compute_capability: str | None = None
    multiprocessor_count: int | None = Field(default=None, ge=1)
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    cuda_runtime_version: str | None = None
    source: Literal["torch", "nvidia-smi"]


class HardwareInfo(_Record):
    """Everything the probe found about the machine, the interpreter and its libraries.

    Attributes:
        schema_version: The version of this record's layout (1).
        collected_at: When the probe ran (UTC).
        os: The operating system.
        python: The interpreter.
        cpu: The CPU.
        memory: Main memory.
        apple_silicon: Apple Silicon facts; ``None`` on other machines.
        linux: Linux facts; ``None`` on other systems.
        cuda_devices: NVIDIA GPUs; empty without an NVIDIA driver.
        libraries: Installed versions of the libraries that decide the numbers
            (``torch``, ``onnxruntime``, ``coremltools``, ``ai-edge-litert``, ``mlx``,
            ``as-bench``, ...); ``None`` for one that is not installed.
        threads: Thread settings in force: ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
            ``VECLIB_MAXIMUM_THREADS``, ``OPENBLAS_NUM_THREADS`` (``None`` when unset),
            and ``torch_intra_op``/``torch_inter_op`` when torch was already imported.
        warnings: Facts that could not be read, in words (a command that timed out, an
            output that did not parse); the rest of the record is still valid.
    """

    schema_version: int = HARDWARE_SCHEMA_VERSION
    collected_at: datetime
    os: OsInfo
    python: PythonInfo
    cpu: CpuInfo
    memory: MemoryInfo
    apple_silicon: AppleSiliconInfo | None = None
    linux: LinuxInfo | None = None
    cuda_devices: list[CudaDeviceInfo] = Field(default_factory=list)
    libraries: dict[str, str | None] = Field(default_factory=dict)
    threads: dict[str, int | str | None] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
