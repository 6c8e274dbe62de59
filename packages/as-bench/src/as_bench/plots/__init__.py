"""Figures of benchmark results: matplotlib, headless, one consistent style.

- :func:`plot_distributions`: every latency sample as a box per backend, device and
  batch size, a panel per workload.
- :func:`plot_throughput`: items per second against batch size.
- :func:`plot_memory`: each benchmark's model+inference memory (RSS increase) and device peak.
- :func:`plot_pareto`: quality against median latency, marker area by model size, the
  Pareto front (:func:`pareto_front`) marked.
- :func:`plot_tradeoff`: median latency against size on disk, a colour and marker per
  group (:class:`TradeoffPoint`), the Pareto front of the contenders marked.
- :func:`plot_comparison`: change against a baseline per benchmark, with confidence
  intervals, from rows that follow :class:`ComparisonRow`.
- :func:`render_all`: every figure that has data, in each of :data:`FORMATS`.

A backend has the same colour (:func:`backend_color`) in every figure. Files are written
atomically; figures never go through pyplot, so no global state is touched and no GUI
backend is needed. Importing this module does not import matplotlib; drawing does.
"""

from as_bench.plots._comparison import ComparisonRow, plot_comparison
from as_bench.plots._distributions import plot_distributions
from as_bench.plots._files import FORMATS
from as_bench.plots._memory import plot_memory
from as_bench.plots._pareto import pareto_front, plot_pareto
from as_bench.plots._render import render_all
from as_bench.plots._style import backend_color
from as_bench.plots._throughput import plot_throughput
from as_bench.plots._tradeoff import TradeoffPoint, plot_tradeoff

__all__ = [
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
