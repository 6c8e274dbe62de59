"""The object the ``as_bench`` fixture gives a test: measure functions, as many as it likes.

Imported only when a test uses the fixture, so it may import the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from as_bench.devices import Device
from as_bench.engine import MeasureOptions, measure
from as_bench.measurement import Measurement
from as_bench.pytest_plugin._session import BenchSession, MeasuredCall

if TYPE_CHECKING:
    from as_bench.results import BenchmarkResult

__all__ = ["AsBench", "marker_defaults"]

logger = logging.getLogger(__name__)

MARKER = "as_bench"


def marker_defaults(item: pytest.Item) -> tuple[str | Device | None, dict[str, object]]:
    """The device and MeasureOptions fields the closest ``as_bench`` marker sets.

    A wrong marker fails the test that carries it (through ``pytest.fail``), with a
    message that names the test and the wrong argument.
    """
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None, {}
    where = f"{item.nodeid}: @pytest.mark.{MARKER}"
    if marker.args:
        pytest.fail(f"{where} takes keyword arguments only, got {marker.args!r}", pytrace=False)
    fields = dict(marker.kwargs)
    device = fields.pop("device", None)
    unknown = sorted(set(fields) - set(MeasureOptions.model_fields))
    if unknown:
        known = ", ".join(["device", *MeasureOptions.model_fields])
        pytest.fail(
            f"{where}: unknown option(s) {', '.join(unknown)}; known: {known}", pytrace=False
        )
    return device, fields


class AsBench:
    """Measure functions inside a test with as-bench's engine: ``as_bench(fn, *args)``.

    Each call measures ``fn(*args, **kwargs)`` (see :func:`as_bench.measure`) and returns
    the :class:`~as_bench.measurement.Measurement`; a test may call it several times.
    When the test ends, each measurement becomes a
    :class:`~as_bench.results.BenchmarkResult` named ``<nodeid>`` (one unnamed call),
    ``<nodeid>#1``, ``<nodeid>#2`` (several unnamed calls) or ``<nodeid>[name]``, held for
    the session's summary, its ``--as-bench-store`` and its ``--as-bench-compare``.

    Options come from, the later winning: ``MeasureOptions()`` (or ``.quick()`` with
    ``--as-bench-quick``), the ``--as-bench-*`` flags, the test's
    ``@pytest.mark.as_bench(...)`` marker; an ``options=`` argument replaces them all.

    Under pytest-xdist (or with ``--as-bench-disable``) nothing is measured: each call runs
    ``setup`` and ``fn`` once, so the test still checks that the code works, and returns
    ``None``; :attr:`enabled` says which mode is on.
    """

    def __init__(self, item: pytest.Item, session: BenchSession) -> None:
        """Bind the fixture to one test and the session that collects its results."""
        self._item = item
        self._session = session
        self._device, self._marker_options = marker_defaults(item)
        self._calls: list[MeasuredCall] = []
        self._names: set[str] = set()

    @property
    def enabled(self) -> bool:
        """Whether calls measure (``False`` under pytest-xdist or ``--as-bench-disable``)."""
        return self._session.disabled is None

    @property
    def measurements(self) -> list[Measurement]:
        """The measurements this test took so far, in order."""
        return [call.measurement for call in self._calls]

    def __call__(
        self,
        fn: Callable[..., Any],
        *args: Any,
        device: str | Device | None = None,
        options: MeasureOptions | None = None,
        setup: Callable[[], Any] | None = None,
        name: str | None = None,
        batch_size: int = 1,
        **kwargs: Any,
    ) -> Measurement | None:
        """Measure ``fn(*args, **kwargs)``.

        Keyword arguments named ``device``, ``options``, ``setup``, ``name`` and
        ``batch_size`` are the fixture's own: bind such arguments of ``fn`` with
        :func:`functools.partial`.

        Args:
            fn: The function to time.
            *args: Positional arguments for ``fn``.
            device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"mlx"`` or a
                :class:`~as_bench.devices.Device`; the marker's ``device`` or ``"cpu"``
                when ``None``.
            options: How to measure; replaces the defaults of the flags and the marker.
            setup: Called untimed before each round of samples (see
                :func:`as_bench.measure`).
            name: Names this measurement ``<nodeid>[name]``; unique within the test.
            batch_size: Items one call processes; the result's throughput is
                ``batch_size`` per median latency.
            **kwargs: Keyword arguments for ``fn``.

        Returns:
            The measurement, or ``None`` when measurements are disabled.

        Raises:
            ValueError: ``name`` was used before in this test, or ``batch_size`` < 1.
            pytest.fail.Exception: The marker's and the flags' options are not valid
                together (the test fails with a message that says which).
            MeasurementError: ``fn`` or ``setup`` raised (chained).
        """
        if name is not None:
            if name in self._names:
                raise ValueError(
                    f"{self._item.nodeid}: as_bench(name={name!r}) was already used in this "
                    "test; give each measurement its own name"
                )
            self._names.add(name)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"{self._item.nodeid}: as_bench(batch_size=...) must be a positive integer, "
                f"got {batch_size!r}"
            )
        if not self.enabled:
            if setup is not None:
                setup()
            fn(*args, **kwargs)
            self._session.unmeasured_calls += 1
            return None
        chosen = options
        if chosen is None:
            chosen = self._session.options_for(self._marker_options, where=self._item.nodeid)
        started = datetime.now(UTC)
        where = device if device is not None else (self._device or "cpu")
        base: Measurement | None = None
        if self._session.base_source is not None:
            measurement, base = self._interleaved(fn, args, kwargs, where, chosen, setup, name)
        else:
            measurement = measure(fn, *args, device=where, options=chosen, setup=setup, **kwargs)
        self._calls.append(
            MeasuredCall(
                name=name,
                function=getattr(fn, "__qualname__", type(fn).__qualname__),
                measurement=measurement,
                options=chosen,
                batch_size=batch_size,
                started_at=started,
                finished_at=datetime.now(UTC),
                base=base,
            )
        )
        return measurement

    def _interleaved(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        device: str | Device,
        options: MeasureOptions,
        setup: Callable[[], Any] | None,
        name: str | None,
    ) -> tuple[Measurement, Measurement | None]:
        """This checkout's and the base checkout's measurements, taken in alternation.

        A function the base checkout does not have (a new benchmark) is measured here
        alone, and the summary says it was not compared.
        """
        from as_bench.engine import BaseSourceError, measure_interleaved

        source = self._session.base_source
        assert source is not None
        try:
            pair = measure_interleaved(
                fn,
                *args,
                new_root=self._session.rootpath,
                base_root=source,
                device=device,
                options=options,
                setup=setup,
                **kwargs,
            )
        except BaseSourceError as exc:
            label = self._item.nodeid if name is None else f"{self._item.nodeid}[{name}]"
            self._session.without_base.append((label, str(exc)))
            alone = measure(fn, *args, device=device, options=options, setup=setup, **kwargs)
            return alone, None
        return pair.new, pair.base

    def finish(self) -> list[BenchmarkResult]:
        """Name this test's measurements and hand them to the session (at teardown)."""
        nodeid = self._item.nodeid
        unnamed = sum(1 for call in self._calls if call.name is None)
        results = []
        counter = 0
        for call in self._calls:
            if call.name is not None:
                benchmark = f"{nodeid}[{call.name}]"
            elif unnamed == 1:
                benchmark = nodeid
            else:
                counter += 1
                benchmark = f"{nodeid}#{counter}"
            workload = getattr(self._item, "originalname", self._item.name)
            results.append(self._session.record(benchmark, workload, nodeid, call))
        self._calls.clear()
        return results
