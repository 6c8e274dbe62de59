"""as-deploy's model server against LitServe, on the same model, machine and load tool.

Both servers run the embedded default model (the digits CNN as ONNX, in ONNX Runtime) in
a subprocess; one closed-loop load generator (``_load.py``, raw asyncio sockets with
keep-alive) drives 1, 16 and 64 concurrent clients, each sending one real held-out digits
image per request and checking the answer's label against in-process ONNX Runtime.
Configurations: as-deploy with dynamic batching on and off, LitServe with its own
batching on and off (same maximum batch and wait). Figures: throughput (answered
requests/s), p50 and p99 latency, and server efficiency: served requests/s divided by
in-process ONNX Runtime rows/s at batch 1 (the work each request asks for) and at the
mean batch size the server formed.

Run from the workspace root (LitServe is in the ``deploy-bench`` group)::

    uv run --group deploy-bench python packages/as-deploy/benchmarks/serve_bench.py
    uv run --group deploy-bench python packages/as-deploy/benchmarks/serve_bench.py \
        --duration 10 --clients 1 16 64 --out /tmp/serve-bench.json

Goal (issue 5): as-deploy with batching reaches at least LitServe-with-batching's
throughput at an equal or lower p99, at every concurrency.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _load import LoadResult, label_check, request_bytes, run_load

HERE = Path(__file__).resolve().parent
MODEL = "digits-cnn"
MAX_BATCH = 32
MAX_WAIT_S = 0.002


@dataclass(frozen=True)
class ServerSpec:
    name: str
    command: list[str]
    env: dict[str, str]
    ready_path: str
    predict_path: str
    metrics: bool  # whether /metrics reports formed batch sizes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_repo() -> Path:
    return Path(str(importlib.resources.files("as_deploy") / "_default_model"))


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    _, x_test, _, y_test = train_test_split(
        images, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )
    return x_test, y_test


def in_process(model_path: Path, images: np.ndarray) -> tuple[np.ndarray, dict[int, float]]:
    """Labels from in-process ONNX Runtime, and its rows/s at batch 1 and MAX_BATCH."""
    import onnxruntime as ort

    from as_bench import MeasureOptions, measure

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    labels = np.concatenate(
        [
            session.run(None, {"input": images[i : i + 64]})[0].argmax(1)
            for i in range(0, len(images), 64)
        ]
    )
    rows_per_s: dict[int, float] = {}
    for batch in (1, MAX_BATCH):
        feed = {"input": np.ascontiguousarray(images[np.arange(batch) % len(images)])}
        result = measure(
            session.run, None, feed, options=MeasureOptions(max_time_s=3.0, track_memory=False)
        )
        rows_per_s[batch] = batch / result.latency.stats.median
    return labels, rows_per_s


def _wait_ready(port: int, path: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready")
        with contextlib.suppress(OSError, urllib.error.URLError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as answer:
                if answer.status == 200:
                    return
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not ready after {timeout} s")


@contextlib.contextmanager
def running(spec: ServerSpec, port: int) -> Iterator[subprocess.Popen[bytes]]:
    command = [part.replace("{port}", str(port)) for part in spec.command]
    # The server's output goes to a file: a pipe nobody reads would fill and block it.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        command,
        env={**os.environ, **spec.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # LitServe starts worker processes: stop the whole group
    )
    try:
        _wait_ready(port, spec.ready_path, process, timeout=60)
        yield process
    except RuntimeError:
        process.kill()
        log.seek(0)
        err = log.read().decode(errors="replace")
        raise RuntimeError(f"{spec.name}: {err[-2000:]}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _batch_histogram(port: int) -> tuple[float, float] | None:
    """(sum, count) of the server's formed batch sizes from /metrics, or None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except (OSError, urllib.error.URLError):
        return None
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("#") or "batch_size" not in line:
            continue
        name, _, value = line.rpartition(" ")
        if name.split("{")[0].endswith("_sum"):
            total += float(value)
        elif name.split("{")[0].endswith("_count"):
            count += float(value)
    return (total, count) if count else None


def servers(repo: Path, model_path: Path) -> list[ServerSpec]:
    predict = f"/v1/models/{MODEL}/predict"
    # Both servers log warnings only (LitServe's log_level="warning"): no access log lines.
    deploy = [
        *(sys.executable, "-m", "as_deploy", "serve", "--repo", str(repo), "--port", "{port}"),
        *("--log-level", "warning"),
    ]
    batching = {
        "AS_DEPLOY__BATCHING__MAX_BATCH_SIZE": str(MAX_BATCH),
        "AS_DEPLOY__BATCHING__MAX_WAIT_MS": str(MAX_WAIT_S * 1000),
        # The load reaches 64 concurrent clients: no request may be turned away.
        "AS_DEPLOY__LIMITS__MAX_CONCURRENCY": "1024",
    }
    lit = [sys.executable, str(HERE / "_litserve_app.py"), str(model_path), "{port}"]
    return [
        ServerSpec(
            "as-deploy batching",
            deploy,
            {**batching, "AS_DEPLOY__BATCHING__ENABLED": "true"},
            "/ready",
            predict,
            True,
        ),
        ServerSpec(
            "as-deploy no batching",
            deploy,
            {**batching, "AS_DEPLOY__BATCHING__ENABLED": "false"},
            "/ready",
            predict,
            True,
        ),
        ServerSpec(
            "litserve batching",
            [*lit, str(MAX_BATCH), str(MAX_WAIT_S)],
            {},
            "/health",
            "/predict",
            False,
        ),
        ServerSpec("litserve no batching", [*lit, "1", "0"], {}, "/health", "/predict", False),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds before measuring")
    parser.add_argument("--only", nargs="*", help="run only servers whose name contains these")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--repo", type=Path, help="model repository holding digits-cnn/1 (default: embedded)"
    )
    args = parser.parse_args(argv)

    repo = args.repo or embedded_repo()
    model_path = repo / MODEL / "1" / "model.onnx"
    images, _ = _digits()
    expected, ort_rows = in_process(model_path, images)
    print(
        f"in-process ONNX Runtime: {ort_rows[1]:,.0f} rows/s at batch 1, "
        f"{ort_rows[MAX_BATCH]:,.0f} rows/s at batch {MAX_BATCH}"
    )
    requests = [
        (
            json.dumps({"inputs": {"input": images[i : i + 1].tolist()}}).encode(),
            label_check(str(int(expected[i]))),
        )
        for i in range(len(images))
    ]

    rows: list[dict[str, Any]] = []
    for spec in servers(repo, model_path):
        if args.only and not any(word in spec.name for word in args.only):
            continue
        port = _free_port()
        payloads = [
            (request_bytes("127.0.0.1", port, spec.predict_path, body), check)
            for body, check in requests
        ]
        with running(spec, port):
            for clients in args.clients:
                before = _batch_histogram(port) if spec.metrics else None
                result: LoadResult = run_load(
                    "127.0.0.1",
                    port,
                    payloads,
                    clients=clients,
                    warmup_s=args.warmup,
                    duration_s=args.duration,
                )
                after = _batch_histogram(port) if spec.metrics else None
                mean_batch = None
                before = before or (0.0, 0.0)  # no batch yet: the histogram is empty
                if after and after[1] > before[1]:
                    mean_batch = (after[0] - before[0]) / (after[1] - before[1])
                row = {
                    "server": spec.name,
                    "clients": clients,
                    "requests_per_s": result.throughput,
                    "p50_ms": result.percentile(50) * 1e3,
                    "p99_ms": result.percentile(99) * 1e3,
                    "ok": result.ok,
                    "statuses": result.statuses,
                    "wrong_answers": result.wrong,
                    "connection_errors": result.errors,
                    "mean_batch": mean_batch,
                    "efficiency_vs_batch1": result.throughput / ort_rows[1],
                    "efficiency_vs_batch32": result.throughput / ort_rows[MAX_BATCH],
                }
                rows.append(row)
                print(
                    f"{spec.name:24s} c={clients:<3d} {row['requests_per_s']:8.0f} req/s  "
                    f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  "
                    f"batch {mean_batch if mean_batch is None else round(mean_batch, 1)}  "
                    f"eff {row['efficiency_vs_batch1']:.2f}/{row['efficiency_vs_batch32']:.3f}  "
                    f"statuses {result.statuses} wrong {result.wrong} conn-errors {result.errors}",
                    flush=True,
                )

    verdicts = []
    for clients in args.clients:
        ours = next(
            (r for r in rows if r["server"] == "as-deploy batching" and r["clients"] == clients),
            None,
        )
        theirs = next(
            (r for r in rows if r["server"] == "litserve batching" and r["clients"] == clients),
            None,
        )
        if ours is None or theirs is None:
            continue
        ratio = ours["requests_per_s"] / theirs["requests_per_s"]
        met = ratio >= 1.0 and ours["p99_ms"] <= theirs["p99_ms"]
        verdicts.append(
            {
                "clients": clients,
                "throughput_ratio": ratio,
                "p99_ours_ms": ours["p99_ms"],
                "p99_litserve_ms": theirs["p99_ms"],
                "goal_met": met,
            }
        )
        print(
            f"goal at {clients:>2} clients: throughput x{ratio:.2f} of LitServe, p99 "
            f"{ours['p99_ms']:.2f} vs {theirs['p99_ms']:.2f} ms -> {'PASS' if met else 'MISS'}"
        )
    if args.out:
        args.out.write_text(
            json.dumps(
                {"in_process_rows_per_s": ort_rows, "runs": rows, "goal": verdicts}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
