"""``--as-bench-base-source``: the gate against a base checkout measured in the same session.

The two versions of the benchmarked function differ by a factor of 20 in work where a
verdict is asserted, so it does not depend on how busy the machine is.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

BASE = ["-p", "no:cacheprovider", "-p", "no:benchmark", "--as-bench-quick"]

TEST = """
FACTOR = {factor}


def work(n):
    total = 0
    for i in range(n * FACTOR):
        total += i
    return total


def test_work(as_bench):
    as_bench(work, 300)
"""


@pytest.fixture
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base checkout beside the project: a pytest.ini and the base's test file."""
    folder = tmp_path_factory.mktemp("base-checkout")
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_ab.py").write_text(textwrap.dedent(TEST.format(factor=1)))
    return folder


def _run(pytester: pytest.Pytester, base: Path, factor: int, *args: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_ab=TEST.format(factor=factor))
    return pytester.runpytest("test_ab.py", *BASE, f"--as-bench-base-source={base}", *args)


@pytest.mark.slow
def test_a_slower_new_version_fails_the_gate(pytester: pytest.Pytester, base: Path) -> None:
    result = _run(pytester, base, 20, "--as-bench-fail-on", "median:5%")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"as-bench: 1 benchmark(s) compared with the code in {base}, measured "
            "interleaved in this session*",
            "test_ab.py::test_work*FAILED",
            "as-bench gate FAILED (--as-bench-fail-on median:5%): 1 benchmark(s) regressed:",
        ]
    )


@pytest.mark.slow
def test_a_faster_new_version_passes_and_is_stored(pytester: pytest.Pytester, base: Path) -> None:
    (base / "test_ab.py").write_text(TEST.format(factor=20))
    store = pytester.path / "store"
    result = _run(pytester, base, 1, "--as-bench-fail-on", "median:5%", f"--as-bench-store={store}")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "test_ab.py::test_work*improvement",
            "as-bench gate passed (--as-bench-fail-on median:5%)",
            "as-bench: 1 result(s) appended to * as run 0001 *",
        ]
    )


@pytest.mark.slow
def test_a_benchmark_the_base_lacks_is_measured_and_named(
    pytester: pytest.Pytester, base: Path
) -> None:
    (base / "test_ab.py").unlink()
    result = _run(pytester, base, 1, "--as-bench-fail-on", "median:5%")
    # Nothing could be compared: like a baseline without this session's benchmarks.
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "as-bench: test_ab.py::test_work: no base measurement: the base side could not "
            "load the function from the base checkout*",
            "as-bench FAILED: nothing compared*",
        ]
    )


def test_base_source_and_compare_together_are_a_usage_error(
    pytester: pytest.Pytester, base: Path
) -> None:
    result = _run(pytester, base, 1, f"--as-bench-compare={base}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--as-bench-base-source and --as-bench-compare are two*"])


def test_a_base_source_that_is_not_a_folder_is_a_usage_error(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    result = _run(pytester, tmp_path / "missing", 1)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--as-bench-base-source *missing: not a folder*"])


def test_fail_on_with_a_base_source_needs_no_stored_baseline(
    pytester: pytest.Pytester, base: Path
) -> None:
    result = _run(pytester, base, 1, "--as-bench-fail-on", "median:5%", "--as-bench-disable")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
