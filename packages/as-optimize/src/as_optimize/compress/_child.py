"""Evaluating one candidate in a process of its own: ``python -m as_optimize.compress._child SPEC``.

A runtime may crash on a converted model (ONNX Runtime has segfaulted opening an
fp16-converted one), so a candidate is opened, run on the scoring data and measured in a
child process: a crash there ends the child and rejects the candidate, and the search
goes on. This module is the ONNX Runtime evaluator; every runtime has one
(:data:`as_optimize.compress._runtimes.RUNTIMES`: ``torch``, ``litert``, ``coreml``, or
one a plugin registers), run as ``python -m MODULE SPEC`` with the contract below.

**The spec** (a JSON file, its path the only argument). The parent writes it and the
inputs; the child writes the outputs and the result, and touches nothing else:

- ``runtime``: the runtime the candidate runs on (``onnxruntime``, ``torch``, ...).
- ``artifact``: the candidate's file or folder, as its technique wrote it (``.onnx``,
  ``.pt``, ``.tflite``, ``.mlpackage``, ...).
- ``model``: the ``.onnx`` file for ONNX candidates (the same path as ``artifact``;
  kept for evaluators written before ``artifact``).
- ``workload``: the workload as given to ``as_bench.export.load_workload`` (a built-in
  name or ``pkg.module:factory``), so that an evaluator can rebuild the fp32 torch model
  (a torch evaluator loading a state dict into it, for example).
- ``device``: where to run: ``cpu``, ``cuda`` or ``mps`` (this evaluator opens ONNX
  Runtime's CUDA provider for ``cuda``).
- ``input_names``: the model's input names, in order.
- ``eval_inputs``: an ``.npz`` with ``in0``, ``in1``, ...: the scoring inputs.
- ``chunk``: rows per call while scoring (a model with a static batch takes exactly
  this many).
- ``bench_inputs``: an ``.npz`` with ``b<batch>_in<i>``: the inputs to time per batch size.
- ``batch_sizes``: the batch sizes to time, in order.
- ``threads``: intra-op threads (``null`` for the runtime's default).
- ``measure``: keyword arguments of :class:`as_bench.MeasureOptions`.
- ``outputs``: where to write the first output on the scoring inputs, all rows in order,
  as float32 (``numpy.save``).
- ``result``: where to write the result JSON.

**The result**: ``{"session_open_s": float, "latency": {"<batch>": {"median_s",
"ci_low_s", "ci_high_s", "iqr_s", "samples", "converged", "warnings"}}, "memory_bytes":
int | None, ...}`` (seconds; the fields of as-bench's measurement; ``memory_bytes``: the
child's resident memory once the model is open and has scored the data, above what it
held just before opening it; other keys are kept as they are), or
``{"unavailable": "reason"}`` when the candidate cannot run on this machine at all (Core
ML prediction off macOS): the search then keeps it as "not measured", with its size and
the reason, and it neither wins nor is rejected. Exit status 0 with the result written;
on an error, a non-zero status with the reason as the last line of stderr (the parent
reports it and rejects the candidate).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Open the session, score, measure; the result as plain values."""
    import as_bench
    from as_bench.devices import current_rss_bytes
    from as_core.runtime import RuntimeOptions, onnxruntime_session

    threads = spec.get("threads")
    device = spec.get("device", "cpu")
    providers = (
        ("CUDAExecutionProvider", "CPUExecutionProvider")
        if device == "cuda"
        else ("CPUExecutionProvider",)
    )
    options = RuntimeOptions(intra_op_threads=threads, providers=providers)
    importlib.import_module("onnxruntime")  # its import is not the model's memory
    before = current_rss_bytes()
    started = time.perf_counter()
    session = onnxruntime_session(Path(spec.get("artifact") or spec["model"]), options)
    open_s = time.perf_counter() - started
    names = list(spec["input_names"])
    score(spec, lambda arrays: session.run(None, dict(zip(names, arrays, strict=True)))[0])
    after = current_rss_bytes()
    memory = None if before is None or after is None else max(0, after - before)

    latency: dict[str, Any] = {}
    measure_options = as_bench.MeasureOptions(**spec["measure"])
    with np.load(spec["bench_inputs"]) as bench:
        for batch in spec["batch_sizes"]:
            feeds = {n: bench[f"b{batch}_in{i}"] for i, n in enumerate(names)}
            m = as_bench.measure(session.run, None, feeds, device="cpu", options=measure_options)
            latency[str(batch)] = latency_entry(m)
    return {
        "session_open_s": open_s,
        "providers": list(session.get_providers()),
        "runtime_options": options.describe(),
        "latency": latency,
        "memory_bytes": memory,
    }


def score(
    spec: Mapping[str, Any], run: Callable[[list[Any]], Any], chunk: int | None = None
) -> None:
    """Run the spec's scoring inputs through ``run``, a chunk of rows at a time.

    ``run`` gets one array per input (the chunk's rows) and returns the first output for
    them; the outputs of every row, in order, are saved to ``spec["outputs"]`` as float32.
    ``chunk``: rows per call, the spec's ``chunk`` when ``None``.
    """
    with np.load(spec["eval_inputs"]) as data:
        arrays = [data[f"in{i}"] for i in range(len(spec["input_names"]))]
    rows = int(arrays[0].shape[0])
    size = chunk or max(1, int(spec["chunk"]))
    pieces = [
        np.asarray(run([a[start : start + size] for a in arrays]), dtype=np.float32)
        for start in range(0, rows, size)
    ]
    np.save(spec["outputs"], np.concatenate(pieces, axis=0))


def latency_entry(m: Any, notes: Sequence[str] = ()) -> dict[str, Any]:
    """One batch size's ``latency`` entry of the result, from an ``as_bench.measure``."""
    stats = m.latency.stats
    return {
        "median_s": stats.median,
        "ci_low_s": stats.ci_low,
        "ci_high_s": stats.ci_high,
        "iqr_s": stats.iqr,
        "samples": stats.n,
        "converged": m.converged,
        "warnings": [*m.warnings, *notes],
    }


def run_child(evaluate: Callable[[dict[str, Any]], dict[str, Any]], argv: list[str]) -> int:
    """A child evaluator's ``main``: run ``evaluate`` on the spec named by ``argv[0]``.

    Exit 0 with the result written; 1 on an error, its reason on the last line of stderr
    (the parent reads it as the candidate's reason).
    """
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        result = evaluate(spec)
    except Exception as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}".replace("\n", " ") + "\n")
        return 1
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


def main(argv: list[str]) -> int:
    """Run the spec named by ``argv[0]``; exit 0 with the result written, 1 on an error."""
    return run_child(evaluate, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
