"""The training monitor's settings: a section to nest in any as-config settings class."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from as_config import AsSettings, ConfigSection

__all__ = [
    "CheckpointSettings",
    "DivergenceSettings",
    "ExplodingGradientSettings",
    "LeakSettings",
    "MetricsSettings",
    "MonitorSettings",
    "NonFiniteSettings",
    "OptimizeSettings",
    "Policy",
    "ProgressSettings",
    "RollbackSettings",
    "SlowdownSettings",
    "StallSettings",
    "TensorBoardSettings",
]

Policy = Literal["warn", "stop", "rollback"]
"""What a detector does when it fires: log the event, stop the run, or roll back."""

Mode = Literal["min", "max"]


class NonFiniteSettings(ConfigSection):
    """NaN or infinity in the loss or the gradients' global norm, at the step it happens."""

    enabled: bool = True
    policy: Policy = "rollback"


class DivergenceSettings(ConfigSection):
    """The loss far above its recent running level.

    After ``warmup`` steps, a step's loss is *high* when it exceeds ``factor`` times the
    median of the previous ``window`` finite losses (only while that median is positive)
    and ``start_fraction`` times the run's starting level (the median of its first
    ``window`` losses; 0 turns this second condition off). ``patience`` high steps in a
    row are a divergence.
    """

    enabled: bool = True
    policy: Policy = "rollback"
    factor: float = Field(default=5.0, gt=1.0)
    start_fraction: float = Field(default=0.5, ge=0.0)
    window: int = Field(default=50, ge=3)
    warmup: int = Field(default=50, ge=0)
    patience: int = Field(default=3, ge=1)


class ExplodingGradientSettings(ConfigSection):
    """The gradients' global norm far above its recent level, or above a fixed ceiling.

    After ``warmup`` steps, a norm above ``factor`` times the median of the previous
    ``window`` norms fires; so does any norm above ``max_norm`` when it is set.
    """

    enabled: bool = True
    policy: Policy = "warn"
    factor: float = Field(default=20.0, gt=1.0)
    window: int = Field(default=50, ge=3)
    warmup: int = Field(default=50, ge=0)
    max_norm: float | None = Field(default=None, gt=0.0)


class StallSettings(ConfigSection):
    """No improvement of an evaluation metric in ``patience`` evaluations.

    An evaluation improves when its ``metric`` beats the best so far by more than
    ``min_delta`` (lower is better with ``mode="min"``).
    """

    enabled: bool = True
    policy: Policy = "warn"
    metric: str = "val_loss"
    mode: Mode = "min"
    patience: int = Field(default=5, ge=1)
    min_delta: float = Field(default=0.0, ge=0.0)


class SlowdownSettings(ConfigSection):
    """Step time drifting up (thermal throttling, contention).

    The median step time of the first ``window`` steps after ``warmup`` is the baseline; a
    median of the latest ``window`` steps above ``factor`` times the baseline fires. It
    fires again only after the median has come back half-way (under ``1 + (factor - 1)
    / 2`` times the baseline).
    """

    enabled: bool = True
    policy: Policy = "warn"
    factor: float = Field(default=1.5, gt=1.0)
    window: int = Field(default=50, ge=3)
    warmup: int = Field(default=20, ge=0)


class LeakSettings(ConfigSection):
    """Host RSS or device memory growing sample after sample.

    Memory is read every ``MetricsSettings.memory_every_steps`` steps. Over the latest
    ``window`` readings, a growth of more than ``min_growth_bytes`` where at least
    ``monotone_fraction`` of the consecutive differences are not negative is a leak; the
    window then starts afresh.
    """

    enabled: bool = True
    policy: Policy = "warn"
    window: int = Field(default=20, ge=3)
    min_growth_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    monotone_fraction: float = Field(default=0.9, gt=0.0, le=1.0)


class RollbackSettings(ConfigSection):
    """How a rollback lowers the learning rate, and how many are allowed in one run."""

    lr_factor: float = Field(default=0.5, gt=0.0, lt=1.0)
    max_rollbacks: int = Field(default=3, ge=0)


class CheckpointSettings(ConfigSection):
    """When checkpoints are written and which are kept.

    ``every_steps=0`` writes none but the one at the start (``at_start``) and those asked
    for with ``Monitor.save_checkpoint``. ``keep_best`` checkpoints with the best
    ``best_metric`` (an evaluation metric; the stall metric when unset) are kept besides
    the ``keep_last`` newest. With ``background`` the due checkpoints are serialised in
    memory at the step and written to disk by a background thread while training goes
    on (one at a time); a failed write is raised at the next call of the monitor.
    """

    every_steps: int = Field(default=100, ge=0)
    background: bool = True
    keep_last: int = Field(default=3, ge=1)
    keep_best: int = Field(default=1, ge=0)
    best_metric: str | None = None
    best_mode: Mode = "min"
    at_start: bool = True
    resume: bool = True


class MetricsSettings(ConfigSection):
    """The per-run JSON-lines metrics file and how often memory is read.

    Lines are kept in memory and written to the file at each checkpoint and event, and
    at least every ``flush_every_s`` seconds (0: at every step).
    """

    filename: str = "metrics.jsonl"
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    backup_count: int = Field(default=20, ge=0)
    memory_every_steps: int = Field(default=10, ge=1)
    flush_every_s: float = Field(default=2.0, ge=0.0)


class TensorBoardSettings(ConfigSection):
    """TensorBoard event files besides the JSON lines (the ``tensorboard`` extra).

    ``log_dir`` is relative to the run's folder (or absolute). Step scalars are written
    every ``every_steps`` steps (10: each written step costs about 50 us of CPU, mostly
    TensorBoard's writer thread checksumming records in pure Python); evaluations and
    events always.
    """

    enabled: bool = False
    log_dir: str = "tensorboard"
    every_steps: int = Field(default=10, ge=1)


class ProgressSettings(ConfigSection):
    """A rich progress bar on a terminal, plain log lines every ``every_steps`` otherwise."""

    mode: Literal["auto", "bar", "lines", "off"] = "auto"
    every_steps: int = Field(default=100, ge=1)


class MonitorSettings(ConfigSection):
    """Everything the training monitor can be told; every field has a working default.

    Nest it in your own settings (``monitor: MonitorSettings = MonitorSettings()``) or
    load :class:`OptimizeSettings`.
    """

    nonfinite: NonFiniteSettings = Field(default_factory=NonFiniteSettings)
    divergence: DivergenceSettings = Field(default_factory=DivergenceSettings)
    exploding_gradient: ExplodingGradientSettings = Field(default_factory=ExplodingGradientSettings)
    stall: StallSettings = Field(default_factory=StallSettings)
    slowdown: SlowdownSettings = Field(default_factory=SlowdownSettings)
    leak: LeakSettings = Field(default_factory=LeakSettings)
    rollback: RollbackSettings = Field(default_factory=RollbackSettings)
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    progress: ProgressSettings = Field(default_factory=ProgressSettings)
    tensorboard: TensorBoardSettings = Field(default_factory=TensorBoardSettings)

    @model_validator(mode="after")
    def _check_filename(self) -> MonitorSettings:
        name = self.metrics.filename
        if not name or "/" in name or "\\" in name or name in {".", ".."}:
            msg = f"metrics.filename {name!r} must be a file name with no folder part"
            raise ValueError(msg)
        return self

    @property
    def best_metric(self) -> str:
        """The metric that ranks checkpoints: ``checkpoint.best_metric`` or the stall one."""
        return self.checkpoint.best_metric or self.stall.metric


class OptimizeSettings(AsSettings):
    """as-optimize's settings file: ``monitor:`` holds :class:`MonitorSettings`.

    Environment variables start with ``AS_OPTIMIZE__``, for example
    ``AS_OPTIMIZE__MONITOR__CHECKPOINT__EVERY_STEPS=500``.
    """

    model_config = SettingsConfigDict(env_prefix="AS_OPTIMIZE__")

    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
