"""The coverage floors: per-package sums of a coverage.py JSON report, checked in CI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import check_coverage
import pytest
from _workspace import ROOT, members

pytest_plugins = ["pytester"]


def _file(statements: int, covered: int) -> dict[str, Any]:
    return {"summary": {"num_statements": statements, "covered_lines": covered}}


REPORT = {
    "meta": {"format": 3},
    "files": {
        "packages/as-config/src/as_config/__init__.py": _file(10, 10),
        "packages/as-config/src/as_config/_loader.py": _file(90, 80),
        # Absolute paths (a run from another folder) count as well.
        "/ci/work/packages/as-logging/src/as_logging/_json.py": _file(50, 40),
        "packages/as-optimize/src/as_optimize/__init__.py": _file(0, 0),
        # Not under a package's src/: ignored.
        "scripts/check_release.py": _file(100, 0),
    },
}


def _floors(tmp_path: Path, body: str) -> check_coverage.Floors:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(textwrap.dedent(body), encoding="utf-8")
    return check_coverage.load_floors(pyproject)


def test_lines_are_summed_per_package() -> None:
    found = check_coverage.per_package(REPORT)
    assert set(found) == {"as-config", "as-logging", "as-optimize"}
    assert found["as-config"].percent == pytest.approx(90.0)
    assert found["as-logging"].percent == pytest.approx(80.0)
    assert found["as-optimize"].statements == 0


def test_every_package_at_or_over_its_floor_passes(tmp_path: Path) -> None:
    floors = _floors(
        tmp_path,
        """
        [tool.as-toolkit.coverage]
        default = 80
        [tool.as-toolkit.coverage.floors]
        as-config = 90
        """,
    )
    lines, ok = check_coverage.check(check_coverage.per_package(REPORT), floors)
    assert ok, lines
    assert any(line.startswith("ok   as-config") and "90.0%" in line for line in lines)
    assert any("as-optimize" in line and "no code yet" in line for line in lines)


def test_a_package_under_its_floor_fails_and_is_named(tmp_path: Path) -> None:
    floors = _floors(
        tmp_path,
        """
        [tool.as-toolkit.coverage]
        default = 85
        """,
    )
    lines, ok = check_coverage.check(check_coverage.per_package(REPORT), floors)
    assert not ok
    [failed] = [line for line in lines if line.startswith("FAIL")]
    assert "as-logging" in failed and "80.0%" in failed and "85%" in failed


def test_a_floor_for_a_package_with_no_data_fails(tmp_path: Path) -> None:
    floors = _floors(
        tmp_path,
        """
        [tool.as-toolkit.coverage]
        default = 0
        [tool.as-toolkit.coverage.floors]
        as-bench = 70
        """,
    )
    lines, ok = check_coverage.check(check_coverage.per_package(REPORT), floors)
    assert not ok
    assert any(line.startswith("FAIL as-bench") and "no lines measured" in line for line in lines)


def test_main_reads_the_report_and_sets_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "coverage.json"
    report.write_text(json.dumps(REPORT), encoding="utf-8")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.as-toolkit.coverage]\ndefault = 80\n", encoding="utf-8")
    assert check_coverage.main([str(report), "--pyproject", str(pyproject)]) == 0
    assert "every package meets its coverage floor" in capsys.readouterr().out
    pyproject.write_text("[tool.as-toolkit.coverage]\ndefault = 95\n", encoding="utf-8")
    assert check_coverage.main([str(report), "--pyproject", str(pyproject)]) == 1
    assert "coverage under a floor" in capsys.readouterr().out
    assert check_coverage.main([str(tmp_path / "missing.json"), "--pyproject", str(pyproject)]) == 2
    report.write_text("[]", encoding="utf-8")
    assert check_coverage.main([str(report), "--pyproject", str(pyproject)]) == 2


def test_the_workspace_floors_name_only_real_packages() -> None:
    floors = check_coverage.load_floors(ROOT / "pyproject.toml")
    assert set(floors.per_package) <= set(members())
    assert all(0 <= value <= 100 for value in floors.per_package.values())
    assert 0 <= floors.default <= 100


# The floors check inside pytest (--coverage-floors), as CI's test step runs it, in an
# inner session with two xdist workers: the controller combines the workers' data.
INNER_TEST = """
from cov_target import half

def test_half():
    assert half(True) == 1
"""
INNER_MODULE = """
def half(flag):
    if flag:
        return 1
    return 2
"""


@pytest.mark.slow
def test_the_check_runs_inside_pytest_under_xdist(pytester: pytest.Pytester) -> None:
    src = pytester.path / "packages" / "as-demo" / "src"
    src.mkdir(parents=True)
    (src / "cov_target.py").write_text(INNER_MODULE, encoding="utf-8")
    pytester.makepyfile(test_inner=INNER_TEST)
    pytester.makeconftest((ROOT / "conftest.py").read_text(encoding="utf-8"))
    # The inner conftest loads scripts/check_coverage.py relative to itself.
    scripts = pytester.path / "scripts"
    scripts.mkdir()
    (scripts / "check_coverage.py").write_text(
        (ROOT / "scripts" / "check_coverage.py").read_text(encoding="utf-8"), encoding="utf-8"
    )
    pytester.makepyprojecttoml(
        """
        [tool.coverage.run]
        source = ["packages"]
        [tool.coverage.report]
        include_namespace_packages = true
        [tool.as-toolkit.coverage]
        default = 90
        """
    )
    report = pytester.path / "coverage.json"
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "--import-mode=importlib",
        "-o",
        f"pythonpath={src}",
        "--cov",
        f"--cov-report=json:{report}",
        "--coverage-floors",
    )
    # 3 of the 4 lines ran: under the floor of 90%, so the run fails, naming the package.
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["*coverage floors*", "FAIL as-demo*75.0%*under its floor of 90%"])
    result.stdout.fnmatch_lines(["*1 passed*"])
