"""A user model for ``compress_bench.py``: a factory as ``--factory example_factory:make_model``.

A small convolutional classifier of 3x32x32 images with random weights and no data set:
the search scores it by cosine against its fp32 outputs, as it would any user model
without labelled data. ``compress_bench.py`` puts this folder on the import path.
"""

from __future__ import annotations

from typing import Any


def make_model() -> tuple[Any, tuple[Any, ...]]:
    """The model in eval mode and one example batch (the factory protocol of as-bench)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
    ).eval()
    return model, (torch.randn(1, 3, 32, 32),)
