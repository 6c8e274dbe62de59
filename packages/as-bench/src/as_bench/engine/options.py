"""How :func:`as_bench.engine.measure` measures: warm-up, calibration, stopping, isolation."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from as_bench.measurement import DeviceTiming

__all__ = ["MeasureOptions"]


class MeasureOptions(BaseModel):
    """Settings of one measurement. The defaults suit calls from microseconds to a second.

    With the defaults, a 1 ms function takes about half a second: 50 ms of warm-up, a
    few milliseconds of calibration, then at least 0.2 s of samples until the 95% CI of
    the median is within ±1%.

    Attributes:
        warmup_min_iters: Calls after the cold call before warm-up may end.
        warmup_min_time_s: Seconds of warm-up before it may end.
        warmup_max_time_s: Warm-up gives up waiting for stability after this long and the
            measurement records ``stable=False`` with a warning. ``warmup_min_iters`` is
            honoured even when it takes longer.
        warmup_window: The stability check compares the medians of the two halves of the
            last ``warmup_window`` warm-up calls (all of them while there are fewer).
        warmup_tolerance: Relative difference of those medians under which warm-up is
            stable (0.05 = 5%).
        min_samples: Samples per series before sampling may stop (always honoured).
        max_samples: Stop after this many samples of the primary series, converged or not;
            ``None`` for no limit.
        min_time_s: Seconds of sampling before sampling may stop. One second by default:
            the ±1% target is usually met within a fraction of that, but a median taken
            over so short a window carries whatever the machine did in it, and runs then
            disagree with each other more than the CI says (the engine benchmark measured
            the run-to-run spread of a 1 ms call fall from 0.03% to 0.013% going from
            0.2 s to 1 s).
        max_time_s: Sampling stops after this long, converged or not (once ``min_samples``
            are in). Warm-up and calibration are not counted.
        target_rel_ci: Sampling converges when the wider side of the median's confidence
            interval is within this fraction of the median (0.01 = ±1%).
        ci_level: Confidence level of that interval.
        inner_loops: Calls per sample; ``None`` to calibrate.
        calibrate_below_s: Calls shorter than this get an inner loop; longer ones are timed
            one call per sample (their timer and sync overhead is already small, and one
            call per sample keeps latency the latency of one synchronised call).
        max_overhead_ratio: Calibration sizes the inner loop so that the timer and
            synchronisation overhead is at most this fraction of a sample (1e-4 = 0.01%,
            torch.utils.benchmark's rule) ...
        max_sample_time_s: ... unless a sample would then last longer than this.
        max_inner_loops: ... or need more calls than this.
        batch_size: Samples per series taken between two stopping checks (fewer when a
            sample is long: a round lasts about ``batch_time_s``).
        batch_time_s: Target duration of one round of samples of one series.
        device_time: On devices with an event timer (CUDA, MPS), also take device-time
            samples, interleaved with latency samples round by round.
        device_timing: How device time is taken (see
            :data:`as_bench.measurement.DeviceTiming`): ``"batched"`` (back-to-back, the
            default: one event pair around a sample's calls queued back to back, the GPU
            time per call of a stream of calls) or ``"per_call"`` (an event pair around
            each synchronised call: the device's share of one call, launch gaps
            included). They agree on compute-bound calls; on launch-bound ones per-call
            reads higher (23% on a batch-1 MLP on an H200).
        track_memory: Track peak host RSS (and device memory) during the measurement.
        memory_poll_interval_s: Seconds between two host RSS samples.
        noise_rel_iqr: Warn when a series' IQR is at least this fraction of its median.
        outlier_fraction: Warn when at least this fraction of a series are outliers that
            are also more than ``outlier_min_rel`` away from the median.
        outlier_min_rel: Relative distance from the median under which an outlier by
            Tukey's fences is not counted for that warning (a very tight distribution
            puts its fences within a fraction of a percent).
        overhead_warn_factor: Warn when calibration cannot bring the overhead under
            ``max_overhead_ratio * overhead_warn_factor``.
        isolate: Run the whole measurement in a fresh process (multiprocessing "spawn");
            the function, its arguments and ``setup`` must then be picklable.
        isolate_timeout_s: Kill an isolated child after this many seconds (``None``: wait).
        remeasure_noisy: When the primary series' IQR is at least ``noise_rel_iqr`` of its
            median (a busy machine), measure again up to this many times: each attempt in
            a fresh process when the function can be sent to one (else in this process),
            stopping at the first quiet attempt, which is then the result; when none is
            quiet, the samples of every attempt are pooled (more samples, several
            processes). 0 (the default) never re-measures; the pytest plugin's gate and
            ``as-bench run`` use 2.
        processes: Measure in this many processes and pool their samples, the first as
            usual and the others in fresh processes when the function can be sent to one
            (pyperf's remedy for the spread between processes: on a 2-core VM six
            sessions of the same 1 ms loop, each converged to ±0.5%, had medians 10%
            apart). 1 (the default) measures once.
        threads: Fix the number of compute threads: sets ``torch.set_num_threads`` when
            torch is loaded and, in an isolated child, ``OMP_NUM_THREADS``,
            ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``VECLIB_MAXIMUM_THREADS`` and
            ``NUMEXPR_NUM_THREADS`` before anything starts. In-process, thread pools that
            already started keep their size: use ``isolate=True`` to fix them all.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    warmup_min_iters: int = Field(default=3, ge=0)
    warmup_min_time_s: float = Field(default=0.05, ge=0)
    warmup_max_time_s: float = Field(default=2.0, ge=0)
    warmup_window: int = Field(default=20, ge=2)
    warmup_tolerance: float = Field(default=0.05, gt=0)

    min_samples: int = Field(default=10, ge=2)
    max_samples: int | None = Field(default=None, ge=2)
    min_time_s: float = Field(default=1.0, ge=0)
    max_time_s: float = Field(default=5.0, gt=0)
    target_rel_ci: float = Field(default=0.01, gt=0)
    ci_level: float = Field(default=0.95, gt=0, lt=1)

    inner_loops: int | None = Field(default=None, ge=1)
    calibrate_below_s: float = Field(default=1e-3, ge=0)
    max_overhead_ratio: float = Field(default=1e-4, gt=0)
    max_sample_time_s: float = Field(default=0.1, gt=0)
    max_inner_loops: int = Field(default=1_000_000, ge=1)

    batch_size: int = Field(default=10, ge=1)
    batch_time_s: float = Field(default=0.05, gt=0)
    device_time: bool = True
    device_timing: DeviceTiming = "batched"

    track_memory: bool = True
    memory_poll_interval_s: float = Field(default=0.002, gt=0)

    noise_rel_iqr: float = Field(default=0.10, gt=0)
    outlier_fraction: float = Field(default=0.05, gt=0, le=1)
    outlier_min_rel: float = Field(default=0.05, ge=0)
    overhead_warn_factor: float = Field(default=10.0, ge=1)

    isolate: bool = False
    isolate_timeout_s: float | None = Field(default=None, gt=0)
    remeasure_noisy: int = Field(default=0, ge=0, le=20)
    processes: int = Field(default=1, ge=1, le=50)
    threads: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        if self.warmup_max_time_s < self.warmup_min_time_s:
            msg = (
                f"warmup_max_time_s ({self.warmup_max_time_s}) is below "
                f"warmup_min_time_s ({self.warmup_min_time_s})"
            )
            raise ValueError(msg)
        if self.max_time_s < self.min_time_s:
            msg = f"max_time_s ({self.max_time_s}) is below min_time_s ({self.min_time_s})"
            raise ValueError(msg)
        if self.max_samples is not None and self.max_samples < self.min_samples:
            msg = f"max_samples ({self.max_samples}) is below min_samples ({self.min_samples})"
            raise ValueError(msg)
        return self

    @classmethod
    def quick(cls, **overrides: object) -> MeasureOptions:
        """Short measurements for tests and the default suite (±5% CI, at most ~0.5 s).

        Args:
            **overrides: Fields to change from the quick preset.
        """
        preset: dict[str, object] = {
            "warmup_min_iters": 2,
            "warmup_min_time_s": 0.01,
            "warmup_max_time_s": 0.25,
            "warmup_window": 10,
            "min_samples": 5,
            "min_time_s": 0.02,
            "max_time_s": 0.5,
            "target_rel_ci": 0.05,
            "max_sample_time_s": 0.02,
            "batch_time_s": 0.02,
        }
        preset.update(overrides)
        return cls.model_validate(preset)
