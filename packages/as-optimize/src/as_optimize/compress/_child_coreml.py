"""Evaluating a Core ML candidate: ``python -m as_optimize.compress._child_coreml SPEC``.

The spec and the result follow :mod:`as_optimize.compress._child`'s contract; the
candidate is the ``artifact`` (an ``.mlpackage``) with its ``.coreml.json`` beside it
(:mod:`as_optimize.compress._coreml`), whose compute units the model is loaded with.

Core ML prediction needs macOS: elsewhere the child writes ``{"unavailable": reason}``
and exits 0, and the search keeps the candidate, sized, as not measured. On macOS the
package is loaded with ``coremltools.models.MLModel(path, compute_units=...)``, run on
the scoring inputs and timed per batch size with :func:`as_bench.measure`. The package
has batch 1 (Core ML programs have static shapes); larger batches go through Core ML's
batch prediction (``predict`` with a list of feeds), which the result's warnings say.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from as_optimize.compress._child import latency_entry, run_child, score

#: Why a Core ML candidate is not measured off macOS.
OFF_MACOS = "Core ML prediction needs macOS (this is {platform}); the package was built and sized"


def on_macos() -> bool:
    """Whether this is macOS, where Core ML predicts."""
    return sys.platform == "darwin"


def _feed_dtype(array: Any) -> Any:
    """Core ML multiarrays take float32 and int32 (int64 token ids go in as int32)."""
    if np.issubdtype(array.dtype, np.floating):
        return np.asarray(array, dtype=np.float32)
    return np.asarray(array, dtype=np.int32)


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Load the package with its compute units, score, measure; the result as plain values."""
    if not on_macos():
        return {"unavailable": OFF_MACOS.format(platform=sys.platform)}
    import as_bench

    ct: Any = importlib.import_module("coremltools")

    from as_optimize.compress._coreml import read_coreml_facts

    package = Path(spec.get("artifact") or spec["model"])
    facts = read_coreml_facts(package)
    units = str(facts.get("compute_units", "ALL"))
    started = time.perf_counter()
    model = ct.models.MLModel(str(package), compute_units=getattr(ct.ComputeUnit, units))
    open_s = time.perf_counter() - started
    description = model.get_spec().description
    output_name = description.output[0].name
    batch = int(description.input[0].type.multiArrayType.shape[0] or 1)
    names = list(spec["input_names"])

    def feeds(arrays: list[Any], start: int, stop: int) -> list[dict[str, Any]]:
        """One feed per ``batch`` rows from ``start`` to ``stop``."""
        return [
            {n: _feed_dtype(a[row : row + batch]) for n, a in zip(names, arrays, strict=True)}
            for row in range(start, stop, batch)
        ]

    def predict(items: list[dict[str, Any]]) -> Any:
        return model.predict(items[0] if len(items) == 1 else items)

    def first_output(arrays: list[Any]) -> Any:
        got = predict(feeds(arrays, 0, int(arrays[0].shape[0])))
        answers = got if isinstance(got, list) else [got]
        return np.concatenate([np.asarray(a[output_name], dtype=np.float32) for a in answers])

    score(spec, first_output, chunk=max(batch, int(spec["chunk"]) // batch * batch))

    latency: dict[str, Any] = {}
    options = as_bench.MeasureOptions(**spec["measure"])
    with np.load(spec["bench_inputs"]) as bench:
        for size in spec["batch_sizes"]:
            items = feeds([bench[f"b{size}_in{i}"] for i in range(len(names))], 0, int(size))
            notes = (
                []
                if len(items) == 1
                else [
                    f"batch {size}: the package has batch {batch}; timed as Core ML batch "
                    f"prediction of {len(items)} feeds"
                ]
            )
            m = as_bench.measure(predict, items, device="cpu", options=options)
            latency[str(size)] = latency_entry(m, notes)
    return {
        "session_open_s": open_s,
        "providers": [f"coreml:{units}"],
        "runtime_options": {"compute_units": units},
        "compute_units": units,
        "latency": latency,
    }


def main(argv: list[str]) -> int:
    """Run the spec named by ``argv[0]``; exit 0 with the result written, 1 on an error."""
    return run_child(evaluate, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
