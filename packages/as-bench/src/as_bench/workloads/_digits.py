"""The scikit-learn digits data and the ``digits-cnn`` workload trained on it.

The data ships inside scikit-learn (1,797 images of 8x8 pixels, values 0..16), so it works
offline. It is split once, stratified 80/20 with a fixed seed: the 80% trains the built-in
classifiers, the 20% (360 images) is the workload's dataset and feeds its inputs, so every
benchmark runs on real images and scores on images the model never saw. The 80% is the
workload's ``train`` data, for techniques that fine-tune a compressed model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from torch import nn

from as_bench.exceptions import MissingExtraError
from as_bench.workloads._base import Dataset, Workload
from as_bench.workloads._trained import TrainConfig, TrainedModelSpec, load_or_train
from as_core.extras import require

__all__ = ["DigitsCNN", "DigitsSplit", "digits_cnn_workload", "digits_split", "trained_workload"]

_SPLIT_SEED = 0
_HELD_OUT = 0.2
DATA_ID = f"sklearn.datasets.load_digits /16, stratified {_HELD_OUT} held out, seed {_SPLIT_SEED}"
DATASET_NAME = "scikit-learn digits, stratified 20% held out"
TRAIN_NAME = "scikit-learn digits, the 80% training split"


@dataclass(frozen=True)
class DigitsSplit:
    """Digits images scaled to [0, 1] as float32 ``(N, 1, 8, 8)``, labels int64 ``(N,)``."""

    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int64]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int64]


@functools.cache
def digits_split() -> DigitsSplit:
    """The fixed stratified 80/20 split of scikit-learn's bundled digits (cached per process)."""
    # Through require(): scikit-learn ships no type information, its functions are Any.
    datasets = require("sklearn.datasets", "torch", error=MissingExtraError)
    model_selection = require("sklearn.model_selection", "torch", error=MissingExtraError)

    digits = datasets.load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        images, labels, test_size=_HELD_OUT, stratify=labels, random_state=_SPLIT_SEED
    )
    for array in (x_train, x_test, y_train, y_test):
        array.setflags(write=False)  # shared by every workload in the process
    return DigitsSplit(x_train, y_train, x_test, y_test)


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions, one max-pool, two dense layers: 8x8 image to 10 logits."""

    def __init__(self) -> None:
        """Build the layers (weights are PyTorch's default initialisation)."""
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x: Any) -> Any:
        """Logits ``(N, 10)`` for images ``(N, 1, 8, 8)``."""
        return self.classifier(self.features(x))


CNN_SPEC = TrainedModelSpec(
    name="digits-cnn",
    build=DigitsCNN,
    config=TrainConfig(epochs=20, batch_size=128, learning_rate=3e-3, weight_decay=1e-4, seed=0),
    data_id=DATA_ID,
)


def _shaped(images: npt.NDArray[np.float32], shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(images.reshape(len(images), *shape))


def _trained_model(spec: TrainedModelSpec, shape: tuple[int, ...]) -> nn.Module:
    split = digits_split()
    model, _ = load_or_train(
        spec,
        (_shaped(split.x_train, shape), split.y_train),
        (_shaped(split.x_test, shape), split.y_test),
    )
    return model


def _held_out_inputs(
    shape: tuple[int, ...], batch_size: int
) -> tuple[npt.NDArray[np.float32], ...]:
    # Real held-out images, cycled when the batch is larger than the split: deterministic,
    # and every backend sees the same bytes.
    x_test = digits_split().x_test
    index = np.arange(batch_size) % len(x_test)
    return (_shaped(x_test[index], shape),)


def trained_workload(spec: TrainedModelSpec, shape: tuple[int, ...], description: str) -> Workload:
    """A digits classifier workload: trains (or loads) the weights now, builds lazily.

    Args:
        spec: The model and its training recipe.
        shape: One example's input shape (``(1, 8, 8)`` for the CNN, ``(64,)`` for the MLP).
        description: One line for people.
    """
    split = digits_split()
    model, weights = load_or_train(
        spec,
        (_shaped(split.x_train, shape), split.y_train),
        (_shaped(split.x_test, shape), split.y_test),
    )
    parameters = sum(p.numel() for p in model.parameters())
    return Workload(
        name=spec.name,
        description=description,
        task="classification",
        make_model=partial(_trained_model, spec, shape),
        make_inputs=partial(_held_out_inputs, shape),
        input_names=("input",),
        output_names=("logits",),
        dataset=Dataset(
            inputs=(_shaped(split.x_test, shape),),
            targets=split.y_test,
            name=f"{DATASET_NAME} ({len(split.y_test)} images)",
        ),
        train=Dataset(
            inputs=(_shaped(split.x_train, shape),),
            targets=split.y_train,
            name=f"{TRAIN_NAME} ({len(split.y_train)} images)",
        ),
        metric_name="accuracy",
        dynamic_batch=True,
        tags={
            "parameters": str(parameters),
            "source": "trained on scikit-learn digits (80% split), cached as safetensors",
            "held_out_accuracy": f"{weights.held_out_accuracy:.4f}",
            "weights_key": weights.key[:16],
        },
    )


def digits_cnn_workload() -> Workload:
    """The ``digits-cnn`` built-in: a small CNN on 8x8 digit images, input ``(N, 1, 8, 8)``."""
    return trained_workload(
        CNN_SPEC,
        (1, 8, 8),
        "small CNN classifying scikit-learn's 8x8 digit images (trained once, cached)",
    )
