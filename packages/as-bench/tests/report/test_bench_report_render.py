"""``build_report`` and ``as-bench report``: the files, their images, escaping, the CLI.

The first tests use synthetic results (constructed samples, real statistics) to control
names and numbers, a hostile name included; the CLI tests report on results the real
runner measured on the ``mlp`` workload.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pytest

import as_logging
from as_bench.cli import main
from as_bench.measurement import Measurement, MemoryReport, TimingSeries, WarmupReport
from as_bench.report import ReportFiles, build_report
from as_bench.results import BenchmarkResult, OutputCheck, read_result_objects
from as_bench.stats import summarize
from as_core.fmt import format_seconds

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n"
HOSTILE = "<script>alert(1)</script>"
MD_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


class _Links(HTMLParser):
    """Every URL-bearing attribute and every ``<img>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.images: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1
        for name, value in attrs:
            if name in {"src", "href", "srcset", "action", "poster", "data"}:
                self.urls.append((tag, name, value or ""))
            if tag == "img" and name == "src":
                self.images.append(value or "")


def links(page: str) -> _Links:
    parser = _Links()
    parser.feed(page)
    return parser


def make(
    backend: str,
    center: float,
    *,
    batch: int = 1,
    workload: str = "mlp",
    benchmark: str | None = None,
    warnings: list[str] | None = None,
    hardware: dict[str, Any] | None = None,
) -> BenchmarkResult:
    values = center * (1 + 0.02 * np.linspace(-1.0, 1.0, 41))
    latency = np.random.default_rng(3).permutation(values).tolist()
    measurement = Measurement(
        device="cpu",
        latency=TimingSeries(
            label="wall clock", timer="perf_counter", samples_s=latency, stats=summarize(latency)
        ),
        cold_start_s=center * 4,
        warmup=WarmupReport(iterations=5, seconds=0.01, stable=True),
        inner_loops=1,
        converged=True,
        stop_reason="converged",
        total_seconds=1.0,
        memory=MemoryReport(host_peak_rss_bytes=400 * 2**20),
        warnings=warnings or [],
    )
    return BenchmarkResult(
        benchmark=benchmark or f"{workload}/{backend}/cpu/bs{batch}",
        workload=workload,
        backend=backend,
        device="cpu",
        batch_size=batch,
        measurement=measurement,
        throughput_items_per_s=batch / float(np.median(latency)),
        accuracy={"accuracy": 0.97},
        output_check=OutputCheck(
            reference_backend="torch",
            max_abs_error=1e-7,
            max_rel_error=1e-6,
            passed=True,
            tolerance=1e-4,
        ),
        model_size_bytes=340_000,
        hardware=hardware or {"cpu": {"model": "Test CPU"}, "apple_silicon": None},
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1),
    )


def check_files(files: ReportFiles) -> tuple[str, str]:
    """The checks every report must pass; returns (markdown, html)."""
    markdown = files.markdown.read_text(encoding="utf-8")
    page = files.html.read_text(encoding="utf-8")
    # The Markdown's images exist, relative to the .md file, inside the report's folder.
    referenced = [unquote(m) for m in MD_IMAGE.findall(markdown)]
    assert referenced, "the Markdown links no image"
    for ref in referenced:
        assert not ref.startswith(("/", "http:", "https:", "data:")) and ".." not in ref
        assert (files.markdown.parent / ref).read_bytes().startswith(PNG), ref
    assert sorted(files.markdown.parent / ref for ref in referenced) == sorted(files.images)
    # The HTML stands alone: no external URL anywhere, every image an embedded PNG.
    found = links(page)
    assert not re.search(r"(?i)(src|href)\s*=\s*[\"']?\s*(https?:)?//", page)
    assert "http://" not in page and "https://" not in page
    for _tag, _name, url in found.urls:
        assert url.startswith(("data:image/png;base64,", "#")), url
    assert len(found.images) == len(referenced)
    for src in found.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG)
    assert found.scripts == 0
    return markdown, page


def test_markdown_and_html_are_written_with_their_images(tmp_path: Path) -> None:
    results = [
        make("torch", 2e-3),
        make("onnxruntime", 1e-3),
        make("torch", 9e-3, batch=16),
        make("onnxruntime", 5e-3, batch=16),
    ]
    files = build_report(results, tmp_path / "report", title="Nightly")
    assert files.markdown == tmp_path / "report" / "report.md"
    assert files.html == tmp_path / "report" / "report.html"
    markdown, page = check_files(files)
    assert {p.name for p in files.images} >= {"distributions.png", "throughput.png"}
    for text in (markdown, page):
        for heading in (
            "Nightly",
            "Recommendation",
            "Environment",
            "Noise warnings",
            "Results by workload",
            "Apple Silicon insights",
            "Figures",
        ):
            assert heading in text
        assert "use onnxruntime on cpu: median latency 1 ms" in text
        assert "Comparison with the baseline" not in text
    assert "- **Batch 16 (highest throughput of the workload):** use onnxruntime" in markdown


def test_a_hostile_name_is_escaped_everywhere(tmp_path: Path) -> None:
    warning = f"noisy {HOSTILE} [click](javascript:alert(1)) | cell"
    results = [
        make("torch", 1e-3, workload=HOSTILE, benchmark=HOSTILE, warnings=[warning]),
        make(
            "onnxruntime",
            2e-3,
            workload=HOSTILE,
            hardware={"cpu": {"model": HOSTILE}, "libraries": {"torch": HOSTILE}},
        ),
    ]
    files = build_report(results, tmp_path)
    markdown, page = check_files(files)
    for text in (markdown, page):
        assert "<script" not in text.lower()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "[click](" not in markdown  # no link can be formed from data
    # A hardware record that is not a HardwareInfo is shown as stored, escaped.
    assert "it is shown as stored" in markdown
    assert "| cpu.model | &lt;script&gt;" in markdown
    # Two hardware records: the report says so and names each row's machine.
    assert "these results come from 2 different machines" in markdown
    assert markdown.count(" notes | machine |") == 1
    assert "\\[click\\]" in markdown and "\\| cell" in markdown


def test_a_baseline_adds_the_comparison_table_and_figure(tmp_path: Path) -> None:
    base = [make("torch", 1e-3), make("onnxruntime", 1e-3)]
    new = [make("torch", 1.5e-3), make("onnxruntime", 1e-3)]
    files = build_report(new, tmp_path, baseline=base)
    markdown, page = check_files(files)
    assert "comparison.png" in {p.name for p in files.images}
    for text in (markdown, page):
        assert "Comparison with the baseline" in text
        assert "geometric mean of the median ratios" in text
        assert "regression" in text
    row = next(line for line in markdown.splitlines() if line.startswith("| mlp/torch/cpu/bs1"))
    assert "1.500" in row


def test_an_empty_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one result"):
        build_report([], tmp_path)


# --- the command line, on real results ------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Results the real runner measured: mlp on torch and ONNX Runtime, batch 1 and 8."""
    pytest.importorskip("torch", reason="the mlp workload needs the torch extra")
    pytest.importorskip("onnxruntime", reason="these runs compare torch with onnxruntime")
    path = tmp_path_factory.mktemp("report-store")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper().startswith("AS_BENCH__"):
                patch.delenv(name)
        patch.setenv("AS_BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "as-bench-cache"))
        patch.setenv("AS_BENCH__MEASURE__MIN_SAMPLES", "3")
        code = run_cli(
            ["run", "-w", "mlp", "-b", "torch", "-b", "onnxruntime", "-B", "1", "-B", "8",
             "--max-time", "0.05", "-o", str(path)]
        )  # fmt: skip
        assert code == 0
        yield path


def run_cli(argv: list[str]) -> int:
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
    finally:
        as_logging.reset()  # the CLI configures logging, as an application does; undo it
    code = exit_info.value.code
    return code if isinstance(code, int) else 1


def test_cli_reports_real_results(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert run_cli(["report", str(store), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out / "report.md") in printed and str(out / "report.html") in printed
    files = ReportFiles(
        markdown=out / "report.md",
        html=out / "report.html",
        images=sorted((out / "images").glob("*.png")),
    )
    markdown, page = check_files(files)
    results = read_result_objects(store)
    assert len(results) == 4
    for result in results:
        # Each result has its row: its median latency with the CI, as the tables print it.
        stats = result.measurement.latency.stats
        assert f"{format_seconds(stats.median)} ({format_seconds(stats.ci_low)} to" in page
    assert "### mlp" in markdown
    assert markdown.count("- **Batch ") == 2  # batch 1 and batch 8
    hardware_cpu = results[0].hardware["cpu"]["model"]
    assert f"these results come from {hardware_cpu}" in markdown


def test_cli_with_a_baseline(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert run_cli(["report", str(store), "-o", str(out), "--baseline", str(store)]) == 0
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "## Comparison with the baseline" in markdown
    assert "4 benchmark(s) found in both" in markdown
    assert (out / "images" / "comparison.png").is_file()


def test_cli_without_results_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(["report", str(empty), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no results in" in err and "as-bench run" in err
    assert not (tmp_path / "out").exists()
