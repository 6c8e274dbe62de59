"""Loading a workload and its torch model through as-bench's public export seam."""

from __future__ import annotations

from typing import Any

from as_optimize.exceptions import CompressionInputError

__all__ = ["load"]


def load(spec: str) -> tuple[Any, Any]:
    """The workload named by ``spec`` and its torch model in eval mode.

    Raises:
        CompressionInputError: ``spec`` names no workload, or its factory failed.
        as_bench.MissingExtraError: torch (or a library the workload needs) is missing.
    """
    import as_bench
    from as_bench.export import load_torch_model, load_workload

    if not spec or not spec.strip():
        raise CompressionInputError("MODEL is empty: give a workload name or pkg.module:factory")
    try:
        workload = load_workload(spec)
        model = load_torch_model(workload, "as-optimize")
    except as_bench.MissingExtraError:
        raise  # names the command that installs what is missing
    except as_bench.AsBenchError as exc:
        raise CompressionInputError(f"MODEL {spec!r}: {exc}") from exc
    return workload, model
