"""The as-bench pytest plugin works in a fresh project that only did `uv add as-bench`.

The venv is the isolation check's: the as-bench wheel built without workspace sources and
its sibling wheels, plus pytest. The project is a temporary folder outside the repository,
so the workspace's pytest configuration and plugins play no part.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import _workspace
import check_isolation
import pytest

from as_bench.results import read_result_objects

PROJECT_TEST = """
import time

import pytest


def busy(seconds):
    end = time.perf_counter_ns() + int(seconds * 1e9)
    while time.perf_counter_ns() < end:
        pass


def test_busy(as_bench):
    m = as_bench(busy, 2e-4)
    assert m.converged or m.stop_reason


@pytest.mark.as_bench(max_time_s=0.2)
def test_two(as_bench):
    as_bench(busy, 1e-4, name="small")
    as_bench(busy, 2e-4, name="large", batch_size=4)
"""

PYPROJECT = """
[project]
name = "my-project"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["as-bench"]
"""


def _env() -> dict[str, str]:
    # Nothing of this session may leak into the fresh project's pytest.
    leaks = {"PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_PLUGINS"}
    leaks |= {"PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_CURRENT_TEST"}
    return {k: v for k, v in os.environ.items() if k not in leaks}


def _pytest(python: Path, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "--strict-markers", *args],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.network
@pytest.mark.slow
def test_the_plugin_works_in_a_fresh_project(tmp_path: Path) -> None:
    members = _workspace.members()
    needed = _workspace.sibling_closure("as-bench", members)
    wheels = check_isolation.build_wheels(needed, tmp_path / "dist")
    venvs = tmp_path / "venvs"
    venvs.mkdir()
    venv = check_isolation.make_venv("as-bench", wheels, members, venvs)
    python = venv / "bin" / "python"
    uv = shutil.which("uv")
    assert uv is not None, "uv is not on PATH"
    install = subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), "pytest"],
        cwd=venvs,
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT), encoding="utf-8")
    (project / "test_speed.py").write_text(PROJECT_TEST, encoding="utf-8")

    first = _pytest(python, project, "--as-bench-quick", "--as-bench-store", "store")
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert "2 passed" in output
    assert "as-bench: 3 result(s) appended to" in output
    assert "plugins: as-bench-" in output  # loaded through its entry point, nothing else
    results = {r.benchmark: r for r in read_result_objects(project / "store")}
    assert sorted(results) == [
        "test_speed.py::test_busy",
        "test_speed.py::test_two[large]",
        "test_speed.py::test_two[small]",
    ]
    assert results["test_speed.py::test_two[large]"].batch_size == 4
    assert results["test_speed.py::test_busy"].backend == "python"

    # The baseline gate works there too: the same code against itself passes.
    second = _pytest(
        python,
        project,
        "--as-bench-quick",
        "--as-bench-compare",
        "store",
        "--as-bench-fail-on",
        "median:50%",
    )
    output = second.stdout + second.stderr
    assert second.returncode == 0, output
    assert "as-bench: 3 benchmark(s) compared with" in output
    assert "as-bench gate passed (--as-bench-fail-on median:50%)" in output
