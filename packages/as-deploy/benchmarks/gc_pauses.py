"""Garbage-collector pauses of ``as-deploy serve`` under load, with and without ``gc.freeze``.

``as-deploy serve`` freezes the objects it holds at start out of the collector before it
serves. This runs the server twice per round, as is and with ``gc.freeze`` made a no-op
(the baseline), each under the same closed-loop load (``_load.py``, 64 clients by
default, batching on as in ``serve_bench.py``), and records every collection the server
makes while loaded (``gc.callbacks``): how many per generation and how long they
stopped the event loop, next to the load's p50 and p99 latency. Rounds alternate the two.

Run from the workspace root::

    uv run python packages/as-deploy/benchmarks/gc_pauses.py
    uv run python packages/as-deploy/benchmarks/gc_pauses.py --clients 16 --rounds 3
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _serve(report: Path, freeze: bool, argv: list[str]) -> None:
    """Run ``as-deploy serve`` in this process, recording collections after ``/ready``."""
    pauses: list[tuple[int, float, float]] = []  # (generation, ms, when)
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            now = time.perf_counter()
            pauses.append((int(info["generation"]), (now - started[0]) * 1e3, now))

    gc.callbacks.append(callback)
    if not freeze:
        gc.freeze = lambda: None  # the baseline: everything stays in the collector's passes
    import atexit

    def write() -> None:
        report.write_text(json.dumps(pauses))

    atexit.register(write)
    from as_deploy.cli import main

    sys.argv = ["as-deploy", "serve", *argv]
    main()


def _measure(freeze: bool, clients: int, duration: float, warmup: float) -> dict[str, Any]:
    from _load import label_check, request_bytes, run_load
    from serve_bench import MODEL, _deploy_env, _digits, _free_port, _wait_ready, embedded_repo
    from v2_bench import _expected_labels

    port = _free_port()
    report = Path(tempfile.mkstemp(suffix=".json")[1])
    command = [sys.executable, str(Path(__file__)), "--serve", str(report)]
    command += ["--freeze" if freeze else "--no-freeze", "--port", str(port)]
    command += ["--log-level", "warning"]
    process = subprocess.Popen(
        command, env={**os.environ, **_deploy_env(True)}, stdout=subprocess.DEVNULL
    )
    try:
        _wait_ready(port, "/ready", process, timeout=90)
        images, _ = _digits()
        expected = _expected_labels(embedded_repo() / MODEL / "1" / "model.onnx", images[:64])
        path = f"/v1/models/{MODEL}/predict"
        requests = [
            (
                request_bytes(
                    "127.0.0.1",
                    port,
                    path,
                    json.dumps({"inputs": {"input": [im.tolist()]}}).encode(),
                ),
                label_check(str(int(label))),
            )
            for im, label in zip(images[:64], expected, strict=True)
        ]
        begin = time.perf_counter() + warmup
        result = run_load(
            "127.0.0.1", port, requests, clients=clients, warmup_s=warmup, duration_s=duration
        )
        end = time.perf_counter()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    pauses = [(g, ms) for g, ms, when in json.loads(report.read_text()) if begin <= when <= end]
    report.unlink()
    row: dict[str, Any] = {
        "freeze": freeze,
        "requests_per_s": result.throughput,
        "p50_ms": result.percentile(50) * 1e3,
        "p99_ms": result.percentile(99) * 1e3,
        "wrong": result.wrong,
    }
    for generation in (0, 1, 2):
        times = [ms for g, ms in pauses if g == generation]
        row[f"gen{generation}"] = {
            "count": len(times),
            "median_ms": statistics.median(times) if times else None,
            "max_ms": max(times) if times else None,
        }
    return row


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        report, mode, *rest = sys.argv[2:]
        _serve(Path(report), mode == "--freeze", rest)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    args = parser.parse_args()
    rows = []
    for round_index in range(args.rounds):
        for freeze in (False, True):
            row = _measure(freeze, args.clients, args.duration, args.warmup)
            rows.append(row)
            gen2 = row["gen2"]
            print(
                f"round {round_index + 1} {'gc.freeze' if freeze else 'baseline (no freeze)':22s} "
                f"{row['requests_per_s']:6.0f} req/s  p50 {row['p50_ms']:6.2f}  "
                f"p99 {row['p99_ms']:6.2f} ms  gen2 collections {gen2['count']}, "
                f"median {gen2['median_ms'] or 0:.1f} ms, max {gen2['max_ms'] or 0:.1f} ms  "
                f"(gen0 {row['gen0']['count']}, gen1 {row['gen1']['count']})  "
                f"wrong {row['wrong']}",
                flush=True,
            )
    for freeze in (False, True):
        mine = [r for r in rows if r["freeze"] == freeze]
        gen2 = [ms for r in mine for ms in ([r["gen2"]["max_ms"]] if r["gen2"]["max_ms"] else [])]
        print(
            f"median over {len(mine)} rounds, {'gc.freeze' if freeze else 'baseline':9s}: "
            f"{statistics.median(r['requests_per_s'] for r in mine):6.0f} req/s, "
            f"p50 {statistics.median(r['p50_ms'] for r in mine):6.2f} ms, "
            f"p99 {statistics.median(r['p99_ms'] for r in mine):6.2f} ms, "
            f"longest gen2 pause {max(gen2) if gen2 else 0:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
