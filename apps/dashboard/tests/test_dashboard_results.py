"""Opening result stores and exports, filtering, and comparing runs as `as-bench compare`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from as_bench.exceptions import ThresholdError
from as_bench.results import ResultStore
from as_dashboard.results import (
    SourceError,
    compare_runs,
    draw_comparison,
    draw_figures,
    filter_frame,
    gate_verdict,
    item_verdict,
    merge_results,
    open_source,
    results_table,
    run_choices,
    thresholds_of,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_places_that_are_not_results_are_refused_with_what_and_where(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"missing: no such file or folder"):
        open_source(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not results")
    with pytest.raises(SourceError, match=r"empty: not an as-bench result store"):
        open_source(empty)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"name": "not a result"}')
    with pytest.raises(SourceError, match=r"none of its 1 result file\(s\) could be read"):
        open_source(foreign)
    text = tmp_path / "table.txt"
    text.write_text("a,b\n")
    with pytest.raises(SourceError, match=r"table.txt: not an as-bench result store or export"):
        open_source(text)
    with pytest.raises(SourceError, match="no path given"):
        open_source("  ")


def test_a_corrupt_file_is_named_and_the_other_results_still_load(
    stores: Any, tmp_path: Path
) -> None:
    copy = tmp_path / "store"
    shutil.copytree(stores.base, copy)
    good = sorted(copy.glob("*.json"))
    broken = copy / "20990101T000000000000Z-broken.json"
    broken.write_text(good[0].read_text()[:200])  # a truncated result file
    opened = open_source(copy)
    assert opened.kind == "store"
    assert len(opened.results) == len(good)
    assert len(opened.problems) == 1 and broken.name in opened.problems[0]


def test_exports_open_like_the_store(stores: Any, tmp_path: Path) -> None:
    store = open_source(stores.base)
    names = sorted(r.benchmark for r in store.results)
    assert len(names) == 4  # mlp and the chain workload at batch sizes 1 and 8
    for suffix in ("json", "csv", "parquet"):
        path = ResultStore(stores.base, create=False).export(tmp_path / f"results.{suffix}")
        opened = open_source(path)
        assert opened.kind == suffix
        assert sorted(r.benchmark for r in opened.results) == names
    (tmp_path / "bad.json").write_text("[{]")
    with pytest.raises(SourceError, match=r"bad\.json"):
        open_source(tmp_path / "bad.json")


def test_the_table_filters_by_backend_and_batch_size(stores: Any) -> None:
    results = merge_results([open_source(stores.base), open_source(stores.slow)])
    table = results_table(results)
    assert table.height == 6
    assert {"benchmark", "median_s", "run", "machine"} <= set(table.columns)
    only = filter_frame(table, {"workload": ["mlp"], "batch_size": [8], "device": []})
    assert only["benchmark"].to_list() == ["mlp/torch/cpu/bs8"]
    assert filter_frame(table, {"backend": []}).height == 6


def test_thresholds_parse_as_the_cli_does_and_refuse_what_it_refuses() -> None:
    assert thresholds_of("") is None
    gates = thresholds_of("median:5%, p95:10%")
    assert gates is not None and len(gates.default) == 2
    with pytest.raises(ThresholdError):
        thresholds_of("median:lots")


def cli_compare(h: Any, base: Path, new: Path) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [
            *h.script("as-bench", "as_bench"),
            *("compare", str(base), str(new), "--fail-on", "median:5%", "--json"),
        ],
        capture_output=True,
        text=True,
        env=h.clean_env(),
        timeout=300,
    )
    return done.returncode, json.loads(done.stdout)


def test_the_comparison_gives_the_verdicts_of_as_bench_compare(stores: Any, h: Any) -> None:
    sources = [open_source(stores.base), open_source(stores.slow)]
    choices = run_choices(sources)
    assert [c.source for c in choices] == [stores.base, stores.slow]
    by_path = {s.path: s for s in sources}
    comparison = compare_runs(
        choices[0], choices[1], by_path, thresholds=thresholds_of("median:5%")
    )
    code, cli = cli_compare(h, stores.base, stores.slow)
    assert code == 1, cli  # the CLI's gate failed: a significant regression
    by_name = {item["benchmark"]: item for item in cli["items"]}
    assert sorted(by_name) == sorted(i.benchmark for i in comparison.items)
    assert sorted(cli["only_in_base"]) == comparison.only_in_base
    for item in comparison.items:
        theirs = by_name[item.benchmark]
        assert (item.failed, item.inconclusive) == (theirs["failed"], theirs["inconclusive"])
        assert item.reasons == theirs["reasons"]
        assert item.change == theirs["change"]
    # Twenty times the layers at batch size 1 (the sharpest contrast on a busy machine).
    assert item_verdict(comparison, "chain_workload:make/torch/cpu/bs1") == "FAIL"
    verdict = gate_verdict(comparison, gated=True)
    assert verdict.outcome == "failed"
    assert any(line.startswith("REGRESSION chain_workload:make/") for line in verdict.lines)
    # The same run on both sides: nothing moved, the gate passes (the CLI exits 0).
    same = compare_runs(choices[0], choices[0], by_path, thresholds=thresholds_of("median:5%"))
    assert gate_verdict(same, gated=True).outcome == "passed"
    assert cli_compare(h, stores.base, stores.base)[0] == 0
    assert gate_verdict(same, gated=False).outcome == "not gated"


def test_the_figures_are_as_benchs_drawn_once_per_set_of_results(
    stores: Any, tmp_path: Path
) -> None:
    results = open_source(stores.base).results
    figures = draw_figures(results, tmp_path)
    assert set(figures) == {"distributions", "throughput", "memory", "pareto"}
    for path in figures.values():
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 5_000
    stamps = {name: path.stat().st_mtime_ns for name, path in figures.items()}
    again = draw_figures(results, tmp_path)
    assert {name: path.stat().st_mtime_ns for name, path in again.items()} == stamps
    sources = [open_source(stores.base), open_source(stores.slow)]
    choices = run_choices(sources)
    comparison = compare_runs(choices[0], choices[1], {s.path: s for s in sources}, thresholds=None)
    assert draw_comparison(comparison, tmp_path).read_bytes().startswith(PNG)
