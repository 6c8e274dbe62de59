"""The result store and its exports: atomic files, corrupt files named, formats that agree."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from as_bench.exceptions import CorruptResultError, ResultStoreError
from as_bench.measurement import Measurement
from as_bench.results import (
    BenchmarkResult,
    ResultStore,
    export_results,
    frame_schema,
    read_result_objects,
    read_results,
    results_to_frame,
)

MakeResult = Callable[..., BenchmarkResult]


@pytest.fixture
def store(tmp_path: Path, make_result: MakeResult) -> ResultStore:
    store = ResultStore(tmp_path / "deep" / "store")
    # Appended out of order: reading sorts by start time.
    store.append_many([make_result(2), make_result(0), make_result(1)])
    return store


def test_append_writes_one_named_file_per_result_and_reads_back(
    store: ResultStore, make_result: MakeResult
) -> None:
    assert store.root.is_dir()
    names = [p.name for p in store.paths()]
    assert len(names) == 3 == len(store)
    first = make_result(0)
    assert names[0] == f"20250301T120000123456Z-{first.id}.json"
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".")] == []
    loaded = store.load()
    assert loaded == sorted(loaded, key=lambda r: r.started_at)
    assert [r.median_s for r in loaded] == [make_result(i).median_s for i in range(3)]
    assert list(store) == loaded
    assert loaded[0] == BenchmarkResult.model_validate_json(store.paths()[0].read_text())


def test_appending_the_same_result_twice_keeps_one_file(
    tmp_path: Path, make_result: MakeResult
) -> None:
    store = ResultStore(tmp_path)
    result = make_result(7)
    assert store.append(result) == store.append(result)
    assert store.load() == [result]


def test_hidden_and_foreign_files_are_ignored(store: ResultStore) -> None:
    (store.root / ".half-written.json.0123.tmp").write_text('{"schema_ver')
    (store.root / "notes.txt").write_text("not a result")
    (store.root / "sub.json").mkdir()
    assert len(store.load(on_error="raise")) == 3


def _corrupt(store: ResultStore) -> tuple[Path, Path]:
    good = store.paths()[0].read_text()
    truncated = store.root / "20250301T130000000000Z-truncated.json"
    truncated.write_text(good[: len(good) // 2])
    garbage = store.root / "20250301T130000000000Z-garbage.json"
    garbage.write_bytes(b"\x00\xffnot json at all")
    return truncated, garbage


def test_corrupt_files_are_named_while_the_others_load(
    store: ResultStore, caplog: pytest.LogCaptureFixture
) -> None:
    truncated, garbage = _corrupt(store)

    results, errors = store.load_report()
    assert len(results) == 3
    assert sorted(e.path for e in errors) == sorted([truncated, garbage])
    by_path = {e.path: e for e in errors}
    assert "invalid JSON at line" in by_path[truncated].reason
    assert "truncated" in by_path[truncated].reason
    assert "UTF-8" in by_path[garbage].reason
    for error in errors:
        assert str(error.path) in str(error)

    with caplog.at_level(logging.WARNING, logger="as_bench.results"):
        assert len(store.load()) == 3
        frame = store.to_frame()
    assert frame.height == 3
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(truncated) in warned and str(garbage) in warned

    with pytest.raises(CorruptResultError) as raised:
        store.load(on_error="raise")
    assert raised.value.path in (truncated, garbage)

    with pytest.raises(ResultStoreError, match="2 of 5 result files") as collected:
        store.load(on_error="collect")
    assert str(truncated) in str(collected.value) and str(garbage) in str(collected.value)


def test_a_schema_violation_names_the_file_and_the_keys(store: ResultStore) -> None:
    data = json.loads(store.paths()[0].read_text())
    data["batch_size"] = 0
    data["measurement"]["latency"]["stats"]["n"] = "many"
    data["surprise"] = True
    bad = store.root / "20250301T140000000000Z-bad.json"
    bad.write_text(json.dumps(data))
    _, errors = store.load_report()
    assert [e.path for e in errors] == [bad]
    reason = errors[0].reason
    assert "batch_size" in reason
    assert "measurement.latency.stats.n" in reason
    assert "surprise" in reason


def test_a_future_schema_version_is_refused_by_name(
    tmp_path: Path, make_result: MakeResult
) -> None:
    data = make_result(0).model_dump(mode="json")
    data["schema_version"] = 99
    path = tmp_path / "future.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CorruptResultError) as raised:
        read_result_objects(path)
    assert raised.value.path == path
    message = str(raised.value)
    assert str(path) in message and "99" in message and "supported: 1" in message


def test_an_empty_store_gives_an_empty_frame_with_every_column(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "empty")
    frame = store.to_frame()
    assert frame.height == 0
    assert frame.schema == pl.Schema(frame_schema())
    for fmt in ("json", "csv", "parquet"):
        back = read_results(store.export(tmp_path / f"empty.{fmt}"))
        assert_frame_equal(back, frame)
    assert_frame_equal(read_results(store.root), frame)


def test_frame_columns_hold_the_measurement(store: ResultStore, make_result: MakeResult) -> None:
    frame = store.to_frame()
    first = make_result(0)
    row = frame.row(0, named=True)
    assert row["id"] == first.id
    assert row["median_s"] == first.median_s
    assert row["p95_s"] == first.p95_s
    assert row["samples_s"] == first.samples_s
    assert row["n_samples"] == len(first.samples_s)
    assert row["device_median_s"] is None and row["device_samples_s"] is None
    assert row["accuracy_accuracy"] == 0.97
    assert row["git_commit"] == "a" * 40
    assert row["started_at"] == first.started_at
    assert frame.schema["samples_s"] == pl.List(pl.Float64)


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet"])
def test_export_and_read_back_give_the_same_frame(
    store: ResultStore,
    make_result: MakeResult,
    measurement_of: Callable[..., Measurement],
    fmt: str,
    tmp_path: Path,
) -> None:
    # A result with device timing, no accuracy but another metric, no git, odd text.
    store.append(
        make_result(
            3,
            benchmark='mlp/torch/cuda:0/bs8, "quoted"\nnewline',
            device="cuda:0",
            measurement=measurement_of([0.001, 0.0012, 0.0011], [0.0009, 0.001, 0.00095]),
            accuracy={"top5": 0.5},
            git=None,
            output_check=None,
            throughput_items_per_s=None,
        )
    )
    expected = store.to_frame()
    assert "accuracy_top5" in expected.columns and "accuracy_accuracy" in expected.columns
    out = store.export(tmp_path / "exports" / f"all.{fmt}")
    assert out.exists()
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left
    back = read_results(out)
    assert_frame_equal(back, expected, check_exact=True)
    if fmt == "json":
        assert read_result_objects(out) == store.load()


def test_csv_holds_samples_as_json_text(store: ResultStore, tmp_path: Path) -> None:
    out = store.export(tmp_path / "r.csv")
    raw = pl.read_csv(out, infer_schema=False)
    assert json.loads(raw["samples_s"][0]) == store.load()[0].samples_s


def test_explicit_format_overrides_the_suffix(store: ResultStore, tmp_path: Path) -> None:
    out = store.export(tmp_path / "results.data", "parquet")
    assert pl.read_parquet(out).height == 3


def test_unknown_formats_and_missing_sources_are_errors(store: ResultStore, tmp_path: Path) -> None:
    with pytest.raises(ResultStoreError, match=r"\.json, \.csv, \.parquet"):
        store.export(tmp_path / "results.xlsx")
    with pytest.raises(ResultStoreError, match="unknown results format 'xml'"):
        export_results([], tmp_path / "r.json", "xml")  # type: ignore[arg-type]
    (tmp_path / "r.xlsx").write_text("x")
    with pytest.raises(ResultStoreError, match="supported"):
        read_results(tmp_path / "r.xlsx")
    with pytest.raises(ResultStoreError, match="no results at"):
        read_results(tmp_path / "missing")
    with pytest.raises(ResultStoreError, match="folder is missing"):
        ResultStore(tmp_path / "missing", create=False)
    with pytest.raises(ResultStoreError, match="not a folder"):
        ResultStore(tmp_path / "r.xlsx")
    with pytest.raises(ResultStoreError, match="read_results"):
        read_result_objects(store.export(tmp_path / "r.csv"))


def test_read_results_reads_one_result_file(store: ResultStore) -> None:
    frame = read_results(store.paths()[0])
    assert frame.height == 1
    assert_frame_equal(frame, results_to_frame(store.load()[:1]))


def test_a_broken_json_export_names_the_item(store: ResultStore, tmp_path: Path) -> None:
    out = store.export(tmp_path / "all.json")
    data = json.loads(out.read_text())
    del data[1]["measurement"]
    out.write_text(json.dumps(data))
    with pytest.raises(CorruptResultError, match=r"\[1\]\.measurement") as raised:
        read_results(out)
    assert raised.value.path == out


def test_broken_tables_are_named(store: ResultStore, tmp_path: Path) -> None:
    parquet = store.export(tmp_path / "all.parquet")
    parquet.write_bytes(parquet.read_bytes()[:100])
    with pytest.raises(CorruptResultError) as raised:
        read_results(parquet)
    assert raised.value.path == parquet

    csv = tmp_path / "other.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(CorruptResultError, match="missing column"):
        read_results(csv)

    csv = store.export(tmp_path / "bad-samples.csv")
    frame = pl.read_csv(csv, infer_schema=False).with_columns(pl.lit("[1, oops").alias("samples_s"))
    frame.write_csv(csv)
    with pytest.raises(CorruptResultError, match="row 1, column samples_s"):
        read_results(csv)


def test_importing_results_does_not_import_polars() -> None:
    code = "import sys, as_bench.results; print('polars' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


def test_a_result_that_cannot_round_trip_is_not_stored(
    tmp_path: Path, make_result: MakeResult
) -> None:
    # A NaN deep in the measurement would be written as null and refused on reading.
    result = make_result(0)
    stats = result.measurement.latency.stats.model_copy(update={"mean": float("nan")})
    latency = result.measurement.latency.model_copy(update={"stats": stats})
    measurement = result.measurement.model_copy(update={"latency": latency})
    broken = result.model_copy(update={"measurement": measurement})
    store = ResultStore(tmp_path)
    with pytest.raises(ResultStoreError, match="would not read back"):
        store.append(broken)
    assert list(tmp_path.iterdir()) == []
