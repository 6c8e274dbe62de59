"""Training runs as the training monitor writes them, read while they grow."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import as_logging
from as_dashboard.cli import ENTRY_SCRIPT
from as_dashboard.training import TrainingRunError, find_runs, load_run

NAN_STEP = 12


def train(run_dir: Path, steps: int, *, monitor: Any = None) -> None:
    """``steps`` monitored steps of a small regression; the loss reported at NAN_STEP is NaN."""
    torch = pytest.importorskip("torch", reason="the training monitor needs torch")
    from as_optimize.training import MetricsSettings, Monitor, MonitorSettings, NonFiniteSettings

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(64, 4)
    y = x.sum(dim=1, keepdim=True)
    settings = MonitorSettings(
        nonfinite=NonFiniteSettings(policy="warn"),
        metrics=MetricsSettings(flush_every_s=0),  # every step on disk at once
    )
    with Monitor(run_dir, model=model, optimizer=optimizer, settings=settings) as m:
        for _ in m.epochs(1):
            for step in range(1, steps + 1):
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                optimizer.step()
                m.step(loss=float("nan") if step == NAN_STEP else loss, batch_size=64)
                if monitor is not None and step == steps // 2:
                    monitor(step)
            m.evaluate({"val_loss": 0.5})


def test_a_run_is_read_through_the_monitors_reader_with_its_events(tmp_path: Path) -> None:
    seen: dict[int, int] = {}

    def midway(step: int) -> None:  # read while the run is still training
        seen[step] = load_run(tmp_path / "runs" / "r1").steps.height

    train(tmp_path / "runs" / "r1", 30, monitor=midway)
    run = load_run(tmp_path / "runs" / "r1")
    assert run.steps.height == 30
    assert seen == {15: 15}  # read midway: the steps written so far
    assert {"step", "loss", "samples_per_s"} <= set(run.steps.columns)
    losses = run.steps["loss"].to_list()
    assert losses[-1] < losses[0]  # it learns
    assert run.evaluations["val_loss"].to_list() == [0.5]
    kinds = [(row["step"], row["kind"], row["action"]) for row in run.events_table()]
    assert kinds == [(NAN_STEP, "nonfinite", "continue")]


def test_runs_are_found_in_the_folders_given_and_bad_places_are_named(tmp_path: Path) -> None:
    for name in ("a", "b"):
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        (folder / "metrics.jsonl").write_text("")
    assert find_runs([tmp_path / "runs"]) == [tmp_path / "runs" / "a", tmp_path / "runs" / "b"]
    assert find_runs([tmp_path / "runs" / "a" / "metrics.jsonl"]) == [tmp_path / "runs" / "a"]
    with pytest.raises(TrainingRunError, match="nowhere: no such folder"):
        find_runs([tmp_path / "nowhere"])
    (tmp_path / "other").mkdir()
    with pytest.raises(TrainingRunError, match="other: no training run here"):
        find_runs([tmp_path / "other"])
    with pytest.raises(TrainingRunError, match="not a training run"):
        load_run(tmp_path / "other")
    empty = load_run(tmp_path / "runs" / "a")
    assert empty.steps.height == 0 and empty.events == []


@pytest.fixture
def clean_dashboard_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [n for n in os.environ if n.upper().startswith("AS_DASHBOARD__")]:
        monkeypatch.delenv(name)
    try:
        yield
    finally:
        as_logging.reset()


@pytest.mark.usefixtures("clean_dashboard_env")
def test_the_training_page_shows_curves_and_events_and_names_a_bad_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train(tmp_path / "runs" / "r1", 30)
    monkeypatch.setenv(
        "AS_DASHBOARD__TRAINING_DIRS", json.dumps([str(tmp_path / "runs"), str(tmp_path / "x")])
    )
    at = AppTest.from_file(str(ENTRY_SCRIPT), default_timeout=120)
    at.run()
    at.sidebar.radio(key="page").set_value("Training").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("x: no such folder" in str(e.value) for e in at.error)
    assert "30 steps, 1 evaluations, 1 events" in [str(c.value) for c in at.caption]
    assert len(at.get("vega_lite_chart")) == 2  # loss, samples/s
    events = at.dataframe[-1].value
    assert list(events["kind"]) == ["nonfinite"] and list(events["step"]) == [NAN_STEP]
