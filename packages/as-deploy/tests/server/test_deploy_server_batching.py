"""Dynamic batching: concurrent requests share inferences and each gets its own answer."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]

from as_deploy.server import create_app
from as_deploy.settings import BatchingSettings, ServerSettings

PREDICT = "/v1/models/digits-cnn/predict"


def _fire(
    repo: Path, h: Any, batching: BatchingSettings, images: list[np.ndarray]
) -> tuple[list[dict[str, Any]], str]:
    async def scenario() -> tuple[list[dict[str, Any]], str]:
        app = create_app(ServerSettings(batching=batching), repo=repo)
        async with h.running(app) as client:
            responses = await asyncio.gather(
                *(client.post(PREDICT, json=h.digits_body(image)) for image in images)
            )
            for response in responses:
                assert response.status_code == 200, response.text
            metrics = (await client.get("/metrics")).text
        return [response.json() for response in responses], metrics

    return asyncio.run(scenario())


def _requests(digits_data: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    images, _ = digits_data
    # 64 requests of 1 to 3 rows each, all different images.
    rows = [1 + (i % 3) for i in range(64)]
    starts = np.cumsum([0, *rows[:-1]])
    return [images[start : start + n] for start, n in zip(starts, rows, strict=True)]


def test_deploy_server_batching_merges_requests_and_answers_each_its_own(
    repo: Path, digits_data: tuple[np.ndarray, np.ndarray], h: Any
) -> None:
    requests = _requests(digits_data)
    batching = BatchingSettings(enabled=True, max_batch_size=32, max_wait_ms=20)
    bodies, metrics = _fire(repo, h, batching, requests)

    session = ort.InferenceSession(str(repo / "digits-cnn" / "1" / "model.onnx"))
    for image, body in zip(requests, bodies, strict=True):
        (expected,) = session.run(["logits"], {"input": image})
        got = np.array(body["outputs"]["logits"], dtype=np.float32)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
        assert [p["index"] for p in body["predictions"]] == list(expected.argmax(axis=1))

    inferences = h.metric_value(metrics, "as_deploy_batch_requests_count", model="digits-cnn")
    merged = h.metric_value(metrics, "as_deploy_batch_requests_sum", model="digits-cnn")
    single = h.metric_value(
        metrics, "as_deploy_batch_requests_bucket", model="digits-cnn", le="1.0"
    )
    assert merged == len(requests)  # every request ran exactly once
    assert inferences < len(requests)  # so some inferences held several requests
    assert single < inferences  # at least one inference held more than one request
    rows = h.metric_value(metrics, "as_deploy_batch_size_sum", model="digits-cnn")
    assert rows == sum(len(image) for image in requests)
    # No inference held more than max_batch_size rows.
    assert h.metric_value(
        metrics, "as_deploy_batch_size_bucket", model="digits-cnn", le="32.0"
    ) == h.metric_value(metrics, "as_deploy_batch_size_count", model="digits-cnn")


def test_deploy_server_batching_off_runs_each_request_alone(
    repo: Path, digits_data: tuple[np.ndarray, np.ndarray], h: Any
) -> None:
    requests = _requests(digits_data)[:16]
    bodies, metrics = _fire(repo, h, BatchingSettings(enabled=False), requests)
    session = ort.InferenceSession(str(repo / "digits-cnn" / "1" / "model.onnx"))
    for image, body in zip(requests, bodies, strict=True):
        (expected,) = session.run(["logits"], {"input": image})
        np.testing.assert_allclose(
            np.array(body["outputs"]["logits"]), expected, rtol=1e-4, atol=1e-5
        )
    assert h.metric_value(metrics, "as_deploy_batch_requests_count", model="digits-cnn") == 16
    assert h.metric_value(metrics, "as_deploy_batch_requests_sum", model="digits-cnn") == 16


def test_deploy_server_batcher_never_merges_different_shapes(h: Any) -> None:
    # Straight to the Batcher with a real inference function: rows of 2 and of 3 features.
    from concurrent.futures import ThreadPoolExecutor

    from as_deploy.server._batcher import Batcher
    from as_deploy.server._metrics import Metrics

    seen: list[tuple[int, ...]] = []

    def run(inputs: Any) -> dict[str, np.ndarray]:
        seen.append(tuple(inputs["x"].shape))
        return {"y": inputs["x"].sum(axis=1)}

    async def scenario() -> list[dict[str, np.ndarray]]:
        with ThreadPoolExecutor(2) as pool:
            metrics = Metrics()
            batcher = Batcher("m", run, pool, metrics, max_batch_size=64, max_wait_s=0.05)
            arrays = [np.full((1, 2 + i % 2), float(i), dtype=np.float32) for i in range(10)]
            results = await asyncio.gather(*(batcher.submit({"x": a}, 1) for a in arrays))
            await batcher.close()
            return results

    results = asyncio.run(scenario())
    for i, result in enumerate(results):
        assert result["y"].tolist() == [float(i) * (2 + i % 2)]
    assert all(shape[1] in (2, 3) for shape in seen)
    assert sum(shape[0] for shape in seen) == 10
    assert len(seen) < 10  # same-shaped requests were merged


def _placement_run(clock: list[float], durations: list[float], threads: list[str]) -> Any:
    """An inference that takes the next of ``durations`` on the fake ``clock``."""

    def run(inputs: Any) -> dict[str, np.ndarray]:
        threads.append(threading.current_thread().name)
        clock[0] += durations.pop(0)
        return {"y": inputs["x"] * 2}

    return run


def test_deploy_server_short_inferences_move_to_the_event_loop_and_slow_ones_back() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from as_deploy.server._batcher import Placement

    clock = [0.0]
    # 16 quick inferences (0.1 ms) in the pool, 4 quick ones on the loop, one slow
    # (5 ms) on the loop, then back in the pool until 16 quick ones again.
    durations = [0.0001] * 20 + [0.005] + [0.0001] * 16 + [0.0001] * 2
    threads: list[str] = []

    async def scenario() -> list[np.ndarray]:
        loop_thread = threading.current_thread().name
        threads.append(f"loop={loop_thread}")
        with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
            placement = Placement(
                _placement_run(clock, durations, threads),
                pool,
                inline_below_s=0.001,
                window=16,
                clock=lambda: clock[0],
            )
            answers = []
            for i in range(len(durations)):
                answer = await placement({"x": np.full((1, 2), float(i), dtype=np.float32)})
                answers.append(answer["y"])
            return answers

    answers = asyncio.run(scenario())
    assert [a.tolist() for a in answers] == [[[2.0 * i] * 2] for i in range(39)]
    loop = threads.pop(0).removeprefix("loop=")
    where = ["loop" if name == loop else "pool" for name in threads]
    assert where[:16] == ["pool"] * 16
    assert where[16:21] == ["loop"] * 5  # the fifth is the slow one
    assert where[21:37] == ["pool"] * 16  # the slow one is among the last 16
    assert where[37:] == ["loop"] * 2


def test_deploy_server_inline_off_keeps_every_inference_in_the_pool() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from as_deploy.server._batcher import Placement

    clock = [0.0]
    threads: list[str] = []

    async def scenario() -> str:
        with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
            placement = Placement(
                _placement_run(clock, [0.0] * 40, threads),
                pool,
                inline_below_s=0.0,
                clock=lambda: clock[0],
            )
            for _ in range(40):
                await placement({"x": np.zeros((1, 2), dtype=np.float32)})
            return threading.current_thread().name

    loop = asyncio.run(scenario())
    assert len(threads) == 40 and loop not in threads
