"""The ceiling of a FastAPI server here: parse the predict payload, answer a constant.

Started by ``serve_bench.py`` as ``python _ceiling_app.py PORT [HTTP LOOP]``. The endpoint
does what every model server must do per request and nothing more: read the body, parse
the JSON, turn the nested list into a float32 array and check its shape; it runs no model
and answers the same bytes every time (an answer the size of a real one). Its throughput
is what a FastAPI/uvicorn server can answer on this machine with this load generator, so
a model server's figure over it says how much of the ceiling the server keeps.

``HTTP`` and ``LOOP`` are uvicorn's ``--http`` and ``--loop`` (default ``auto``: httptools
and uvloop where installed, as ``uvicorn[standard]`` installs them).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

ANSWER = json.dumps(
    {
        "model": "digits-cnn",
        "version": "1",
        "outputs": {"logits": [[round(0.123456789 * i, 9) for i in range(10)]]},
        "predictions": [{"index": 9, "label": "9", "score": 0.75}],
    },
    separators=(",", ":"),
).encode()

app = FastAPI()


@app.get("/health")
async def health() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@app.post("/predict")
async def predict(request: Request) -> Response:
    data = json.loads(await request.body())
    array = np.asarray(data["inputs"]["input"], dtype=np.float32)
    if array.shape != (1, 1, 8, 8):
        return Response(b'{"error":"shape"}', status_code=422, media_type="application/json")
    return Response(ANSWER, media_type="application/json")


def main() -> None:
    port = int(sys.argv[1])
    http = sys.argv[2] if len(sys.argv) > 2 else "auto"
    loop = sys.argv[3] if len(sys.argv) > 3 else "auto"
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http=http,  # type: ignore[arg-type]
        loop=loop,  # type: ignore[arg-type]
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
