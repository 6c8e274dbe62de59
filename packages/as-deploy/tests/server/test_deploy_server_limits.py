"""Limits: concurrency (503 + Retry-After), queue size, request timeout (504), model LRU.

Slowness is real: ``slow-mlp`` (see conftest) multiplies by a 1024 x 1024 matrix 48 times
per row, so a request of 1024 rows keeps an inference busy for a second or more.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_deploy.server import create_app
from as_deploy.settings import BatchingSettings, LimitsSettings, ServerSettings

SLOW = "/v1/models/slow-mlp/predict"
DIGITS = "/v1/models/digits-cnn/predict"


def _slow_body(rows: int) -> dict[str, Any]:
    x = np.random.default_rng(rows).standard_normal((rows, 64)).round(3)
    return {"inputs": {"x": x.tolist()}}


def _digits_body() -> dict[str, Any]:
    return {"inputs": {"input": [[[[0.5] * 8] * 8]]}}


async def _until(client: Any, h: Any, name: str, value: float, **labels: str) -> None:
    """Poll ``/metrics`` until the sample has ``value`` (a readiness signal, bounded)."""
    deadline = asyncio.get_running_loop().time() + 60
    while asyncio.get_running_loop().time() < deadline:
        text = (await client.get("/metrics")).text
        if h.metric_value(text, name, **labels) == value:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name}{labels} never reached {value}")


async def _until_running(app: Any, model: str) -> None:
    """Wait until ``model``'s batcher has taken its queue into a running inference."""
    deadline = asyncio.get_running_loop().time() + 60
    while asyncio.get_running_loop().time() < deadline:
        manager = app.state.server.models
        entry = manager.entry((model, "1")) if manager is not None else None
        if entry is not None and entry.unit.busy and not entry.unit._queue:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{model} never started an inference")


@pytest.mark.slow
def test_deploy_server_concurrency_limit_answers_503_with_retry_after(repo: Path, h: Any) -> None:
    settings = ServerSettings(
        preload=["slow-mlp", "digits-cnn"],
        limits=LimitsSettings(max_concurrency=1, retry_after_s=3),
        batching=BatchingSettings(max_wait_ms=0),
    )

    async def scenario() -> None:
        async with h.running(create_app(settings, repo=repo)) as client:
            held = asyncio.create_task(client.post(SLOW, json=_slow_body(1024)))
            await _until(client, h, "as_deploy_in_flight_requests", 1.0)
            refused = await client.post(DIGITS, json=_digits_body())
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "3"
            error = refused.json()["error"]
            assert error["code"] == "overloaded"
            assert "too many requests in flight (the limit is 1)" in error["message"]
            assert (await client.get("/health")).status_code == 200  # not counted
            assert (await client.get("/ready")).status_code == 200
            done = await held
            assert done.status_code == 200, done.text
            assert len(done.json()["outputs"]["y"]) == 1024
            again = await client.post(DIGITS, json=_digits_body())
            assert again.status_code == 200

    asyncio.run(scenario())


@pytest.mark.slow
def test_deploy_server_full_queue_answers_503(repo: Path, h: Any) -> None:
    settings = ServerSettings(
        preload=["slow-mlp"],
        # One batch at a time: a request that comes while it runs is queued behind it.
        batching=BatchingSettings(
            max_wait_ms=0, max_queue_size=1, max_batch_size=2048, max_concurrent_batches=1
        ),
    )

    async def scenario() -> None:
        app = create_app(settings, repo=repo)
        async with h.running(app) as client:
            running = asyncio.create_task(client.post(SLOW, json=_slow_body(1024)))
            await _until(client, h, "as_deploy_in_flight_requests", 1.0)
            await _until_running(app, "slow-mlp")  # off the queue, inference running
            queued = asyncio.create_task(client.post(SLOW, json=_slow_body(2)))
            await _until(client, h, "as_deploy_queue_depth", 1.0, model="slow-mlp")
            refused = await client.post(SLOW, json=_slow_body(1))
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "queue_full"
            assert "queue of model slow-mlp is full" in refused.json()["error"]["message"]
            assert (await running).status_code == 200
            assert (await queued).status_code == 200

    asyncio.run(scenario())


@pytest.mark.slow
def test_deploy_server_timeout_is_504_and_drops_rows_not_yet_run(repo: Path, h: Any) -> None:
    settings = ServerSettings(
        preload=["slow-mlp"],
        limits=LimitsSettings(request_timeout_s=0.25),
        # One batch at a time: the second request waits behind the first one's inference.
        batching=BatchingSettings(max_wait_ms=0, max_batch_size=4096, max_concurrent_batches=1),
    )
    count = "as_deploy_inference_duration_seconds_count"

    async def scenario() -> None:
        async with h.running(create_app(settings, repo=repo)) as client:
            first = await client.post(SLOW, json=_slow_body(1024))
            assert first.status_code == 504
            error = first.json()["error"]
            assert error["code"] == "timeout"
            assert "did not answer within 0.25 s" in error["message"]
            # The first inference still runs (seconds); this small request waits behind it
            # and gives up. Small, so that it is queued long before the first one ends.
            second = await client.post(SLOW, json=_slow_body(2))
            assert second.status_code == 504
            await _until(client, h, count, 1.0, model="slow-mlp")
            small = await client.post(SLOW, json=_slow_body(1))
            assert small.status_code == 200, small.text
            text = (await client.get("/metrics")).text
            # Two inferences: the first request's 1024 rows and the last one's single row;
            # the second request's 2 rows were dropped before they ran.
            assert h.metric_value(text, count, model="slow-mlp") == 2
            assert h.metric_value(text, "as_deploy_batch_size_sum", model="slow-mlp") == 1025
            assert (
                h.metric_value(text, "as_deploy_requests_total", model="slow-mlp", code="504") == 2
            )

    asyncio.run(scenario())


@pytest.mark.slow
def test_deploy_server_lru_unloads_the_least_recently_used_idle_model(
    repo: Path, h: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # min_residency_s=0: a version may be unloaded as soon as it is idle (plain LRU).
    settings = ServerSettings(
        preload=[],
        max_loaded_models=1,
        min_residency_s=0,
        batching=BatchingSettings(max_wait_ms=0),
    )

    async def loaded(client: Any) -> dict[str, bool]:
        models = (await client.get("/v1/models")).json()["models"]
        return {m["name"]: m["versions"][0]["loaded"] for m in models}

    async def scenario() -> None:
        async with h.running(create_app(settings, repo=repo)) as client:
            assert not any((await loaded(client)).values())
            assert (await client.post(DIGITS, json=_digits_body())).status_code == 200
            assert await loaded(client) == {
                "digits-cnn": True,
                "int-sum": False,
                "slow-mlp": False,
            }
            ints = await client.post(
                "/v1/models/int-sum/predict", json={"inputs": {"ids": [[1] * 4]}}
            )
            assert ints.status_code == 200
            assert await loaded(client) == {
                "digits-cnn": False,
                "int-sum": True,
                "slow-mlp": False,
            }
            # A model in use is never unloaded: the limit is passed until it is idle.
            held = asyncio.create_task(client.post(SLOW, json=_slow_body(1024)))
            deadline = asyncio.get_running_loop().time() + 60
            while not (await loaded(client))["slow-mlp"]:
                assert asyncio.get_running_loop().time() < deadline, "slow-mlp never loaded"
                await asyncio.sleep(0.01)
            with caplog.at_level(logging.WARNING, logger="as_deploy.server._models"):
                assert (await client.post(DIGITS, json=_digits_body())).status_code == 200
            state = await loaded(client)
            assert state["slow-mlp"] and state["digits-cnn"] and not state["int-sum"]
            assert "every other one is in use" in caplog.text
            assert (await held).status_code == 200
            assert (await client.post(DIGITS, json=_digits_body())).status_code == 200
            ints = await client.post(
                "/v1/models/int-sum/predict", json={"inputs": {"ids": [[1] * 4]}}
            )
            assert ints.status_code == 200
            assert sum((await loaded(client)).values()) == 1
            text = (await client.get("/metrics")).text
            assert h.metric_value(text, "as_deploy_loaded_models") == 1

    asyncio.run(scenario())
