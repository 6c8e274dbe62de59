"""A closed-loop HTTP/1.1 load generator on raw asyncio sockets.

Each client keeps one keep-alive connection and sends its next request as soon as the
previous answer is read, for a fixed time after a warm-up. It is small on purpose: an
HTTP client library would spend more CPU per request than the servers under test on a
2-core machine, and every server gets exactly the same client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    clients: int
    duration_s: float
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    wrong: int = 0
    errors: int = 0

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def throughput(self) -> float:
        return self.ok / self.duration_s

    def percentile(self, q: float) -> float:
        values = sorted(self.latencies_s)
        if not values:
            return float("nan")
        rank = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
        return values[rank]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "content-length":
            length = int(value.strip())
        elif key == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            break
        body += chunk[:-2]
    return status, bytes(body)


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _client(
    host: str,
    port: int,
    requests: list[tuple[bytes, Callable[[bytes], bool]]],
    offset: int,
    start: float,
    stop: float,
    result: LoadResult,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    index = offset
    try:
        while True:
            now = time.perf_counter()
            if now >= stop:
                return
            payload, check = requests[index % len(requests)]
            index += 1
            sent = time.perf_counter()
            writer.write(payload)
            try:
                status, body = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                result.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            done = time.perf_counter()
            if sent >= start:  # answers to requests sent during the warm-up don't count
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 200:
                    result.latencies_s.append(done - sent)
                    if not check(body):
                        result.wrong += 1
    finally:
        writer.close()


async def _run(
    host: str,
    port: int,
    requests: list[tuple[bytes, Callable[[bytes], bool]]],
    clients: int,
    warmup_s: float,
    duration_s: float,
) -> LoadResult:
    result = LoadResult(clients=clients, duration_s=duration_s)
    start = time.perf_counter() + warmup_s
    stop = start + duration_s
    await asyncio.gather(
        *(_client(host, port, requests, i * 7, start, stop, result) for i in range(clients))
    )
    return result


def run_load(
    host: str,
    port: int,
    requests: list[tuple[bytes, Callable[[bytes], bool]]],
    *,
    clients: int,
    warmup_s: float,
    duration_s: float,
) -> LoadResult:
    """Drive ``clients`` concurrent keep-alive clients for ``warmup_s + duration_s``."""
    return asyncio.run(_run(host, port, requests, clients, warmup_s, duration_s))


def label_check(expected: str, key: str = "predictions") -> Callable[[bytes], bool]:
    """A response check: the first prediction's label is ``expected``."""

    def check(body: bytes) -> bool:
        try:
            return str(json.loads(body)[key][0]["label"]) == expected
        except (ValueError, KeyError, IndexError, TypeError):
            return False

    return check
