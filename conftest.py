"""Test-run rules for every test of the workspace, whatever path pytest is given.

pytest loads this file (the rootdir's conftest) for ``pytest``, ``pytest tests`` and
``pytest packages/as-config/tests`` alike, also in a per-package environment where only
one package is installed: it imports nothing beyond the standard library and pytest.

* **Tests write only in temporary folders.** A session fixture points as-bench's cache
  (trained weights of the built-in workloads), matplotlib's config and font cache, and the
  XDG cache (where ONNX Runtime leaves a device id, torch and Hugging Face their hubs) at
  one folder per run, shared by all pytest-xdist workers of that run: weights are trained
  at most once per worker and never land in the user's own cache.
* **``timing`` tests stay out of the main run.** They measure real time and run serially
  in a CI step of their own (``make test-timing``); they are deselected unless the ``-m``
  expression names ``timing``, so a user's ``-m "not network and not slow"`` keeps them out
  too.
* **Coverage floors.** ``--coverage-floors`` (used by ``make test-ci``) checks the JSON
  report that pytest-cov wrote against each package's floor in the root pyproject
  (``[tool.as-toolkit.coverage]``), with ``scripts/check_coverage.py``, and fails the run
  when a package is under its floor, before pytest's summary line.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent

# Environment variables that move a user-level folder, and the name of the folder each
# gets inside the run's shared temporary folder.
USER_DIRS = {
    "AS_BENCH_CACHE_DIR": "as-bench-cache",
    "MPLCONFIGDIR": "matplotlib",
    "XDG_CACHE_HOME": "xdg-cache",
    "TRITON_CACHE_DIR": "triton-cache",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--coverage-floors``."""
    parser.addoption(
        "--coverage-floors",
        action="store_true",
        default=False,
        help=(
            "after the run, check the JSON coverage report (--cov-report=json:PATH) against "
            "each package's floor in [tool.as-toolkit.coverage]; fail when one is under"
        ),
    )


def is_xdist_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker (the config xdist gave it says so).

    Not PYTEST_XDIST_WORKER: a pytest started by a test inherits that variable.
    """
    return hasattr(config, "workerinput")


def run_shared_dir(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this run that every xdist worker sees (the base temp folder without)."""
    base = tmp_path_factory.getbasetemp()
    # A worker's base temp folder is <run folder>/popen-gwN; the run folder is shared.
    if is_xdist_worker(config):
        base = base.parent
    return base / "user-dirs"


def _uv_cache_dir() -> str:
    """Where uv keeps its cache now, before XDG_CACHE_HOME moves (see below)."""
    if os.environ.get("UV_CACHE_DIR"):
        return os.environ["UV_CACHE_DIR"]
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return str(base / "uv")


@pytest.fixture(scope="session", autouse=True)
def _user_dirs_in_tmp(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    shared = run_shared_dir(pytestconfig, tmp_path_factory)
    with pytest.MonkeyPatch.context() as patch:
        # Tests that build wheels run uv, which keeps its cache under XDG_CACHE_HOME:
        # pin it where it is, or every run would download every wheel again.
        patch.setenv("UV_CACHE_DIR", _uv_cache_dir())
        for name, folder in USER_DIRS.items():
            path = shared / folder
            path.mkdir(parents=True, exist_ok=True)
            patch.setenv(name, str(path))
        yield shared


def _names_timing(markexpr: str) -> bool:
    return "timing" in markexpr


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the ``timing`` tests unless the ``-m`` expression names them."""
    if _names_timing(str(config.getoption("markexpr", default="") or "")):
        return
    kept: list[pytest.Item] = []
    timing: list[pytest.Item] = []
    for item in items:
        (timing if item.get_closest_marker("timing") is not None else kept).append(item)
    if timing:
        config.hook.pytest_deselected(items=timing)
        items[:] = kept


def _check_coverage_module() -> ModuleType:
    """``scripts/check_coverage.py``, loaded by path (scripts/ is not a package)."""
    path = ROOT / "scripts" / "check_coverage.py"
    spec = importlib.util.spec_from_file_location("_as_toolkit_check_coverage", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# Outermost wrapper, so that pytest-cov has written its reports when this resumes; the
# session's failure count can still change here (it cannot in pytest_sessionfinish).
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """With ``--coverage-floors``, check the JSON report and fail the run under a floor."""
    result = yield
    config = session.config
    if not config.getoption("--coverage-floors") or is_xdist_worker(config):
        return result
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    reports = getattr(config.option, "cov_report", None) or {}
    json_path = reports.get("json")
    if not json_path:
        raise pytest.UsageError("--coverage-floors needs --cov and --cov-report=json:PATH")
    check = _check_coverage_module()
    lines, ok = check.check_file(Path(json_path), check.load_floors(ROOT / "pyproject.toml"))
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "coverage floors (scripts/check_coverage.py)")
        for line in lines:
            reporter.write_line(line, red=line.startswith("FAIL"))
    if not ok:
        session.testsfailed += 1
    return result
