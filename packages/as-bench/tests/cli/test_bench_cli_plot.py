"""``as-bench plot``: figures from a store, formats, the baseline comparison, exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

import as_bench
import as_logging
from as_bench import MeasureOptions
from as_bench.cli import main
from as_bench.results import BenchmarkResult, ResultStore


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    as_logging.reset()  # the CLI configures logging, as an application does; undo it


def measured(backend: str, batch: int, side: int) -> BenchmarkResult:
    x, w = np.ones((batch, side)), np.ones((side, side))
    started = datetime.now(UTC)
    m = as_bench.measure(np.dot, x, w, options=MeasureOptions.quick(max_time_s=0.1))
    return BenchmarkResult(
        benchmark=f"mlp/{backend}/cpu/bs{batch}",
        workload="mlp",
        backend=backend,
        device="cpu",
        batch_size=batch,
        measurement=m,
        throughput_items_per_s=batch / m.latency.stats.median,
        accuracy={"accuracy": 0.97 if backend == "torch" else 0.96},
        model_size_bytes=431_000 if backend == "torch" else 215_000,
        started_at=started,
        finished_at=datetime.now(UTC),
    )


def store_of(path: Path, sides: dict[str, int]) -> Path:
    store = ResultStore(path)
    for backend, side in sides.items():
        for batch in (1, 16):
            store.append(measured(backend, batch, side))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return store_of(tmp_path_factory.mktemp("results"), {"torch": 32, "onnxruntime": 16})


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    assert isinstance(code, int)
    return code


def test_plot_writes_every_figure_and_lists_the_files(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures"
    assert run(["plot", str(store), "-o", str(out), "-f", "png", "--format", "svg"]) == 0
    names = {"distributions", "throughput", "memory", "pareto"}
    assert {p.name for p in out.iterdir()} == {f"{n}.{f}" for n in names for f in ("png", "svg")}
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stdout = capsys.readouterr().out
    for name in names:
        assert f"{name}: {out / name}.png, {out / name}.svg" in stdout


def test_png_is_the_default_format(store: Path, tmp_path: Path) -> None:
    assert run(["plot", str(store), "-o", str(tmp_path)]) == 0
    assert {p.suffix for p in tmp_path.iterdir()} == {".png"}


def test_an_unknown_format_exits_two_with_one_line(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["plot", str(store), "-o", str(tmp_path / "out"), "-f", "gif"]) == 2
    err = capsys.readouterr().err
    assert "unknown figure format 'gif'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_empty_results_exit_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    ResultStore(empty)
    assert run(["plot", str(empty), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"no results in {empty}" in err.replace("\n", "")
    assert not (tmp_path / "out").exists()


def test_missing_results_exit_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plot", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.slow
def test_baseline_adds_the_comparison(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("as_bench.compare", reason="the comparison needs as_bench.compare")
    # The candidate: the same benchmarks, torch now on a larger matrix (slower).
    new = store_of(tmp_path / "new", {"torch": 96, "onnxruntime": 16})
    out = tmp_path / "figures"
    assert run(["plot", str(new), "-o", str(out), "--baseline", str(store), "-f", "pdf"]) == 0
    pdf = (out / "comparison.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert f"comparison: {out / 'comparison.pdf'}" in capsys.readouterr().out
