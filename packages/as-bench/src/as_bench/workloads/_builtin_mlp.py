"""The ``mlp`` built-in: a 64-256-256-10 perceptron on the flattened digits images.

It is trained like ``digits-cnn`` (about a second of CPU, cached), so that its accuracy on
the held-out split is a real metric and a backend that breaks it is caught; as a benchmark
it is the smallest dense model: two 256-wide matrix products per item.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from as_bench.workloads._base import Workload
from as_bench.workloads._digits import DATA_ID, trained_workload
from as_bench.workloads._trained import TrainConfig, TrainedModelSpec

__all__ = ["DigitsMLP", "mlp_workload"]


class DigitsMLP(nn.Module):
    """Three dense layers with ReLU: 64 pixel values to 10 logits."""

    def __init__(self) -> None:
        """Build the layers (weights are PyTorch's default initialisation)."""
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(64, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, 10),
        )

    def forward(self, x: Any) -> Any:
        """Logits ``(N, 10)`` for flattened images ``(N, 64)``."""
        return self.layers(x)


MLP_SPEC = TrainedModelSpec(
    name="mlp",
    build=DigitsMLP,
    config=TrainConfig(epochs=30, batch_size=64, learning_rate=1e-3, weight_decay=1e-4, seed=0),
    data_id=DATA_ID,
)


def mlp_workload() -> Workload:
    """The ``mlp`` built-in: input ``(N, 64)`` float32 in [0, 1], output 10 logits."""
    return trained_workload(
        MLP_SPEC,
        (64,),
        "64-256-256-10 MLP classifying flattened 8x8 digit images (trained once, cached)",
    )
