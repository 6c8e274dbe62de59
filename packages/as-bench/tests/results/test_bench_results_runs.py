"""Runs: numbered per machine in a store, listed, and picked by number or as the latest."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from as_bench.cli import main
from as_bench.compare import load_side, read_side
from as_bench.exceptions import ResultStoreError
from as_bench.results import BenchmarkResult, ResultStore, machine_id, select_run
from as_bench.testing import lognormal_samples, make_result

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _result(name: str, run: str | None, machine: str = "m1", minutes: int = 0) -> BenchmarkResult:
    result = make_result(name, lognormal_samples(1e-3), started_at=T0 + timedelta(minutes=minutes))
    return result.model_copy(update={"run": run, "machine": machine if run else None})


def test_machine_id_names_what_makes_numbers_comparable() -> None:
    ident = machine_id()
    assert ident == ident.lower() and " " not in ident
    assert ident.count("-") >= 2  # os-arch-python


def test_run_numbers_are_claimed_once_each_even_at_once(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "s")
    claimed: list[str] = []
    lock = threading.Lock()

    def claim() -> None:
        number, _ = store.new_run("m1")
        with lock:
            claimed.append(number)

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == [f"{n:04d}" for n in range(1, 17)]
    # Numbered per machine; the claims live in a hidden folder no reader lists.
    assert store.new_run("m2") == ("0001", "m2")
    assert store.paths() == []


def test_the_latest_run_is_picked_and_a_named_one_on_request(tmp_path: Path) -> None:
    results = [
        _result("a", "0001", minutes=0),
        _result("b", "0001", minutes=1),
        _result("a", "0002", minutes=10),
        _result("a", "0001", machine="m2", minutes=20),
    ]
    picked, run = select_run(results)
    assert run is not None and (run.run, run.machine) == ("0001", "m2")
    picked, run = select_run(results, machine="m1")
    assert run is not None and run.run == "0002" and [r.benchmark for r in picked] == ["a"]
    picked, run = select_run(results, "1", machine="m1")
    assert run is not None and sorted(r.benchmark for r in picked) == ["a", "b"]
    with pytest.raises(ResultStoreError, match=r"no run 0007; the latest runs: 0001 \(m1\)"):
        select_run(results, "7")
    with pytest.raises(ResultStoreError, match="is not a run number"):
        select_run(results, "last")


def test_results_without_runs_are_read_whole(tmp_path: Path) -> None:
    old = [_result("a", None), _result("b", None, minutes=1)]
    picked, run = select_run(old)
    assert run is None and len(picked) == 2
    with pytest.raises(ResultStoreError, match="no numbered runs"):
        select_run(old, "0001")


def _store_with_two_runs(root: Path) -> ResultStore:
    store = ResultStore(root)
    for run, median in (("0001", 1e-3), ("0002", 1.3e-3)):
        for name in ("f", "g"):
            result = make_result(name, lognormal_samples(median, seed=int(run)))
            store.append(result.model_copy(update={"run": run, "machine": "m1"}))
    return store


def test_a_side_is_the_latest_run_or_the_one_named(tmp_path: Path) -> None:
    store = _store_with_two_runs(tmp_path / "s")
    side = read_side(store.root)
    assert side.run is not None and side.run.run == "0002" and side.runs == 2
    assert side.describe().startswith(f"{store.root} run 0002 (m1, ")
    assert side.describe().endswith(" of 2 runs")
    first = load_side(f"{store.root}@0001")
    assert {r.run for r in first} == {"0001"} and len(first) == 2
    with pytest.raises(ResultStoreError, match="no run 0009"):
        load_side(f"{store.root}@9")


def test_as_bench_list_and_compare_by_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store_with_two_runs(tmp_path / "s")
    with pytest.raises(SystemExit) as done:
        main(["list", str(store.root), "--json"])
    assert done.value.code == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(r["run"], r["machine"], r["results"]) for r in listing["runs"]] == [
        ("0001", "m1", 2),
        ("0002", "m1", 2),
    ]
    with pytest.raises(SystemExit) as done:
        main(["list", str(store.root)])
    out = capsys.readouterr().out
    assert "0001" in out and "0002" in out and "as-bench runs" in out
    argv = ["compare", f"{store.root}@1", f"{store.root}@2", "--fail-on", "median:5%"]
    with pytest.raises(SystemExit) as done:
        main(argv)
    out = capsys.readouterr().out
    assert done.value.code == 1, out
    assert f"base: {store.root} run 0001 (m1, " in out
    assert f"new:  {store.root} run 0002 (m1, " in out


def test_as_bench_list_of_a_missing_folder_fails_plainly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["list", str(tmp_path / "nope")])
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert "no result store at" in err and "hint:" in err
