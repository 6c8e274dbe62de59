"""What one measurement produced: raw samples, statistics, warm-up, memory.

These records cross process and file boundaries (isolated runs return them as JSON; the
result store keeps them), so they are pydantic models validated on read. Times are in
seconds per call of the measured function; raw samples are kept so that later analysis
(comparison, plots) works from the data, not from summaries.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from as_bench.stats import Stats

__all__ = [
    "DEVICE_TIME_HEADINGS",
    "DeviceTiming",
    "Measurement",
    "MemoryReport",
    "TimingSeries",
    "WarmupReport",
    "device_time_cell_suffix",
    "device_time_heading",
    "device_timing_of",
]

TimerKind = Literal[
    "perf_counter",
    "cuda_events",
    "mps_events",
    "cuda_events_per_call",
    "mps_events_per_call",
    "sync_clock",
    "mlx_eval_clock",
]
"""How a series was timed. ``cuda_events`` and ``mps_events`` are device time taken
back to back (one event pair around a sample's calls); the ``_per_call`` kinds are device
time with an event pair around each synchronised call (see :data:`DeviceTiming`)."""

DeviceTiming = Literal["batched", "per_call"]
"""How device time is taken on devices with an event timer (CUDA, MPS).

- ``"batched"`` (back-to-back): one event pair around a sample's ``inner`` calls, queued
  back to back with no synchronisation between them; the span divided by ``inner``. It is
  the GPU time per call of a stream of calls: what throughput costs. When the host queues
  work faster than the GPU runs it (compute-bound calls), it is the calls' kernel time;
  when the host is slower (launch-bound calls), the GPU waits between kernels and the
  figure follows the host's launch rate, while each call's launch latency and drain
  overlap its neighbours' and are not counted.
- ``"per_call"``: the device is synchronised, then an event pair is recorded around each
  single call, then the device is synchronised again (as latency does), and the spans
  are averaged. Each span runs from the moment the idle GPU reaches the start event to
  the moment it finishes the call's last work: the kernels, the gaps in which the GPU
  waited for the host to launch the next kernel, and the first kernel's launch latency.
  It leaves out the host's synchronisation and clock reads. It is the device's share of
  one synchronised call, the device-side counterpart of latency.

Measured on an NVIDIA H200 (torch 2.11): on compute-bound calls (4096² and 8192² bf16
matmuls, a conv stack) the two agree within 2%; on a launch-bound batch-1 MLP the
back-to-back figure read 23% below per-call event pairs.
"""

DEVICE_TIME_HEADINGS: Final[dict[DeviceTiming, str]] = {
    "batched": "device time (back-to-back)",
    "per_call": "device time (per call)",
}
"""The heading of a device-time column, by how the device time was taken."""

_PER_CALL_TIMERS: Final = frozenset({"cuda_events_per_call", "mps_events_per_call"})
_BATCHED_TIMERS: Final = frozenset({"cuda_events", "mps_events"})


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimingSeries(_Record):
    """Samples of one timer, in seconds per call, and their statistics.

    Attributes:
        label: What the numbers mean, for people: ``"device time, back-to-back (CUDA
            events)"``, ``"device time, per call (CUDA events)"``, ``"latency
            (synchronised wall clock)"``, ``"wall clock"``.
        timer: How the samples were taken.
        samples_s: Every kept sample, seconds per call (the sample's time divided by the
            inner-loop count), in the order they were taken.
        stats: Statistics of ``samples_s``.
    """

    label: str
    timer: TimerKind
    samples_s: list[float]
    stats: Stats


def device_timing_of(series: TimingSeries | None) -> DeviceTiming | None:
    """How a device-time series was taken (``None``: not a device-time series).

    Series of unknown timers (a flat-table read-back, a fake device) count as
    ``"batched"`` unless their timer names per-call events: batched is the default.
    """
    if series is None or series.timer in ("perf_counter", "sync_clock", "mlx_eval_clock"):
        return None
    return "per_call" if series.timer in _PER_CALL_TIMERS else "batched"


def device_time_heading(series: Iterable[TimingSeries | None]) -> str:
    """The heading of a column of these device-time series: what the numbers mean.

    ``"device time (back-to-back)"`` or ``"device time (per call)"`` when every series
    with a timing agrees (back-to-back, the default, when none has one); plain
    ``"device time"`` when they are mixed (then each cell should say which, see
    :func:`device_time_cell_suffix`).
    """
    kinds = {kind for s in series if (kind := device_timing_of(s)) is not None}
    if len(kinds) > 1:
        return "device time"
    return DEVICE_TIME_HEADINGS[kinds.pop() if kinds else "batched"]


def device_time_cell_suffix(series: TimingSeries | None, heading: str) -> str:
    """``" (per call)"`` / ``" (back-to-back)"`` for a cell under a mixed heading, else ``""``."""
    kind = device_timing_of(series)
    if kind is None or heading != "device time":
        return ""
    return " (per call)" if kind == "per_call" else " (back-to-back)"


class WarmupReport(_Record):
    """The warm-up phase, kept apart from the measured samples.

    Attributes:
        iterations: Calls made during warm-up (after the first, cold call).
        seconds: Wall time the warm-up took.
        stable: Whether the first and second halves of the early samples agreed
            (medians within ``tolerance``) when warm-up ended.
        first_half_median_s: Median of the first half of the last warm-up window.
        second_half_median_s: Median of the second half of that window.
    """

    iterations: int = Field(ge=0)
    seconds: float = Field(ge=0)
    stable: bool
    first_half_median_s: float | None = None
    second_half_median_s: float | None = None


class MemoryReport(_Record):
    """Peak memory seen while measuring; ``None`` where the device cannot tell.

    The host fields are the whole process's resident set: ``host_peak_rss_bytes`` counts
    everything the process ever held (earlier benchmarks, imported libraries), so it
    depends on what ran before. What one benchmark's model takes is
    :attr:`model_memory_bytes`, recorded by the suite runner (``as-bench run``), which
    reads the RSS before the backend loads the model and follows the peak up to the end
    of the warm-up.

    Attributes:
        host_peak_rss_bytes: Peak resident set size of the measuring process (sampled in a
            background thread) or, when isolated, of the child (from its rusage).
        host_baseline_rss_bytes: RSS just before the measurement started (after the model
            was loaded).
        host_before_load_rss_bytes: RSS just before the backend loaded (exported,
            converted) the model; ``None`` outside the suite runner and in old results.
        host_load_peak_rss_bytes: Peak RSS from just before loading to the end of the
            measurement, this benchmark only: the highest of a background thread's samples
            (every ``memory_poll_interval_s``, during loading, the output check, the cold
            call and the warm-up) and, where the process's ``getrusage`` high-water mark
            rose during the benchmark, that mark (exact, so a spike between two samples is
            not lost). A spike between samples that stays below an earlier benchmark's
            high-water mark can be missed.
        host_memory_polluted: ``True`` when other benchmarks ran earlier in the same
            process: memory they freed but the process kept (allocator caches, which
            Python, PyTorch and glibc do not return to the system) may be reused, so the
            increase can read low, and libraries they imported are not counted again.
            ``False`` for the first benchmark of a process (``as-bench run --isolate`` makes
            every benchmark one); ``None`` when not recorded.
        device_peak_allocated_bytes: CUDA peak allocated after a reset; MPS peak of the
            polled current allocation; MLX peak memory.
        device_peak_reserved_bytes: CUDA peak reserved; MPS peak driver allocation.
        device_budget_bytes: What the device may use: CUDA total memory, MPS
            ``recommended_max_memory`` (the unified-memory budget), MLX's limit.
    """

    host_peak_rss_bytes: int | None = None
    host_baseline_rss_bytes: int | None = None
    device_peak_allocated_bytes: int | None = None
    device_peak_reserved_bytes: int | None = None
    device_budget_bytes: int | None = None
    host_before_load_rss_bytes: int | None = None
    host_load_peak_rss_bytes: int | None = None
    host_memory_polluted: bool | None = None

    @property
    def model_memory_bytes(self) -> int | None:
        """What loading the model and running it added to the RSS (peak minus before-load).

        ``host_load_peak_rss_bytes - host_before_load_rss_bytes``, at least 0: the model,
        its conversion and the libraries the backend imported to load it, and inference
        up to the end of the warm-up. ``None`` when either was not recorded (results
        measured outside the suite runner, or before these fields existed).
        """
        if self.host_load_peak_rss_bytes is None or self.host_before_load_rss_bytes is None:
            return None
        return max(0, self.host_load_peak_rss_bytes - self.host_before_load_rss_bytes)


class Measurement(_Record):
    """Everything :func:`as_bench.measure` found about one function on one device.

    Attributes:
        device: The device string, e.g. ``"cpu"``, ``"cuda:0"``, ``"mps"``, ``"mlx"``.
        latency: End-to-end time of a synchronised call: what a caller waits for. On the
            CPU this is the only timer.
        device_time: Time the device spent per call, from device events (CUDA, MPS):
            back-to-back (``timer`` ``cuda_events``/``mps_events``, the default) or per
            call (``cuda_events_per_call``/``mps_events_per_call``), see
            :data:`DeviceTiming`; ``None`` on the CPU and where events are not available.
        cold_start_s: The first call's time, never part of the samples.
        warmup: The warm-up phase.
        inner_loops: Calls per sample; above 1 for sub-millisecond calls so that timer and
            synchronisation overhead stay below 0.01% of a sample.
        converged: Whether the confidence interval of the median reached the target
            before the time limit.
        stop_reason: Why sampling stopped, in words.
        total_seconds: Wall time of the whole measurement, warm-up included.
        memory: Peak memory.
        threads: Thread settings in force (``torch_intra_op``, ``OMP_NUM_THREADS``, ...).
        isolated: Whether it ran in a fresh child process.
        warnings: Noise and environment warnings, in words.
        attempts: Measurements pooled into this one: 1, or more when a noisy first
            attempt was re-measured (``MeasureOptions.remeasure_noisy``); the samples of
            every attempt are kept, in order.
    """

    device: str
    latency: TimingSeries
    device_time: TimingSeries | None = None
    cold_start_s: float
    warmup: WarmupReport
    inner_loops: int = Field(ge=1)
    converged: bool
    stop_reason: str
    total_seconds: float = Field(ge=0)
    memory: MemoryReport = MemoryReport()
    threads: dict[str, int | str | None] = Field(default_factory=dict)
    isolated: bool = False
    warnings: list[str] = Field(default_factory=list)
    attempts: int = Field(default=1, ge=1)

    @property
    def primary(self) -> TimingSeries:
        """The series a summary should quote: device time where there is one, else latency."""
        return self.device_time if self.device_time is not None else self.latency
