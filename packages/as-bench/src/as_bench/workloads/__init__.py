"""Workloads: a model, its inputs by batch size, and optionally held-out data and a metric.

``get_workload("mlp" | "digits-cnn" | "minilm" | "pkg.module:factory")`` returns a
:class:`Workload`. Importing this package imports neither torch nor scikit-learn; a
built-in imports them when it is built.

The input formats of the built-ins, for applications that run their exported models:
:func:`digits_from_image` (any picture of a digit as an 8x8 digits image, pure numpy) and
:func:`tokenize_sentences` (MiniLM's tokenisation, ``SEQ_LEN`` tokens; the ``minilm``
extra, no torch).
"""

from __future__ import annotations

from as_bench.workloads._base import Dataset, Task, Workload
from as_bench.workloads._digits_image import DIGITS_SIDE, DIGITS_TOP, digits_from_image
from as_bench.workloads._minilm_text import SEQ_LEN, minilm_model_dir, tokenize_sentences
from as_bench.workloads._registry import builtin_workloads, get_workload

__all__ = [
    "DIGITS_SIDE",
    "DIGITS_TOP",
    "SEQ_LEN",
    "Dataset",
    "Task",
    "Workload",
    "builtin_workloads",
    "digits_from_image",
    "get_workload",
    "load_workload",
    "minilm_model_dir",
    "tokenize_sentences",
]

#: The name docs/as-bench-architecture.md uses; the same function as :func:`get_workload`.
load_workload = get_workload
