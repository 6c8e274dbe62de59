"""Were the two sides measured in the same environment? The differences, in words.

Compared (each side's set of values over its results; a difference is reported once):

- the machine: CPU model, architecture, physical and logical cores, total memory; the
  Apple Silicon chip, performance and efficiency cores, GPU name and cores, low-power
  mode; NVIDIA GPU names, driver and CUDA runtime;
- the system: OS, OS name and version, kernel release, architecture the interpreter runs
  as (Rosetta shows here), Python major.minor and implementation; on Linux the CPU
  governor, the cgroup CPU limit and the CPUs the process may use;
- every library version the probe records (torch, onnxruntime, coremltools,
  ai-edge-litert, mlx, as-bench, ...), "not installed" included;
- per benchmark, the thread settings in force while measuring (``measurement.threads``):
  the requested count, ``OMP_NUM_THREADS`` and the other thread variables, torch's intra-
  and inter-op threads, and the CPU affinity.

Ignored, because they differ between any two runs without saying anything about the
environment: timestamps (``collected_at``, ``started_at``), available memory, the
interpreter's path (a new virtual environment per CI job), ``os.platform`` (it repeats
the kernel release), the probe's own warnings, git facts (the code is *meant* to differ)
and thermal readings (warning levels and limits move with load and room temperature).
Thermal state is not compared, but a side measured while throttled or under a thermal
warning is reported, since its times are then suspect whatever the other side did.

A fact a side does not record (an older probe, a result rebuilt from CSV) is not compared;
a side with no hardware record at all is reported once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from as_bench.results import BenchmarkResult
from as_core.fmt import format_bytes

__all__ = ["environment_differences"]

_MISSING = object()
_SHOWN_NAMES = 3  # benchmarks named in a thread-settings warning before "and N more"


def _get(mapping: Any, path: tuple[str, ...]) -> Any:
    value = mapping
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _major_minor(version: Any) -> Any:
    if isinstance(version, str):
        return ".".join(version.split(".")[:2])
    return version


def _bytes(value: Any) -> Any:
    return format_bytes(value) if isinstance(value, int) else value


def _gpu_names(hardware: Any) -> Any:
    devices = _get(hardware, ("cuda_devices",))
    if devices is _MISSING or not isinstance(devices, list):
        return _MISSING
    return ", ".join(str(d.get("name")) for d in devices if isinstance(d, Mapping)) or "none"


def _cuda_field(field: str) -> Callable[[Any], Any]:
    def read(hardware: Any) -> Any:
        devices = _get(hardware, ("cuda_devices",))
        if not isinstance(devices, list) or not devices:
            return _MISSING
        values = sorted({str(d.get(field)) for d in devices if isinstance(d, Mapping)})
        return ", ".join(values)

    return read


def _path(*keys: str, show: Callable[[Any], Any] | None = None) -> Callable[[Any], Any]:
    def read(hardware: Any) -> Any:
        value = _get(hardware, keys)
        return value if value is _MISSING or show is None else show(value)

    return read


# (what to call it, how to read it from a result's hardware mapping)
_HARDWARE_FACTS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("CPU", _path("cpu", "model")),
    ("CPU architecture", _path("cpu", "architecture")),
    ("physical cores", _path("cpu", "physical_cores")),
    ("logical CPUs", _path("cpu", "logical_cores")),
    ("memory", _path("memory", "total_bytes", show=_bytes)),
    ("Apple Silicon chip", _path("apple_silicon", "chip")),
    ("performance cores", _path("apple_silicon", "performance_cores")),
    ("efficiency cores", _path("apple_silicon", "efficiency_cores")),
    ("GPU", _path("apple_silicon", "gpu", "name")),
    ("GPU cores", _path("apple_silicon", "gpu", "cores")),
    ("low-power mode", _path("apple_silicon", "low_power_mode")),
    ("NVIDIA GPUs", _gpu_names),
    ("NVIDIA driver", _cuda_field("driver_version")),
    ("CUDA runtime", _cuda_field("cuda_runtime_version")),
    ("OS", _path("os", "system")),
    ("OS version", _path("os", "name")),
    ("kernel", _path("os", "release")),
    ("interpreter architecture", _path("os", "machine")),
    ("Python", _path("python", "version", show=_major_minor)),
    ("Python implementation", _path("python", "implementation")),
    ("CPU governor", _path("linux", "cpu_governor")),
    ("cgroup CPU limit (cores)", _path("linux", "cgroup", "cpu_limit_cores")),
    ("CPUs the process may use", _path("linux", "affinity_cpus")),
)

# Keys of Measurement.threads compared; cpu_count is a machine fact, compared above.
_THREAD_KEYS = (
    "requested",
    "torch_intra_op",
    "torch_inter_op",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "cpu_affinity",
)


def _show(value: Any, *, none: str = "unknown") -> str:
    if value is None:
        return none
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _values(results: Iterable[BenchmarkResult], read: Callable[[Any], Any]) -> set[Any]:
    found = set()
    for result in results:
        value = read(result.hardware)
        if value is None or isinstance(value, str | int | float | bool):
            found.add(value)
        elif value is not _MISSING:
            found.add(str(value))
    return found


def _describe(values: set[Any], none: str) -> str:
    return ", ".join(sorted(_show(v, none=none) for v in values))


def _differs(label: str, base: set[Any], new: set[Any], *, none: str = "unknown") -> str | None:
    if not base or not new or base == new:
        return None  # unknown on a side, or the same
    return f"{label}: {_describe(base, none)} in base, {_describe(new, none)} in new"


def _library_differences(
    base: Sequence[BenchmarkResult], new: Sequence[BenchmarkResult]
) -> list[str]:
    names: set[str] = set()
    for result in (*base, *new):
        libraries = result.hardware.get("libraries")
        if isinstance(libraries, Mapping):
            names.update(str(name) for name in libraries)
    out = []
    for name in sorted(names):
        read = _path("libraries", name)
        line = _differs(name, _values(base, read), _values(new, read), none="not installed")
        if line is not None:
            out.append(line)
    return out


def _thermal_notes(side: str, results: Sequence[BenchmarkResult]) -> list[str]:
    states: set[str] = set()
    for result in results:
        state = _get(result.hardware, ("apple_silicon", "thermal", "state"))
        if isinstance(state, str) and state != "nominal":
            limit = _get(result.hardware, ("apple_silicon", "thermal", "cpu_speed_limit"))
            detail = f" (CPU speed limit {limit}%)" if isinstance(limit, int) else ""
            states.add(f"{state}{detail}")
    if not states:
        return []
    return [
        f"{side} was measured in thermal state {', '.join(sorted(states))}: "
        "its times may be slowed by heat, not by the code"
    ]


def _latest(results: Sequence[BenchmarkResult]) -> dict[str, BenchmarkResult]:
    latest: dict[str, BenchmarkResult] = {}
    for result in results:
        seen = latest.get(result.benchmark)
        if seen is None or result.finished_at >= seen.finished_at:
            latest[result.benchmark] = result
    return latest


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN_NAMES])
    more = len(names) - _SHOWN_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def _thread_differences(
    base: Sequence[BenchmarkResult], new: Sequence[BenchmarkResult]
) -> list[str]:
    base_latest, new_latest = _latest(base), _latest(new)
    # One line per distinct difference, naming the benchmarks that have it.
    grouped: dict[str, list[str]] = {}
    for name in sorted(base_latest.keys() & new_latest.keys()):
        before = base_latest[name].measurement.threads
        after = new_latest[name].measurement.threads
        parts = []
        for key in _THREAD_KEYS:
            if key not in before or key not in after or before[key] == after[key]:
                continue
            none = "unset" if key.isupper() else "not set"
            parts.append(
                f"{key} {_show(before[key], none=none)} in base, "
                f"{_show(after[key], none=none)} in new"
            )
        if parts:
            grouped.setdefault("; ".join(parts), []).append(name)
    return [
        f"thread settings differ ({text}) for {_names(names)}" for text, names in grouped.items()
    ]


def environment_differences(
    base: Sequence[BenchmarkResult], new: Sequence[BenchmarkResult]
) -> list[str]:
    """What differs between the environments the two sides were measured in, in words.

    See the module's docstring for what is compared and what is ignored. Each side's
    values are gathered over all its results, so a side that mixes machines shows all
    of them; thread settings are compared per benchmark (the latest result of each name).

    Args:
        base: The baseline's results.
        new: The candidate's results.

    Returns:
        One line per difference (``"torch: 2.5.1 in base, 2.6.0 in new"``), machine facts
        first, then libraries, thread settings and thermal states; empty when nothing
        differs.
    """
    out: list[str] = []
    bare = [
        side
        for side, results in (("base", base), ("new", new))
        if results and not any(result.hardware for result in results)
    ]
    if len(bare) == 2:
        out.append("neither side has a hardware record: the machines cannot be compared")
    elif bare:
        out.append(
            f"{bare[0]} has no hardware record (a CSV or Parquet export keeps none): "
            "the machines cannot be compared"
        )
    for label, read in _HARDWARE_FACTS:
        line = _differs(label, _values(base, read), _values(new, read))
        if line is not None:
            out.append(line)
    out.extend(_library_differences(base, new))
    out.extend(_thread_differences(base, new))
    out.extend(_thermal_notes("base", base))
    out.extend(_thermal_notes("new", new))
    return out
