"""One look for every as-bench figure: colours, markers, fonts, grids, units and labels.

A backend keeps its colour in every figure (a fixed table for the built-in backends, a
stable hash of the name for others), and a device kind keeps its marker, hatch and line
style, so that a reader who learnt "blue is ONNX Runtime" in one figure can trust it in
the next. Axis labels carry the unit and whether lower or higher is better.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

__all__ = [
    "CHANGE_COLORS",
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "backend_color",
    "backend_handles",
    "device_handles",
    "device_hatch",
    "device_kind",
    "device_linestyle",
    "device_marker",
    "figure_with_panels",
    "note",
    "scale_bytes",
    "scale_seconds",
    "style_context",
]

LOWER_IS_BETTER: Final = "lower is better"
HIGHER_IS_BETTER: Final = "higher is better"

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies) for the
# built-in backends; red and green stay free for regressions and improvements.
_BACKEND_COLORS: Final[dict[str, str]] = {
    "torch": "#D55E00",
    "torch-compile": "#E69F00",
    "onnxruntime": "#0072B2",
    "tflite": "#009E73",
    "coreml": "#56B4E9",
    "mlx": "#CC79A7",
}
# Other backends (user-defined ones) hash into these, so a name's colour never depends on
# which other backends happen to be in the figure.
_EXTRA_COLORS: Final = (
    "#8C564B",
    "#7F7F7F",
    "#BCBD22",
    "#17BECF",
    "#9467BD",
    "#393B79",
    "#843C39",
    "#637939",
)

CHANGE_COLORS: Final[dict[str, str]] = {
    "regression": "#C0392B",
    "improvement": "#1E8449",
    "unchanged": "#95A5A6",
}
"""Bar colours of a comparison by the kind of change (red worse, green better)."""

_DEVICE_STYLE: Final[dict[str, tuple[str, str, Any]]] = {
    # kind: (marker, hatch, line style)
    "cpu": ("o", "", "-"),
    "cuda": ("s", "//", "--"),
    "mps": ("^", "\\\\", ":"),
    "mlx": ("D", "xx", "-."),
    "coreml": ("v", "..", (0, (5, 1, 1, 1))),
}
_OTHER_DEVICE: Final = ("P", "++", (0, (1, 1)))

_RC: Final[dict[RcKeyType, Any]] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.titlesize": 12,
    "figure.titleweight": "bold",
    "axes.grid": True,
    "grid.alpha": 0.35,
    "grid.linestyle": ":",
    "axes.axisbelow": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    # Text stays text in PDF (TrueType, searchable) and SVG ids stay the same between
    # runs, so that figures of the same data diff cleanly.
    "pdf.fonttype": 42,
    "svg.hashsalt": "as-bench",
}


@contextmanager
def style_context() -> Iterator[None]:
    """Apply the as-bench style while figures are built and saved, then restore the user's."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        yield


def backend_color(backend: str) -> str:
    """The colour of ``backend``: the same in every figure and every run."""
    color = _BACKEND_COLORS.get(backend)
    if color is not None:
        return color
    return _EXTRA_COLORS[zlib.crc32(backend.encode()) % len(_EXTRA_COLORS)]


def device_kind(device: str) -> str:
    """``"cuda:1"`` → ``"cuda"``, ``"coreml-ane"`` → ``"coreml"``: the kind styles key on."""
    return device.split(":", 1)[0].split("-", 1)[0].lower()


def _device_style(device: str) -> tuple[str, str, Any]:
    return _DEVICE_STYLE.get(device_kind(device), _OTHER_DEVICE)


def device_marker(device: str) -> str:
    """The marker of a device kind in scatter and line plots."""
    return _device_style(device)[0]


def device_hatch(device: str) -> str:
    """The hatch of a device kind in bar plots (none for the CPU)."""
    return _device_style(device)[1]


def device_linestyle(device: str) -> Any:
    """The line style of a device kind in line plots."""
    return _device_style(device)[2]


def scale_seconds(values: Sequence[float]) -> tuple[float, str]:
    """A unit for times in seconds: the divisor and its name, chosen by the median value.

    Returns:
        ``(scale, unit)`` with ``value / scale`` in ``unit``, e.g. ``(1e-3, "ms")``.
    """
    finite = sorted(v for v in values if math.isfinite(v) and v > 0)
    typical = finite[len(finite) // 2] if finite else 1.0
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if typical >= scale:
            return scale, unit
    return 1e-9, "ns"


def scale_bytes(values: Sequence[float]) -> tuple[float, str]:
    """A binary unit for byte counts, chosen by the largest value: ``(2**20, "MiB")``."""
    largest = max((v for v in values if math.isfinite(v)), default=0.0)
    for power, unit in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
        if largest >= 1024**power:
            return float(1024**power), unit
    return 1.0, "B"


def figure_with_panels(
    count: int, *, title: str, panel_size: tuple[float, float] = (6.4, 4.0), columns: int = 2
) -> tuple[Figure, list[Axes]]:
    """A figure with ``count`` panels in a grid and a title that says what is plotted.

    Uses :class:`matplotlib.figure.Figure` directly: no pyplot, so no global figure list
    to leak into and no GUI backend to pick.
    """
    from matplotlib.figure import Figure

    count = max(count, 1)
    ncols = min(columns, count)
    nrows = math.ceil(count / ncols)
    width, height = panel_size
    fig = Figure(figsize=(width * ncols, height * nrows + 0.6), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for spare in axes[count:]:
        spare.set_visible(False)
    fig.suptitle(title)
    return fig, axes[:count]


def note(ax: Axes, text: str, *, where: str = "bottom") -> None:
    """A small grey note inside a panel (left-out data, missing values)."""
    y, va = (0.01, "bottom") if where == "bottom" else (0.5, "center")
    x, ha = (0.01, "left") if where == "bottom" else (0.5, "center")
    ax.text(
        x,
        y,
        text,
        transform=ax.transAxes,
        ha=ha,
        va=va,
        fontsize=7 if where == "bottom" else 10,
        color="#555555",
        wrap=True,
    )


def backend_handles(backends: Sequence[str]) -> list[Any]:
    """Legend entries: one colour swatch per backend, in the order given, without repeats."""
    from matplotlib.patches import Patch

    seen = list(dict.fromkeys(backends))
    return [Patch(facecolor=backend_color(b), edgecolor="#333333", label=b) for b in seen]


def device_handles(devices: Sequence[str], *, kind: str = "marker") -> list[Any]:
    """Legend entries for device kinds: markers (``kind="marker"``) or hatches (``"hatch"``)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    kinds = list(dict.fromkeys(device_kind(d) for d in devices))
    if kind == "hatch":
        return [
            Patch(
                facecolor="white", edgecolor="#333333", hatch=device_hatch(k), label=f"device: {k}"
            )
            for k in kinds
        ]
    return [
        Line2D(
            [],
            [],
            marker=device_marker(k),
            color="#333333",
            linestyle="none",
            label=f"device: {k}",
        )
        for k in kinds
    ]
