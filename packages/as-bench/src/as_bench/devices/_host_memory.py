"""Peak memory of one measurement: host RSS sampled in a thread, device peaks read after.

The host's resident set size has no resettable peak counter that is portable (Linux's
``/proc/self/clear_refs`` resets it for the whole process, a side effect on the caller),
so a background thread reads it every ``poll_interval_s`` (psutil). The same thread polls
device memory for devices without a peak counter of their own (MPS). Devices with one
(CUDA, MLX) are reset at :meth:`MemoryTracker.start` and read at
:meth:`MemoryTracker.report`.

The engine samples only while the cold call and the warm-up run, and stops the thread
before the timed samples: a thread that wakes every few milliseconds takes the GIL from
the measured function, which would bias pure-Python timings. Every call the samples make
has been made at least once by then, so the peak is the same.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psutil

from as_bench.measurement import MemoryReport

__all__ = ["MemoryTracker", "current_rss_bytes"]

logger = logging.getLogger(__name__)


def current_rss_bytes() -> int | None:
    """This process's resident set size in bytes, or ``None`` when it cannot be read."""
    try:
        return int(psutil.Process().memory_info().rss)
    except (psutil.Error, OSError):  # pragma: no cover - only on exotic platforms
        return None


class MemoryTracker:
    """Peak host RSS (sampled) and device memory over one measurement.

    Use: :meth:`start`, run the code, optionally :meth:`stop_sampling` to end the host
    sampling early, then :meth:`report`.

    Args:
        poll_interval_s: Seconds between two samples of the background thread.
        reset_device: Starts a new device peak (called by :meth:`start`).
        poll_device: Reads device memory once, from the sampling thread; ``None`` for
            devices that keep their own peak.
        read_device: Returns the device fields of :class:`MemoryReport`.
    """

    def __init__(
        self,
        poll_interval_s: float = 0.002,
        reset_device: Callable[[], None] | None = None,
        poll_device: Callable[[], None] | None = None,
        read_device: Callable[[], dict[str, int | None]] | None = None,
    ) -> None:
        """Prepare a tracker; nothing runs until :meth:`start`."""
        if poll_interval_s <= 0:
            msg = f"poll_interval_s must be positive, got {poll_interval_s!r}"
            raise ValueError(msg)
        self._interval = poll_interval_s
        self._reset_device = reset_device
        self._poll_device = poll_device
        self._read_device = read_device
        self._process = psutil.Process()
        self._baseline: int | None = None
        self._peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples_taken = 0

    def _sample(self) -> None:
        try:
            rss = int(self._process.memory_info().rss)
        except (psutil.Error, OSError):  # pragma: no cover - process info unreadable
            rss = None
        if rss is not None and (self._peak is None or rss > self._peak):
            self._peak = rss
        if self._poll_device is not None:
            try:
                self._poll_device()
            except Exception:  # a failing poll must not kill the measurement
                logger.debug("device memory poll failed; polling stops", exc_info=True)
                self._poll_device = None
        self.samples_taken += 1

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def start(self) -> None:
        """Record the baseline RSS, reset the device peak and start sampling."""
        if self._thread is not None:
            msg = "MemoryTracker.start() called twice"
            raise RuntimeError(msg)
        if self._reset_device is not None:
            self._reset_device()
        self._baseline = current_rss_bytes()
        self._peak = self._baseline
        self._sample()
        self._thread = threading.Thread(target=self._run, name="as-bench-memory", daemon=True)
        self._thread.start()

    @property
    def sampling(self) -> bool:
        """Whether the background thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def stop_sampling(self) -> None:
        """Stop the background thread after one last sample; safe to call twice."""
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self._sample()

    def report(self) -> MemoryReport:
        """Stop sampling (if still running) and return the peaks seen."""
        self.stop_sampling()
        device = self._read_device() if self._read_device is not None else {}
        return MemoryReport.model_validate(
            {
                "host_peak_rss_bytes": self._peak,
                "host_baseline_rss_bytes": self._baseline,
                **device,
            }
        )
