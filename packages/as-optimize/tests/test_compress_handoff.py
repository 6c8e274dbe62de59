"""The hand-off: ``optimize(..., repo=DIR)`` writes the winner into an as-deploy repository.

One real, short search on the digits CNN (static int8 beside the fp32 baseline, batch
sizes 1 and 8) writes its winner as a version; the version is read back through
as-deploy's repository (every sha256 verified), compared with what ``as-deploy export``
writes for the same workload, and served by a real in-process as-deploy server.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import as_optimize
from as_optimize.cli import main
from as_optimize.compress import (
    HandOff,
    OptimizeResult,
    OrtStaticInt8,
    hand_off,
    optimize,
)
from as_optimize.exceptions import CompressionInputError

pytest.importorskip("as_deploy")
pytest.importorskip("onnxscript")

# One worker runs the shared search, rather than each worker its own copy.
pytestmark = pytest.mark.xdist_group("compress-handoff")

DIGITS = [str(digit) for digit in range(10)]


@pytest.fixture(scope="module")
def optimized(tmp_path_factory: pytest.TempPathFactory) -> tuple[OptimizeResult, Path]:
    root = tmp_path_factory.mktemp("handoff")
    result = optimize(
        "digits-cnn",
        output=root / "out",
        max_accuracy_drop="1pt",
        techniques=[OrtStaticInt8(methods=("MinMax",), sizes=(64,), per_channel=(True,))],
        stages=[],  # the technique alone: no torch stage to train
        calibration_examples=48,
        batch_sizes=(1, 8),
        threads=1,
        max_time_s=0.05,
        repo=root / "repo",
    )
    return result, root / "repo"


def test_the_winner_is_a_verified_version_with_the_workloads_manifest(
    optimized: tuple[OptimizeResult, Path], tmp_path: Path
) -> None:
    from as_deploy import ModelRepository
    from as_deploy.export import export_model

    result, repo = optimized
    deployed = result.deployment
    assert deployed is not None
    assert (deployed.name, deployed.version) == ("digits-cnn", "1")
    repository = ModelRepository(repo, cache_size=0)
    loaded = repository.load("digits-cnn", "1")
    manifest = loaded.manifest
    assert manifest == deployed.manifest
    # Every file listed was hashed and matched; the model is the search's winner file.
    assert repository.files_hashed == len(manifest.files) >= 1
    assert result.winner_file is not None
    assert loaded.model_path.read_bytes() == result.winner_file.read_bytes()
    # What `as-deploy export` writes for the same workload.
    exported = export_model("digits-cnn", "onnx", tmp_path / "export")
    assert manifest.labels == exported.labels == DIGITS
    assert manifest.preprocessing == exported.preprocessing
    assert manifest.inputs == exported.inputs
    assert manifest.outputs == exported.outputs
    assert manifest.description == exported.description
    assert manifest.runtime_options["dynamic_batch"] is True


def test_the_parity_check_against_fp32_is_recorded(
    optimized: tuple[OptimizeResult, Path],
) -> None:
    result, _ = optimized
    assert result.deployment is not None
    parity = result.deployment.manifest.parity
    report = result.report
    assert parity is not None and parity.ran and parity.passed
    assert (parity.runtime, parity.reference) == ("onnxruntime", "torch")
    assert parity.inputs_checked == report.scoring_examples
    assert parity.data == report.scoring_data
    # fp32's tolerances widened by what the search measured, never narrower.
    assert parity.atol >= 1e-4 and parity.min_top1_agreement is not None


def test_the_provenance_holds_the_technique_figures_and_hardware(
    optimized: tuple[OptimizeResult, Path],
) -> None:
    result, _ = optimized
    assert result.deployment is not None
    provenance = result.deployment.manifest.provenance
    record: dict[str, Any] = provenance.optimization or {}
    report, winner = result.report, result.winner
    assert provenance.source == "digits-cnn"
    assert provenance.tool_versions["as-optimize"] == as_optimize.__version__
    assert record["as_optimize_version"] == as_optimize.__version__
    assert dt.datetime.fromisoformat(record["created_at"]).tzinfo is not None
    assert (record["candidate"], record["technique"]) == (winner.id, winner.technique)
    assert record["knobs"] == winner.knobs
    assert record["gate"]["rule"] == report.gate == "accuracy drop <= 1 pt"
    assert record["quality"] == (winner.quality.model_dump() if winner.quality else None)
    assert record["size_bytes"] == winner.size_bytes
    assert record["fp32_onnx_size_bytes"] == report.baseline.size_bytes
    assert set(record["latency"]) == set(record["speedup"]) == {"1", "8"}
    for batch in ("1", "8"):
        lat = record["latency"][batch]
        assert lat["ci_low_s"] <= lat["median_s"] <= lat["ci_high_s"]
        assert lat["median_s"] == winner.latency[batch].median_s
        eager = report.eager["latency"][batch]["median_s"]
        ort = report.baseline.latency[batch].median_s
        assert record["speedup"][batch]["vs_eager_fp32"] == pytest.approx(eager / lat["median_s"])
        assert record["speedup"][batch]["vs_ort_fp32"] == pytest.approx(ort / lat["median_s"])
    hardware = record["hardware"]
    assert hardware["cpu"]["logical_cores"] >= 1 and hardware["os"]["system"]


def test_the_server_answers_with_the_right_labels_and_shows_the_provenance(
    optimized: tuple[OptimizeResult, Path],
) -> None:
    from fastapi.testclient import TestClient
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    from as_deploy import ServerSettings
    from as_deploy.server import create_app

    result, repo = optimized
    assert result.deployment is not None
    digits = load_digits()
    images = (digits.images[-40:] / 16.0).astype(np.float32)[:, None, :, :]
    truth = [str(t) for t in digits.target[-40:]]
    with TestClient(create_app(ServerSettings(), repo=repo)) as client:
        answer = client.post(
            "/v1/models/digits-cnn/predict", json={"inputs": {"input": images.tolist()}}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["version"] == "1"
        labels = [p["label"] for p in body["predictions"]]
        right = sum(a == b for a, b in zip(labels, truth, strict=True))
        assert right >= 37, (labels, truth)  # the search kept ~98% accuracy
        info = client.get("/v1/models/digits-cnn").json()
        assert info["labels"] == DIGITS
        optimization = info["provenance"]["optimization"]
        assert optimization == result.deployment.manifest.provenance.optimization
        assert optimization["candidate"] == result.winner.id


def test_a_second_hand_off_is_the_next_version_and_a_version_is_never_overwritten(
    optimized: tuple[OptimizeResult, Path],
) -> None:
    result, repo = optimized
    with pytest.raises(CompressionInputError, match="already exists"):
        hand_off("digits-cnn", result.report, result.output, HandOff(repo, version="1"))
    again = hand_off("digits-cnn", result.report, result.output, HandOff(repo, name="digits"))
    assert (again.name, again.version) == ("digits", "1")
    third = hand_off("digits-cnn", result.report, result.output, HandOff(repo, name="digits"))
    assert third.version == "2"


def test_a_gate_no_candidate_passes_writes_nothing_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    args = ["run", "digits-cnn", "-o", str(tmp_path / "out"), "--repo", str(repo)]
    args += ["--min-cosine", "1.0", "--trials", "1", "--threads", "1", "--max-time", "0.05"]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert f"nothing written to {repo}" in " ".join(err.split())
    assert "no candidate passed the quality gate" in " ".join(err.split())
    assert "under 1" in err  # the candidate's own reason: its cosine under the gate
    assert not repo.exists() or not any(repo.iterdir())
    assert (tmp_path / "out" / "report.json").is_file()


def test_export_adds_plain_exports_beside_the_compressed_winner_and_says_which_is_which(
    optimized: tuple[OptimizeResult, Path], tmp_path: Path
) -> None:
    from as_deploy import ModelRepository

    result, _ = optimized
    repo = tmp_path / "repo"
    deployed = hand_off(
        "digits-cnn", result.report, result.output, HandOff(repo, name="digits"), export=["TFLite"]
    )
    assert (deployed.name, deployed.version) == ("digits", "1")
    (tflite,) = deployed.exports
    assert (tflite.name, tflite.version) == ("digits-tflite", "1")
    repository = ModelRepository(repo, cache_size=0)
    winner = repository.load("digits", "1")
    plain = repository.load("digits-tflite", "1")  # every file's sha256 verified
    assert result.winner_file is not None
    assert winner.model_path.read_bytes() == result.winner_file.read_bytes()
    assert plain.manifest.format == "tflite" and plain.model_path.name == "model.tflite"
    # The plain export was parity-checked against PyTorch in LiteRT and carries no
    # optimization record: it is not compressed.
    parity = plain.manifest.parity
    assert parity is not None and parity.ran and parity.passed
    assert parity.runtime != "onnxruntime"
    assert plain.manifest.provenance.optimization is None
    artifacts = (winner.manifest.provenance.optimization or {})["artifacts"]
    assert [(a["name"], a["format"], a["file"], a["compressed"]) for a in artifacts] == [
        ("digits", "onnx", "model.onnx", True),
        ("digits-tflite", "tflite", "model.tflite", False),
    ]
    assert result.winner.id in artifacts[0]["what"]
    assert "not compressed" in artifacts[1]["what"]


def test_export_formats_and_taken_versions_are_refused_before_anything_is_written(
    optimized: tuple[OptimizeResult, Path], tmp_path: Path
) -> None:
    result, _ = optimized
    repo = tmp_path / "repo"
    for bad, words in ((["onnx"], "already stored as the ONNX version"), (["tf"], "not a format")):
        with pytest.raises(CompressionInputError, match=words):
            hand_off("digits-cnn", result.report, result.output, HandOff(repo), export=bad)
    # The export's name already holds version 1: the winner's version 1 is not written.
    (repo / "digits-cnn-tflite" / "1").mkdir(parents=True)
    with pytest.raises(CompressionInputError, match="digits-cnn-tflite/1 already exists"):
        hand_off("digits-cnn", result.report, result.output, HandOff(repo), export=["tflite"])
    assert not (repo / "digits-cnn").exists()


def test_export_without_a_repository_is_refused_before_the_search(tmp_path: Path) -> None:
    from as_optimize.compress import optimize
    from as_optimize.exceptions import CompressionInputError

    with pytest.raises(CompressionInputError, match="--export needs --repo"):
        optimize("digits-cnn", output=tmp_path / "out", export=("tflite",))
    assert not (tmp_path / "out").exists()


def test_a_pipeline_winner_records_its_stage_then_its_technique(
    optimized: tuple[OptimizeResult, Path],
) -> None:
    from as_optimize.compress import optimization_record

    result, _ = optimized
    winner = result.winner.model_copy(
        update={"stage": "prune-channels", "stage_knobs": {"ratio": 0.5, "epochs": 3}}
    )
    record = optimization_record(result.report, winner, {"machine": "test"})
    assert record["stage"] == "prune-channels"
    assert record["stage_knobs"] == {"ratio": 0.5, "epochs": 3}
    assert record["pipeline"] == [
        {"stage": "prune-channels", "knobs": {"ratio": 0.5, "epochs": 3}},
        {"technique": winner.technique, "knobs": dict(winner.knobs)},
    ]
    alone = optimization_record(result.report, result.winner, {"machine": "test"})
    assert alone["stage"] is None
    assert alone["pipeline"] == [
        {"technique": result.winner.technique, "knobs": result.winner.knobs}
    ]
