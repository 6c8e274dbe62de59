"""``measure()``, the engine's one entry point: dispatches to an in-process or isolated run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from as_bench.devices import Device, get_device
from as_bench.engine._isolate import run_isolated
from as_bench.engine._measure import run_measurement
from as_bench.engine._remeasure import is_noisy, remeasure, spread
from as_bench.engine.options import MeasureOptions
from as_bench.measurement import Measurement

__all__ = ["measure"]


def measure(
    fn: Callable[..., Any],
    *args: Any,
    device: str | Device = "cpu",
    options: MeasureOptions | None = None,
    setup: Callable[[], Any] | None = None,
    **kwargs: Any,
) -> Measurement:
    """Measure ``fn(*args, **kwargs)`` on ``device``: warm-up, calibration, samples.

    The first call is timed alone (``cold_start_s``); warm-up runs until times are stable;
    sub-millisecond calls are timed in inner loops sized so that timer and sync overhead
    stay under 0.01% of a sample; samples are taken until the 95% CI of the median is
    within ±1% (by default) or ``max_time_s`` passes. On CUDA and MPS two series are
    kept: ``device_time`` (device events) and ``latency`` (synchronised wall clock); MLX
    outputs are evaluated inside the timed region. Raw samples are kept. With
    ``options.remeasure_noisy``, a noisy measurement (a busy machine) is taken again, in
    fresh processes where possible (see :mod:`as_bench.engine._remeasure`).

    Keyword arguments named ``device``, ``options`` or ``setup`` are taken by
    ``measure`` itself: bind such arguments of ``fn`` with :func:`functools.partial`.

    All time is read from the device's clock (:attr:`~as_bench.devices.Device.clock`,
    ``time.perf_counter_ns`` by default): on a :class:`~as_bench.testing.FakeDevice` the
    whole measurement runs on fake time, exactly and repeatably.

    Args:
        fn: The function to time. With ``options.isolate`` it must be picklable (defined at
            module level in an importable module), as must its arguments and ``setup``.
        *args: Positional arguments for ``fn``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"mlx"`` or a
            :class:`~as_bench.devices.Device`.
        options: How to measure; :class:`MeasureOptions` defaults when ``None``
            (``MeasureOptions.quick()`` for a short run).
        setup: Called with no arguments, untimed, before the cold call, the warm-up, the
            calibration and every sampling round (one round = one batch of samples per
            series, see :mod:`as_bench.engine._sampling`); its return value is ignored.
            Like pytest-benchmark's pedantic ``setup``, which runs once per round, it
            prepares state the function then uses; unlike it, a round holds several
            samples, so state the function consumes must last a round.
        **kwargs: Keyword arguments for ``fn``.

    Returns:
        The :class:`~as_bench.measurement.Measurement`.

    Raises:
        TypeError: ``fn`` or ``setup`` is not callable.
        InvalidDeviceSpecError: ``device`` is not a valid device string.
        DeviceUnavailableError: The device cannot be used here (the message says why).
        MeasurementError: ``fn`` or ``setup`` raised (chained); with ``isolate``, the
            function is not picklable, the child crashed (its exit code and traceback are
            in the message) or timed out.
    """
    given: object = fn  # typed as callable, but callers without a type checker exist
    if not callable(given):
        msg = f"measure() needs a callable, got {type(given).__name__}: {given!r}"
        raise TypeError(msg)
    given_setup: object = setup
    if given_setup is not None and not callable(given_setup):
        msg = f"setup must be callable or None, got {type(given_setup).__name__}"
        raise TypeError(msg)
    opts = options if options is not None else MeasureOptions()
    chosen = device if opts.isolate else get_device(device)

    def attempt(fresh: bool) -> Measurement:
        if fresh:
            return run_isolated(fn, args, kwargs, chosen, opts, setup)
        return run_measurement(fn, args, kwargs, get_device(chosen), opts, setup)

    # A device with a clock of its own (a fake in tests) cannot be recreated in a child.
    fresh = isinstance(chosen, str) or get_device(chosen).has_default_clock
    first = attempt(opts.isolate)
    if opts.processes > 1:
        first = spread(first, attempt, opts, fresh=fresh)
    if opts.remeasure_noisy == 0 or not is_noisy(first, opts):
        return first
    return remeasure(first, attempt, opts, fresh=fresh)
