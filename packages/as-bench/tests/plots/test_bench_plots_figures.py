"""as_bench.plots: every figure in every format, colours, the Pareto front, atomic writes."""

from __future__ import annotations

import importlib.util
import math
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.colors import to_rgb
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

import as_bench
import as_bench.plots
from as_bench import MeasureOptions
from as_bench.measurement import MemoryReport
from as_bench.plots import (
    FORMATS,
    backend_color,
    pareto_front,
    plot_comparison,
    plot_distributions,
    plot_memory,
    plot_pareto,
    plot_throughput,
    render_all,
)
from as_bench.plots._comparison import build_comparison
from as_bench.plots._data import result_label, sort_key
from as_bench.plots._distributions import build_distributions
from as_bench.plots._memory import build_memory
from as_bench.plots._pareto import build_pareto
from as_bench.plots._throughput import build_throughput
from as_bench.results import BenchmarkResult

# MLX (the mlx extra; CPU-only on Linux) gives a second real device with its own memory
# report; without it the figures are drawn from the CPU results alone.
HAVE_MLX = importlib.util.find_spec("mlx") is not None

# (backend, device, matrix side, accuracy, model size): sides differ so latencies differ.
SETUPS = [
    ("torch", "cpu", 48, 0.97, 431_000),
    ("onnxruntime", "cpu", 24, 0.97, 215_000),
    *([("mlx", "mlx", 32, 0.95, 430_000)] if HAVE_MLX else []),
]
WORKLOADS = ("mlp", "digits-cnn")
BATCHES = (1, 32)


def _measure(device: str, side: int, batch: int) -> as_bench.Measurement:
    options = MeasureOptions.quick(max_time_s=0.1)
    if device == "mlx":
        import mlx.core as mx

        x = mx.ones((batch, side))
        w = mx.ones((side, side))
        return as_bench.measure(lambda: x @ w, device="mlx", options=options)
    xn = np.ones((batch, side))
    wn = np.ones((side, side))
    return as_bench.measure(np.dot, xn, wn, options=options)


def measured_result(
    workload: str,
    backend: str,
    device: str,
    batch: int,
    *,
    side: int = 32,
    accuracy: float | None = 0.97,
    size: int | None = 400_000,
) -> BenchmarkResult:
    started = datetime.now(UTC)
    m = _measure(device, side, batch)
    return BenchmarkResult(
        benchmark=f"{workload}/{backend}/{device}/bs{batch}",
        workload=workload,
        backend=backend,
        device=device,
        batch_size=batch,
        measurement=m,
        throughput_items_per_s=batch / m.latency.stats.median,
        accuracy=None if accuracy is None else {"accuracy": accuracy},
        model_size_bytes=size,
        started_at=started,
        finished_at=datetime.now(UTC),
    )


@pytest.fixture(scope="module")
def results() -> list[BenchmarkResult]:
    out = []
    for workload in WORKLOADS:
        for backend, device, side, accuracy, size in SETUPS:
            for batch in BATCHES:
                out.append(
                    measured_result(
                        workload, backend, device, batch, side=side, accuracy=accuracy, size=size
                    )
                )
    return out


@dataclass(frozen=True)
class Row:
    benchmark: str
    ratio: float
    ratio_ci_low: float
    ratio_ci_high: float
    failed: bool
    change: str


ROWS = [
    Row("mlp/torch/cpu/bs1", 1.20, 1.10, 1.35, True, "regression"),
    Row("mlp/onnxruntime/cpu/bs1", 0.80, 0.70, 0.85, False, "improvement"),
    Row("mlp/mlx/mlx/bs1", 1.01, 0.97, 1.04, False, "unchanged"),
    Row("mlp/mlx/mlx/bs32", math.nan, math.nan, math.nan, False, "unchanged"),
]


# ---- file checks -------------------------------------------------------------------------


def check_png(path: Path) -> tuple[int, int]:
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5_000
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (height, width)
    assert width > 300 and height > 200
    return width, height


def check_svg(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(list(root.iter())) > 50


def check_pdf(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    assert len(data) > 2_000


CHECKS = {"png": check_png, "svg": check_svg, "pdf": check_pdf}


def texts(fig: Figure) -> str:
    # Any: the filter keeps artists with a get_text, which matplotlib cannot type.
    with_text: list[Any] = fig.findobj(lambda a: hasattr(a, "get_text"))
    found = [t.get_text() for t in with_text]
    return "\n".join(str(t) for t in found)


# ---- render_all and the files ------------------------------------------------------------


@pytest.mark.slow
def test_render_all_writes_every_figure_in_every_format(
    results: list[BenchmarkResult], tmp_path: Path
) -> None:
    out = tmp_path / "figures" / "nested"
    written = render_all(results, out, formats=FORMATS, comparison=ROWS)
    assert list(written) == ["distributions", "throughput", "memory", "pareto", "comparison"]
    for name, paths in written.items():
        assert paths == [out / f"{name}.{fmt}" for fmt in FORMATS]
        for path in paths:
            CHECKS[path.suffix[1:]](path)
    # Nothing else in the folder: no temporary files left behind.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{name}.{fmt}" for name in written for fmt in FORMATS
    )


def test_render_all_skips_figures_without_data(
    results: list[BenchmarkResult], tmp_path: Path
) -> None:
    bare = [
        r.model_copy(
            update={
                "accuracy": None,
                "measurement": r.measurement.model_copy(update={"memory": MemoryReport()}),
            }
        )
        for r in results[:3]
    ]
    written = render_all(bare, tmp_path)
    assert list(written) == ["distributions", "throughput"]
    assert written["distributions"] == [tmp_path / "distributions.png"]
    assert render_all([], tmp_path / "empty") == {}
    assert (tmp_path / "empty").is_dir()


@pytest.mark.parametrize(
    ("plot", "fmt"),
    # render_all covers every figure in every format; here each function once, formats mixed.
    [
        (plot_distributions, "svg"),
        (plot_throughput, "pdf"),
        (plot_memory, "png"),
        (plot_pareto, "pdf"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_each_plot_function_writes_its_format(
    plot: Any, fmt: str, results: list[BenchmarkResult], tmp_path: Path
) -> None:
    path = tmp_path / f"figure.{fmt}"
    assert plot(results, path) == path
    CHECKS[fmt](path)


def test_plot_comparison_writes_a_figure(tmp_path: Path) -> None:
    check_png(plot_comparison(ROWS, tmp_path / "comparison.png"))
    with pytest.raises(ValueError, match="no comparison rows"):
        plot_comparison([], tmp_path / "none.png")


def test_unknown_format_is_refused_before_anything_is_written(
    results: list[BenchmarkResult], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"unknown figure format 'gif'.*png, svg, pdf"):
        render_all(results, tmp_path / "out", formats=["png", "gif"])
    with pytest.raises(ValueError, match=r"\.jpg"):
        plot_memory(results, tmp_path / "memory.jpg")
    with pytest.raises(ValueError, match="no figure format"):
        render_all(results, tmp_path / "out", formats=[])
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []
    # Case and a leading dot are forgiven.
    assert render_all(results[:2], tmp_path / "ok", formats=[".SVG"])["throughput"] == [
        tmp_path / "ok" / "throughput.svg"
    ]


def test_empty_results_are_an_error(tmp_path: Path) -> None:
    for plot in (plot_distributions, plot_throughput, plot_memory, plot_pareto):
        with pytest.raises(ValueError, match="no results"):
            plot([], tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_leaves_the_old_file_and_no_temporary(
    results: list[BenchmarkResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "throughput.png"
    plot_throughput(results, path)
    before = path.read_bytes()

    def broken(self: Figure, fname: Any, **kwargs: Any) -> None:
        fname.write(b"\x89PNG half a figure")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        plot_throughput(results, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["throughput.png"]


def test_svg_output_is_reproducible(results: list[BenchmarkResult], tmp_path: Path) -> None:
    first = plot_pareto(results, tmp_path / "a.svg").read_bytes()
    second = plot_pareto(results, tmp_path / "b.svg").read_bytes()
    assert first == second


def test_no_pyplot_state_leaks(results: list[BenchmarkResult], tmp_path: Path) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    font_size = matplotlib.rcParams["font.size"]
    render_all(results[:4], tmp_path, formats=["png"], comparison=ROWS)
    assert plt.get_fignums() == []
    # The style applies while drawing only: the user's settings are back afterwards.
    assert matplotlib.rcParams["font.size"] == font_size


def test_importing_plots_and_cli_imports_no_heavy_library() -> None:
    code = (
        "import sys, as_bench, as_bench.cli, as_bench.plots\n"
        "heavy = [m for m in ('matplotlib', 'polars', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_public_names() -> None:
    assert sorted(as_bench.plots.__all__) == sorted(
        [
            "FORMATS",
            "ComparisonRow",
            "TradeoffPoint",
            "backend_color",
            "pareto_front",
            "plot_comparison",
            "plot_distributions",
            "plot_memory",
            "plot_pareto",
            "plot_throughput",
            "plot_tradeoff",
            "render_all",
        ]
    )
    for name in as_bench.plots.__all__:
        assert getattr(as_bench.plots, name) is not None
    assert FORMATS == ("png", "svg", "pdf")


# ---- what the figures show ---------------------------------------------------------------


def test_comparison_colours_widths_and_ci(results: list[BenchmarkResult]) -> None:
    fig = build_comparison(ROWS)
    (ax,) = fig.axes
    bars = {
        p.get_label(): cast(Rectangle, p)  # barh draws Rectangles
        for p in ax.patches
        if p.get_label() in {r.benchmark for r in ROWS}
    }
    red, green, grey = to_rgb("#C0392B"), to_rgb("#1E8449"), to_rgb("#95A5A6")
    assert to_rgb(bars["mlp/torch/cpu/bs1"].get_facecolor()) == red
    assert to_rgb(bars["mlp/onnxruntime/cpu/bs1"].get_facecolor()) == green
    assert to_rgb(bars["mlp/mlx/mlx/bs1"].get_facecolor()) == grey
    assert bars["mlp/torch/cpu/bs1"].get_width() == pytest.approx(20.0)
    assert bars["mlp/onnxruntime/cpu/bs1"].get_width() == pytest.approx(-20.0)
    assert bars["mlp/mlx/mlx/bs32"].get_width() == 0.0  # no ratio: no bar, "n/a"
    # Worst regression on top.
    labels = [t.get_text() for t in ax.get_yticklabels()]
    positions = list(ax.get_yticks())
    assert labels[positions.index(max(positions))] == "mlp/torch/cpu/bs1  [FAILED]"
    failed = [t for t in ax.get_yticklabels() if "[FAILED]" in t.get_text()]
    assert len(failed) == 1 and failed[0].get_fontweight() == "bold"
    # Asymmetric CI: the error bar of the regression spans +10% .. +35%.
    y = bars["mlp/torch/cpu/bs1"].get_y() + bars["mlp/torch/cpu/bs1"].get_height() / 2
    errorbars = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    segments = errorbars.lines[2][0].get_segments()
    spans = {round(float(s[0][1]), 6): (s[0][0], s[1][0]) for s in segments}
    assert spans[round(y, 6)] == pytest.approx((10.0, 35.0))
    # A line at zero change.
    assert any(list(np.asarray(line.get_xdata())) == [0.0, 0.0] for line in ax.get_lines())
    assert "n/a" in texts(fig)


def test_a_backend_has_one_colour_in_every_figure(results: list[BenchmarkResult]) -> None:
    throughput = build_throughput(results)
    lines = {
        str(line.get_label()).split("/")[0]: to_rgb(line.get_color())
        for line in throughput.axes[0].get_lines()
    }
    pareto = build_pareto(results)
    points = {
        str(c.get_label()).split("/")[0]: to_rgb(tuple(np.asarray(c.get_facecolor())[0][:3]))
        for c in pareto.axes[0].collections
    }
    dist = build_distributions(results)
    ax = dist.axes[0]
    boxes = {
        tick.get_text().split("\n")[0]: to_rgb(tuple(np.asarray(patch.get_facecolor())[:3]))
        for tick, patch in zip(ax.get_xticklabels(), ax.patches, strict=False)
    }
    for backend, _, _, _, _ in SETUPS:
        assert lines[backend] == points[backend] == boxes[backend] == to_rgb(backend_color(backend))
    assert len({lines[b] for b, *_ in SETUPS}) == len(SETUPS)
    # A backend the style does not know gets a colour from its name, the same every time.
    assert backend_color("my-backend") == backend_color("my-backend")
    assert backend_color("torch") != backend_color("onnxruntime")


def test_axis_labels_say_the_unit_and_which_way_is_better(
    results: list[BenchmarkResult],
) -> None:
    dist = build_distributions(results).axes[0]
    assert "lower is better" in dist.get_ylabel()
    assert any(unit in dist.get_ylabel() for unit in ("(s", "(ms", "(µs", "(ns"))
    thr = build_throughput(results).axes[0]
    assert "items/s" in thr.get_ylabel() and "higher is better" in thr.get_ylabel()
    assert thr.get_xlabel().startswith("batch size")
    mem = build_memory(results).axes[0]
    assert "lower is better" in mem.get_ylabel() and "iB" in mem.get_ylabel()
    par = build_pareto(results).axes[0]
    assert "lower is better" in par.get_xlabel() and par.get_xscale() == "log"
    assert par.get_ylabel() == "accuracy (higher is better)"


def test_distributions_panel_per_workload_and_log_scale_for_wide_ranges() -> None:
    fast = measured_result("wide", "torch", "cpu", 1, side=4)
    slow = measured_result("wide", "onnxruntime", "cpu", 256, side=256)
    narrow = [measured_result("narrow", "torch", "cpu", 8, side=64)]
    fig = build_distributions([fast, slow, *narrow])
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert [t.split(":")[0] for t in titles] == ["narrow", "wide"]
    narrow_ax, wide_ax = fig.axes[:2]
    assert slow.median_s / fast.median_s > 20
    assert wide_ax.get_yscale() == "log" and "log scale" in wide_ax.get_ylabel()
    samples = narrow[0].samples_s
    expect_log = max(samples) / min(samples) > 20
    assert (narrow_ax.get_yscale() == "log") == expect_log
    assert [t.get_text() for t in wide_ax.get_xticklabels()] == [
        "onnxruntime\ncpu bs256",
        "torch\ncpu bs1",
    ]


def test_device_time_series_are_marked(results: list[BenchmarkResult]) -> None:
    base = results[0]
    latency = base.measurement.latency
    # The same measured samples standing in for a CUDA event series: only the label matters.
    device_time = latency.model_copy(
        update={"label": "device time (CUDA events)", "timer": "cuda_events"}
    )
    cuda = base.model_copy(
        update={
            "device": "cuda:0",
            "benchmark": "mlp/torch/cuda:0/bs1",
            "measurement": base.measurement.model_copy(update={"device_time": device_time}),
        }
    )
    ax = build_distributions([base, cuda]).axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["torch\ncpu bs1", "torch\ncuda:0 bs1\n(device time)"]


def test_throughput_lines_per_backend_and_device_against_batch(
    results: list[BenchmarkResult],
) -> None:
    ax = build_throughput(results).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {f"{backend}/{device}" for backend, device, *_ in SETUPS}
    assert list(np.asarray(lines["torch/cpu"].get_xdata())) == [1, 32]
    if HAVE_MLX:  # another device kind, another marker
        assert lines["torch/cpu"].get_marker() != lines["mlx/mlx"].get_marker()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "32"]


def test_memory_bars_and_missing_memory(results: list[BenchmarkResult], tmp_path: Path) -> None:
    fig = build_memory(results)
    ax = fig.axes[0]
    host = [r.measurement.memory.host_peak_rss_bytes for r in results if r.workload == "digits-cnn"]
    assert all(h is not None for h in host)
    # Host bars, plus device bars where a device reports its peak (MLX does).
    assert len(ax.patches) == (2 if HAVE_MLX else 1) * len(host)
    assert ("device peak allocated" in texts(fig)) == HAVE_MLX
    empty = [
        r.model_copy(
            update={"measurement": r.measurement.model_copy(update={"memory": MemoryReport()})}
        )
        for r in results
    ]
    assert "No peak memory was recorded" in texts(build_memory(empty))
    check_png(plot_memory(empty, tmp_path / "memory.png"))


def test_pareto_leaves_out_results_without_accuracy(results: list[BenchmarkResult]) -> None:
    mlp = [r for r in results if r.workload == "mlp"]
    unscored = mlp[0].model_copy(update={"accuracy": None})
    fig = build_pareto([unscored, *mlp[1:]])
    ax = fig.axes[0]
    assert len(ax.collections) == len(mlp) - 1
    assert f"left out, no accuracy: {mlp[0].backend}/{mlp[0].device} bs1" in texts(fig)
    # Every point is annotated with its backend and device.
    annotated = {t.get_text() for t in ax.texts}
    assert {f"{r.backend}/{r.device} bs{r.batch_size}" for r in mlp[1:]} <= annotated
    # The front is drawn through the Pareto-optimal points.
    front = next(line for line in ax.get_lines() if line.get_label() == "Pareto front")
    assert len(np.asarray(front.get_xdata())) >= 1


def test_pareto_with_an_error_metric_and_unknown_sizes(results: list[BenchmarkResult]) -> None:
    mlp = sorted((r for r in results if r.workload == "mlp"), key=sort_key)
    scored = [
        r.model_copy(update={"accuracy": {"mse": 0.01 * (i % 3 + 1)}, "model_size_bytes": None})
        for i, r in enumerate(mlp)
    ]
    fig = build_pareto(scored)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "mse (lower is better)"
    front = pareto_front(
        [(r.median_s, r.accuracy["mse"]) for r in scored if r.accuracy], maximize_y=False
    )
    bold = {t.get_text() for t in ax.texts if t.get_fontweight() == "bold"}
    assert bold == {result_label(scored[i]) for i in front}
    assert "model sizes unknown" in texts(fig)


# ---- the Pareto front --------------------------------------------------------------------


def test_pareto_front_on_a_small_table() -> None:
    points = [
        (1.0, 0.90),  # 0: on the front
        (2.0, 0.95),  # 1: on the front
        (3.0, 0.94),  # 2: slower and worse than 1
        (0.5, 0.50),  # 3: fastest
        (2.0, 0.95),  # 4: same as 1: neither dominates the other
        (2.5, 0.95),  # 5: as good as 1 but slower
        (math.nan, 1.0),  # 6: never on the front
        (1.0, 0.80),  # 7: as fast as 0 but worse
    ]
    assert pareto_front(points) == [3, 0, 1, 4]
    # Lower is better on y too (an error metric): the fastest point with the least error.
    errors = [(1.0, 0.10), (2.0, 0.05), (3.0, 0.20), (0.5, 0.30)]
    assert pareto_front(errors, maximize_y=False) == [3, 0, 1]
    assert pareto_front([]) == []


@given(
    st.lists(
        st.tuples(st.floats(0.001, 100, allow_nan=False), st.floats(0, 1, allow_nan=False)),
        max_size=25,
    )
)
def test_pareto_front_properties(points: list[tuple[float, float]]) -> None:
    front = pareto_front(points)

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[0] and a[1] >= b[1] and a != b

    for i in front:
        assert not any(dominates(p, points[i]) for p in points)
    for i in set(range(len(points))) - set(front):
        assert any(dominates(points[j], points[i]) for j in front)
    assert [points[i][0] for i in front] == sorted(points[i][0] for i in front)
