"""Each request's latency and the rolling p50/p99 of every model version.

:class:`LatencyLog` keeps, per version (``name/version``), the latest requests' latencies;
each new one records the p50 and p99 of the last ``window`` requests of its version at that
moment (quantiles by :func:`as_bench.stats.summarize`), so the chart draws how they moved.
It is shared by every browser session of the demo and safe to use from Gradio's threads.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from as_bench.stats import summarize

__all__ = ["LatencyLog", "Sample", "VersionSummary"]

# Points kept per version for the chart (the quantiles use the last `window` of them).
_HISTORY = 500


@dataclass(frozen=True)
class Sample:
    """One request.

    Attributes:
        index: Its number among all the demo's requests, from 1.
        key: The version that answered (``name/version``).
        ms: Its latency in milliseconds.
        p50_ms: The version's median over its last ``window`` requests, this one included.
        p99_ms: Their 99th percentile.
    """

    index: int
    key: str
    ms: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class VersionSummary:
    """A version's latency over its last ``window`` requests.

    Attributes:
        key: The version (``name/version``).
        requests: All its requests so far.
        p50_ms: Median of the last ``window``, in milliseconds.
        p99_ms: 99th percentile of the last ``window``.
        last_ms: The latest request's latency.
    """

    key: str
    requests: int
    p50_ms: float
    p99_ms: float
    last_ms: float


class LatencyLog:
    """Latencies by version, with rolling quantiles.

    Args:
        window: How many of a version's latest requests its quantiles cover (at least 2).
    """

    def __init__(self, window: int = 100) -> None:
        """Create an empty log."""
        if window < 2:
            raise ValueError(f"window must be at least 2 requests, got {window}")
        self.window = window
        self._lock = threading.Lock()
        self._count = 0
        self._recent: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}
        self._history: dict[str, deque[Sample]] = {}

    @property
    def count(self) -> int:
        """How many requests have been recorded."""
        return self._count

    def add(self, key: str, seconds: float) -> Sample:
        """Record one request of version ``key`` that took ``seconds``."""
        if not seconds >= 0.0 or seconds == float("inf"):
            raise ValueError(f"a latency must be finite and not negative, got {seconds!r}")
        with self._lock:
            recent = self._recent.setdefault(key, deque(maxlen=self.window))
            recent.append(seconds)
            stats = summarize(list(recent))
            self._count += 1
            self._counts[key] = self._counts.get(key, 0) + 1
            sample = Sample(
                index=self._count,
                key=key,
                ms=seconds * 1e3,
                p50_ms=stats.median * 1e3,
                p99_ms=stats.p99 * 1e3,
            )
            self._history.setdefault(key, deque(maxlen=_HISTORY)).append(sample)
            return sample

    def summaries(self) -> list[VersionSummary]:
        """Every version's summary, in the order they were first used."""
        with self._lock:
            return [
                VersionSummary(
                    key=key,
                    requests=self._counts[key],
                    p50_ms=history[-1].p50_ms,
                    p99_ms=history[-1].p99_ms,
                    last_ms=history[-1].ms,
                )
                for key, history in self._history.items()
            ]

    def history(self, key: str) -> list[Sample]:
        """The version's latest samples (up to 500), oldest first."""
        with self._lock:
            return list(self._history.get(key, ()))

    def figure(self) -> Figure:
        """The chart: each request's latency and each version's rolling p50 and p99."""
        with self._lock:
            histories = {key: list(samples) for key, samples in self._history.items()}
        figure = Figure(figsize=(7.0, 3.2), dpi=100, layout="constrained")
        axes = figure.add_subplot()
        colours = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")
        for i, (key, samples) in enumerate(histories.items()):
            colour = colours[i % len(colours)]
            x = [s.index for s in samples]
            axes.scatter(x, [s.ms for s in samples], s=9, alpha=0.35, color=colour)
            axes.plot(x, [s.p50_ms for s in samples], color=colour, label=f"{key} p50")
            axes.plot(
                x, [s.p99_ms for s in samples], color=colour, linestyle="--", label=f"{key} p99"
            )
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # requests are counted
        axes.set_xlabel("request")
        axes.set_ylabel("latency (ms)")
        axes.set_title(f"Latency per request; p50 and p99 over each version's last {self.window}")
        if histories:
            axes.legend(fontsize="small", loc="upper left")
            axes.set_ylim(bottom=0)
        else:
            axes.text(
                0.5, 0.5, "no requests yet", ha="center", va="center", transform=axes.transAxes
            )
        axes.grid(alpha=0.3)
        return figure
