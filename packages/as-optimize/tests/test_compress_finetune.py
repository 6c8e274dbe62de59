"""Knowledge-distillation fine-tuning (compress/_finetune.py) on small real models."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from as_optimize.compress._data import TrainingData
from as_optimize.compress._finetune import train_from_teacher
from as_optimize.exceptions import CompressionError, CompressionInputError
from as_optimize.training import read_events, read_metrics


def _blobs(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in 8 dimensions: an easy, real classification problem."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(3, 8))
    labels = rng.integers(0, 3, size=n)
    x = centres[labels] + rng.normal(0.0, 1.0, size=(n, 8))
    return x.astype(np.float32), labels.astype(np.int64)


def _mlp(hidden: int, seed: int, out: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, out))


def _trained_teacher(x: np.ndarray, y: np.ndarray) -> nn.Module:
    teacher = _mlp(64, seed=1)
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(teacher(xt), yt).backward()  # type: ignore[no-untyped-call]
        opt.step()
    return teacher.eval()


def _agreement(a: nn.Module, b: nn.Module, x: np.ndarray) -> float:
    with torch.no_grad():
        xt = torch.from_numpy(x)
        return float((a(xt).argmax(1) == b(xt).argmax(1)).float().mean())


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray, nn.Module]:
    x, y = _blobs()
    return x, y, _trained_teacher(x, y)


def test_a_student_learns_the_teacher_and_the_run_is_monitored(
    blobs: tuple[np.ndarray, np.ndarray, nn.Module], tmp_path: Path
) -> None:
    x, y, teacher = blobs
    x_test, _ = _blobs(n=200, seed=0)  # same blobs, fresh points (first n rows equal x's)
    student = _mlp(4, seed=2)
    before = _agreement(student, teacher, x_test)
    teacher_weights = [p.detach().clone() for p in teacher.parameters()]
    trained = train_from_teacher(
        student,
        teacher,
        TrainingData((x,), y, "blobs"),
        epochs=8,
        lr=1e-2,
        batch_size=32,
        temperature=2.0,
        alpha=0.7,
        seed=0,
        run_dir=tmp_path / "run",
    )
    assert trained is student
    assert not trained.training
    after = _agreement(trained, teacher, x_test)
    assert after > 0.95 and after > before
    # The teacher is left as it was.
    for p, q in zip(teacher.parameters(), teacher_weights, strict=True):
        assert torch.equal(p, q)
    frame = read_metrics(tmp_path / "run")
    steps = frame.filter(frame["kind"] == "step")
    assert steps.height == 8 * math.ceil(len(x) / 32)
    losses = steps["loss"].to_list()
    assert losses[-1] < losses[0]
    evals = frame.filter(frame["kind"] == "eval")
    assert evals.height == 8 and "distill_loss" in evals.columns


def test_same_seed_same_weights_other_seed_other_weights(
    blobs: tuple[np.ndarray, np.ndarray, nn.Module], tmp_path: Path
) -> None:
    x, y, teacher = blobs
    data = TrainingData((x,), y, "blobs")

    states = []

    def run(seed: int, name: str) -> list[torch.Tensor]:
        student = _mlp(8, seed=3)
        state = torch.random.get_rng_state()
        train_from_teacher(
            student,
            teacher,
            data,
            epochs=2,
            lr=1e-2,
            batch_size=16,
            temperature=4.0,
            alpha=0.5,
            seed=seed,
            run_dir=tmp_path / name,
        )
        # The caller's global random state is not consumed.
        states.append(torch.equal(torch.random.get_rng_state(), state))
        return [p.detach().clone() for p in student.parameters()]

    a, b, c = run(0, "a"), run(0, "b"), run(1, "c")
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))
    assert states == [True, True, True]


def test_after_step_runs_after_every_optimizer_step(
    blobs: tuple[np.ndarray, np.ndarray, nn.Module], tmp_path: Path
) -> None:
    x, y, teacher = blobs
    student = _mlp(8, seed=4)
    first = student[0]
    assert isinstance(first, nn.Linear)
    mask = torch.ones_like(first.weight)
    mask[:4] = 0.0  # half the hidden units pruned
    calls = []

    def reapply(model: nn.Module) -> None:
        calls.append(1)
        assert model is student
        with torch.no_grad():
            first.weight.mul_(mask)

    train_from_teacher(
        student,
        teacher,
        TrainingData((x,), y, "blobs"),
        epochs=2,
        lr=1e-2,
        batch_size=64,
        temperature=2.0,
        alpha=0.5,
        seed=0,
        run_dir=tmp_path / "run",
        after_step=reapply,
    )
    assert len(calls) == 2 * math.ceil(len(x) / 64)
    assert torch.count_nonzero(first.weight[:4]) == 0
    assert torch.count_nonzero(first.weight[4:]) > 0


def test_embeddings_are_matched_by_direction_and_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    teacher = _mlp(32, seed=5, out=6).eval()
    student = _mlp(16, seed=6, out=6)

    def cosine() -> float:
        with torch.no_grad():
            xt = torch.from_numpy(x)
            return float(nn.functional.cosine_similarity(student(xt), teacher(xt)).mean())

    before = cosine()
    train_from_teacher(
        student,
        teacher,
        TrainingData((x,), None, "noise"),
        epochs=10,
        lr=1e-2,
        batch_size=32,
        temperature=1.0,
        alpha=1.0,
        seed=0,
        run_dir=tmp_path / "run",
    )
    after = cosine()
    assert after > 0.9 and after > before


def test_a_nan_stops_with_the_step_that_produced_it(
    blobs: tuple[np.ndarray, np.ndarray, nn.Module], tmp_path: Path
) -> None:
    x, y, teacher = blobs
    poisoned = x.copy()
    poisoned[100] = np.nan  # one example: the batch that holds it gives a NaN loss
    with pytest.raises(CompressionError, match=r"nonfinite at step (\d+)") as info:
        train_from_teacher(
            _mlp(8, seed=7),
            teacher,
            TrainingData((poisoned,), y, "poisoned"),
            epochs=2,
            lr=1e-2,
            batch_size=40,
            temperature=2.0,
            alpha=0.5,
            seed=0,
            run_dir=tmp_path / "run",
        )
    step = int(str(info.value).split("nonfinite at step ")[1].split(" ")[0])
    frame = read_metrics(tmp_path / "run")
    steps = frame.filter(frame["kind"] == "step")
    nan_steps = [s for s, v in zip(steps["step"], steps["loss"], strict=True) if math.isnan(v)]
    assert nan_steps == [step]
    assert step <= math.ceil(len(x) / 40)  # in the first epoch, where the example first comes
    assert [e.kind for e in read_events(tmp_path / "run")] == ["nonfinite"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", 0), ("lr", 0.0), ("batch_size", 0), ("temperature", -1.0), ("alpha", 1.5)],
)
def test_settings_out_of_range_are_refused(
    blobs: tuple[np.ndarray, np.ndarray, nn.Module], tmp_path: Path, field: str, value: float
) -> None:
    x, y, teacher = blobs
    settings: dict[str, float] = {
        "epochs": 1,
        "lr": 1e-2,
        "batch_size": 8,
        "temperature": 2.0,
        "alpha": 0.5,
    }
    settings[field] = value
    with pytest.raises(CompressionInputError, match=field.replace("_", " ")):
        train_from_teacher(
            _mlp(4, seed=0),
            teacher,
            TrainingData((x,), y, "blobs"),
            epochs=int(settings["epochs"]),
            lr=settings["lr"],
            batch_size=int(settings["batch_size"]),
            temperature=settings["temperature"],
            alpha=settings["alpha"],
            seed=0,
            run_dir=tmp_path / "run",
        )
