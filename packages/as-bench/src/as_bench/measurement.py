"""What one measurement produced: raw samples, statistics, warm-up, memory.

These records cross process and file boundaries (isolated runs return them as JSON; the
result store keeps them), so they are pydantic models validated on read. Times are in
seconds per call of the measured function; raw samples are kept so that later analysis
(comparison, plots) works from the data, not from summaries.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from as_bench.stats import Stats

__all__ = ["Measurement", "MemoryReport", "TimingSeries", "WarmupReport"]

TimerKind = Literal["perf_counter", "cuda_events", "mps_events", "sync_clock", "mlx_eval_clock"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimingSeries(_Record):
    """Samples of one timer, in seconds per call, and their statistics.

    Attributes:
        label: What the numbers mean, for people: ``"device time (CUDA events)"``,
            ``"latency (synchronised wall clock)"``, ``"wall clock"``.
        timer: How the samples were taken.
        samples_s: Every kept sample, seconds per call (the sample's time divided by the
            inner-loop count), in the order they were taken.
        stats: Statistics of ``samples_s``.
    """

    label: str
    timer: TimerKind
    samples_s: list[float]
    stats: Stats


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

    Attributes:
        host_peak_rss_bytes: Peak resident set size of the measuring process (sampled in a
            background thread) or, when isolated, of the child (from its rusage).
        host_baseline_rss_bytes: RSS just before the measurement started.
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


class Measurement(_Record):
    """Everything :func:`as_bench.measure` found about one function on one device.

    Attributes:
        device: The device string, e.g. ``"cpu"``, ``"cuda:0"``, ``"mps"``, ``"mlx"``.
        latency: End-to-end time of a synchronised call: what a caller waits for. On the
            CPU this is the only timer.
        device_time: Time the device spent, from device events (CUDA, MPS); ``None`` on
            the CPU and where events are not available.
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
