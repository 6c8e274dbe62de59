"""Output checks (a fast wrong answer must fail), dataset evaluation, the backend registry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import as_bench.backends as backends
from as_bench.backends import (
    OutputCheckResult,
    PreparedModel,
    available_backends,
    backend_names,
    check_outputs,
    evaluate,
    get_backend,
)
from as_bench.exceptions import BackendError, WorkloadError
from as_bench.workloads import Dataset, Task, Workload

rng = np.random.default_rng(0)
LOGITS = rng.normal(size=(16, 10)).astype(np.float32)


def test_compare_outputs_is_kept_as_another_name_of_check_outputs() -> None:
    # as-deploy's parity check calls it by its former name.
    assert backends.compare_outputs is check_outputs
    assert "compare_outputs" in backends.__all__


def test_identical_outputs_pass() -> None:
    check = check_outputs([LOGITS], [LOGITS.copy()], task="classification")
    assert isinstance(check, OutputCheckResult)
    assert check.passed and check.failures == []
    assert check.max_abs_error == 0.0 and check.max_rel_error == 0.0
    assert check.top1_agreement == 1.0
    assert check.cosine_similarity is None


def test_a_perturbed_output_fails() -> None:
    wrong = LOGITS.copy()
    wrong[3, 4] += 0.5
    check = check_outputs([LOGITS], [wrong], task="classification", atol=1e-4, rtol=1e-4)
    assert not check.passed
    assert check.max_abs_error == pytest.approx(0.5, rel=1e-6)
    assert "1 of 160 values differ" in check.failures[0]
    assert "(3, 4)" in check.failures[0]


def test_a_wrong_class_is_counted() -> None:
    wrong = LOGITS.copy()
    wrong[0] = -wrong[0]  # the arg-max of row 0 moves
    check = check_outputs([LOGITS], [wrong], task="classification", atol=10.0)
    assert check.passed  # within the (very loose) tolerance ...
    assert check.top1_agreement == pytest.approx(15 / 16)
    strict = check_outputs(
        [LOGITS], [wrong], task="classification", atol=10.0, min_top1_agreement=1.0
    )
    assert not strict.passed  # ... but not when the class must agree
    assert "top-1 agreement 0.9375" in strict.failures[0]


def test_small_noise_within_tolerance_passes() -> None:
    noisy = LOGITS + np.float32(1e-6)
    check = check_outputs([LOGITS], [noisy], task="classification", atol=1e-5, rtol=1e-5)
    assert check.passed
    assert 0 < check.max_abs_error < 1e-5


def test_nan_shape_and_count_mismatches_fail() -> None:
    with_nan = LOGITS.copy()
    with_nan[1, 1] = np.nan
    check = check_outputs([LOGITS], [with_nan], task="classification")
    assert not check.passed
    assert check.max_abs_error == float("inf")
    assert "non-finite" in check.failures[0]

    check = check_outputs([LOGITS], [LOGITS[:, :9]], task="classification")
    assert not check.passed
    assert "shape (16, 9), the reference has (16, 10)" in check.failures[0]

    check = check_outputs([LOGITS, LOGITS], [LOGITS], task="regression")
    assert not check.passed
    assert "1 outputs, the reference has 2" in check.failures[0]
    assert not check_outputs([], [], task="regression").passed


def test_relative_error_ignores_near_zero_references() -> None:
    reference = np.array([[0.0, 1e-7, 2.0]], dtype=np.float32)
    candidate = np.array([[1e-5, 1e-5, 2.002]], dtype=np.float32)
    check = check_outputs([reference], [candidate], task="regression", atol=1e-4, rtol=1e-2)
    assert check.passed
    assert check.max_rel_error == pytest.approx(1e-3, rel=1e-3)  # only 2.0 vs 2.002 counts


def test_embedding_cosine_similarity() -> None:
    reference = rng.normal(size=(8, 32))
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    check = check_outputs([reference], [reference * 2.0], task="embedding", atol=10.0)
    assert check.cosine_similarity == pytest.approx(1.0)
    opposite = reference.copy()
    opposite[2] = -opposite[2]
    check = check_outputs(
        [reference], [opposite], task="embedding", atol=10.0, min_cosine_similarity=0.99
    )
    assert check.min_cosine_similarity == pytest.approx(-1.0)
    assert check.cosine_similarity == pytest.approx(6 / 8)
    assert not check.passed


def test_result_serialises() -> None:
    check = check_outputs([LOGITS], [LOGITS], task="classification")
    assert OutputCheckResult.model_validate_json(check.model_dump_json()) == check


finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@given(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=3, max_side=6), elements=finite)
)
def test_any_output_matches_itself(array: np.ndarray) -> None:
    check = check_outputs([array], [array.copy()], task="classification")
    assert check.passed and check.max_abs_error == 0.0 and check.top1_agreement == 1.0


@settings(deadline=None)
@given(
    hnp.arrays(np.float32, (4, 5), elements=finite),
    st.integers(0, 19),
    st.floats(1e-2, 1e3),
)
def test_any_change_beyond_tolerance_fails(array: np.ndarray, index: int, size: float) -> None:
    atol, rtol = 1e-4, 1e-4
    changed = array.astype(np.float64)
    flat = changed.reshape(-1)
    flat[index] += size + atol + rtol * abs(flat[index]) * 2
    check = check_outputs([array], [changed], task="regression", atol=atol, rtol=rtol)
    assert not check.passed


def _fixed_batch_model(weights: np.ndarray, batch_size: int, calls: list[int]) -> PreparedModel:
    """A prepared model that, like a static TFLite file, accepts one batch size only."""

    def predict(inputs: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        (x,) = inputs
        assert x.shape[0] == batch_size, x.shape
        calls.append(x.shape[0])
        return [x @ weights]

    return PreparedModel(
        backend="numpy", device="cpu", batch_size=batch_size, predict=predict, bench_call=list
    )


def _workload(task: Task, targets: np.ndarray, inputs: np.ndarray, metric: str | None) -> Workload:
    return Workload(
        name="numpy",
        description="unit test",
        task=task,
        make_model=lambda: None,
        make_inputs=lambda n: (inputs[:n],),
        dataset=Dataset(inputs=(inputs,), targets=targets, name="unit"),
        metric_name=metric,
    )


def test_evaluate_in_fixed_batches_with_padding() -> None:
    inputs = np.eye(10, dtype=np.float32)  # 10 rows: batches of 4, 4 and 2 (+2 padding)
    weights = np.eye(10, 3, dtype=np.float32)  # row i -> class i for i < 3, else all zero
    labels = np.array([0, 1, 2, 0, 0, 0, 0, 0, 0, 1])
    calls: list[int] = []
    prepared = _fixed_batch_model(weights, 4, calls)
    result = evaluate(prepared, _workload("classification", labels, inputs, "accuracy"))
    assert calls == [4, 4, 4]
    assert result == {"accuracy": pytest.approx(9 / 10)}


def test_evaluate_embedding_and_regression() -> None:
    inputs = rng.normal(size=(5, 3)).astype(np.float32)
    weights = rng.normal(size=(3, 4)).astype(np.float32)
    truth = inputs @ weights
    prepared = _fixed_batch_model(weights, 2, [])
    embedding = evaluate(prepared, _workload("embedding", truth, inputs, None))
    assert embedding == {
        "cosine_similarity": pytest.approx(1.0),
        "cosine_similarity_min": pytest.approx(1.0),
    }
    regression = evaluate(prepared, _workload("regression", truth + 1.0, inputs, None))
    assert regression == {"mse": pytest.approx(1.0), "max_abs_error": pytest.approx(1.0)}


def test_evaluate_without_dataset() -> None:
    workload = Workload(
        name="nodata",
        description="",
        task="regression",
        make_model=lambda: None,
        make_inputs=lambda n: (np.zeros((n, 1)),),
    )
    with pytest.raises(WorkloadError, match=r"'nodata' has no dataset"):
        evaluate(_fixed_batch_model(np.eye(1), 1, []), workload)


def test_registry_names_and_lookup() -> None:
    assert backend_names() == [
        "torch",
        "torch-compile",
        "torch-compile-cudagraphs",
        "onnxruntime",
        "tflite",
        "coreml",
        "mlx",
    ]
    with pytest.raises(BackendError, match=r"unknown backend 'tensorrt'.*torch, torch-compile"):
        get_backend("tensorrt")
    assert get_backend(" Torch ").name == "torch"


def test_registry_survives_a_missing_backend_module(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = {**backends._REGISTRY, "future": "as_bench.backends.not_written_yet:FutureBackend"}
    monkeypatch.setattr(backends, "_REGISTRY", registry)
    with pytest.raises(BackendError, match=r"as_bench.backends.not_written_yet is not part"):
        get_backend("future")
    names = [b.name for b in available_backends()]
    assert "future" not in names
    # The others are still listed: exactly those whose libraries are installed here.
    expected = [name for name in registry if name != "future" and get_backend(name).is_available()]
    assert names == expected
