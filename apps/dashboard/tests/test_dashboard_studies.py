"""Optuna studies written by a real ``as-optimize run --search optuna``, read back."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import as_logging
from as_dashboard.cli import ENTRY_SCRIPT
from as_dashboard.studies import StudyError, list_studies, load_study_view, storage_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study_run(h: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of a three-trial search on the mlp workload (its study.db in it)."""
    for module in ("optuna", "onnxruntime", "torch"):
        pytest.importorskip(module, reason="as-optimize's search needs its search extra")
    out = tmp_path_factory.mktemp("study")
    argv = [*h.script("as-optimize", "as_optimize"), "run", "mlp", "--search", "optuna"]
    argv += ["--trials", "3", "--threads", "1", "-o", str(out / "run")]
    env = h.clean_env(AS_BENCH_CACHE_DIR=str(out / "cache"))
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "run"


def test_the_study_reads_back_as_as_optimize_reported_it(study_run: Path) -> None:
    report = json.loads((study_run / "report.json").read_text())["study"]
    url = storage_of(str(study_run))  # the output folder: its study.db
    assert url == report["storage"]
    assert list_studies(url) == [report["name"]]
    view = load_study_view(url, report["name"])
    assert [f"{o} ({d})" for o, d in zip(view.objectives, view.directions, strict=True)] == (
        report["objectives"]
    )
    assert view.states == report["states"]
    assert sorted(t.number for t in view.front) == sorted(report["optuna_pareto_trials"])
    assert all(t.feasible is not False for t in view.front)
    rows = view.table()
    assert len(rows) == report["states"]["COMPLETE"]
    assert all({"trial", "on front", "latency_s", "quality"} <= set(row) for row in rows)


def test_places_that_are_not_storages_are_refused_by_name(tmp_path: Path) -> None:
    pytest.importorskip("optuna", reason="reading studies needs optuna")
    with pytest.raises(StudyError, match="no storage given"):
        storage_of(" ")
    with pytest.raises(StudyError, match=r"study\.db: no such file"):
        storage_of(str(tmp_path))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StudyError, match="not a readable Optuna storage"):
        list_studies(storage_of(str(junk)))


def test_the_studies_page_shows_the_front_and_names_a_bad_storage(
    study_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.upper().startswith("AS_DASHBOARD__")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv(
        "AS_DASHBOARD__STUDIES", json.dumps([str(study_run), str(tmp_path / "none.db")])
    )
    try:
        at = AppTest.from_file(str(ENTRY_SCRIPT), default_timeout=120)
        at.run()
        at.sidebar.radio(key="page").set_value("Studies").run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("none.db: no such file" in str(e.value) for e in at.error)
        report = json.loads((study_run / "report.json").read_text())["study"]
        front = len(report["optuna_pareto_trials"])
        assert any(f"{front} on the Pareto front" in str(c.value) for c in at.caption)
        assert len(at.get("vega_lite_chart")) == 1  # the scatter of two objectives
        table = at.dataframe[0].value
        assert sorted(table[table["on front"]]["trial"]) == sorted(report["optuna_pareto_trials"])
    finally:
        as_logging.reset()
