"""Distillation (compress/_distill.py): students of as-bench's models, and the stage."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from as_bench.export import load_torch_model, load_workload
from as_optimize.compress._data import TrainingData
from as_optimize.compress._distill import Distillation, make_student, parameter_count
from as_optimize.compress._techniques import ApplyContext
from as_optimize.exceptions import CompressionError, CompressionInputError


def _shapes(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (type(m).__name__, tuple(m.weight.shape))
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d))
    ]


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_half_width_mlp_student_keeps_input_and_output_sizes() -> None:
    workload = load_workload("mlp")
    teacher = load_torch_model(workload)
    before = _state(teacher)
    student = make_student(teacher, 0.5, 1.0, workload.inputs(1))
    assert _shapes(teacher) == [
        ("Linear", (256, 64)),
        ("Linear", (256, 256)),
        ("Linear", (10, 256)),
    ]
    assert _shapes(student) == [
        ("Linear", (128, 64)),
        ("Linear", (128, 128)),
        ("Linear", (10, 128)),
    ]
    assert not student.training
    x = torch.from_numpy(np.array(workload.inputs(4)[0]))
    with torch.no_grad():
        assert student(x).shape == teacher(x).shape == (4, 10)
    assert parameter_count(student) < 0.35 * parameter_count(teacher)
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_depth_drops_hidden_layers_and_the_sizes_follow() -> None:
    workload = load_workload("mlp")
    teacher = load_torch_model(workload)
    student = make_student(teacher, 0.5, 0.5, workload.inputs(1))
    assert _shapes(student) == [("Linear", (128, 64)), ("Linear", (10, 128))]
    assert [type(m).__name__ for m in student.children()] == ["Linear", "ReLU", "Linear"]

    cnn = load_workload("digits-cnn")
    teacher = load_torch_model(cnn)
    half = make_student(teacher, 0.5, 1.0, cnn.inputs(1))
    # Channels halved; the Linear after Flatten reads the new flattened size (16 x 4 x 4).
    assert _shapes(half) == [
        ("Conv2d", (8, 1, 3, 3)),
        ("Conv2d", (16, 8, 3, 3)),
        ("Linear", (32, 256)),
        ("Linear", (10, 32)),
    ]
    shallow = make_student(teacher, 0.5, 0.5, cnn.inputs(1))  # one of the two hidden layers
    assert _shapes(shallow) == [
        ("Conv2d", (8, 1, 3, 3)),
        ("Conv2d", (16, 8, 3, 3)),
        ("Linear", (10, 256)),
    ]
    x = torch.from_numpy(np.array(cnn.inputs(3)[0]))
    with torch.no_grad():
        assert shallow(x).shape == (3, 10)


def test_the_seed_decides_the_initial_weights() -> None:
    workload = load_workload("mlp")
    teacher = load_torch_model(workload)
    a, b, c = (make_student(teacher, 0.5, 1.0, workload.inputs(1), seed=s) for s in (0, 0, 1))
    sa, sb, sc = _state(a), _state(b), _state(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


class _Skip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x) + x)  # type: ignore[no-any-return]


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.attn(x, x, x)[0])  # type: ignore[no-any-return]


def test_unsupported_architectures_say_why() -> None:
    x = np.zeros((1, 8), dtype=np.float32)
    with pytest.raises(CompressionError, match="skip connection"):
        make_student(_Skip(), 0.5, 1.0, (x,))
    with pytest.raises(CompressionError, match="transformer"):
        make_student(_Attention(), 0.5, 1.0, (np.zeros((1, 3, 8), dtype=np.float32),))
    with pytest.raises(CompressionError, match="BatchNorm3d"):
        make_student(nn.Sequential(nn.Linear(8, 8), nn.BatchNorm3d(8)), 0.5, 1.0, (x,))
    for width, depth in ((0.0, 1.0), (1.5, 1.0), (0.5, 0.0)):
        with pytest.raises(CompressionInputError):
            make_student(nn.Sequential(nn.Linear(8, 2)), width, depth, (x,))


def test_minilm_is_not_supported_and_says_so() -> None:
    try:
        minilm = load_workload("minilm")
        model = load_torch_model(minilm)
    except Exception as exc:  # its weights are not cached here
        pytest.skip(f"minilm is not available: {exc}")
    with pytest.raises(CompressionError, match="MiniLM"):
        make_student(model, 0.5, 1.0, minilm.inputs(1))
    context = ApplyContext(
        input_names=tuple(minilm.input_names),
        torch_model=model,
        training=TrainingData(minilm.inputs(4), None, "examples"),
    )
    ok, why = Distillation().applies_to(context)
    assert not ok and "transformer" in why


def _digits_context(workload: Any, teacher: nn.Module, tmp_path: Path) -> ApplyContext:
    train = workload.train  # the split the digits models were trained on
    assert train is not None
    return ApplyContext(
        input_names=tuple(workload.input_names),
        workload=workload,
        workload_spec=workload.name,
        torch_model=teacher,
        example_inputs=workload.inputs(1),
        training=TrainingData(tuple(train.inputs), train.targets, "digits, training split"),
        seed=0,
        work_dir=tmp_path,
    )


def test_the_stage_applies_only_with_training_data() -> None:
    workload = load_workload("mlp")
    teacher = load_torch_model(workload)
    stage = Distillation()
    ok, why = stage.applies_to(ApplyContext(input_names=("input",), torch_model=teacher))
    assert not ok and "training examples" in why
    ok, why = stage.applies_to(
        ApplyContext(
            input_names=("input",),
            torch_model=teacher,
            training=TrainingData((np.zeros((4, 64), np.float32),), None, "zeros"),
        )
    )
    assert ok and "3 Linear/Conv" in why
    knobs = stage.knobs()
    assert {k["width"] for k in knobs} == {0.5, 0.75}
    assert {k["temperature"] for k in knobs} == {2.0, 4.0}
    assert all(k["depth"] == 1.0 and k["epochs"] >= 1 for k in knobs)
    pipeline = importlib.util.find_spec("as_optimize.compress._pipeline")
    if pipeline is not None:  # the stage contract, where the pipeline module is installed
        from as_optimize.compress._pipeline import TorchStage

        assert isinstance(stage, TorchStage)


def test_a_trained_half_width_student_classifies_the_held_out_digits(tmp_path: Path) -> None:
    workload = load_workload("mlp")
    teacher = load_torch_model(workload)
    before = _state(teacher)
    context = _digits_context(workload, teacher, tmp_path)
    stage = Distillation()
    knobs = {"width": 0.5, "depth": 1.0, "temperature": 4.0, "epochs": 4}
    student = stage.transform(teacher, knobs, context)
    assert student is not teacher and not student.training
    assert _shapes(student)[0] == ("Linear", (128, 64))
    assert workload.dataset is not None
    x = torch.from_numpy(np.array(workload.dataset.inputs[0]))
    y = workload.dataset.targets
    with torch.no_grad():
        untrained = make_student(teacher, 0.5, 1.0, workload.inputs(1))
        accuracy = float((student(x).argmax(1).numpy() == y).mean())
        chance = float((untrained(x).argmax(1).numpy() == y).mean())
    assert accuracy > 0.9 > chance
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # The run went through the training monitor, in the candidate's scratch folder.
    assert any(p.name == "metrics.jsonl" for p in tmp_path.rglob("*"))
    with pytest.raises(CompressionInputError, match="unknown knobs"):
        stage.transform(teacher, {"widht": 0.5}, context)


def test_few_examples_get_at_least_min_steps(tmp_path: Path) -> None:
    """64 calibration examples (one step an epoch) still train the student."""
    workload = load_workload("mlp")
    teacher = load_torch_model(workload)
    assert workload.dataset is not None
    x, y = np.array(workload.dataset.inputs[0]), workload.dataset.targets
    stage = Distillation(min_steps=300)
    assert stage.epochs_for(10, 64) == 300
    assert stage.epochs_for(10, 1437) == 14  # 23 steps an epoch
    assert stage.epochs_for(40, 1437) == 40
    context = ApplyContext(
        input_names=("input",),
        workload=workload,
        torch_model=teacher,
        example_inputs=workload.inputs(1),
        training=TrainingData((x[:64],), y[:64], "the first 64 held-out digits"),
        work_dir=tmp_path,
    )
    knobs = {"width": 0.5, "depth": 1.0, "temperature": 4.0, "epochs": 10}
    student = stage.transform(teacher, knobs, context)
    with torch.no_grad():
        accuracy = float((student(torch.from_numpy(x[64:])).argmax(1).numpy() == y[64:]).mean())
    assert accuracy > 0.85
