"""How far a healthy run's loss and gradient norm stray from their running median.

The divergence and exploding-gradient detectors compare each step with the median of the
previous ``window`` steps; their defaults must stay quiet on healthy training. This trains
the tests' digits MLP (64-32-10 with dropout, SGD with momentum, lr 0.05) for 20 epochs at
two batch sizes and prints, after a 50-step warm-up, the largest ratio of a step to the
median of the previous 50, and the longest run of consecutive steps above a factor (steps
above it kept out of the window, as the detector does).

Usage (from the workspace root)::

    uv run python packages/as-optimize/benchmarks/detector_noise.py
"""

from __future__ import annotations

import statistics

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


def longest_run(values: list[float], factor: float) -> int:
    window: list[float] = []
    longest = current = 0
    for index, value in enumerate(values):
        if index >= WARMUP and len(window) >= 3:
            if value > factor * statistics.median(window[-WINDOW:]):
                current += 1
                longest = max(longest, current)
                continue
        current = 0
        window.append(value)
    return longest


def main() -> None:
    torch.set_num_threads(1)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target)
    print("digits MLP, SGD lr 0.05 momentum 0.9, 20 epochs; ratios to the median of the")
    print(f"previous {WINDOW} steps after {WARMUP} steps\n")
    for batch in (16, 128):
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10)
        )
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        losses: list[float] = []
        norms: list[float] = []
        for _ in range(20):
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
        print(
            f"batch {batch:>3} ({len(losses)} steps): loss max {max_ratio(losses):.1f}x, "
            f"longest run above 3x {longest_run(losses, 3)}, above 5x {longest_run(losses, 5)}; "
            f"gradient norm max {max_ratio(norms):.1f}x, longest run above 10x "
            f"{longest_run(norms, 10)}, above 20x {longest_run(norms, 20)}"
        )


if __name__ == "__main__":
    main()
