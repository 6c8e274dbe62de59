"""LitServe serving the same ONNX model with the same request and answer format.

Started by ``serve_bench.py`` as ``python _litserve_app.py MODEL PORT MAX_BATCH WAIT_S``.
The API does the same work per request as as-deploy's predict: parse the JSON tensor,
check its shape, run ONNX Runtime (batched by LitServe when MAX_BATCH > 1), answer the
logits plus the top label and its softmax score.
"""

from __future__ import annotations

import sys
from typing import Any

import litserve as ls
import numpy as np
import onnxruntime as ort


class DigitsAPI(ls.LitAPI):
    def __init__(self, model: str, max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.model_path = model

    def setup(self, device: str) -> None:
        options = ort.SessionOptions()
        self.session = ort.InferenceSession(
            self.model_path, options, providers=["CPUExecutionProvider"]
        )

    # No annotation on `request`: LitServe (FastAPI) would read an annotated one as a query
    # parameter; unannotated, it is the JSON body.
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        array = np.asarray(request["inputs"]["input"], dtype=np.float32)
        if array.shape != (1, 1, 8, 8):
            raise ValueError(f"expected shape [1, 1, 8, 8], got {list(array.shape)}")
        return array[0]  # one row; LitServe stacks rows into a batch

    def predict(self, x: np.ndarray) -> np.ndarray:
        batch = x if x.ndim == 4 else x[None]
        logits: np.ndarray = self.session.run(None, {"input": batch})[0]
        return logits if x.ndim == 4 else logits[0]

    def encode_response(self, output: np.ndarray) -> dict[str, Any]:
        shifted = np.exp(output - output.max())
        probs = shifted / shifted.sum()
        index = int(output.argmax())
        return {
            "outputs": {"logits": [output.tolist()]},
            "predictions": [{"index": index, "label": str(index), "score": float(probs[index])}],
        }


def main() -> None:
    model, port, max_batch, wait_s = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    api = DigitsAPI(model, max_batch_size=max_batch, batch_timeout=wait_s)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1)
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
