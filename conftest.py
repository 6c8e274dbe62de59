"""Test-run rules for every test of the workspace, whatever path pytest is given.

pytest loads this file (the rootdir's conftest) for ``pytest``, ``pytest tests`` and
``pytest packages/as-config/tests`` alike, also in a per-package environment where only
one package is installed: it imports nothing beyond the standard library and pytest.

* **Tests write only in temporary folders.** Before collection, as-bench's cache (trained
  weights of the built-in workloads), matplotlib's config and font cache, Triton's cache
  and the XDG cache (where ONNX Runtime leaves a device id, torch and Hugging Face their
  hubs) are pointed at one temporary folder per run, shared by all pytest-xdist workers of
  that run: weights are trained at most once per worker and never land in the user's own
  cache. The ``user_dirs`` fixture gives that folder.
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
import shutil
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent

# The run's shared folder, inherited by the xdist workers and by any pytest a test starts.
SHARED_ENV = "AS_TOOLKIT_TEST_USER_DIRS"
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


def _uv_cache_dir() -> str:
    """Where uv keeps its cache now, before XDG_CACHE_HOME moves (see below)."""
    if os.environ.get("UV_CACHE_DIR"):
        return os.environ["UV_CACHE_DIR"]
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return str(base / "uv")


_CREATED = pytest.StashKey[Path]()
_SAVED = pytest.StashKey[dict[str, str | None]]()


# In pytest_configure, not in a fixture: collection imports test modules, and importing
# onnxruntime already writes its device id under the XDG cache. The controller creates the
# folder; the xdist workers it starts (and any pytest a test starts) inherit
# AS_TOOLKIT_TEST_USER_DIRS and use the same one, so each weight is trained at most once
# per worker. The process that created the folder removes it when it ends.
@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Point the user-level folders of USER_DIRS into this run's temporary folder."""
    inherited = os.environ.get(SHARED_ENV)
    if inherited:
        shared = Path(inherited)
    else:
        shared = Path(tempfile.mkdtemp(prefix="as-toolkit-tests-"))
        config.stash[_CREATED] = shared
    # Tests that build wheels run uv, which keeps its cache under XDG_CACHE_HOME: pin it
    # where it is, or every run would download every wheel again.
    values = {SHARED_ENV: str(shared), "UV_CACHE_DIR": _uv_cache_dir()}
    for name, folder in USER_DIRS.items():
        (shared / folder).mkdir(parents=True, exist_ok=True)
        values[name] = str(shared / folder)
    config.stash[_SAVED] = {name: os.environ.get(name) for name in values}
    os.environ.update(values)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put the environment back; remove the folder if this process created it."""
    for name, value in config.stash.get(_SAVED, {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    created = config.stash.get(_CREATED, None)
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)


@pytest.fixture(scope="session")
def user_dirs() -> Path:
    """The run's folder that holds the redirected user-level folders (one per USER_DIRS)."""
    return Path(os.environ[SHARED_ENV])


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
