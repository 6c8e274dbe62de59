"""Failure detectors: pure rules over the figures of each step, with no torch and no clock.

Each detector is fed numbers and answers a :class:`Finding` when its rule fires, so each
rule is tested exactly on hand-made series. Detectors whose decisions depend only on the
training itself (loss, gradient norm, evaluations) save their windows in checkpoints, so
a resumed run decides as the uninterrupted one would; those that read time or memory
(slowdown, leak) start afresh in a new process.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from as_optimize.training._settings import (
    DivergenceSettings,
    ExplodingGradientSettings,
    LeakSettings,
    SlowdownSettings,
    StallSettings,
)

__all__ = [
    "DivergenceDetector",
    "ExplodingGradientDetector",
    "Finding",
    "LeakDetector",
    "SlowdownDetector",
    "StallDetector",
    "nonfinite_finding",
]


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that fired: what, one sentence, and the figures behind it."""

    kind: str
    message: str
    figures: dict[str, float | int | str | bool | None] = field(default_factory=dict)


def nonfinite_finding(loss: float | None, grad_norm: float | None) -> Finding | None:
    """NaN or infinity in the loss or in the gradients' global norm."""
    bad = [
        name
        for name, value in (("loss", loss), ("gradient norm", grad_norm))
        if value is not None and not math.isfinite(value)
    ]
    if not bad:
        return None
    return Finding(
        "nonfinite",
        f"non-finite {' and '.join(bad)}: loss={loss}, gradient norm={grad_norm}",
        {"loss": loss, "grad_norm": grad_norm},
    )


def _median(values: Iterable[float]) -> float:
    # statistics.median, without its checks: about 3x faster on a window of 50, and the
    # detectors take one or two medians every step.
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _floats(data: Mapping[str, object], key: str) -> list[float]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise TypeError(f"{key} is not a list")
    return [float(v) for v in value]


class _Gate:
    """Lets values that cannot fire a windowed rule skip it, and applies them later.

    The divergence and exploding-gradient rules fire only for a value above ``factor`` x
    the median of their window. Whatever values join the window later, its median stays
    at least the ``len(window) // 2``-th smallest of the window and those values together
    (a window is a subset of them, and grows, never shrinks). So while a rule is armed
    (past warm-up, no episode under way) a value at or under ``level`` = ``factor`` x that
    order statistic cannot fire: it is only queued, and ``level`` is lowered to
    ``factor`` x the value when that is lower. ``floor`` raises ``level`` (the
    divergence rule also needs the loss above a fraction of the run's start level) and
    ``ceiling`` caps it (the exploding-gradient rule's ``max_norm``).

    Queued values are applied in order through the exact rule (where none of them fires)
    before the next value above ``level``, before the state is read, and every
    :data:`BATCH` values, so the windows end exactly as if each had been applied at its
    step; the step pays for a comparison and an append. ``level`` is minus infinity while
    the rule is not armed: every value takes the exact rule.
    """

    BATCH = 64

    __slots__ = ("ceiling", "factor", "floor", "level", "pending", "scaled")

    def __init__(self, factor: float, ceiling: float | None = None) -> None:
        self.factor = factor
        self.ceiling = math.inf if ceiling is None else ceiling
        self.floor = -math.inf
        self.scaled = -math.inf  # factor x the order statistic, lowered by queued values
        self.level = -math.inf
        self.pending: list[float] = []

    def defer(self, value: float) -> bool:
        """Queue ``value`` (at or under ``level``); True once a batch is due."""
        self.pending.append(value)
        scaled = self.factor * value
        if scaled < self.scaled:
            self.scaled = scaled
            self.level = min(max(scaled, self.floor), self.ceiling)
        return len(self.pending) >= self.BATCH

    def catch_up(self, apply: Callable[[float], object]) -> None:
        """Apply the queued values in order (none of them fires)."""
        if self.pending:
            pending, self.pending = self.pending, []
            for value in pending:
                apply(value)

    def rearm(self, window: Iterable[float] | None, floor: float = -math.inf) -> None:
        """After the exact rule took every value: the new ``level`` (None: not armed)."""
        if window is None:
            self.level = self.scaled = -math.inf
            return
        ordered = sorted(window)
        self.scaled = self.factor * ordered[max(len(ordered) // 2 - 1, 0)]
        self.floor = floor
        self.level = min(max(self.scaled, floor), self.ceiling)


class DivergenceDetector:
    """Loss above ``factor`` x its recent median and a fraction of its start, ``patience`` times.

    The recent median covers the previous ``window`` finite losses; the start level is the
    median of the run's first ``window`` losses. Counting starts after ``warmup`` steps,
    and the rule is applied only while the recent median is positive. A divergence fires
    once; it fires again only after a step under the threshold.
    """

    def __init__(self, settings: DivergenceSettings) -> None:
        """Start with an empty window."""
        self.settings = settings
        self._window: deque[float] = deque(maxlen=settings.window)
        self._start: list[float] = []
        self._seen = 0
        self._high = 0
        self._gate = _Gate(settings.factor)

    @property
    def start_level(self) -> float | None:
        """The median of the run's first ``window`` losses (None before the first)."""
        self._gate.catch_up(self._observe)
        return _median(self._start) if self._start else None

    def observe(self, loss: float | None) -> Finding | None:
        """Take one step's loss; a :class:`Finding` when the loss has diverged."""
        gate = self._gate
        if loss is not None and loss <= gate.level:
            if gate.defer(loss):
                self._rearm()
            return None
        gate.catch_up(self._observe)
        finding = self._observe(loss)
        self._rearm()
        return finding

    def _rearm(self) -> None:
        gate = self._gate
        gate.catch_up(self._observe)
        s = self.settings
        if self._seen >= s.warmup and len(self._window) >= 3 and not self._high:
            start_full = len(self._start) >= s.window
            floor = s.start_fraction * _median(self._start) if start_full else -math.inf
            gate.rearm(self._window, floor)
        else:
            gate.rearm(None)

    def _observe(self, loss: float | None) -> Finding | None:
        if loss is None or not math.isfinite(loss):
            return None  # the non-finite detector's business
        s = self.settings
        self._seen += 1
        window = self._window
        # The median is at least the window's minimum: most steps are settled by min().
        if self._seen > s.warmup and len(window) >= 3 and loss > s.factor * min(window):
            median = _median(window)
            start = self.start_level or 0.0
            if median > 0 and loss > s.factor * median and loss > s.start_fraction * start:
                # High losses stay out of the window, so a divergence cannot raise its
                # own reference level.
                self._high += 1
                if self._high != s.patience:
                    return None
                return Finding(
                    "divergence",
                    f"loss {loss:.6g} is above {s.factor:g} x the median {median:.6g} of "
                    f"the last {len(window)} steps (and above {s.start_fraction:g} x "
                    f"the start level {start:.6g}), {s.patience} step(s) in a row",
                    {
                        "loss": loss,
                        "median": median,
                        "factor": s.factor,
                        "start_level": start,
                        "window": len(window),
                        "patience": s.patience,
                    },
                )
        self._high = 0
        self._window.append(loss)
        if len(self._start) < s.window:
            self._start.append(loss)
        return None

    def state_dict(self) -> dict[str, object]:
        """The windows and counters, for a checkpoint."""
        self._gate.catch_up(self._observe)
        return {
            "window": list(self._window),
            "start": list(self._start),
            "seen": self._seen,
            "high": self._high,
        }

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self._window = deque(_floats(state, "window"), maxlen=self.settings.window)
        self._start = _floats(state, "start")
        self._seen = int(str(state.get("seen", 0)))
        self._high = int(str(state.get("high", 0)))
        self._gate = _Gate(self.settings.factor)


class ExplodingGradientDetector:
    """Gradient norm above ``factor`` x the median of the previous ``window`` norms.

    Or above ``max_norm`` when set, from the first step. Fires once per episode: again
    only after a norm under the threshold.
    """

    def __init__(self, settings: ExplodingGradientSettings) -> None:
        """Start with an empty window."""
        self.settings = settings
        self._window: deque[float] = deque(maxlen=settings.window)
        self._seen = 0
        self._firing = False
        self._gate = _Gate(settings.factor, settings.max_norm)

    def observe(self, grad_norm: float | None) -> Finding | None:
        """Take one step's gradient norm; a :class:`Finding` when it exploded."""
        gate = self._gate
        if grad_norm is not None and grad_norm <= gate.level:
            if gate.defer(grad_norm):
                self._rearm()
            return None
        gate.catch_up(self._observe)
        finding = self._observe(grad_norm)
        self._rearm()
        return finding

    def _rearm(self) -> None:
        gate = self._gate
        gate.catch_up(self._observe)
        armed = self._seen >= self.settings.warmup and len(self._window) >= 3
        gate.rearm(self._window if armed else None)

    def _observe(self, grad_norm: float | None) -> Finding | None:
        if grad_norm is None or not math.isfinite(grad_norm):
            return None
        s = self.settings
        self._seen += 1
        reasons: list[str] = []
        figures: dict[str, float | int | str | bool | None] = {"grad_norm": grad_norm}
        if s.max_norm is not None and grad_norm > s.max_norm:
            reasons.append(f"above the ceiling {s.max_norm:g}")
            figures["max_norm"] = s.max_norm
        window = self._window
        if self._seen > s.warmup and len(window) >= 3 and grad_norm > s.factor * min(window):
            median = _median(window)
            if median > 0 and grad_norm > s.factor * median:
                reasons.append(
                    f"above {s.factor:g} x the median {median:.6g} of the last "
                    f"{len(self._window)} steps"
                )
                figures.update(median=median, factor=s.factor, window=len(self._window))
        if not reasons:
            self._firing = False
            self._window.append(grad_norm)
            return None
        first = not self._firing
        self._firing = True
        if not first:
            return None
        return Finding(
            "exploding_gradient",
            f"gradient norm {grad_norm:.6g} is {' and '.join(reasons)}",
            figures,
        )

    def state_dict(self) -> dict[str, object]:
        """The window and counters, for a checkpoint."""
        self._gate.catch_up(self._observe)
        return {"window": list(self._window), "seen": self._seen, "firing": self._firing}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self._window = deque(_floats(state, "window"), maxlen=self.settings.window)
        self._seen = int(str(state.get("seen", 0)))
        self._firing = bool(state.get("firing", False))
        self._gate = _Gate(self.settings.factor, self.settings.max_norm)


class StallDetector:
    """No improvement of the monitored metric in ``patience`` evaluations.

    After it fires, the count starts again, so a run that keeps stalling under the
    ``warn`` policy is reported every ``patience`` evaluations.
    """

    def __init__(self, settings: StallSettings) -> None:
        """Start with no best value."""
        self.settings = settings
        self.best: float | None = None
        self._since_best = 0

    def observe(self, metrics: Mapping[str, float]) -> Finding | None:
        """Take one evaluation's metrics; evaluations without the metric are ignored."""
        s = self.settings
        value = metrics.get(s.metric)
        if value is None or not math.isfinite(value):
            return None
        better = (
            self.best is None
            or (s.mode == "min" and value < self.best - s.min_delta)
            or (s.mode == "max" and value > self.best + s.min_delta)
        )
        if better:
            self.best = value
            self._since_best = 0
            return None
        self._since_best += 1
        if self._since_best < s.patience:
            return None
        self._since_best = 0
        return Finding(
            "stall",
            f"{s.metric} has not improved on its best {self.best:.6g} "
            f"(mode {s.mode}, min_delta {s.min_delta:g}) in {s.patience} evaluations; "
            f"latest {value:.6g}",
            {"metric": s.metric, "value": value, "best": self.best, "patience": s.patience},
        )

    def state_dict(self) -> dict[str, object]:
        """The best value and the count, for a checkpoint."""
        return {"best": self.best, "since_best": self._since_best}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore :meth:`state_dict`'s output."""
        best = state.get("best")
        self.best = None if best is None else float(str(best))
        self._since_best = int(str(state.get("since_best", 0)))


class SlowdownDetector:
    """The median step time of the latest ``window`` steps above ``factor`` x the baseline.

    The baseline is the median of the first ``window`` steps after ``warmup``. Fires once
    per episode: again only after the median has come back half-way to the baseline.
    """

    def __init__(self, settings: SlowdownSettings) -> None:
        """Start with no baseline."""
        self.settings = settings
        self._seen = 0
        self._recent: deque[float] = deque(maxlen=settings.window)
        self.baseline: float | None = None
        self._firing = False

    def observe(self, step_time_s: float | None) -> Finding | None:
        """Take one step's duration in seconds."""
        if step_time_s is None or not math.isfinite(step_time_s):
            return None
        s = self.settings
        self._seen += 1
        if self._seen <= s.warmup:
            return None
        self._recent.append(step_time_s)
        # A drift, not a spike: the median is taken every tenth of a window.
        if len(self._recent) < s.window or (self._seen - s.warmup) % max(s.window // 10, 1):
            return None
        median = _median(self._recent)
        if self.baseline is None:
            self.baseline = median
            return None
        if median <= s.factor * self.baseline:
            # Re-armed only once well back (half-way to the baseline), so a median that
            # hovers around the threshold on a busy machine is one episode, not many.
            if median <= (1 + (s.factor - 1) / 2) * self.baseline:
                self._firing = False
            return None
        if self._firing:
            return None
        self._firing = True
        return Finding(
            "slowdown",
            f"median step time {median * 1e3:.3g} ms over the last {s.window} steps is "
            f"{median / self.baseline:.2f} x the baseline {self.baseline * 1e3:.3g} ms",
            {
                "median_step_time_s": median,
                "baseline_step_time_s": self.baseline,
                "factor": s.factor,
                "window": s.window,
            },
        )


class LeakDetector:
    """Memory that grows reading after reading.

    Over ``window`` readings, more than ``min_growth_bytes`` of growth with at least
    ``monotone_fraction`` of the differences >= 0 is a leak. Keep one detector per kind
    of memory (host RSS, device). After it fires the window starts afresh, so a steady
    leak is reported once per window.
    """

    def __init__(self, settings: LeakSettings, what: str) -> None:
        """``what`` names the memory in messages: ``host RSS``, ``device memory``."""
        self.settings = settings
        self.what = what
        self._readings: deque[tuple[int, int]] = deque(maxlen=settings.window)

    def observe(self, step: int, used_bytes: int | None) -> Finding | None:
        """Take one reading of the memory in use at ``step``."""
        if used_bytes is None:
            return None
        s = self.settings
        self._readings.append((step, used_bytes))
        if len(self._readings) < s.window:
            return None
        values = [v for _, v in self._readings]
        growth = values[-1] - values[0]
        rises = sum(1 for a, b in itertools.pairwise(values) if b >= a)
        fraction = rises / (len(values) - 1)
        if growth <= s.min_growth_bytes or fraction < s.monotone_fraction:
            return None
        first_step = self._readings[0][0]
        self._readings.clear()
        steps = max(step - first_step, 1)
        return Finding(
            "leak",
            f"{self.what} grew by {growth / 2**20:.1f} MiB from step {first_step} to step "
            f"{step} ({growth / steps / 1024:.1f} KiB per step; {fraction:.0%} of "
            f"{len(values) - 1} readings did not go down)",
            {
                "memory": self.what,
                "growth_bytes": growth,
                "from_step": first_step,
                "from_bytes": values[0],
                "to_bytes": values[-1],
                "bytes_per_step": growth / steps,
                "monotone_fraction": fraction,
            },
        )
