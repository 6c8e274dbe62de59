"""BenchmarkResult: validation, round trips through every format, schema versions."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from as_bench import __version__
from as_bench.exceptions import CorruptResultError
from as_bench.measurement import Measurement
from as_bench.results import (
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    BenchmarkResult,
    ResultStore,
    read_result_objects,
    read_results,
)
from as_bench.results._schema import parse_result

MakeResult = Callable[..., BenchmarkResult]


def test_defaults_and_properties(make_result: MakeResult) -> None:
    fields = make_result(0).model_dump()
    del fields["id"]
    fresh = BenchmarkResult(**fields)
    assert len(fresh.id) == 32 and fresh.id != BenchmarkResult(**fields).id
    assert fresh.schema_version == SCHEMA_VERSION == 2
    assert fresh.as_bench_version == __version__
    assert fresh.median_s == fresh.measurement.latency.stats.median
    assert fresh.samples_s == fresh.measurement.latency.samples_s
    assert fresh.p95_s == fresh.stats.p95 and fresh.p99_s == fresh.stats.p99
    assert fresh.mean_s == fresh.stats.mean
    assert fresh.device_median_s is None
    assert fresh.duration_s == 2.0


def test_device_median_comes_from_device_time(
    make_result: MakeResult, measurement_of: Callable[..., Measurement]
) -> None:
    result = make_result(0, measurement=measurement_of([0.002, 0.003], [0.001, 0.0015]))
    assert result.device_median_s == pytest.approx(0.00125)
    assert result.median_s == pytest.approx(0.0025)


def test_times_must_be_aware_and_are_stored_in_utc(make_result: MakeResult) -> None:
    plus2 = timezone(timedelta(hours=2))
    local = datetime(2025, 3, 1, 14, 0, tzinfo=plus2)
    result = make_result(0, started_at=local, finished_at=local + timedelta(seconds=1))
    assert result.started_at.utcoffset() == timedelta(0)
    assert result.started_at == local
    with pytest.raises(ValidationError, match="timezone"):
        make_result(0, started_at=datetime(2025, 3, 1), finished_at=datetime(2025, 3, 2))
    with pytest.raises(ValidationError, match="before started_at"):
        make_result(0, finished_at=datetime(2000, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"benchmark": ""}, "benchmark"),
        ({"throughput_items_per_s": float("inf")}, "throughput_items_per_s"),
        ({"accuracy": {"accuracy": float("nan")}}, "accuracy.accuracy"),
        ({"id": "../escape"}, "id"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"schema_version": 3}, "schema_version"),
    ],
)
def test_invalid_fields_are_refused(
    make_result: MakeResult, overrides: dict[str, Any], key: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        make_result(0, **overrides)
    assert key in {".".join(map(str, e["loc"])) for e in raised.value.errors()}


def test_results_are_frozen(make_result: MakeResult) -> None:
    with pytest.raises(ValidationError):
        make_result(0).batch_size = 4


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([1, 2], "expected an object, got list"),
        ({"benchmark": "x"}, "schema_version is missing"),
        ({"schema_version": "1"}, "is not an integer"),
        ({"schema_version": 3}, "newer than this as-bench"),
        ({"schema_version": 0}, "not supported (supported: 1, 2)"),
    ],
)
def test_parse_result_names_the_file_and_the_version(data: object, reason: str) -> None:
    path = Path("somewhere/result.json")
    with pytest.raises(CorruptResultError) as raised:
        parse_result(data, path)
    assert raised.value.path == path
    assert reason in raised.value.reason
    assert str(path) in str(raised.value)
    assert SUPPORTED_SCHEMA_VERSIONS == (1, 2)


# -- round trips ----------------------------------------------------------------------------

_seconds = st.floats(min_value=1e-7, max_value=10.0, allow_nan=False, allow_infinity=False)
_text = st.text(min_size=1, max_size=20)
_json_scalar = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _text
_finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def _results(draw: st.DrawFn, make_result: MakeResult, measurement_of: Any) -> BenchmarkResult:
    samples = draw(st.lists(_seconds, min_size=1, max_size=20))
    device_samples = draw(st.none() | st.lists(_seconds, min_size=1, max_size=5))
    started = draw(
        st.datetimes(
            min_value=datetime(1990, 1, 1),
            max_value=datetime(2100, 1, 1),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))]),
        )
    )
    return make_result(
        draw(st.integers(0, 10**6)),
        benchmark=draw(_text),
        workload=draw(_text),
        backend=draw(st.sampled_from(["torch", "onnxruntime", "coreml"])),
        device=draw(st.sampled_from(["cpu", "cuda:0", "mps", "mlx"])),
        batch_size=draw(st.integers(1, 4096)),
        measurement=measurement_of(samples, device_samples),
        throughput_items_per_s=draw(st.none() | st.floats(0, 1e9)),
        accuracy=draw(st.none() | st.dictionaries(st.sampled_from(["acc", "f1"]), _finite)),
        model_size_bytes=draw(st.none() | st.integers(0, 2**62)),
        started_at=started,
        finished_at=started + timedelta(microseconds=draw(st.integers(0, 10**9))),
        tags=draw(st.dictionaries(_text, _text, max_size=3)),
        params=draw(st.dictionaries(_text, _json_scalar, max_size=3)),
        git=None,
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_through_the_store_and_every_format(
    data: st.DataObject, make_result: MakeResult, measurement_of: Any
) -> None:
    results = data.draw(
        st.lists(_results(make_result, measurement_of), max_size=3, unique_by=lambda r: r.id)
    )
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = ResultStore(root / "store")
        store.append_many(results)
        loaded = store.load(on_error="raise")
        assert sorted(loaded, key=lambda r: r.id) == sorted(results, key=lambda r: r.id)
        expected = store.to_frame(on_error="raise")
        assert expected.height == len(results)
        for fmt in ("json", "csv", "parquet"):
            back = read_results(store.export(root / f"out.{fmt}"))
            assert_frame_equal(back, expected, check_exact=True)
        assert read_result_objects(root / "out.json") == loaded


def test_a_version_1_record_reads_as_version_2_with_truthful_defaults(
    make_result: MakeResult,
) -> None:
    data = make_result(0).model_dump(mode="json")
    for key in ("run", "machine"):
        data.pop(key)
    data["measurement"].pop("attempts")
    data["schema_version"] = 1
    result = parse_result(data, Path("old.json"))
    assert result.schema_version == 2
    assert (result.run, result.machine, result.measurement.attempts) == (None, None, 1)
