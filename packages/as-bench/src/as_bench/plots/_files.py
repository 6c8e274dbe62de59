"""Writing figures: the formats, atomic saves, and letting go of each figure once saved."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from as_bench.plots._style import style_context
from as_bench.results._io import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FORMATS", "check_formats", "draw", "format_of", "save_figure"]

logger = logging.getLogger(__name__)

FORMATS: Final = ("png", "svg", "pdf")
"""The figure formats as-bench writes."""

# No creation date in SVG and PDF, so that the same data gives the same file.
_METADATA: Final[dict[str, dict[str, Any]]] = {
    "png": {},
    "svg": {"Date": None},
    "pdf": {"CreationDate": None},
}


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """Normalise figure formats (``"PNG"``, ``".svg"`` are fine) and refuse unknown ones.

    Returns:
        The formats, lower case, without repeats, in the order given.

    Raises:
        ValueError: No format was given, or one is not ``png``, ``svg`` or ``pdf``.
    """
    wanted = list(dict.fromkeys(f.strip().lstrip(".").lower() for f in formats))
    if not wanted:
        raise ValueError(f"no figure format given: use one or more of {', '.join(FORMATS)}")
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise ValueError(
            f"unknown figure format {', '.join(map(repr, unknown))}: use {', '.join(FORMATS)}"
        )
    return tuple(wanted)


def format_of(path: Path) -> str:
    """The figure format of ``path`` by its suffix.

    Raises:
        ValueError: The suffix is not ``.png``, ``.svg`` or ``.pdf``.
    """
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(
            f"cannot write the figure {path}: its suffix {path.suffix or '(none)'!r} is not "
            f"one of {', '.join('.' + f for f in FORMATS)}"
        )
    return fmt


def save_figure(fig: Figure, path: Path) -> Path:
    """Save ``fig`` to ``path`` atomically, in the format its suffix names.

    The figure goes to a hidden temporary file in the same folder that then replaces
    ``path``, so an interrupted run never leaves half a figure behind.

    Raises:
        ValueError: The suffix is not a figure format.
        ResultStoreError: The file could not be written (the message names it).
    """
    path = Path(path)
    fmt = format_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(handle: IO[bytes]) -> None:
        fig.savefig(handle, format=fmt, metadata=_METADATA[fmt])

    atomic_write(path, write)
    logger.debug("wrote %s", path)
    return path


def draw(build: Callable[[], Figure], paths: Sequence[Path]) -> list[Path]:
    """Build one figure in the as-bench style, save it to every path, then release it.

    Figures are made with :class:`matplotlib.figure.Figure`, never pyplot, so nothing
    global holds on to them; clearing drops the artists at once rather than at the next
    garbage collection, which keeps memory flat over many figures.
    """
    for path in paths:
        format_of(path)  # refuse a bad suffix before spending time on drawing
    with style_context():
        fig = build()
        try:
            return [save_figure(fig, path) for path in paths]
        finally:
            fig.clear()
