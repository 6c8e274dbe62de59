"""Evaluating one candidate in a process of its own: ``python -m as_optimize.compress._child SPEC``.

A runtime may crash on a converted model (ONNX Runtime has segfaulted opening an
fp16-converted one), so a candidate's session is opened, run on the scoring data and
measured in a child process: a crash there ends the child and rejects the candidate, and
the search goes on. The parent writes a JSON spec and the inputs; the child writes the
outputs (``.npy``) and a JSON result, and touches nothing else.

The spec's keys: ``model`` (the ``.onnx`` file), ``input_names``, ``eval_inputs`` (an
``.npz`` with ``in0``, ``in1``, ...: the scoring inputs), ``chunk`` (rows per call while
scoring), ``bench_inputs`` (an ``.npz`` with ``b<batch>_in<i>``), ``batch_sizes``,
``threads`` (ONNX Runtime's intra-op threads, ``null`` for its default), ``measure`` (fields
of :class:`as_bench.MeasureOptions`), ``outputs`` and ``result`` (where to write).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Open the session, score, measure; the result as plain values."""
    import as_bench
    from as_core.runtime import RuntimeOptions, onnxruntime_session

    threads = spec.get("threads")
    options = RuntimeOptions(intra_op_threads=threads)
    started = time.perf_counter()
    session = onnxruntime_session(Path(spec["model"]), options)
    open_s = time.perf_counter() - started
    names = list(spec["input_names"])

    with np.load(spec["eval_inputs"]) as data:
        arrays = [data[f"in{i}"] for i in range(len(names))]
    rows = int(arrays[0].shape[0])
    chunk = max(1, int(spec["chunk"]))
    pieces = []
    for start in range(0, rows, chunk):
        feeds = {n: a[start : start + chunk] for n, a in zip(names, arrays, strict=True)}
        pieces.append(np.asarray(session.run(None, feeds)[0], dtype=np.float32))
    np.save(spec["outputs"], np.concatenate(pieces, axis=0))

    latency: dict[str, Any] = {}
    measure_options = as_bench.MeasureOptions(**spec["measure"])
    with np.load(spec["bench_inputs"]) as bench:
        for batch in spec["batch_sizes"]:
            feeds = {n: bench[f"b{batch}_in{i}"] for i, n in enumerate(names)}
            m = as_bench.measure(session.run, None, feeds, device="cpu", options=measure_options)
            stats = m.latency.stats
            latency[str(batch)] = {
                "median_s": stats.median,
                "ci_low_s": stats.ci_low,
                "ci_high_s": stats.ci_high,
                "iqr_s": stats.iqr,
                "samples": stats.n,
                "converged": m.converged,
                "warnings": list(m.warnings),
            }
    return {
        "session_open_s": open_s,
        "providers": list(session.get_providers()),
        "runtime_options": options.describe(),
        "latency": latency,
    }


def main(argv: list[str]) -> int:
    """Run the spec named by ``argv[0]``; exit 0 with the result written, 1 on an error."""
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        result = evaluate(spec)
    except Exception as exc:
        # The parent reads the last line of stderr as the reason.
        sys.stderr.write(f"{type(exc).__name__}: {exc}".replace("\n", " ") + "\n")
        return 1
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
