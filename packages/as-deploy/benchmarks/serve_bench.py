"""as-deploy's model server against LitServe and a bare FastAPI ceiling, on one machine.

Every server runs in a subprocess; one closed-loop load generator (``_load.py``, raw
asyncio sockets with keep-alive) drives 1, 16 and 64 concurrent clients, each sending one
real held-out digits image per request and checking the answer's label against
in-process ONNX Runtime. Systems (suite ``litserve``, the default):

- ``as-deploy batching`` / ``as-deploy no batching``: ``as-deploy serve`` on the embedded
  digits CNN, ``POST /v1/models/digits-cnn/predict`` with nested-list JSON;
- ``as-deploy v2 binary``: the same process as ``as-deploy batching``, through the Open
  Inference Protocol with the binary tensor data extension both ways;
- ``litserve batching`` / ``litserve no batching``: LitServe on the same model and
  request format (``_litserve_app.py``), same maximum batch and wait;
- ``as-deploy batching h11``: the same with ``http: h11`` (the pure-Python parser on
  asyncio's loop) instead of httptools on uvloop;
- ``as-deploy batching pool only``: the same with ``runtime.inline_below_ms: 0``, every
  inference handed to the thread pool;
- ``fastapi ceiling``: a bare FastAPI endpoint that parses the same JSON into a float32
  array and answers a constant (``_ceiling_app.py``, uvicorn's default stack: httptools
  and uvloop as ``uvicorn[standard]`` installs them), the most a FastAPI server answers
  here; ``fastapi ceiling h11`` is the same on h11 and asyncio's loop, ``fastapi ceiling
  httptools asyncio`` on httptools and asyncio's loop;
- ``as-deploy batching on plain uvicorn``: the same app as ``as-deploy batching`` served
  by ``uvicorn.run`` with its defaults (``_deploy_uvicorn_app.py``; without
  ``as-deploy serve``'s connection deadlines, header limit and draining): what those cost.

Suite ``workers``: ``as-deploy serve --workers N`` (batching on) for N in ``--workers``,
and the ceiling. Suite ``batching``: as-deploy with batching, one batch at a time
(``max_concurrent_batches: 1``, the default) and two, and without batching.

Runs are interleaved: each round starts every system in turn, loads it at every client
count and stops it, and the figures are the median over ``--rounds`` rounds (with the
spread), so that drift of a shared machine falls on every system alike. Figures:
throughput (answered requests/s), p50 and p99 latency, mean batch formed (from the
server's ``/metrics``), and the share of the ceiling's throughput at the same clients.

Run from the workspace root (LitServe is in the ``deploy-bench`` group)::

    uv run --group deploy-bench python packages/as-deploy/benchmarks/serve_bench.py
    uv run --group deploy-bench python packages/as-deploy/benchmarks/serve_bench.py \\
        --suite workers --workers 1 2 4 --clients 16 64 --out /tmp/workers.json

Goals: as-deploy batching reaches at least LitServe-with-batching's throughput at an
equal or lower p99 at every client count; at 16 clients it answers at least half the
ceiling's throughput with JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _load import LoadResult, label_check, request_bytes, run_load

HERE = Path(__file__).resolve().parent
MODEL = "digits-cnn"
MAX_BATCH = 32
MAX_WAIT_S = 0.002
CEILING = "fastapi ceiling"

Check = Callable[[bytes], bool]
Payloads = list[tuple[bytes, Check]]


@dataclass(frozen=True)
class ServerSpec:
    """One server process and the systems measured on it (one per payload kind)."""

    name: str
    command: list[str]
    env: dict[str, str]
    ready_path: str
    predict_path: str
    metrics: bool  # whether /metrics reports formed batch sizes
    # (system name, payload kind): "json" (nested lists to predict_path), "v2-binary",
    # "ceiling" (json, any constant answer is right).
    systems: tuple[tuple[str, str], ...] = field(default=())

    def measured(self) -> tuple[tuple[str, str], ...]:
        return self.systems or ((self.name, "json"),)


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
        _wait_ready(port, spec.ready_path, process, timeout=90)
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
            process.wait(timeout=60)
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


def _deploy_command(*extra: str) -> list[str]:
    # Warnings only (LitServe's log_level="warning" too): no access log lines.
    return [
        *(sys.executable, "-m", "as_deploy", "serve", "--port", "{port}"),
        *("--log-level", "warning", *extra),
    ]


def _deploy_env(batching: bool) -> dict[str, str]:
    return {
        "AS_DEPLOY__BATCHING__ENABLED": "true" if batching else "false",
        "AS_DEPLOY__BATCHING__MAX_BATCH_SIZE": str(MAX_BATCH),
        "AS_DEPLOY__BATCHING__MAX_WAIT_MS": str(MAX_WAIT_S * 1000),
        # The load reaches 64 concurrent clients: no request may be turned away.
        "AS_DEPLOY__LIMITS__MAX_CONCURRENCY": "1024",
        "AS_DEPLOY__DRAIN_GRACE_S": "0",
    }


def _ceiling(name: str, *stack: str) -> ServerSpec:
    command = [sys.executable, str(HERE / "_ceiling_app.py"), "{port}", *stack]
    return ServerSpec(name, command, {}, "/health", "/predict", False, ((name, "ceiling"),))


def servers(repo: Path, model_path: Path, baseline: Path | None = None) -> list[ServerSpec]:
    """Suite ``litserve``; the first is as-deploy with batching (``v2_bench.py`` uses it).

    With ``baseline`` (another checkout's ``packages/as-deploy/src``), that version of
    as-deploy with batching is measured too, as ``as-deploy baseline batching``.
    """
    predict = f"/v1/models/{MODEL}/predict"
    lit = [sys.executable, str(HERE / "_litserve_app.py"), str(model_path), "{port}"]
    deploy = _deploy_command("--repo", str(repo))
    before = []
    if baseline is not None:
        # PYTHONPATH comes before the editable install of this checkout.
        env = {**_deploy_env(True), "PYTHONPATH": str(baseline.resolve())}
        before = [ServerSpec("as-deploy baseline batching", deploy, env, "/ready", predict, True)]
    return [
        ServerSpec(
            "as-deploy batching",
            deploy,
            _deploy_env(True),
            "/ready",
            predict,
            True,
            (("as-deploy batching", "json"), ("as-deploy v2 binary", "v2-binary")),
        ),
        *before,
        ServerSpec(
            "as-deploy batching h11",
            deploy,
            {**_deploy_env(True), "AS_DEPLOY__HTTP": "h11"},
            "/ready",
            predict,
            True,
        ),
        ServerSpec(
            "as-deploy batching pool only",
            deploy,
            {**_deploy_env(True), "AS_DEPLOY__RUNTIME__INLINE_BELOW_MS": "0"},
            "/ready",
            predict,
            True,
        ),
        ServerSpec(
            "as-deploy batching on plain uvicorn",
            [sys.executable, str(HERE / "_deploy_uvicorn_app.py"), "{port}", str(repo)],
            _deploy_env(True),
            "/ready",
            predict,
            True,
        ),
        ServerSpec("as-deploy no batching", deploy, _deploy_env(False), "/ready", predict, True),
        ServerSpec(
            "litserve batching",
            [*lit, str(MAX_BATCH), str(MAX_WAIT_S)],
            {},
            "/health",
            "/predict",
            False,
        ),
        ServerSpec("litserve no batching", [*lit, "1", "0"], {}, "/health", "/predict", False),
        _ceiling(CEILING),
        _ceiling(f"{CEILING} h11", "h11", "asyncio"),
        _ceiling(f"{CEILING} httptools asyncio", "httptools", "asyncio"),
    ]


def batching_servers(repo: Path) -> list[ServerSpec]:
    """Suite ``batching``: as-deploy's batching policies side by side."""
    predict = f"/v1/models/{MODEL}/predict"
    deploy = _deploy_command("--repo", str(repo))
    specs = []
    for most in (1, 2):
        env = {**_deploy_env(True), "AS_DEPLOY__BATCHING__MAX_CONCURRENT_BATCHES": str(most)}
        name = f"as-deploy batching, max_concurrent_batches {most}"
        specs.append(ServerSpec(name, deploy, env, "/ready", predict, True))
    specs.append(
        ServerSpec("as-deploy no batching", deploy, _deploy_env(False), "/ready", predict, True)
    )
    return specs


def worker_servers(repo: Path, workers: list[int]) -> list[ServerSpec]:
    """Suite ``workers``: as-deploy with batching at each worker count, and the ceiling."""
    predict = f"/v1/models/{MODEL}/predict"
    specs = []
    for count in workers:
        name = f"as-deploy batching, {count} worker{'s' if count > 1 else ''}"
        command = _deploy_command("--repo", str(repo), "--workers", str(count))
        specs.append(ServerSpec(name, command, _deploy_env(True), "/ready", predict, True))
    specs.append(_ceiling(CEILING))
    return specs


def _payloads(
    kind: str, spec: ServerSpec, port: int, images: np.ndarray, expected: np.ndarray
) -> Payloads:
    if kind == "v2-binary":
        from v2_bench import payloads

        return payloads(port, images, expected)["v2 binary"]
    bodies = [json.dumps({"inputs": {"input": image[None].tolist()}}).encode() for image in images]
    if kind == "ceiling":
        from _ceiling_app import ANSWER

        def constant(body: bytes) -> bool:
            return body == ANSWER

        return [(request_bytes("127.0.0.1", port, spec.predict_path, b), constant) for b in bodies]
    return [
        (request_bytes("127.0.0.1", port, spec.predict_path, body), label_check(str(int(label))))
        for body, label in zip(bodies, expected, strict=True)
    ]


def _measure(
    spec: ServerSpec,
    images: np.ndarray,
    expected: np.ndarray,
    clients_list: list[int],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Start ``spec``, load each of its systems at each client count, stop it."""
    port = _free_port()
    runs = []
    with running(spec, port):
        for system, kind in spec.measured():
            if args.only and not any(word in system for word in args.only):
                continue
            requests = _payloads(kind, spec, port, images, expected)
            for clients in clients_list:
                before = (_batch_histogram(port) if spec.metrics else None) or (0.0, 0.0)
                result: LoadResult = run_load(
                    "127.0.0.1",
                    port,
                    requests,
                    clients=clients,
                    warmup_s=args.warmup,
                    duration_s=args.duration,
                )
                after = _batch_histogram(port) if spec.metrics else None
                mean_batch = None
                if after and after[1] > before[1]:
                    mean_batch = (after[0] - before[0]) / (after[1] - before[1])
                run = {
                    "system": system,
                    "clients": clients,
                    "requests_per_s": result.throughput,
                    "p50_ms": result.percentile(50) * 1e3,
                    "p99_ms": result.percentile(99) * 1e3,
                    "max_ms": result.percentile(100) * 1e3,
                    "statuses": result.statuses,
                    "wrong_answers": result.wrong,
                    "connection_errors": result.errors,
                    "mean_batch": mean_batch,
                }
                runs.append(run)
                print(
                    f"  {system:34s} c={clients:<3d} {run['requests_per_s']:7.0f} req/s  "
                    f"p50 {run['p50_ms']:6.2f}  p99 {run['p99_ms']:6.2f}  "
                    f"max {run['max_ms']:6.1f} ms  batch "
                    f"{'-' if mean_batch is None else f'{mean_batch:.1f}'}  "
                    f"statuses {result.statuses} wrong {result.wrong} "
                    f"conn-errors {result.errors}",
                    flush=True,
                )
    return runs


def _summary(runs: list[dict[str, Any]], clients_list: list[int]) -> list[dict[str, Any]]:
    """The median of each figure over the rounds, per system and client count.

    The share of the ceiling is paired: each round's throughput over the ceiling's in the
    same round, then the median of those ratios (the ceiling, the fastest, moves most
    with whatever else the machine runs).
    """
    rows = []
    systems = list(dict.fromkeys(run["system"] for run in runs))
    for clients in clients_list:
        ceiling = {
            r["round"]: r["requests_per_s"]
            for r in runs
            if r["system"] == CEILING and r["clients"] == clients
        }
        for system in systems:
            mine = [r for r in runs if r["system"] == system and r["clients"] == clients]
            if not mine:
                continue
            rps = [r["requests_per_s"] for r in mine]
            p99 = [r["p99_ms"] for r in mine]
            batches = [r["mean_batch"] for r in mine if r["mean_batch"] is not None]
            shares = [
                r["requests_per_s"] / ceiling[r["round"]] for r in mine if ceiling.get(r["round"])
            ]
            row = {
                "system": system,
                "clients": clients,
                "rounds": len(mine),
                "requests_per_s": statistics.median(rps),
                "requests_per_s_range": [min(rps), max(rps)],
                "p50_ms": statistics.median(r["p50_ms"] for r in mine),
                "p99_ms": statistics.median(p99),
                "p99_ms_range": [min(p99), max(p99)],
                "mean_batch": statistics.median(batches) if batches else None,
                "of_ceiling": statistics.median(shares) if shares else None,
                "of_ceiling_range": [min(shares), max(shares)] if shares else None,
                "bad_answers": sum(
                    r["wrong_answers"]
                    + r["connection_errors"]
                    + sum(n for code, n in r["statuses"].items() if code != 200)
                    for r in mine
                ),
            }
            rows.append(row)
    return rows


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "\n| system | clients | req/s (median) | range | p50 ms | p99 ms (median) | range "
        "| mean batch | of ceiling (median, range) | non-200, wrong, errors |"
    )
    print("|---|---:|---:|---|---:|---:|---|---:|---|---:|")
    for row in rows:
        low, high = row["requests_per_s_range"]
        p_low, p_high = row["p99_ms_range"]
        batch = "-" if row["mean_batch"] is None else f"{row['mean_batch']:.1f}"
        share = "-"
        if row["of_ceiling"] is not None:
            s_low, s_high = row["of_ceiling_range"]
            share = f"{row['of_ceiling']:.2f} ({s_low:.2f}-{s_high:.2f})"
        print(
            f"| {row['system']} | {row['clients']} | {row['requests_per_s']:.0f} | "
            f"{low:.0f}-{high:.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{p_low:.2f}-{p_high:.2f} | {batch} | {share} | {row['bad_answers']} |"
        )


def _verdicts(rows: list[dict[str, Any]], clients_list: list[int]) -> list[dict[str, Any]]:
    def row(system: str, clients: int) -> dict[str, Any] | None:
        return next((r for r in rows if r["system"] == system and r["clients"] == clients), None)

    verdicts = []
    for clients in clients_list:
        ours, theirs = row("as-deploy batching", clients), row("litserve batching", clients)
        if ours is not None and theirs is not None:
            ratio = ours["requests_per_s"] / theirs["requests_per_s"]
            met = ratio >= 1.0 and ours["p99_ms"] <= theirs["p99_ms"]
            verdicts.append({"goal": "litserve", "clients": clients, "ratio": ratio, "met": met})
            print(
                f"goal vs LitServe at {clients:>2} clients: throughput x{ratio:.2f}, p99 "
                f"{ours['p99_ms']:.2f} vs {theirs['p99_ms']:.2f} ms -> "
                f"{'PASS' if met else 'MISS'}"
            )
    ours = row("as-deploy batching", 16)
    if ours is not None and ours["of_ceiling"] is not None:
        met = ours["of_ceiling"] >= 0.5
        verdicts.append({"goal": "ceiling", "clients": 16, "ratio": ours["of_ceiling"], "met": met})
        print(
            f"goal vs the FastAPI ceiling at 16 clients (JSON): x{ours['of_ceiling']:.2f} "
            f"-> {'PASS' if met else 'MISS'}"
        )
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["litserve", "workers", "batching"], default="litserve")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds before measuring")
    parser.add_argument("--only", nargs="*", help="run only systems whose name contains these")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--repo", type=Path, help="model repository holding digits-cnn/1 (default: embedded)"
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also measure the as-deploy in this folder (another checkout's "
        "packages/as-deploy/src) with batching, as 'as-deploy baseline batching'",
    )
    args = parser.parse_args(argv)

    repo = args.repo or embedded_repo()
    model_path = repo / MODEL / "1" / "model.onnx"
    images, _ = _digits()
    expected, ort_rows = in_process(model_path, images)
    print(
        f"in-process ONNX Runtime: {ort_rows[1]:,.0f} rows/s at batch 1, "
        f"{ort_rows[MAX_BATCH]:,.0f} rows/s at batch {MAX_BATCH}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    if args.suite == "litserve":
        specs = servers(repo, model_path, args.baseline_src)
    elif args.suite == "workers":
        specs = worker_servers(repo, args.workers)
    else:
        specs = batching_servers(repo)
    specs = [
        spec
        for spec in specs
        if not args.only or any(word in s for s, _ in spec.measured() for word in args.only)
    ]
    runs: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        print(f"round {round_index + 1} of {args.rounds}", flush=True)
        for spec in specs:
            for run in _measure(spec, images, expected, args.clients, args):
                runs.append({**run, "round": round_index})
    rows = _summary(runs, args.clients)
    _print_table(rows)
    verdicts = _verdicts(rows, args.clients)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "command": sys.argv,
                    "in_process_rows_per_s": ort_rows,
                    "runs": runs,
                    "summary": rows,
                    "goals": verdicts,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
