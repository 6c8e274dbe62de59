"""MeasureOptions: sensible defaults, validation, the quick preset."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from as_bench.engine import MeasureOptions


def test_defaults_are_the_documented_ones() -> None:
    o = MeasureOptions()
    assert (o.warmup_min_iters, o.warmup_min_time_s, o.warmup_max_time_s) == (3, 0.05, 2.0)
    assert (o.min_samples, o.min_time_s, o.max_time_s) == (10, 1.0, 5.0)
    assert (o.target_rel_ci, o.ci_level, o.max_overhead_ratio) == (0.01, 0.95, 1e-4)
    assert o.max_sample_time_s == 0.1 and o.max_inner_loops >= 1000
    assert not o.isolate and o.threads is None and o.inner_loops is None


def test_quick_preset_is_short_and_accepts_overrides() -> None:
    q = MeasureOptions.quick()
    assert q.max_time_s <= 0.5 and q.target_rel_ci >= 0.05 and q.warmup_max_time_s <= 0.25
    assert MeasureOptions.quick(max_time_s=1.0, isolate=True).max_time_s == 1.0
    with pytest.raises(ValidationError):
        MeasureOptions.quick(no_such_option=1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_time_s": 2.0, "max_time_s": 1.0}, "max_time_s"),
        ({"warmup_min_time_s": 3.0, "warmup_max_time_s": 1.0}, "warmup_max_time_s"),
        ({"min_samples": 20, "max_samples": 10}, "max_samples"),
        ({"ci_level": 1.0}, "ci_level"),
        ({"target_rel_ci": 0.0}, "target_rel_ci"),
        ({"min_samples": 1}, "min_samples"),
        ({"threads": 0}, "threads"),
        ({"inner_loops": 0}, "inner_loops"),
        ({"bogus": True}, "bogus"),
    ],
)
def test_invalid_options_are_rejected(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MeasureOptions.model_validate(fields)


def test_options_are_frozen_and_round_trip_json() -> None:
    o = MeasureOptions(threads=2)
    assert MeasureOptions.model_validate_json(o.model_dump_json()) == o
    with pytest.raises(ValidationError):
        o.threads = 3
