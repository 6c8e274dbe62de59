"""How far healthy runs' losses and gradient norms stray from their running median.

The divergence and exploding-gradient detectors compare each step with the median of the
previous ``window`` steps (and the divergence detector also with the run's start level,
the median of its first ``window`` losses); their defaults must stay quiet on healthy
training. This trains three healthy runs on scikit-learn's digits (the tests' MLP with
dropout and SGD at batch 16 and 128; the overhead benchmark's CNN with Adam at batch 64,
long enough for its loss to approach 0) and prints, after a 50-step warm-up, the largest
ratio of a step to the median of the previous 50, the longest runs of consecutive steps
above a factor (steps above it kept out of the window, as the detector does), and the
highest loss above 5x the median as a fraction of the start level.

Usage (from the workspace root)::

    uv run python packages/as-optimize/benchmarks/detector_noise.py
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
from sklearn.datasets import load_digits  # type: ignore[import-untyped]
from torch import nn
from torch.nn import functional as F

WINDOW = 50
WARMUP = 50


def max_ratio(values: list[float]) -> float:
    return max(
        values[i] / statistics.median(values[i - WINDOW : i])
        for i in range(max(WARMUP, WINDOW), len(values))
    )


def longest_run(values: list[float], factor: float, start_fraction: float = 0.0) -> int:
    window: list[float] = []
    start = statistics.median(values[:WINDOW])
    longest = current = 0
    for index, value in enumerate(values):
        if index >= WARMUP and len(window) >= 3:
            median = statistics.median(window[-WINDOW:])
            if value > factor * median and value > start_fraction * start:
                current += 1
                longest = max(longest, current)
                continue
        current = 0
        window.append(value)
    return longest


def highest_spike_vs_start(values: list[float], factor: float) -> float:
    start = statistics.median(values[:WINDOW])
    spikes = [
        values[i]
        for i in range(max(WARMUP, WINDOW), len(values))
        if values[i] > factor * statistics.median(values[i - WINDOW : i])
    ]
    return max(spikes, default=0.0) / start


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10)
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def train(
    images: torch.Tensor,
    labels: torch.Tensor,
    model: nn.Module,
    make_opt: Callable[[nn.Module], torch.optim.Optimizer],
    batch: int,
    epochs: int,
) -> tuple[list[float], list[float]]:
    opt = make_opt(model)
    losses: list[float] = []
    norms: list[float] = []
    for _ in range(epochs):
        order = torch.randperm(len(images))
        for start in range(0, len(images), batch):
            index = order[start : start + batch]
            opt.zero_grad()
            loss = F.cross_entropy(model(images[index]), labels[index])
            loss.backward()  # type: ignore[no-untyped-call]
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            norms.append(float(torch.nn.utils.get_total_norm(grads, 2.0)))
            opt.step()
            losses.append(loss.item())
    return losses, norms


def main() -> None:
    torch.set_num_threads(1)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target)
    print(f"healthy runs on the digits; ratios to the median of the previous {WINDOW} steps")
    print(f"after {WARMUP} steps; start level = median of the first {WINDOW} losses\n")
    runs = [
        ("MLP, SGD 0.05, batch 16, 20 epochs", mlp, "sgd", 16, 20),
        ("MLP, SGD 0.05, batch 128, 20 epochs", mlp, "sgd", 128, 20),
        ("CNN, Adam 1e-3, batch 64, 40 epochs", cnn, "adam", 64, 40),
    ]
    for label, build, kind, batch, epochs in runs:
        torch.manual_seed(0)
        model = build()

        def make_opt(m: nn.Module, kind: str = kind) -> torch.optim.Optimizer:
            if kind == "sgd":
                return torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
            return torch.optim.Adam(m.parameters(), lr=1e-3)

        losses, norms = train(images, labels, model, make_opt, batch, epochs)
        print(f"{label} ({len(losses)} steps)")
        print(
            f"  loss: max {max_ratio(losses):.1f}x the median; longest run above 3x "
            f"{longest_run(losses, 3)}, above 5x {longest_run(losses, 5)}, above 5x and 0.5 x "
            f"the start {longest_run(losses, 5, 0.5)}; highest loss above 5x = "
            f"{highest_spike_vs_start(losses, 5):.3f} x the start level"
        )
        print(
            f"  gradient norm: max {max_ratio(norms):.1f}x the median; longest run above 10x "
            f"{longest_run(norms, 10)}, above 20x {longest_run(norms, 20)}"
        )


if __name__ == "__main__":
    main()
