"""SIGTERM under load: does ``as-deploy serve`` answer every request it took in?

Each trial starts ``as-deploy serve`` on the embedded digits model, drives it with
``--clients`` keep-alive clients (raw asyncio sockets, one predict at a time each,
reconnecting when an answer says ``Connection: close``), sends SIGTERM after
``--load-s`` seconds and lets the clients run until the server has exited. ``--fresh``
of the clients open a new connection for every request instead. A client's request ends
one of three ways:

- answered (any status; 200 expected);
- not sent: the connection was refused (the server no longer accepts), or the server
  had closed the connection before the request was written;
- dropped: written whole, then the connection closed or reset with no answer. This is
  the loss the drain must prevent; it is counted per trial.

Run from the workspace root::

    uv run python packages/as-deploy/benchmarks/drain_trials.py --trials 10 --clients 64
    uv run python packages/as-deploy/benchmarks/drain_trials.py --http h11
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

PREDICT = "/v1/models/digits-cnn/predict"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _request(port: int) -> bytes:
    body = json.dumps({"inputs": {"input": [[[[0.5] * 8] * 8]]}}).encode()
    head = (
        f"POST {PREDICT} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; its status and whether it closes the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() == "close"


async def _client(
    port: int, request: bytes, seen: Counter[str], stop: asyncio.Event, fresh: bool
) -> None:
    """Send predicts until refused; ``fresh``: a new connection for every request."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            seen["not sent: refused"] += 1
            return
        try:
            while not stop.is_set():
                await asyncio.sleep(0)  # an EOF the server sent already is seen first
                if reader.at_eof():
                    seen["not sent: closed before writing"] += 1
                    break
                try:
                    writer.write(request)
                    await writer.drain()
                except OSError:
                    seen["not sent: write failed"] += 1
                    break
                try:
                    status, close = await _response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    seen["dropped"] += 1
                    break
                seen[f"answered {status}"] += 1
                if close or fresh:
                    break
        finally:
            writer.close()


def _wait_ready(port: int, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server on port {port} was not ready in {deadline_s:g} s")


async def _trial(args: argparse.Namespace) -> tuple[Counter[str], int, float]:
    port = _free_port()
    env = {
        **os.environ,
        "AS_DEPLOY__DRAIN_GRACE_S": str(args.grace_s),
        "AS_DEPLOY__LIMITS__MAX_CONCURRENCY": "1024",
        "AS_DEPLOY__LOG_LEVEL": "warning",
    }
    program = Path(sys.executable).with_name("as-deploy")  # the console script
    command = [str(program), "serve", "--port", str(port)]
    if args.http != "auto":  # (an older as-deploy, on PYTHONPATH, has no --http)
        command += ["--http", args.http]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await asyncio.to_thread(_wait_ready, port)
        seen: Counter[str] = Counter()
        stop = asyncio.Event()
        request = _request(port)
        clients = [
            asyncio.create_task(_client(port, request, seen, stop, i < args.fresh))
            for i in range(args.clients)
        ]
        await asyncio.sleep(args.load_s)
        server.send_signal(signal.SIGTERM)
        sent_at = time.monotonic()
        code = await asyncio.to_thread(server.wait, 60)
        stopped_in = time.monotonic() - sent_at
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), 30)
        return seen, code, stopped_in
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def main() -> None:
    """Run the trials and print each one's counts and the total of dropped requests."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--load-s", type=float, default=1.5, help="load before SIGTERM")
    parser.add_argument("--grace-s", type=float, default=0.5, help="drain_grace_s")
    parser.add_argument(
        "--fresh", type=int, default=16, help="of the clients, how many connect anew each time"
    )
    parser.add_argument("--http", choices=["auto", "httptools", "h11"], default="auto")
    parser.add_argument("--out", type=Path, help="write the counts as JSON here")
    args = parser.parse_args()
    rows = []
    for trial in range(1, args.trials + 1):
        seen, code, stopped_in = asyncio.run(_trial(args))
        rows.append({"trial": trial, "exit": code, "stopped_in_s": stopped_in, **seen})
        counts = ", ".join(f"{k} {v}" for k, v in sorted(seen.items()))
        print(f"trial {trial}: exit {code}, stopped {stopped_in:.2f} s after SIGTERM; {counts}")
    dropped = sum(int(r.get("dropped", 0)) for r in rows)
    answered = sum(int(v) for r in rows for k, v in r.items() if k.startswith("answered"))
    exits = sorted({int(r["exit"]) for r in rows})
    print(
        f"{args.trials} trials, {args.clients} clients ({args.fresh} connecting anew each "
        f"time), http {args.http}: {answered} answered, "
        f"{dropped} dropped (sent whole, no answer); exit codes {exits}"
    )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
