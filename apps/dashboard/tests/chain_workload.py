"""A workload for ``as-bench run -w chain_workload:make`` whose cost the environment sets.

``AS_DASHBOARD_TEST_LAYERS`` layers of a 64-wide linear layer and tanh run per call (2 by
default): the tests store one run with the default and one with many more layers, a
genuinely slower model under the same benchmark name, to see the comparison flag it.
"""

from __future__ import annotations

import os
from typing import Any

LAYERS_VARIABLE = "AS_DASHBOARD_TEST_LAYERS"


def make() -> tuple[Any, Any]:
    import torch

    layers = int(os.environ.get(LAYERS_VARIABLE, "2"))

    class Chain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(64, 64)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(layers):
                x = torch.tanh(self.layer(x))
            return x

    torch.manual_seed(0)
    return Chain(), torch.randn(4, 64)
