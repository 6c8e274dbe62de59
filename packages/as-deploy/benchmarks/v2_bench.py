"""The server's own /v1 JSON against the Open Inference Protocol (/v2), JSON and binary.

One ``as-deploy serve`` process (the embedded digits CNN, dynamic batching on, the same
settings as ``serve_bench.py``'s "as-deploy batching"); the closed-loop load generator
(``_load.py``) sends one real held-out digits image per request, in three encodings:

- ``v1 json``: ``POST /v1/models/digits-cnn/predict`` with nested lists;
- ``v2 json``: ``POST /v2/models/digits-cnn/infer`` with a flat JSON ``data`` list and
  JSON outputs;
- ``v2 binary``: the same with the binary tensor data extension, both ways (256 bytes of
  float32 after the JSON header; the logits as 40 bytes after the response's JSON).

Every answer is checked: its top class must be the one in-process ONNX Runtime gives.

Run from the workspace root::

    uv run python packages/as-deploy/benchmarks/v2_bench.py
    uv run python packages/as-deploy/benchmarks/v2_bench.py --clients 1 16 --duration 10
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _load import label_check, request_bytes, run_load
from serve_bench import (
    MODEL,
    _batch_histogram,
    _digits,
    _free_port,
    embedded_repo,
    running,
    servers,
)

HERE = Path(__file__).resolve().parent
HEADER = "Inference-Header-Content-Length"


def _expected_labels(model_path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return np.concatenate(
        [
            session.run(None, {"input": images[i : i + 64]})[0].argmax(1)
            for i in range(0, len(images), 64)
        ]
    )


def _raw_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _json_check(expected: int) -> Callable[[bytes], bool]:
    def check(body: bytes) -> bool:
        try:
            return int(np.argmax(json.loads(body)["outputs"][0]["data"])) == expected
        except (ValueError, KeyError, IndexError, TypeError):
            return False

    return check


def _binary_check(expected: int) -> Callable[[bytes], bool]:
    def check(body: bytes) -> bool:
        # The logits are the last 40 bytes: ten little-endian float32 after the JSON.
        return len(body) > 40 and int(np.frombuffer(body[-40:], dtype="<f4").argmax()) == expected

    return check


def payloads(
    port: int, images: np.ndarray, expected: np.ndarray
) -> dict[str, list[tuple[bytes, Callable[[bytes], bool]]]]:
    v1 = f"/v1/models/{MODEL}/predict"
    v2 = f"/v2/models/{MODEL}/infer"
    out: dict[str, list[tuple[bytes, Callable[[bytes], bool]]]] = {
        "v1 json": [],
        "v2 json": [],
        "v2 binary": [],
    }
    binary_header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 1, 8, 8],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 256},
                }
            ],
            "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
        }
    ).encode()
    for index, image in enumerate(images):
        label = int(expected[index])
        body = json.dumps({"inputs": {"input": image[None].tolist()}}).encode()
        out["v1 json"].append((request_bytes("127.0.0.1", port, v1, body), label_check(str(label))))
        tensor = {
            "name": "input",
            "shape": [1, 1, 8, 8],
            "datatype": "FP32",
            "data": image.ravel().tolist(),
        }
        body = json.dumps({"inputs": [tensor]}).encode()
        out["v2 json"].append(
            (_raw_request(port, v2, body, {"Content-Type": "application/json"}), _json_check(label))
        )
        body = binary_header + image.astype("<f4").tobytes()
        headers = {"Content-Type": "application/octet-stream", HEADER: str(len(binary_header))}
        out["v2 binary"].append((_raw_request(port, v2, body, headers), _binary_check(label)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[16])
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds before measuring")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    repo = embedded_repo()
    model_path = repo / MODEL / "1" / "model.onnx"
    images, _ = _digits()
    expected = _expected_labels(model_path, images)
    spec = servers(repo, model_path)[0]  # as-deploy, batching on
    port = _free_port()
    rows: list[dict[str, Any]] = []
    with running(spec, port):
        for mode, requests in payloads(port, images, expected).items():
            for clients in args.clients:
                before = _batch_histogram(port) or (0.0, 0.0)
                result = run_load(
                    "127.0.0.1",
                    port,
                    requests,
                    clients=clients,
                    warmup_s=args.warmup,
                    duration_s=args.duration,
                )
                after = _batch_histogram(port)
                mean_batch = None
                if after and after[1] > before[1]:
                    mean_batch = (after[0] - before[0]) / (after[1] - before[1])
                row = {
                    "mode": mode,
                    "clients": clients,
                    "requests_per_s": result.throughput,
                    "p50_ms": result.percentile(50) * 1e3,
                    "p99_ms": result.percentile(99) * 1e3,
                    "request_bytes": len(requests[0][0]),
                    "statuses": result.statuses,
                    "wrong_answers": result.wrong,
                    "connection_errors": result.errors,
                    "mean_batch": mean_batch,
                }
                rows.append(row)
                print(
                    f"{mode:10s} c={clients:<3d} {row['requests_per_s']:8.0f} req/s  "
                    f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  "
                    f"request {row['request_bytes']} B  "
                    f"batch {mean_batch if mean_batch is None else round(mean_batch, 1)}  "
                    f"statuses {result.statuses} wrong {result.wrong} conn-errors {result.errors}",
                    flush=True,
                )
    if args.out:
        args.out.write_text(json.dumps({"runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
