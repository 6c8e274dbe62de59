"""Weights stored quantized and dequantized at load, against fp32 ONNX, in one run.

For each workload (``digits-cnn`` and ``mlp`` by default), the fp32 ONNX model as
as-bench exports it, and ``ort-weight-storage``'s int8 (per channel) and 4-bit (blocks of
32) files built from it, are opened through ``as_core.runtime`` two ways:

* ``dequantized at load`` (the default for a marked file): the weights are folded back
  into fp32 initializers when the session opens;
* ``per call``: ``RuntimeOptions(dequantize_stored_weights=False)``, ONNX Runtime's
  default for such a file: its ``DequantizeLinear`` nodes run on every call.

Every session is measured with as-bench's engine at batch 1 and 32, interleaved round
after round (each round starting from the next model), each latency the median of its
rounds' medians. Printed: latency, speed against fp32 ONNX, size on disk against it, and
the largest difference of the outputs from fp32's on the same inputs.

Usage (from the workspace root)::

    uv run python packages/as-optimize/benchmarks/stored_weights.py
    uv run python packages/as-optimize/benchmarks/stored_weights.py --workloads mlp --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import as_bench
from as_bench.export import export_onnx, load_workload
from as_core.runtime import RuntimeOptions, onnxruntime_session
from as_optimize.compress import ApplyContext, OrtWeightStorage

BATCHES = (1, 32)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.parent.glob(path.name + "*") if f.is_file())


def _feeds(workload: Any, session: Any, batch: int) -> dict[str, Any]:
    arrays = workload.inputs(batch)
    return {
        i.name: np.asarray(a, dtype=np.float32 if np.asarray(a).dtype.kind == "f" else None)
        for i, a in zip(session.get_inputs(), arrays, strict=True)
    }


def bench(spec: str, folder: Path, args: argparse.Namespace) -> None:
    """Build, open and measure one workload's models; print its table."""
    workload = load_workload(spec)
    baseline, _ = export_onnx(workload, max(BATCHES), folder / "fp32")
    names = [i.name for i in onnxruntime_session(baseline, RuntimeOptions()).get_inputs()]
    files = {"fp32 ONNX": baseline}
    for knobs in ({"bits": 8}, {"bits": 4, "block_size": 32}):
        label = "int8" if knobs["bits"] == 8 else "4-bit b32"
        files[label] = OrtWeightStorage().apply(
            baseline, knobs, folder / label.replace(" ", "-") / "model.onnx", ApplyContext(names)
        )
    folded = RuntimeOptions(intra_op_threads=args.threads)
    per_call = RuntimeOptions(intra_op_threads=args.threads, dequantize_stored_weights=False)
    sessions = {"fp32 ONNX": onnxruntime_session(baseline, folded)}
    for label in ("int8", "4-bit b32"):
        sessions[f"{label}, dequantized at load"] = onnxruntime_session(files[label], folded)
        sessions[f"{label}, per call"] = onnxruntime_session(files[label], per_call)
    feeds = {b: _feeds(workload, sessions["fp32 ONNX"], b) for b in BATCHES}
    reference = sessions["fp32 ONNX"].run(None, feeds[1])[0]
    options = as_bench.MeasureOptions(min_time_s=args.min_time, max_time_s=args.max_time)
    rounds: dict[tuple[str, int], list[float]] = {(m, b): [] for m in sessions for b in BATCHES}
    order = list(sessions)
    for r in range(args.rounds):
        for label in order[r % len(order) :] + order[: r % len(order)]:
            for batch in BATCHES:
                run = sessions[label].run
                measured = as_bench.measure(run, None, feeds[batch], options=options)
                rounds[(label, batch)].append(float(measured.latency.stats.median))
    median = {key: statistics.median(values) for key, values in rounds.items()}
    print(f"\n{spec}: {args.rounds} interleaved rounds, {args.threads} thread(s)")
    print(f"{'model':34} {'b1':>10} {'b32':>10} {'vs fp32 b1/b32':>16} {'size':>7} {'max diff':>9}")
    for label, session in sessions.items():
        base = label.split(",")[0]
        diff = float(np.abs(session.run(None, feeds[1])[0] - reference).max())
        speed = [median[("fp32 ONNX", b)] / median[(label, b)] for b in BATCHES]
        print(
            f"{label:34} {median[(label, 1)] * 1e6:8.1f}us {median[(label, 32)] * 1e6:8.1f}us "
            f"{speed[0]:7.2f}x/{speed[1]:.2f}x {_size(files[base]) / _size(baseline):7.3f} "
            f"{diff:9.2e}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="digits-cnn,mlp", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-time", type=float, default=0.05, help="s per measurement")
    parser.add_argument("--max-time", type=float, default=0.3, help="s per measurement")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        for spec in [w.strip() for w in args.workloads.split(",") if w.strip()]:
            bench(spec, Path(scratch) / spec, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
