"""Workloads: a model, its inputs by batch size, and optionally held-out data and a metric.

``get_workload("mlp" | "digits-cnn" | "minilm" | "pkg.module:factory")`` returns a
:class:`Workload`. Importing this package imports neither torch nor scikit-learn; a
built-in imports them when it is built.
"""

from __future__ import annotations

from as_bench.workloads._base import Dataset, Task, Workload
from as_bench.workloads._registry import builtin_workloads, get_workload

__all__ = ["Dataset", "Task", "Workload", "builtin_workloads", "get_workload", "load_workload"]

#: The name docs/as-bench-architecture.md uses; the same function as :func:`get_workload`.
load_workload = get_workload
