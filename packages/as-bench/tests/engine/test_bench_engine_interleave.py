"""Interleaved A/B measurement: the base side imports the base checkout's code.

Where each side's code comes from is checked on functions whose two versions differ by
a factor of 20 in work, so the verdict does not depend on how busy the machine is.
"""

from __future__ import annotations

import importlib
import operator
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from as_bench.engine import (
    BaseSourceError,
    MeasureOptions,
    base_sys_path,
    measure_interleaved,
)
from as_bench.engine._interleave import slice_seconds
from as_bench.exceptions import MeasurementError
from as_bench.testing import FakeDevice

WORK = """
def work(n):
    total = 0
    for i in range(n * {factor}):
        total += i
    return total
"""


def _checkouts(tmp_path: Path, new_factor: int, base_factor: int | None) -> tuple[Path, Path, str]:
    """``new/`` and ``base/`` with a module of one unique name (``base/`` may lack it)."""
    name = f"ab_{uuid.uuid4().hex[:12]}"
    new, base = tmp_path / "new", tmp_path / "base"
    new.mkdir()
    base.mkdir()
    (new / f"{name}.py").write_text(WORK.format(factor=new_factor))
    if base_factor is not None:
        (base / f"{name}.py").write_text(WORK.format(factor=base_factor))
    return new, base, name


def _import(folder: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module(name)
    monkeypatch.setitem(sys.modules, name, module)  # gone again after the test
    return module


def test_base_sys_path_moves_checkout_entries_and_keeps_the_environment(tmp_path: Path) -> None:
    new, base = tmp_path / "new", tmp_path / "base"
    for folder in (new / "src", base / "src", new / "tests", new / "only-new"):
        folder.mkdir(parents=True)
    (base / "tests").mkdir()
    outside = tmp_path / "elsewhere"
    venv = sys.prefix + "/lib/site-packages-of-this-environment"
    path = [str(new / "src"), str(new / "tests"), str(new / "only-new"), str(outside), venv]
    assert base_sys_path(new, base, path) == [
        str(base / "src"),
        str(base / "tests"),
        # only-new/ has no counterpart: dropped, so the base never imports the new code
        str(outside),
        venv,
    ]


def test_base_sys_path_maps_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, base = tmp_path / "new", tmp_path / "base"
    new.mkdir()
    base.mkdir()
    monkeypatch.chdir(new)
    assert base_sys_path(new, base, [""]) == [str(base.resolve())]


def test_a_slice_is_a_tenth_of_the_sampling_time_within_bounds() -> None:
    assert slice_seconds(MeasureOptions()) == 0.25
    assert slice_seconds(MeasureOptions.quick()) == pytest.approx(0.05)
    assert slice_seconds(MeasureOptions.quick(max_time_s=0.05)) == pytest.approx(0.02)


@pytest.mark.slow
def test_each_side_runs_its_own_checkouts_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, base, name = _checkouts(tmp_path, new_factor=1, base_factor=20)
    module = _import(new, name, monkeypatch)
    pair = measure_interleaved(
        module.work, 500, new_root=new, base_root=base, options=MeasureOptions.quick(), pairs=2
    )
    ratio = pair.base.latency.stats.median / pair.new.latency.stats.median
    assert ratio > 5, ratio  # 20x the work; a busy machine does not make up a factor of 4
    assert pair.new.isolated and pair.base.isolated
    # At least two pairs of workers (more while the CI is wide), each of an even number of
    # cycles (A B B A, then B A A B); every pair adds one attempt to each side.
    assert pair.new.attempts == pair.base.attempts >= 2
    assert pair.cycles >= 2 * pair.new.attempts and pair.cycles % 2 == 0
    assert "interleaved" in pair.new.stop_reason
    assert any("base side of an interleaved" in w for w in pair.base.warnings)


@pytest.mark.slow
def test_a_function_the_base_lacks_is_a_base_source_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, base, name = _checkouts(tmp_path, new_factor=1, base_factor=None)
    module = _import(new, name, monkeypatch)
    with pytest.raises(BaseSourceError, match="base checkout") as info:
        measure_interleaved(
            module.work, 10, new_root=new, base_root=base, options=MeasureOptions.quick()
        )
    assert name in str(info.value)


def test_an_unpicklable_function_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match="must be picklable"):
        measure_interleaved(lambda: None, new_root=tmp_path, base_root=tmp_path)


def test_a_device_with_its_own_clock_cannot_be_sent_to_the_workers(tmp_path: Path) -> None:
    device = FakeDevice(lambda _: 1e-3)
    with pytest.raises(MeasurementError, match="own clock"):
        measure_interleaved(
            operator.add, 1, 2, new_root=tmp_path, base_root=tmp_path, device=device
        )


def test_pairs_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pairs must be at least 1"):
        measure_interleaved(operator.add, 1, 2, new_root=tmp_path, base_root=tmp_path, pairs=0)
