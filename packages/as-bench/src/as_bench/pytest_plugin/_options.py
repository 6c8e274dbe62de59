"""The pytest plugin's command-line options and when measurements are disabled.

This module is imported in every pytest run where as-bench is installed (the plugin loads
through its ``pytest11`` entry point), so it imports only the standard library and
pytest; the engine, the store and the comparison are imported where an option asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "DISABLE_MESSAGE",
    "GATE_REMEASURE_NOISY",
    "LATEST",
    "XDIST_MESSAGE",
    "PluginSettings",
    "add_options",
    "disabled_reason",
    "is_xdist_worker",
    "read_settings",
    "xdist_active",
]

XDIST_MESSAGE = "as-bench: measurements disabled under pytest-xdist (-n); run benchmarks without -n"
DISABLE_MESSAGE = (
    "as-bench: measurements disabled by --as-bench-disable; "
    "each benchmarked function ran once, unmeasured"
)

# Flag dest -> the MeasureOptions field it sets.
_MEASURE_FLAGS = {
    "as_bench_max_time": "max_time_s",
    "as_bench_min_time": "min_time_s",
    "as_bench_target_ci": "target_rel_ci",
    "as_bench_remeasure_noisy": "remeasure_noisy",
    "as_bench_processes": "processes",
}

#: What ``--as-bench-compare`` holds when given without a value: the latest run.
LATEST = "@latest"

#: How many times a noisy measurement is re-measured while gating, unless a flag or a
#: marker says otherwise (``MeasureOptions.remeasure_noisy``).
GATE_REMEASURE_NOISY = 2


def add_options(parser: pytest.Parser) -> None:
    """Register the ``--as-bench-*`` options in their own help group."""
    group = parser.getgroup("as-bench", "as-bench measurements (the as_bench fixture)")
    group.addoption(
        "--as-bench-store",
        metavar="DIR",
        default=None,
        help="append every measurement of the session to the as-bench result store in DIR",
    )
    group.addoption(
        "--as-bench-compare",
        metavar="BASELINE",
        nargs="?",
        const=LATEST,
        default=None,
        help="compare the session's measurements with a baseline: a store folder or a "
        "results file (.json, .csv, .parquet), its latest run unless PATH@RUN names one "
        "(`as-bench list` shows them); with no value, the latest run of this machine in "
        "--as-bench-store. Write --as-bench-compare=PATH, so that pytest does not take "
        "PATH for a test path",
    )
    group.addoption(
        "--as-bench-base-source",
        metavar="DIR",
        default=None,
        help="compare with the code in DIR, a checkout of the base revision (git worktree "
        "add DIR main), measured in this session: each benchmarked function is imported "
        "from this checkout and from DIR in fresh processes, sampled in alternation, so a "
        "drifting machine slows both alike; the function must be picklable (module level)",
    )
    group.addoption(
        "--as-bench-fail-on",
        metavar="EXPR",
        action="append",
        default=[],
        help="fail the run on a significant regression beyond EXPR, as `as-bench compare "
        "--fail-on`: median:5%%, mean:3%%, p95:10%%, median:2ms (repeatable; needs "
        "--as-bench-compare or --as-bench-base-source)",
    )
    group.addoption(
        "--as-bench-allow-inconclusive",
        action="store_true",
        default=False,
        help="accept an inconclusive gate (a regression beyond --as-bench-fail-on measured "
        "on a run too noisy to judge) instead of failing the run; the verdict is still "
        "printed",
    )
    group.addoption(
        "--as-bench-max-time",
        metavar="S",
        type=float,
        default=None,
        help="seconds of sampling per measurement at most (MeasureOptions.max_time_s)",
    )
    group.addoption(
        "--as-bench-min-time",
        metavar="S",
        type=float,
        default=None,
        help="seconds of sampling per measurement at least (MeasureOptions.min_time_s)",
    )
    group.addoption(
        "--as-bench-target-ci",
        metavar="F",
        type=float,
        default=None,
        help="stop sampling when the median's CI is within this fraction (0.01 = ±1%%)",
    )
    group.addoption(
        "--as-bench-remeasure-noisy",
        metavar="N",
        type=int,
        default=None,
        help="measure a noisy benchmark (IQR at least 10%% of its median: a busy machine) "
        "again up to N times, in fresh processes where possible; default "
        f"{GATE_REMEASURE_NOISY} when storing or comparing results, else 0",
    )
    group.addoption(
        "--as-bench-processes",
        metavar="N",
        type=int,
        default=None,
        help="measure each function in N processes and pool the samples (the others fresh "
        "where the function can be sent to one): for the spread between processes",
    )
    group.addoption(
        "--as-bench-isolate",
        action="store_true",
        default=False,
        help="measure each function in a fresh process (it must be picklable)",
    )
    group.addoption(
        "--as-bench-quick",
        action="store_true",
        default=False,
        help="start from MeasureOptions.quick() (±5%% CI, about half a second) instead of "
        "the defaults",
    )
    group.addoption(
        "--as-bench-disable",
        action="store_true",
        default=False,
        help="do not measure: each benchmarked function runs once (as under pytest-xdist)",
    )


@dataclass(frozen=True)
class PluginSettings:
    """What the ``--as-bench-*`` options asked for in this session.

    Attributes:
        store: The result store folder, or ``None``.
        baseline: The baseline to compare with, or ``None``; ``None`` too with
            :attr:`compare_latest`.
        base_source: The base checkout to measure interleaved with this one
            (``--as-bench-base-source``), or ``None``.
        compare_latest: ``--as-bench-compare`` without a value: the latest run of this
            machine in the store.
        fail_on: ``--as-bench-fail-on`` expressions, unparsed.
        allow_inconclusive: Accept an inconclusive gate (``--as-bench-allow-inconclusive``).
        measure: MeasureOptions fields set by flags.
        quick: Start from ``MeasureOptions.quick()``.
        disabled: Why measurements are off (the message to print), or ``None``.
        given: Whether any ``--as-bench-*`` option was given.
    """

    store: Path | None = None
    baseline: Path | None = None
    base_source: Path | None = None
    compare_latest: bool = False
    fail_on: tuple[str, ...] = ()
    allow_inconclusive: bool = False
    measure: dict[str, object] = field(default_factory=dict)
    quick: bool = False
    disabled: str | None = None
    given: bool = False


def is_xdist_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker (xdist gives workers ``workerinput``)."""
    return hasattr(config, "workerinput")


def xdist_active(config: pytest.Config) -> bool:
    """Whether tests run in pytest-xdist workers: in a worker, or a controller with workers.

    ``-n 0`` runs the tests in-process, so it does not count.
    """
    if is_xdist_worker(config):
        return True
    if not config.pluginmanager.hasplugin("xdist"):
        return False
    return bool(config.getoption("numprocesses", None)) or bool(config.getoption("tx", None))


def disabled_reason(config: pytest.Config) -> str | None:
    """The message saying why measurements are off in this session, or ``None``.

    Under pytest-xdist, workers share the machine's cores, so measurements would compete
    with each other and with other tests: they are off. ``--as-bench-disable`` takes the
    same path on purpose (and lets the tests exercise it without xdist).
    """
    if xdist_active(config):
        return XDIST_MESSAGE
    if config.getoption("as_bench_disable", False):
        return DISABLE_MESSAGE
    return None


def read_settings(config: pytest.Config) -> PluginSettings:
    """Read the ``--as-bench-*`` options; nothing is validated or loaded here."""
    store = config.getoption("as_bench_store", None)
    baseline = config.getoption("as_bench_compare", None)
    base_source = config.getoption("as_bench_base_source", None)
    fail_on = tuple(config.getoption("as_bench_fail_on", None) or ())
    measure: dict[str, object] = {}
    for dest, name in _MEASURE_FLAGS.items():
        value = config.getoption(dest, None)
        if value is not None:
            measure[name] = value
    if config.getoption("as_bench_isolate", False):
        measure["isolate"] = True
    quick = bool(config.getoption("as_bench_quick", False))
    allow_inconclusive = bool(config.getoption("as_bench_allow_inconclusive", False))
    explicit_off = bool(config.getoption("as_bench_disable", False))
    latest = baseline == LATEST
    given = bool(
        store
        or baseline
        or base_source
        or fail_on
        or measure
        or quick
        or explicit_off
        or allow_inconclusive
    )
    # Relative paths are taken from where pytest was started, as a user would expect.
    here = config.invocation_params.dir
    return PluginSettings(
        store=here / store if store else None,
        baseline=here / baseline if baseline and not latest else None,
        compare_latest=latest,
        base_source=here / base_source if base_source else None,
        fail_on=fail_on,
        allow_inconclusive=allow_inconclusive,
        measure=measure,
        quick=quick,
        disabled=disabled_reason(config),
        given=given,
    )
