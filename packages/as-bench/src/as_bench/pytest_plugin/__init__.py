"""The as-bench pytest plugin (entry point ``pytest11``): the ``as_bench`` fixture.

::

    from as_bench.pytest_plugin import AsBench  # the fixture's type, for annotations

    def test_matmul_speed(as_bench: AsBench):
        m = as_bench(torch.matmul, a, b, device="cuda")
        assert m.converged

    @pytest.mark.as_bench(max_time_s=2, target_rel_ci=0.02)
    def test_two_sizes(as_bench):
        as_bench(model, small, name="small", batch_size=1)
        as_bench(model, large, name="large", batch_size=64)

Options (``pytest --help`` lists them under "as-bench"):

- ``--as-bench-store DIR``: append every measurement to a result store as it is taken.
- ``--as-bench-compare BASELINE`` (a store folder or a results file) and
  ``--as-bench-fail-on EXPR`` (repeatable, as ``as-bench compare --fail-on``:
  ``median:5%``): compare the session's results with the baseline at the end, print the
  table, and fail the run (exit status 1) naming each benchmark that regressed, or each
  one whose regression was measured on a run too noisy to judge (inconclusive: the noise
  against its limit is printed). A baseline that is missing or empty is a usage error;
  one with no benchmark of the session fails the run.
- ``--as-bench-allow-inconclusive``: accept an inconclusive verdict (still printed).
- ``--as-bench-max-time``, ``--as-bench-min-time``, ``--as-bench-target-ci``,
  ``--as-bench-isolate``, ``--as-bench-quick``: the default measurement options.
- ``--as-bench-disable``: run each benchmarked function once, unmeasured.

Under pytest-xdist measurements would compete for the cores, so the fixture runs each
function once without measuring and the session prints one message saying so.

The plugin loads in every pytest run where as-bench is installed; until a test uses the
fixture or an ``--as-bench-*`` option is given it prints nothing and imports nothing
beyond this package and its :mod:`~as_bench.pytest_plugin._options`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from as_bench.pytest_plugin._options import (
    PluginSettings,
    add_options,
    is_xdist_worker,
    read_settings,
)
from as_core.lazy import lazy_exports

if TYPE_CHECKING:
    from as_bench.pytest_plugin._fixture import AsBench
    from as_bench.pytest_plugin._session import BenchSession

__all__ = ["AsBench", "as_bench"]

_SETTINGS = pytest.StashKey[PluginSettings]()
_SESSION = pytest.StashKey["BenchSession"]()
# What a pytest-xdist worker reports back to the controller, in ``workeroutput``.
_WORKER_KEY = "as_bench_unmeasured_calls"

# Kept here rather than imported from _fixture, which imports the engine.
_MARKER_LINE = (
    "as_bench(device='cpu', **options): per-test defaults of the as_bench fixture: the "
    "device and any as_bench.MeasureOptions field (max_time_s=2, target_rel_ci=0.02, ...)"
)


# ``AsBench``, the fixture's type (for annotations), loads on first use: importing it
# imports the engine, and this package loads in every pytest session. Only the module
# ``__getattr__`` is installed, not lazy_exports' ``__dir__``: pytest and pluggy look for
# hooks and fixtures with ``dir()``, which must not list ``AsBench`` (listing it would make
# them import it).
__getattr__ = lazy_exports(__name__, {"AsBench": "as_bench.pytest_plugin._fixture"})[0]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``--as-bench-*`` options."""
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; with any ``--as-bench-*`` option, check them all now.

    Checking here makes a wrong ``--as-bench-fail-on`` expression or a missing baseline a
    usage error before any test runs, not a surprise after a long session.
    """
    config.addinivalue_line("markers", _MARKER_LINE)
    settings = read_settings(config)
    config.stash[_SETTINGS] = settings
    if settings.given:
        _bench_session(config)


def _bench_session(config: pytest.Config) -> BenchSession:
    session = config.stash.get(_SESSION, None)
    if session is None:
        from as_bench.pytest_plugin._session import BenchSession

        session = BenchSession(config.stash[_SETTINGS], config.rootpath)
        config.stash[_SESSION] = session
    return session


@pytest.fixture
def as_bench(request: pytest.FixtureRequest) -> Iterator[AsBench]:
    """Measure functions with as-bench's engine, as many as the test likes.

    ``m = as_bench(fn, *args, **kwargs)`` returns the measurement.

    See :class:`as_bench.pytest_plugin._fixture.AsBench` for the arguments (``device``,
    ``options``, ``setup``, ``name``, ``batch_size``) and where options come from.
    """
    from as_bench.pytest_plugin._fixture import AsBench

    bench = AsBench(request.node, _bench_session(request.config))
    yield bench
    bench.finish()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Run the regression gate; make the run fail when it did not pass.

    It fails on a regression, an inconclusive verdict (unless accepted) and a comparison
    with no benchmark in common.
    """
    config = session.config
    bench = config.stash.get(_SESSION, None)
    if bench is None:
        return
    if is_xdist_worker(config):
        # The controller prints the message; tell it how many calls went unmeasured.
        output: dict[str, Any] = getattr(config, "workeroutput", {})
        output[_WORKER_KEY] = bench.unmeasured_calls
        return
    bench.finish()
    if bench.failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: count a finished worker's unmeasured calls on the controller."""
    del error
    output = getattr(node, "workeroutput", None) or {}
    count = output.get(_WORKER_KEY, 0)
    if count:
        _bench_session(node.config).unmeasured_calls += int(count)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the session's measurements, or the comparison, or why nothing was measured."""
    del exitstatus
    bench = config.stash.get(_SESSION, None)
    if bench is None:
        return
    lines = bench.summary()
    if not lines:
        return
    terminalreporter.write_sep("-", "as-bench")
    for text, markup in lines:
        terminalreporter.write_line(text, **markup)
