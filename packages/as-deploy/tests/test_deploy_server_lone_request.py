"""A lone request is not held back by dynamic batching's maximum wait.

The batcher waits for more rows only while other requests are on their way; with nobody
else sending, a request runs at once. The wait here is 10 s (the most the settings
allow), so a batcher that waited for it would be unmistakable.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from as_deploy.server import create_app
from as_deploy.settings import BatchingSettings, ServerSettings

PREDICT = "/v1/models/digits-cnn/predict"


def test_deploy_server_lone_request_does_not_wait_for_a_batch(
    repo: Path, digits_data: tuple[np.ndarray, np.ndarray], h: Any
) -> None:
    images, labels = digits_data
    batching = BatchingSettings(enabled=True, max_batch_size=32, max_wait_ms=10_000)

    async def scenario() -> list[tuple[float, dict[str, Any]]]:
        app = create_app(ServerSettings(batching=batching), repo=repo)
        answers = []
        async with h.running(app) as client:
            for index in range(3):  # one after the other: never two at once
                started = time.monotonic()
                response = await client.post(PREDICT, json=h.digits_body(images[index : index + 1]))
                assert response.status_code == 200, response.text
                answers.append((time.monotonic() - started, response.json()))
        return answers

    for (elapsed, body), label in zip(asyncio.run(scenario()), labels[:3], strict=True):
        assert elapsed < 5.0, f"a lone request waited {elapsed:.1f} s for a batch"
        assert body["predictions"][0]["index"] == int(label)
