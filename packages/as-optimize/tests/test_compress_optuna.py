"""``run --search optuna``: a study on SQLite that resumes after a kill, and its parts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_optimize.cli import main
from as_optimize.compress import (
    ApplyContext,
    OrtStaticInt8,
    StudyOptions,
    redact_storage,
    run_worker,
    storage_url,
)
from as_optimize.exceptions import CompressionInputError

pytest.importorskip("optuna", reason="needs as-optimize[search]")

pytestmark = pytest.mark.xdist_group("compress-optuna")

#: The trial user attribute that marks a repeat of an evaluated setting.
REPEAT = "same_knobs_as_trial"

#: Quick measurement and short heartbeats: the tests measure behaviour, not speed.
QUICK = ["--threads", "1", "--max-time", "0.05", "--heartbeat-interval", "1"]


def cli(*argv: str) -> list[str]:
    """``as-optimize ARGV`` run by this interpreter (its pid is the command's own)."""
    code = "import sys; from as_optimize.cli import main; main(sys.argv[1:])"
    return [sys.executable, "-c", code, *argv]


def load(url: str, name: str) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.load_study(study_name=name, storage=storage)


def wait_for(what: str, check: Any, process: subprocess.Popen[str], limit_s: float) -> Any:
    """Poll ``check()`` until it returns something truthy; fail if ``process`` ends first."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the process ended (exit {process.returncode}) before {what}: {err}")
        time.sleep(0.1)
    pytest.fail(f"no {what} within {limit_s} s")


@pytest.mark.slow
def test_a_killed_run_resumes_its_study_from_the_completed_trials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna

    states = optuna.trial.TrialState
    output = tmp_path / "out"
    argv = ["run", "digits-cnn", "--search", "optuna", "--trials", "4", "-o", str(output)]
    argv += [*QUICK, "--grace-period", "2", "--study", "resume", "--seed", "1", "--no-stages"]
    url = storage_url(None, output)
    first = subprocess.Popen(cli(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def two_done_one_running() -> Any:
            if not (output / "study.db").exists():
                return None
            try:
                trials = load(url, "resume").get_trials(deepcopy=False)
            except KeyError:  # not created yet
                return None
            done = [t for t in trials if t.state == states.COMPLETE]
            running = [t for t in trials if t.state == states.RUNNING and t.params]
            return (done, running[0]) if len(done) >= 2 and running else None

        _, running = wait_for(
            "two complete trials and a third running", two_done_one_running, first, 240
        )
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert not (output / "report.json").exists()
    done_before = [
        t for t in load(url, "resume").get_trials(deepcopy=False) if t.state == states.COMPLETE
    ]
    before = {t.number: t.values for t in done_before}

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # the same command again, in this process
        main(argv)
    second = capsys.readouterr()
    assert exit_info.value.code == 0, second.err
    counted = sum(REPEAT not in t.user_attrs for t in done_before)
    assert f"study 'resume' resumed: {counted} of 4 trials evaluated" in second.err
    assert "study resume in sqlite:///" in second.out

    trials = load(url, "resume").get_trials(deepcopy=False)
    complete = {t.number: t for t in trials if t.state == states.COMPLETE}
    distinct = {n for n, t in complete.items() if REPEAT not in t.user_attrs}
    assert len(distinct) == 4  # repeats of a setting reuse its figures and do not count
    for number, values in before.items():
        assert complete[number].values == values  # nothing measured before the kill is lost
    killed = next(t for t in trials if t.number == running.number)
    assert killed.state == states.FAIL  # its process stopped beating
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == killed.number)
    assert retry.state == states.COMPLETE and retry.params == killed.params

    report = json.loads((output / "report.json").read_text())
    assert report["study"]["name"] == "resume"
    assert report["study"]["storage"] == url
    assert report["study"]["trials_evaluated"] == 4
    assert report["study"]["retries"] == [{"trial": retry.number, "retry_of": killed.number}]
    listed = {c["id"].split("-")[1] for c in report["candidates"] if c["id"].startswith("trial-")}
    assert listed == {str(n) for n in distinct}
    assert {r["trial"] for r in report["study"]["repeats"]} == set(complete) - distinct
    assert (output / report["winner_path"]).is_file()


def test_storage_urls_and_passwords() -> None:
    out = Path("/data/out")
    assert storage_url(None, out) == "sqlite:////data/out/study.db"
    assert storage_url("/tmp/s.db", out) == "sqlite:////tmp/s.db"
    assert (
        storage_url("postgresql://u:pw@db:5432/opt", out) == "postgresql+psycopg://u:pw@db:5432/opt"
    )
    assert storage_url("postgresql+psycopg://u@db/opt", out) == "postgresql+psycopg://u@db/opt"
    assert (
        redact_storage("postgresql+psycopg://u:secret@db/opt")
        == "postgresql+psycopg://u:***@db/opt"
    )
    assert redact_storage("sqlite:////tmp/s.db") == "sqlite:////tmp/s.db"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"trials": 0}, "--trials"),
        ({"sampler": "cma"}, "--sampler"),
        ({"heartbeat_interval_s": 5, "grace_period_s": 5}, "--grace-period"),
        ({"heartbeat_interval_s": 0}, "--heartbeat-interval"),
    ],
)
def test_study_options_out_of_range_are_refused(options: dict[str, Any], named: str) -> None:
    with pytest.raises(CompressionInputError, match=named):
        StudyOptions(**options).check()


def test_a_worker_without_its_study_says_how_to_create_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(
        CompressionInputError, match=r"no study 'nope'.*as-optimize run MODEL --search optuna"
    ):
        run_worker(url, "nope", tmp_path / "w")
    with pytest.raises(SystemExit) as exit_info:
        main(["worker", "--storage", url, "--study", "nope", "-o", str(tmp_path / "w")])
    assert exit_info.value.code == 2
    assert "no study 'nope'" in capsys.readouterr().err


def test_an_unknown_search_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "digits-cnn", "--search", "anneal", "-o", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "--search 'anneal'" in capsys.readouterr().err


def test_static_int8_keeps_the_first_and_last_layers_fp32_when_asked(tmp_path: Path) -> None:
    """The ``exclude`` knob the search explores: those operators keep fp32 weights."""
    import onnx

    from as_bench.export import export_onnx, load_workload

    workload = load_workload("digits-cnn")
    assert workload.dataset is not None
    baseline, _ = export_onnx(workload, 1, tmp_path / "fp32")
    calibration = (workload.dataset.inputs[0][:32].astype(np.float32),)
    context = ApplyContext(input_names=["input"], calibration=calibration)
    technique = OrtStaticInt8()
    assert technique.search_space()["exclude"] == ("none", "first", "last", "first+last")
    weighted = [
        n for n in onnx.load(str(baseline)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")
    ]

    def quantized_weights(which: str) -> list[bool]:
        knobs = {"method": "MinMax", "size": 32, "per_channel": True, "exclude": which}
        path = technique.apply(baseline, knobs, tmp_path / which / "model.onnx", context)
        graph = onnx.load(str(path)).graph
        dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
        by_name = {n.name: n for n in graph.node}
        return [by_name[w.name].input[1] in dequantized for w in weighted]

    assert all(quantized_weights("none"))
    kept = quantized_weights("first+last")
    assert kept[0] is False and kept[-1] is False and all(kept[1:-1])
    with pytest.raises(CompressionInputError, match="exclude 'middle'"):
        technique.apply(baseline, {"exclude": "middle"}, tmp_path / "x" / "m.onnx", context)


@pytest.mark.slow
def test_a_study_searches_a_stage_and_rebuilds_its_pipeline_winner_elsewhere(
    tmp_path: Path,
) -> None:
    import dataclasses

    import optuna

    from as_optimize.compress import (
        OrtWeightStorage,
        QualityGate,
        SearchOptions,
        create_study,
        default_stages,
        run_study,
    )

    prune: Any = next(s for s in default_stages() if s.name == "prune-channels")
    stage = dataclasses.replace(prune, ratios=(0.5,), epochs=(1,))  # quick, one setting
    gate = QualityGate(max_accuracy_drop=100.0)  # the mechanics, not the quality
    options = SearchOptions(
        threads=1,
        max_time_s=0.05,
        min_time_s=0.01,
        techniques=[OrtWeightStorage()],
        stages=[stage],
        objective="size",
    )
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = StudyOptions(storage=url, study_name="stages", trials=2)
    create_study("digits-cnn", tmp_path / "create", gate, options, study)
    stored = load(url, "stages")
    space = stored.user_attrs["as_optimize"]["stage_space"]
    assert space == {"prune-channels": {"ratio": [0.5], "epochs": [1], "lr": [prune.lr]}}
    technique = {"technique": "ort-weight-storage", "ort-weight-storage:bits": 8}
    technique["ort-weight-storage:block_size"] = 0
    stage_params = {"prune-channels:ratio": 0.5, "prune-channels:epochs": 1}
    stage_params["prune-channels:lr"] = prune.lr
    stored.enqueue_trial({**technique, "stage": "prune-channels", **stage_params})
    stored.enqueue_trial({**technique, "stage": "none"})

    report = run_study("digits-cnn", tmp_path / "work", gate, options, study)
    found = {c.id: c for c in report.candidates if c.id.startswith("trial-")}
    piped = found["trial-0-prune-channels-0.5-1-0.001+ort-weight-storage-8-0"]
    alone = found["trial-1-ort-weight-storage-8-0"]
    assert piped.stage == "prune-channels" and piped.stage_knobs == {
        "ratio": 0.5,
        "epochs": 1,
        "lr": prune.lr,
    }
    assert piped.status == "passed" and alone.status == "passed", (piped.reason, alone.reason)
    # Half the channels pruned, then int8 storage: smaller than int8 storage alone.
    assert piped.size_bytes is not None and alone.size_bytes is not None
    assert piped.size_bytes < 0.7 * alone.size_bytes
    assert report.winner == piped.id  # the smallest (objective size)
    trials = load(url, "stages").get_trials(deepcopy=False)
    assert [t.params.get("stage") for t in trials] == ["prune-channels", "none"]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)

    # Reported from another folder (another machine): the pipeline's file is not there,
    # so the stage's model is built again from its knobs and the technique applied to it.
    elsewhere = run_study("digits-cnn", tmp_path / "elsewhere", gate, options, study)
    assert elsewhere.winner == piped.id
    winner = tmp_path / "elsewhere" / str(elsewhere.winner_path)
    assert winner.is_file()
    rebuilt = next(c for c in elsewhere.candidates if c.id == piped.id)
    assert any("rebuilt here" in note for note in rebuilt.notes)
    assert abs(winner.stat().st_size - piped.size_bytes) < 0.05 * piped.size_bytes
