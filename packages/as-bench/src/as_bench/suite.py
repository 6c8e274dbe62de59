"""Suites: which workloads, backends, devices and batch sizes ``as-bench run`` measures.

A suite is a settings file read through as-config (YAML, JSON or TOML), with environment
overrides under ``AS_BENCH__`` (``AS_BENCH__RESULTS_DIR=/data/results``,
``AS_BENCH__MEASURE__MAX_TIME_S=10``) and profiles::

    name: nightly
    workloads: [mlp, digits-cnn, mypkg.models:factory]
    backends: [torch, onnxruntime]      # empty or absent: every backend installed here
    devices: [cpu, mps]                 # empty or absent: every device each backend can use
    batch_sizes: [1, 8, 32]
    measure: {max_time_s: 5, target_rel_ci: 0.01, isolate: true, threads: 4}
    results_dir: results

Precedence, highest first: command-line flags, environment, profile, file, defaults.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from as_bench.engine import MeasureOptions
from as_bench.exceptions import SuiteError
from as_config import AsSettings, ConfigSection, load_settings
from as_config.exceptions import AsConfigError

__all__ = ["DEFAULT_RESULTS_DIR", "MeasureSection", "Suite", "load_suite"]

DEFAULT_RESULTS_DIR = Path("as-bench-results")


class MeasureSection(ConfigSection):
    """How long and how precisely to measure each combination.

    The defaults are short on purpose, so that the default suite finishes in minutes;
    a suite for decisions should raise ``max_time_s`` and lower ``target_rel_ci``.

    Attributes:
        min_samples: Samples to take at least.
        min_time_s: Seconds of sampling at least.
        max_time_s: Seconds of sampling at most, converged or not.
        target_rel_ci: Stop when the 95% CI of the median is within this fraction.
        warmup_max_time_s: Longest warm-up.
        isolate: Measure each combination in a fresh process.
        threads: Fix compute threads (``None``: the libraries' defaults, recorded).
    """

    min_samples: int = Field(default=10, ge=2)
    min_time_s: float = Field(default=0.2, ge=0)
    max_time_s: float = Field(default=2.0, gt=0)
    target_rel_ci: float = Field(default=0.02, gt=0, lt=1)
    warmup_max_time_s: float = Field(default=1.0, ge=0)
    isolate: bool = False
    threads: int | None = Field(default=None, ge=1)

    def to_options(self) -> MeasureOptions:
        """The engine options this section stands for."""
        return MeasureOptions(
            min_samples=self.min_samples,
            min_time_s=self.min_time_s,
            max_time_s=self.max_time_s,
            target_rel_ci=self.target_rel_ci,
            warmup_max_time_s=self.warmup_max_time_s,
            threads=self.threads,
        )


class Suite(AsSettings):
    """What ``as-bench run`` measures, and where results go.

    Attributes:
        name: The suite's name, recorded as a tag on every result.
        workloads: Built-in names (``mlp``, ``digits-cnn``, ``minilm``) or
            ``pkg.module:factory`` specs.
        backends: Backend names; empty means every backend installed here.
        devices: Device names; empty means every device each backend can use here.
        batch_sizes: Items per call.
        measure: Measurement settings.
        check_outputs: Compare each backend's outputs with eager PyTorch on the CPU.
        accuracy: Score each backend on the workload's held-out data, where it has some.
        results_dir: The result store folder.
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
        unknown = [name for name in value if name not in names]
        if unknown:
            raise ValueError(f"unknown backend(s) {unknown}; known: {names}")
        return list(dict.fromkeys(value))


def load_suite(
    path: Path | str | None = None,
    *,
    profile: str | None = None,
    overrides: dict[str, object] | None = None,
) -> Suite:
    """Read a suite file (or only the environment and defaults when ``path`` is None).

    Raises:
        SuiteError: The file is missing, malformed or invalid; the message names the file,
            the key and the line, as as-config reports them.
    """
    try:
        return load_settings(Suite, path, profile=profile, overrides=overrides)
    except AsConfigError as exc:
        raise SuiteError(str(exc)) from exc
