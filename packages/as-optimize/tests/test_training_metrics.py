"""The metrics file: JSON lines, rotation, torn lines, resumes, read back and exported."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import polars as pl
import pytest

from as_optimize import MetricsFileError, MonitorInputError
from as_optimize.training import export_metrics, read_metrics
from as_optimize.training._metrics import MetricsWriter, metrics_files


def _write(run: Path, records: list[dict[str, object]], **kwargs: int) -> None:
    writer = MetricsWriter(
        run / "metrics.jsonl",
        max_bytes=kwargs.get("max_bytes", 0),
        backup_count=kwargs.get("backup_count", 0),
    )
    for record in records:
        writer.write(record)
    writer.close()


def test_records_read_back_as_a_frame_with_nan_kept(tmp_path: Path) -> None:
    _write(
        tmp_path,
        [
            {"kind": "step", "step": 1, "epoch": 0, "loss": 2.5, "lr": 0.1},
            {"kind": "step", "step": 2, "epoch": 0, "loss": math.nan, "lr": 0.1},
            {"kind": "eval", "step": 2, "epoch": 0, "val_loss": 1.5},
        ],
    )
    frame = read_metrics(tmp_path)
    assert frame["kind"].to_list() == ["step", "step", "eval"]
    assert frame["step"].to_list() == [1, 2, 2]
    assert math.isnan(frame["loss"][1])
    assert frame["val_loss"].to_list() == [None, None, 1.5]


def test_rotation_keeps_backup_count_files_and_reading_spans_them(tmp_path: Path) -> None:
    records: list[dict[str, object]] = [
        {"kind": "step", "step": i, "loss": float(i)} for i in range(1, 41)
    ]
    _write(tmp_path, records, max_bytes=200, backup_count=50)
    files = metrics_files(tmp_path)
    assert len(files) > 3
    assert all(f.stat().st_size <= 200 for f in files)
    assert read_metrics(tmp_path)["step"].to_list() == list(range(1, 41))
    # With fewer backups the oldest records go: rotation is for bounded disk use.
    other = tmp_path / "few"
    _write(other, records, max_bytes=200, backup_count=2)
    assert len(metrics_files(other)) == 3
    assert read_metrics(other)["step"][0] > 1


def test_a_resume_drops_the_abandoned_branch_and_redone_steps_appear_once(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path,
        [
            {"kind": "step", "step": 1, "loss": 1.0},
            {"kind": "step", "step": 2, "loss": 1.0},
            {"kind": "step", "step": 3, "loss": 9.0},
            {"kind": "step", "step": 4, "loss": 9.0},
            {"kind": "resume", "step": 2},
            {"kind": "step", "step": 3, "loss": 0.5},
        ],
    )
    frame = read_metrics(tmp_path)
    assert frame["step"].to_list() == [1, 2, 3]
    assert frame["loss"].to_list() == [1.0, 1.0, 0.5]


def test_a_torn_last_line_is_skipped_with_a_warning_and_the_writer_starts_a_new_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind":"step","step":1,"loss":1.0}\n{"kind":"step","st', encoding="utf-8")
    _write(tmp_path, [{"kind": "step", "step": 2, "loss": 2.0}])
    with caplog.at_level(logging.WARNING, logger="as_optimize.training"):
        frame = read_metrics(tmp_path)
    assert frame["step"].to_list() == [1, 2]
    assert f"{path}:2: not a metrics record" in caplog.text
    with pytest.raises(MetricsFileError, match=r"metrics\.jsonl:2: not a metrics record") as info:
        read_metrics(tmp_path, strict=True)
    assert info.value.line == 2 and info.value.path == path


def test_an_empty_run_reads_as_an_empty_frame(tmp_path: Path) -> None:
    frame = read_metrics(tmp_path)
    assert frame.is_empty() and frame.columns == ["kind", "step"]


def test_export_to_csv_and_parquet(tmp_path: Path) -> None:
    _write(
        tmp_path,
        [
            {"kind": "step", "step": 1, "loss": 2.0, "lr": 0.1},
            {"kind": "eval", "step": 1, "val_loss": 1.0},
        ],
    )
    csv = export_metrics(tmp_path, tmp_path / "out" / "m.csv")
    assert csv.read_text(encoding="utf-8").splitlines()[0].startswith("kind,step")
    parquet = export_metrics(tmp_path, tmp_path / "out" / "m.parquet")
    assert pl.read_parquet(parquet).equals(read_metrics(tmp_path))
    with pytest.raises(MonitorInputError, match=r"m\.xlsx: unknown format 'xlsx'"):
        export_metrics(tmp_path, tmp_path / "m.xlsx")


def test_lines_are_compact_json(tmp_path: Path) -> None:
    _write(tmp_path, [{"kind": "step", "step": 1, "loss": 0.25}])
    line = (tmp_path / "metrics.jsonl").read_text(encoding="utf-8")
    assert line == '{"kind":"step","step":1,"loss":0.25}\n'
    assert json.loads(line)["loss"] == 0.25
