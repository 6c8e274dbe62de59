"""Suites: which workloads, backends, devices and batch sizes ``as-bench run`` measures.

A suite is a settings file read through as-config (YAML, JSON or TOML), with environment
overrides under ``AS_BENCH__`` (``AS_BENCH__RESULTS_DIR=/data/results``,
``AS_BENCH__MEASURE__MAX_TIME_S=10``) and profiles::

    name: nightly
    workloads: [mlp, digits-cnn, mypkg.models:factory]
    backends: [torch, onnxruntime]      # empty or absent: every backend installed here
    devices: [cpu, mps, mlx]            # empty or absent: every device each backend can use
    batch_sizes: [1, 8, 32]
    measure: {max_time_s: 5, target_rel_ci: 0.01, isolate: true, threads: 4}
    results_dir: results

Precedence, highest first: command-line flags, environment, profile, file, defaults.
Environment values of lists and mappings are JSON (``AS_BENCH__BATCH_SIZES='[1, 8]'``).

Mistakes are caught when the suite loads, before anything runs, and reported by
:func:`load_suite` as one :class:`~as_bench.exceptions.SuiteError` line that names the
file, line and key (or the environment variable or argument) of each: an unknown key, a
batch size below 1, an unknown backend, a workload that is neither a built-in name nor a
``pkg.module:factory`` spec, ``measure.max_time_s`` below ``measure.min_time_s``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from as_bench.engine import MeasureOptions
from as_bench.exceptions import SuiteError, WorkloadError
from as_bench.measurement import DeviceTiming
from as_config import AsSettings, ConfigSection, load_settings
from as_config.exceptions import AsConfigError, ConfigIssue, ConfigValidationError

__all__ = ["DEFAULT_RESULTS_DIR", "MeasureSection", "Suite", "load_suite"]

DEFAULT_RESULTS_DIR = Path("as-bench-results")


class MeasureSection(ConfigSection):
    """How long and how precisely to measure each combination.

    The defaults are short on purpose, so that the default suite finishes in minutes;
    a suite for decisions should raise ``max_time_s`` and lower ``target_rel_ci``.

    ``max_time_s`` set below the default ``min_time_s`` (``--max-time 0.05``) lowers
    ``min_time_s`` to it; setting both, the other way round, is an error. Likewise a
    ``warmup_max_time_s`` below the engine's shortest warm-up shortens that warm-up.

    Attributes:
        min_samples: Samples to take at least.
        min_time_s: Seconds of sampling at least.
        max_time_s: Seconds of sampling at most, converged or not.
        target_rel_ci: Stop when the 95% CI of the median is within this fraction.
        warmup_max_time_s: Longest warm-up.
        isolate: Measure each combination in a fresh process.
        threads: Fix compute threads (``None``: the libraries' defaults, recorded).
        remeasure_noisy: Measure a noisy combination (IQR at least 10% of the median: a
            busy machine) again up to this many times, in fresh processes, before
            storing it (see ``MeasureOptions.remeasure_noisy``); 0 never does.
        device_timing: Device time on CUDA and MPS: ``batched`` (back-to-back, one event
            pair around calls queued back to back) or ``per_call`` (an event pair around
            each synchronised call); see :class:`~as_bench.engine.MeasureOptions`.
    """

    min_samples: int = Field(default=10, ge=2)
    min_time_s: float = Field(default=0.2, ge=0)
    max_time_s: float = Field(default=2.0, gt=0)
    target_rel_ci: float = Field(default=0.02, gt=0, lt=1)
    warmup_max_time_s: float = Field(default=1.0, ge=0)
    isolate: bool = False
    threads: int | None = Field(default=None, ge=1)
    device_timing: DeviceTiming = "batched"
    remeasure_noisy: int = Field(default=2, ge=0, le=20)

    @model_validator(mode="after")
    def _time_range(self) -> Self:
        if self.max_time_s >= self.min_time_s:
            return self
        if "min_time_s" in self.model_fields_set:
            msg = f"max_time_s ({self.max_time_s}) is below min_time_s ({self.min_time_s})"
            raise ValueError(msg)
        # Only the ceiling was given: a shorter run is what was asked for.
        self.min_time_s = self.max_time_s
        return self

    def to_options(self) -> MeasureOptions:
        """The engine options this section stands for."""
        warmup_min = MeasureOptions.model_fields["warmup_min_time_s"].default
        return MeasureOptions(
            min_samples=self.min_samples,
            min_time_s=self.min_time_s,
            max_time_s=self.max_time_s,
            target_rel_ci=self.target_rel_ci,
            warmup_min_time_s=min(warmup_min, self.warmup_max_time_s),
            warmup_max_time_s=self.warmup_max_time_s,
            threads=self.threads,
            device_timing=self.device_timing,
            remeasure_noisy=self.remeasure_noisy,
        )


class Suite(AsSettings):
    """What ``as-bench run`` measures, and where results go.

    Attributes:
        name: The suite's name, recorded as a tag on every result.
        workloads: Built-in names (``mlp``, ``digits-cnn``, ``minilm``) or
            ``pkg.module:factory`` specs.
        backends: Backend names; empty means every backend installed here.
        devices: Device names (``cpu``, ``cuda`` = ``cuda:0``, ``cuda:N``, ``mps``,
            ``mlx``, and backend-specific ones such as ``coreml-ane``); empty means every
            device each backend can use here.
        batch_sizes: Items per call.
        measure: Measurement settings.
        check_outputs: Compare each backend's outputs with eager PyTorch on the CPU.
        accuracy: Score each backend on the workload's held-out data, where it has some.
        results_dir: The result store folder; ``~`` is expanded, and a relative path is
            relative to the working directory (not to the suite file).
        tags: Free-form labels copied into every result.
    """

    model_config = SettingsConfigDict(env_prefix="AS_BENCH__")

    name: str = "default"
    workloads: list[str] = Field(default_factory=lambda: ["mlp", "digits-cnn"], min_length=1)
    backends: list[str] = Field(default_factory=list)
    devices: list[str] = Field(default_factory=list)
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 32], min_length=1)
    measure: MeasureSection = Field(default_factory=MeasureSection)
    check_outputs: bool = True
    accuracy: bool = True
    results_dir: Path = DEFAULT_RESULTS_DIR
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("batch_sizes")
    @classmethod
    def _positive_unique(cls, value: list[int]) -> list[int]:
        if any(size < 1 for size in value):
            raise ValueError(f"batch sizes must be at least 1, got {value}")
        return sorted(set(value))

    @field_validator("backends")
    @classmethod
    def _known_backends(cls, value: list[str]) -> list[str]:
        from as_bench.backends import backend_names

        names = backend_names()
        value = [name.strip().lower() for name in value]
        unknown = [name for name in value if name not in names]
        if unknown:
            raise ValueError(f"unknown backend(s) {unknown} (known: {', '.join(names)})")
        return list(dict.fromkeys(value))

    @field_validator("workloads")
    @classmethod
    def _workload_specs(cls, value: list[str]) -> list[str]:
        # Cheap checks only (nothing is imported): a misspelt built-in or a malformed
        # spec is a mistake in the suite, not a failure of one benchmark.
        from as_bench.workloads import builtin_workloads
        from as_bench.workloads._loader import parse_spec

        value = [spec.strip() for spec in value]
        for spec in value:
            if spec in builtin_workloads():
                continue
            if ":" not in spec:
                msg = (
                    f"unknown workload {spec!r} (built-ins: {', '.join(builtin_workloads())}; "
                    "a model of your own is 'pkg.module:factory')"
                )
                raise ValueError(msg)
            try:
                parse_spec(spec)
            except WorkloadError as exc:
                raise ValueError(str(exc)) from None
        return list(dict.fromkeys(value))

    @field_validator("results_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("devices")
    @classmethod
    def _device_names(cls, value: list[str]) -> list[str]:
        aliases = {"cuda": "cuda:0", "cpu:0": "cpu", "mps:0": "mps"}
        names = [name.strip().lower() for name in value]
        return list(dict.fromkeys(aliases.get(name, name) for name in names))


def load_suite(
    path: Path | str | None = None,
    *,
    profile: str | None = None,
    overrides: dict[str, object] | None = None,
) -> Suite:
    """Read a suite file (or only the environment and defaults when ``path`` is None).

    Raises:
        SuiteError: The file is missing, malformed or invalid. The message is one line
            that names, for each problem, the file, line and key (or the environment
            variable or argument), as as-config reports them. Its ``hint`` attribute says
            what to do (the CLI prints it); the as-config error is its ``__cause__``.
    """
    try:
        return load_settings(Suite, path, profile=profile, overrides=overrides)
    except ConfigValidationError as exc:
        problems = "; ".join(_issue_line(issue) for issue in exc.issues)
        hint = "fix the value at the place named: the file and line, the variable or the option"
        raise _SuiteLoadError(f"invalid suite: {problems}", hint) from exc
    except AsConfigError as exc:
        raise _SuiteLoadError(str(exc), exc.hint) from exc


class _SuiteLoadError(SuiteError):
    """A :class:`SuiteError` that carries as-config's ``hint``, which the CLI prints."""

    def __init__(self, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.hint = hint


def _issue_line(issue: ConfigIssue) -> str:
    # pydantic prefixes a validator's own message with "Value error, ": noise here.
    reason = issue.reason.removeprefix("Value error, ")
    key = issue.key or "<top level>"
    if issue.path is not None and issue.source:
        return f"{issue.source}: {key}: {reason}"
    return f"{key}: {reason}" + (f" (from {issue.source})" if issue.source else "")
