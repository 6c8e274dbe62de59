"""A lone request is not held back by dynamic batching's maximum wait.

The batcher waits for more rows only while other requests are on their way; with nobody
else sending, a request runs at once. The wait here is 10 s (the most the settings
allow), and the test asserts that the batcher never started waiting at all, which does
not depend on how fast the machine is.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from as_deploy.server import _batcher, create_app
from as_deploy.settings import BatchingSettings, ServerSettings

PREDICT = "/v1/models/digits-cnn/predict"


def test_deploy_server_lone_request_does_not_wait_for_a_batch(
    repo: Path, digits_data: tuple[np.ndarray, np.ndarray], h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, labels = digits_data
    batching = BatchingSettings(enabled=True, max_batch_size=32, max_wait_ms=10_000)
    waits: list[float] = []
    real_wait = _batcher.Batcher._wait_for_company

    async def spy(self: _batcher.Batcher, remaining: float) -> None:
        waits.append(remaining)
        await real_wait(self, remaining)

    monkeypatch.setattr(_batcher.Batcher, "_wait_for_company", spy)

    async def scenario() -> list[dict[str, Any]]:
        app = create_app(ServerSettings(batching=batching), repo=repo)
        answers = []
        async with h.running(app) as client:
            for index in range(3):  # one after the other: never two at once
                response = await client.post(PREDICT, json=h.digits_body(images[index : index + 1]))
                assert response.status_code == 200, response.text
                answers.append(response.json())
        return answers

    for body, label in zip(asyncio.run(scenario()), labels[:3], strict=True):
        assert body["predictions"][0]["index"] == int(label)
    assert waits == [], f"a lone request waited for a batch ({waits})"
