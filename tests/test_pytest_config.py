"""The workspace's pytest rules (root conftest.py): timing tests apart, user dirs in tmp."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from _workspace import ROOT

pytest_plugins = ["pytester"]

TESTS = """
import pytest

def test_plain():
    pass

@pytest.mark.slow
def test_slow():
    pass

@pytest.mark.timing
def test_timing():
    pass
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest((ROOT / "conftest.py").read_text(encoding="utf-8"))
    pytester.makeini(
        """
        [pytest]
        markers =
            slow: slow
            network: network
            timing: timing
        """
    )
    pytester.makepyfile(test_inner=TESTS)
    return pytester


@pytest.mark.parametrize(
    ("args", "passed"),
    [
        ((), {"test_plain", "test_slow"}),
        (("-m", "not network and not slow"), {"test_plain"}),
        (("-m", "timing"), {"test_timing"}),
        (("-m", "timing or not timing"), {"test_plain", "test_slow", "test_timing"}),
    ],
)
def test_timing_tests_run_only_when_m_names_them(
    inner: pytest.Pytester, args: tuple[str, ...], passed: set[str]
) -> None:
    recorder = inner.inline_run("-p", "no:cacheprovider", "--strict-markers", *args)
    reports = recorder.getreports("pytest_runtest_logreport")
    ran = {r.nodeid.rsplit("::", 1)[1] for r in reports if r.when == "call" and r.passed}
    assert ran == passed


def test_user_dirs_point_into_the_run_temp_folder(user_dirs: Path) -> None:
    assert user_dirs.resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
    for name in ("AS_BENCH_CACHE_DIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "TRITON_CACHE_DIR"):
        path = Path(os.environ[name])
        assert path.parent == user_dirs, (name, path)
        assert path.is_dir()
    assert not Path(os.environ["UV_CACHE_DIR"]).resolve().is_relative_to(user_dirs.resolve())


@pytest.mark.slow
def test_a_pytest_started_by_a_test_shares_the_folder_and_leaves_it(
    inner: pytest.Pytester, user_dirs: Path
) -> None:
    inner.makepyfile(
        test_env="""
import os

def test_env():
    assert os.environ["AS_BENCH_CACHE_DIR"].startswith(os.environ["AS_TOOLKIT_TEST_USER_DIRS"])
    print("SHARED=" + os.environ["AS_TOOLKIT_TEST_USER_DIRS"])
"""
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider", "-s", "test_env.py")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([f"*SHARED={user_dirs}"])
    # The inner run did not create the folder, so it did not remove it either.
    assert user_dirs.is_dir()
