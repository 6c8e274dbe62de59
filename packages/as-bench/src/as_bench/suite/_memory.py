"""One benchmark's host memory, from before its model loads to the end of its measurement.

The engine's :class:`~as_bench.measurement.MemoryReport` describes the whole process:
its peak RSS counts every model, conversion and library an earlier benchmark left in the
process, so it ranks run order, not backends. The suite runner therefore reads the RSS
just before the backend loads (exports, converts) the model and follows the peak from
there:

* a background thread samples the RSS while the model loads and the outputs are checked
  (:class:`~as_bench.devices._host_memory.MemoryTracker`, host only); it stops before the
  engine starts, whose own thread samples the cold call and the warm-up (and stops before
  the timed samples, so that no thread takes the GIL from the measured function);
* the RSS is read once more after the measurement (what inference kept resident);
* the process's ``getrusage`` high-water mark is read before and after: if it rose, the
  benchmark's true peak is that mark, exact, so a spike shorter than the poll interval is
  not lost. A short spike below an earlier benchmark's mark can still be missed, as can
  one during a re-measured result's later attempts (the engine's peak of pooled attempts
  may be a child process's, so it is not used then).

Memory that earlier work freed but the process kept (Python's, PyTorch's and glibc's
allocators seldom return it to the system) can be reused by this benchmark without the
RSS rising: in a process that ran other benchmarks first the increase can read low, and
the result says so (``host_memory_polluted``). ``as-bench run --isolate`` measures each
benchmark in a fresh process.
"""

from __future__ import annotations

from as_bench.devices._host_memory import MemoryTracker, current_rss_bytes
from as_bench.engine._isolate import rusage_peak_rss_bytes
from as_bench.measurement import MemoryReport

__all__ = ["LoadMemory"]


class LoadMemory:
    """Host memory of one benchmark: RSS before loading, peak up to the end of measuring.

    Use: :meth:`start` just before the backend prepares the model, :meth:`pause` just
    before the engine measures, :meth:`finish` with the engine's report after it.

    Args:
        poll_interval_s: Seconds between two RSS samples of the background thread.
        polluted: Whether other benchmarks ran earlier in this process.
    """

    def __init__(self, poll_interval_s: float, *, polluted: bool) -> None:
        """Prepare; nothing is read until :meth:`start`."""
        self._tracker = MemoryTracker(poll_interval_s)
        self._polluted = polluted
        self._high_water_before: int | None = None

    def start(self) -> None:
        """Read the RSS and the high-water mark, and start sampling."""
        self._high_water_before = rusage_peak_rss_bytes()
        self._tracker.start()

    def pause(self) -> None:
        """Stop sampling (the engine samples the cold call and warm-up itself)."""
        self._tracker.stop_sampling()

    def finish(self, memory: MemoryReport, *, same_process: bool) -> MemoryReport:
        """``memory`` with this benchmark's before-load RSS, peak and pollution flag.

        Args:
            memory: The engine's report of the measurement.
            same_process: Whether the engine's host peak is this process's (its sampled
                cold call and warm-up then count); ``False`` when any of its attempts ran
                in a child, whose peak is the child's.
        """
        own = self._tracker.report()
        # The RSS now holds what inference kept (arenas, caches) even where the engine's
        # peak cannot be used.
        candidates = [own.host_peak_rss_bytes, current_rss_bytes()]
        if same_process:
            candidates.append(memory.host_peak_rss_bytes)
        high_water = rusage_peak_rss_bytes()
        before = self._high_water_before
        if high_water is not None and before is not None and high_water > before:
            candidates.append(high_water)  # the mark rose during this benchmark: exact
        known = [value for value in candidates if value is not None]
        return memory.model_copy(
            update={
                "host_before_load_rss_bytes": own.host_baseline_rss_bytes,
                "host_load_peak_rss_bytes": max(known) if known else None,
                "host_memory_polluted": self._polluted,
            }
        )

    def abandon(self) -> None:
        """Stop sampling without a report (the benchmark failed)."""
        self._tracker.stop_sampling()
