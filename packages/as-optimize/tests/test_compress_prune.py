"""Pruning: channels really removed (digits-cnn, mlp), magnitude pruning, the two stages."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="pruning needs the torch extra")
pytest.importorskip("sklearn", reason="the digits workloads need scikit-learn")

from torch import nn  # noqa: E402

from as_bench.export import export_onnx, load_torch_model, load_workload  # noqa: E402
from as_optimize.compress._data import TrainingData  # noqa: E402
from as_optimize.compress._pipeline import TorchStage  # noqa: E402
from as_optimize.compress._prune import (  # noqa: E402
    ChannelPruning,
    MagnitudePruning,
    _GradualMasks,
    apply_masks,
    channel_plan,
    magnitude_masks,
    magnitude_prune,
    prunable,
    prune_channels,
    sparsity_at,
)
from as_optimize.compress._techniques import ApplyContext  # noqa: E402
from as_optimize.exceptions import CompressionError, CompressionInputError  # noqa: E402


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _run(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out: np.ndarray = model(torch.from_numpy(np.array(inputs))).numpy()
    return out


def _accuracy(model: nn.Module, workload: Any) -> float:
    dataset = workload.dataset
    return float(np.mean(_run(model, dataset.inputs[0]).argmax(-1) == dataset.targets))


def _kept(channels: int, ratio: float) -> int:
    return max(1, math.floor((1 - ratio) * channels + 0.5))


@pytest.fixture(scope="module")
def cnn() -> tuple[Any, nn.Module]:
    workload = load_workload("digits-cnn")
    return workload, load_torch_model(workload)


@pytest.fixture(scope="module")
def mlp() -> tuple[Any, nn.Module]:
    workload = load_workload("mlp")
    return workload, load_torch_model(workload)


def _context(workload: Any, model: nn.Module, work_dir: Path | None, train: bool) -> ApplyContext:
    training = None
    if train:
        assert workload.train is not None
        training = TrainingData(
            inputs=tuple(np.array(a) for a in workload.train.inputs),
            labels=np.array(workload.train.targets),
            name="digits train",
        )
    return ApplyContext(
        input_names=tuple(workload.input_names),
        workload=workload,
        torch_model=model,
        example_inputs=workload.inputs(1),
        training=training,
        seed=0,
        work_dir=work_dir,
    )


# --- channel pruning ----------------------------------------------------------------------


def test_cnn_plan_prunes_all_but_the_output_layer(cnn: tuple[Any, nn.Module]) -> None:
    workload, model = cnn
    plans = {p.name: p for p in channel_plan(model, workload.inputs(1))}
    assert [n for n, p in plans.items() if p.prunable] == [
        "features.0",
        "features.2",
        "classifier.1",
    ]
    assert plans["features.0"].consumer == "features.2"
    assert plans["features.2"].consumer == "classifier.1"
    assert plans["features.2"].spatial == 16  # 4x4 after the max-pool, then flattened
    assert not plans["classifier.3"].prunable
    assert "model's outputs" in plans["classifier.3"].why
    ok, why = prunable(model, workload.inputs(1))
    assert ok and "classifier.3" in why


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_cnn_channels_are_really_removed(cnn: tuple[Any, nn.Module], ratio: float) -> None:
    workload, model = cnn
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned: Any = prune_channels(model, ratio, workload.inputs(1))

    c1, c2, f1 = _kept(16, ratio), _kept(32, ratio), _kept(64, ratio)
    expected = (c1 * 9 + c1) + (c2 * c1 * 9 + c2) + (c2 * 16 * f1 + f1) + (f1 * 10 + 10)
    assert _params(pruned) == expected < _params(model)
    assert pruned.features[0].out_channels == c1
    assert pruned.classifier[1].in_features == c2 * 16
    (batch,) = workload.inputs(7)
    assert _run(pruned, batch).shape == (7, 10)
    assert not pruned.training
    # The original is untouched.
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert _params(model) == 38282


def test_ratio_zero_gives_identical_outputs(
    cnn: tuple[Any, nn.Module], mlp: tuple[Any, nn.Module]
) -> None:
    for workload, model in (cnn, mlp):
        pruned = prune_channels(model, 0.0, workload.inputs(1))
        assert pruned is not model
        assert _params(pruned) == _params(model)
        inputs = workload.dataset.inputs[0]
        np.testing.assert_array_equal(_run(pruned, inputs), _run(model, inputs))


def test_mlp_hidden_layers_shrink(mlp: tuple[Any, nn.Module]) -> None:
    workload, model = mlp
    pruned = prune_channels(model, 0.5, workload.inputs(1))
    assert _params(pruned) == (64 * 128 + 128) + (128 * 128 + 128) + (128 * 10 + 10)
    assert _run(pruned, workload.inputs(3)[0]).shape == (3, 10)
    # Half the hidden units, chosen by weight norm, keep most of the accuracy unaided.
    assert _accuracy(pruned, workload) > 0.5


def test_pruned_model_exports_to_onnx_and_runs(cnn: tuple[Any, nn.Module], tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    workload, model = cnn
    pruned = prune_channels(model, 0.5, workload.inputs(1))
    path, dynamic = export_onnx(
        dataclasses.replace(workload, make_model=lambda: pruned), 1, tmp_path
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = workload.inputs(5)[0] if dynamic else workload.inputs(1)[0]
    (out,) = session.run(None, {session.get_inputs()[0].name: batch})
    np.testing.assert_allclose(out, _run(pruned, batch), rtol=1e-4, atol=1e-4)
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(path)).graph
    stored = sum(
        math.prod(t.dims) for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT
    )
    assert stored == _params(pruned) < _params(model)  # the file holds the smaller tensors


class _DeadChannels(nn.Module):
    """Conv -> BN -> ReLU -> flatten -> Linear, with channels 1 and 3 dead."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 3 * 3, 6)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(4, 2, 3, 3, generator=gen))
            stats: Any = self.bn  # its running statistics are typed Optional
            stats.running_mean.copy_(torch.randn(4, generator=gen))
            stats.running_var.copy_(torch.rand(4, generator=gen) + 0.5)
            self.bn.weight.copy_(torch.rand(4, generator=gen) + 0.5)
            self.bn.bias.copy_(torch.randn(4, generator=gen))
            # Channels 1 and 3 have large weights but a zero BatchNorm scale and shift:
            # they output nothing, and only the BN-aware ranking knows it.
            self.conv.weight[[1, 3]] *= 10
            self.bn.weight[[1, 3]] = 0.0
            self.bn.bias[[1, 3]] = 0.0
        self.eval()

    def forward(self, x: Any) -> Any:
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(x, 1))


def test_dead_channels_are_removed_and_outputs_kept() -> None:
    model: Any = _DeadChannels()
    x = np.random.default_rng(0).standard_normal((5, 2, 3, 3)).astype(np.float32)
    pruned: Any = prune_channels(model, 0.5, (x[:1],))
    assert pruned.conv.out_channels == 2
    assert pruned.bn.num_features == 2
    # The live channels 0 and 2 are kept, in order, with their BatchNorm statistics and
    # their whole 3x3 blocks of the flattened Linear's inputs.
    torch.testing.assert_close(pruned.conv.weight, model.conv.weight[[0, 2]])
    torch.testing.assert_close(pruned.bn.running_var, model.bn.running_var[[0, 2]])
    blocks = [*range(0, 9), *range(18, 27)]
    torch.testing.assert_close(pruned.fc.weight, model.fc.weight[:, blocks])
    torch.testing.assert_close(pruned.fc.bias, model.fc.bias)
    np.testing.assert_allclose(_run(pruned, x), _run(model, x), rtol=1e-5, atol=1e-6)
    # Ranked by weights alone, the dead channels (10x larger) would have been kept.
    assert model.conv.weight[[1, 3]].abs().sum() > model.conv.weight[[0, 2]].abs().sum()


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = nn.Conv2d(4, 4, 3, padding=1)
        self.side = nn.Conv2d(4, 4, 1)
        self.head = nn.Linear(8 * 16, 3)

    def forward(self, x: Any) -> Any:
        y = torch.relu(self.stem(x))
        y = y + torch.relu(self.block(y))
        z = torch.cat([y, self.side(y)], dim=1)
        return self.head(z.flatten(1))


def test_residual_add_and_concat_are_skipped_with_the_reason() -> None:
    x = np.zeros((1, 1, 4, 4), np.float32)
    plans = {p.name: p for p in channel_plan(_Residual(), (x,))}
    assert not any(p.prunable for p in plans.values())
    assert "2 operators" in plans["stem"].why  # feeds the block and the add
    assert "residual add" in plans["block"].why
    assert "concatenation" in plans["side"].why
    ok, why = prunable(_Residual(), (x,))
    assert not ok and "residual add" in why
    with pytest.raises(CompressionError, match="nothing to prune"):
        prune_channels(_Residual(), 0.5, (x,))


class _Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Any) -> Any:
        if x.sum() > 0:  # data-dependent: torch.fx cannot trace it
            return self.fc(x)
        return x


def test_untraceable_or_single_layer_models_say_why() -> None:
    x = np.ones((1, 4), np.float32)
    ok, why = prunable(_Branchy(), (x,))
    assert not ok and "torch.fx" in why
    ok, why = prunable(nn.Sequential(nn.Linear(4, 2)), (x,))
    assert not ok and "model's outputs" in why
    with pytest.raises(CompressionInputError, match="ratio"):
        prune_channels(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), 1.0, (x,))


# --- magnitude pruning --------------------------------------------------------------------


def _zeros(tensor: Any) -> int:
    return int((tensor == 0).sum())


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_prune_zeroes_the_smallest_weights(
    mlp: tuple[Any, nn.Module], scope: str
) -> None:
    _, model = mlp
    pruned = magnitude_prune(model, 0.8, scope)
    weights = {n: p for n, p in model.named_parameters() if n.endswith("weight")}
    new = dict(pruned.named_parameters())
    total = sum(w.numel() for w in weights.values())
    if scope == "layer":
        for name, w in weights.items():
            assert _zeros(new[name]) == math.floor(0.8 * w.numel()), name
    else:
        assert sum(_zeros(new[n]) for n in weights) == math.floor(0.8 * total)
    # Every zeroed weight is no larger than every kept one (per layer or overall),
    # and the kept weights are unchanged.
    groups = [[n] for n in weights] if scope == "layer" else [list(weights)]
    for group in groups:
        old = torch.cat([weights[n].detach().abs().reshape(-1) for n in group])
        kept = torch.cat([new[n].detach().reshape(-1) != 0 for n in group])
        assert old[~kept].max() <= old[kept].min()
    for name, w in weights.items():
        mask = new[name] != 0
        assert torch.equal(new[name][mask], w[mask])
    assert sum(_zeros(p) for p in model.parameters()) < 10  # the original is untouched
    assert _params(pruned) == _params(model)  # dense: same tensors, same sizes


def test_sparsity_schedule_rises_then_holds() -> None:
    values = [sparsity_at(step, 10, 0.8) for step in range(15)]
    assert values[0] == 0.0
    assert all(a < b for a, b in itertools.pairwise(values[:11]))
    assert values[10:] == [0.8] * 5
    assert values[5] > 0.4  # cubic: most of the pruning happens early


def test_gradual_masks_hold_while_weights_move() -> None:
    model = nn.Sequential(nn.Linear(20, 20), nn.Linear(20, 5))
    hook = _GradualMasks(final=0.5, scope="global", ramp_steps=4, updates=4)
    total = 20 * 20 + 20 * 5
    seen = []
    for _ in range(6):
        zeros_before = {n: p == 0 for n, p in model.named_parameters() if n.endswith("weight")}
        with torch.no_grad():  # an optimizer step moves every weight
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01)
        hook(model)
        now = {n: p == 0 for n, p in model.named_parameters() if n.endswith("weight")}
        for name, was in zeros_before.items():
            assert bool(now[name][was].all()), "a pruned weight came back"
        seen.append(sum(int(m.sum()) for m in now.values()) / total)
    assert seen == sorted(seen) and seen[0] > 0.0
    assert seen[-1] == pytest.approx(0.5, abs=1 / total)


def test_masks_must_match_the_model() -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    masks = magnitude_masks(model, 0.5)
    with pytest.raises(CompressionError, match="matches no parameter"):
        apply_masks(nn.Sequential(nn.Linear(4, 3)), masks)
    with pytest.raises(CompressionInputError, match="scope"):
        magnitude_masks(model, 0.5, "row")


# --- the stages ---------------------------------------------------------------------------


def test_stages_follow_the_protocol(cnn: tuple[Any, nn.Module]) -> None:
    workload, model = cnn
    for stage in (ChannelPruning(), MagnitudePruning()):
        assert isinstance(stage, TorchStage)
        assert stage.knobs()
    assert "do not change" in MagnitudePruning().when_it_pays
    context = _context(workload, model, None, train=False)
    ok, why = ChannelPruning().applies_to(context)
    assert ok and "not fine-tuned" in why
    ok, why = MagnitudePruning().applies_to(context)
    assert ok and "do not run faster" in why
    ok, why = ChannelPruning().applies_to(ApplyContext(input_names=("input",)))
    assert not ok and "torch model" in why
    assert ChannelPruning().knobs()[0] == {"ratio": 0.5, "epochs": 10, "lr": 1e-3}
    with pytest.raises(CompressionInputError, match="unknown knobs"):
        ChannelPruning().transform(model, {"ratio": 0.5, "width": 2}, context)


def test_channel_pruning_without_training_data_is_not_fine_tuned(
    cnn: tuple[Any, nn.Module], tmp_path: Path
) -> None:
    workload, model = cnn
    context = _context(workload, model, tmp_path, train=False)
    out = ChannelPruning().transform(model, {"ratio": 0.5, "epochs": 2, "lr": 1e-3}, context)
    inputs = workload.dataset.inputs[0]
    np.testing.assert_array_equal(
        _run(out, inputs), _run(prune_channels(model, 0.5, workload.inputs(1)), inputs)
    )
    assert not any(tmp_path.iterdir())  # no training run


def test_channel_pruning_fine_tunes_from_the_teacher(
    cnn: tuple[Any, nn.Module], tmp_path: Path
) -> None:
    workload, model = cnn
    context = _context(workload, model, tmp_path, train=True)
    stage = ChannelPruning()
    unaided = stage.transform(model, {"ratio": 0.75, "epochs": 0, "lr": 3e-3}, context)
    tuned = stage.transform(model, {"ratio": 0.75, "epochs": 2, "lr": 3e-3}, context)
    assert _params(tuned) == _params(unaided) < _params(model) / 10
    assert not tuned.training
    before, after = _accuracy(unaided, workload), _accuracy(tuned, workload)
    assert after > before + 0.2, (before, after)
    runs = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(runs) == 1 and runs[0].name.startswith("prune-channels")
    assert (runs[0] / "metrics.jsonl").is_file()


def test_magnitude_pruning_fine_tunes_gradually_to_the_asked_sparsity(
    cnn: tuple[Any, nn.Module], tmp_path: Path
) -> None:
    workload, model = cnn
    context = _context(workload, model, tmp_path, train=True)
    knobs = {"sparsity": 0.8, "epochs": 1, "scope": "global", "lr": 1e-3}
    out: Any = MagnitudePruning().transform(model, knobs, context)
    weights = [p for n, p in out.named_parameters() if n.endswith("weight")]
    total = sum(w.numel() for w in weights)
    assert sum(_zeros(w) for w in weights) == math.floor(0.8 * total)
    assert _accuracy(out, workload) > 0.8
    # Fine-tuned, not only zeroed: the kept weights moved.
    one_shot: Any = magnitude_prune(model, 0.8)
    assert not torch.equal(out.features[0].weight, one_shot.features[0].weight)
    assert any((p / "metrics.jsonl").is_file() for p in tmp_path.iterdir())
