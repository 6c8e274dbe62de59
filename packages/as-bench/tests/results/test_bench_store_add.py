"""``ResultStore.add``: a measurement stored in one call, as the README shows it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import as_bench.probe
from as_bench.engine import MeasureOptions, measure
from as_bench.measurement import Measurement
from as_bench.results import BenchmarkResult, ResultStore, git_info, read_result_objects
from as_bench.results._measured import is_function_result
from as_bench.testing import FakeDevice, make_result

README = Path(__file__).parents[2] / "README.md"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def readme_snippet() -> str:
    """The Python block under "### Store your own measurements" in the README."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Store your own measurements", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, "the README section has no Python snippet"
    return found.group(1)


def fake_measurement(cost_s: float = 2e-4) -> Measurement:
    # A fake clock: the real engine, on time nothing can disturb.
    return measure(lambda: None, device=FakeDevice(cost_s=cost_s), options=MeasureOptions.quick())


def test_the_readme_snippet_stores_two_function_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_snippet(), str(README), "exec"), {"__name__": "readme"})
    stored = read_result_objects(tmp_path / "as-bench-results")
    assert sorted(r.benchmark for r in stored) == ["add_words", "join_words"]
    printed = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in printed) == ["add_words", "join_words"]
    for result in stored:
        assert result.workload == "words"
        assert result.backend == "python"
        assert result.tags == {"source": "store.add"}
        assert result.batch_size == 1000
        assert result.throughput_items_per_s == pytest.approx(1000 / result.median_s)
        assert result.hardware["os"]  # the real probe of this machine
        assert result.git is None  # tmp_path is not a git checkout
        assert result.duration_s == pytest.approx(result.measurement.total_seconds, abs=1e-5)
        assert is_function_result(result)


def test_add_returns_what_it_stored_with_every_field_passed_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(__file__).parent)  # inside this repository's checkout
    store = ResultStore(tmp_path / "store")
    m = fake_measurement()
    result = store.add(
        m,
        name="parse/fast",
        workload="parse",
        batch_size=8,
        tags={"suite": "mine"},
        params={"rows": 8},
        run="0007",
        machine="lab-1",
        started_at=T0,
    )
    assert read_result_objects(store.root) == [result]
    assert (result.benchmark, result.workload, result.batch_size) == ("parse/fast", "parse", 8)
    assert (result.run, result.machine, result.params) == ("0007", "lab-1", {"rows": 8})
    assert result.tags == {"source": "store.add", "suite": "mine"}
    assert result.device == "cpu" and result.measurement == m
    assert result.started_at == T0
    assert result.finished_at == T0 + timedelta(seconds=m.total_seconds)
    assert result.throughput_items_per_s == pytest.approx(8 / m.latency.stats.median)
    here = git_info(Path(__file__))
    assert here is not None and result.git is not None
    assert result.git.commit == here.commit
    # finished_at alone: the start is that much earlier; a source tag of one's own wins.
    other = store.add(m, "parse/slow", finished_at=T0, tags={"source": "notebook"})
    assert other.workload == "parse/slow"
    assert other.started_at == T0 - timedelta(seconds=m.total_seconds)
    assert other.tags == {"source": "notebook"} and is_function_result(other)


def test_add_probes_the_machine_once_per_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = as_bench.probe.probe

    def counting(**kwargs: bool) -> as_bench.probe.HardwareInfo:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(as_bench.probe, "probe", counting)
    m = fake_measurement()
    store = ResultStore(tmp_path)
    first, second = store.add(m, name="a"), store.add(m, name="b")
    assert len(calls) == 1
    assert first.hardware == second.hardware == real().model_dump(mode="json")
    ResultStore(tmp_path).add(m, name="c")
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": ""}, ValueError, "non-empty name"),
        ({"name": "  "}, ValueError, "non-empty name"),
        ({"name": "x", "workload": ""}, ValueError, "non-empty workload"),
        ({"name": "x", "batch_size": 0}, ValueError, "batch_size must be a positive integer"),
        ({"name": "x", "batch_size": True}, ValueError, "batch_size must be a positive integer"),
        ({"name": "x", "run": "7"}, ValueError, r"ResultStore.add\('x'\): run: String should"),
        (
            {"name": "x", "started_at": T0, "finished_at": T0 - timedelta(seconds=1)},
            ValueError,
            "finished_at .* is before started_at",
        ),
    ],
)
def test_add_refuses_a_bad_argument_naming_it_and_writes_nothing(
    kwargs: dict[str, object], error: type[Exception], message: str, tmp_path: Path
) -> None:
    store = ResultStore(tmp_path)
    with pytest.raises(error, match=message):
        store.add(fake_measurement(), **kwargs)  # type: ignore[arg-type]
    assert store.paths() == []


def test_add_refuses_a_result_pointing_to_append(tmp_path: Path) -> None:
    result: BenchmarkResult = make_result("x", median_s=1e-3)
    with pytest.raises(TypeError, match=r"a Measurement; got BenchmarkResult \(store a result"):
        ResultStore(tmp_path).add(result, name="x")  # type: ignore[arg-type]
