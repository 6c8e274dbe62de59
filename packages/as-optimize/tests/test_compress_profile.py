"""``as-optimize profile`` on the digits CNN: counts checked against the model's own shapes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from as_optimize.cli import main
from as_optimize.compress import ModelProfile, measure_machine_balance, profile_workload
from as_optimize.exceptions import CompressionInputError


@pytest.fixture(scope="module")
def profile() -> ModelProfile:
    return profile_workload("digits-cnn", iterations=5, ridge_flops_per_byte=4.0)


@pytest.fixture(scope="module")
def model() -> Any:
    from as_bench.export import load_torch_model, load_workload

    return load_torch_model(load_workload("digits-cnn"))


def _conv_macs(conv: Any, height: int, width: int) -> int:
    """MACs of one Conv2d call at batch 1, from its hyper-parameters alone."""
    out_h = (height + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
    out_w = (width + 2 * conv.padding[1] - conv.kernel_size[1]) // conv.stride[1] + 1
    per_output = (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]
    return int(conv.out_channels * out_h * out_w * per_output)


def _layer(profile: ModelProfile, name: str) -> Any:
    return next(layer for layer in profile.layers if layer.name == name)


def test_conv_and_linear_macs_match_their_shapes(profile: ModelProfile, model: Any) -> None:
    second_conv = model.features[2]  # 16 -> 32 channels, 3x3, padding 1, on 8x8 maps
    assert _layer(profile, "features.2").macs == _conv_macs(second_conv, 8, 8) == 294_912
    first_linear = model.classifier[1]
    expected = first_linear.in_features * first_linear.out_features
    assert _layer(profile, "classifier.1").macs == expected
    assert _layer(profile, "features.1").macs is None  # ReLU: not counted
    counted = sum(layer.macs or 0 for layer in profile.layers)
    assert profile.macs["batch_1"] == counted
    assert profile.macs["batch_64"] == 64 * counted


def test_parameters_and_bytes_by_dtype_and_layer_type(profile: ModelProfile, model: Any) -> None:
    total = sum(p.numel() for p in model.parameters())
    assert profile.parameters == total
    assert profile.by_dtype["float32"].parameters == total
    assert profile.parameter_bytes == profile.by_dtype["float32"].bytes == 4 * total
    assert profile.by_layer_type["Conv2d"].layers == 2
    assert profile.by_layer_type["Linear"].parameters == sum(
        p.numel() for p in model.classifier.parameters()
    )
    assert profile.by_layer_type["ReLU"].parameters == 0


def test_activation_memory_is_the_bytes_each_layer_writes(profile: ModelProfile) -> None:
    conv = _layer(profile, "features.2")
    assert conv.output_shape == [1, 32, 8, 8]
    assert conv.activation_bytes == 32 * 8 * 8 * 4
    assert profile.activation_bytes["batch_1"] == sum(
        layer.activation_bytes for layer in profile.layers
    )
    assert profile.activation_bytes["batch_64"] == 64 * profile.activation_bytes["batch_1"]


def test_latency_shares_cover_the_forward_pass(profile: ModelProfile) -> None:
    shares = [entry.latency_share for entry in profile.by_layer_type.values()]
    assert all(0 <= share <= 1 for share in shares)
    assert math.isclose(sum(shares) + profile.latency_outside_layers_share, 1.0, abs_tol=1e-6)
    assert profile.by_layer_type["Conv2d"].latency_share > 0
    assert profile.forward_time_s > 0


def test_bound_follows_the_ridge_point() -> None:
    low = profile_workload("digits-cnn", iterations=1, ridge_flops_per_byte=1e-6)
    high = profile_workload("digits-cnn", iterations=1, ridge_flops_per_byte=1e6)
    counted = [layer for layer in low.layers if layer.macs is not None]
    assert counted and all(layer.bound["batch_1"] == "compute" for layer in counted)
    assert all(
        layer.bound["batch_64"] == "memory" for layer in high.layers if layer.macs is not None
    )
    # Batching reuses the weights: the first Linear's intensity grows with the batch.
    linear = _layer(low, "classifier.1")
    assert linear.intensity["batch_64"] > 10 * linear.intensity["batch_1"]
    assert low.machine.source == "given"


def test_techniques_say_where_they_apply_and_why_not(profile: ModelProfile) -> None:
    fits = {fit.technique: fit for fit in profile.techniques}
    assert set(fits) == {"ort-dynamic-int8", "ort-static-int8", "ort-fp16"}
    dynamic = fits["ort-dynamic-int8"].layer_types
    assert dynamic["Conv2d"]["applies"] is True
    assert "Gemm is not among" in dynamic["Linear"]["reason"]
    assert dynamic["ReLU"]["applies"] is False
    assert "dynamic int8" in dynamic["ReLU"]["reason"]
    static = fits["ort-static-int8"]
    assert static.applies and static.layer_types["Linear"]["applies"] is True


def test_the_machine_balance_is_measured_when_not_given() -> None:
    balance = measure_machine_balance(1, seconds=0.02)
    assert balance.source == "measured"
    assert balance.peak_flops and balance.peak_flops > 0
    assert balance.bandwidth_bytes_s and balance.bandwidth_bytes_s > 0
    assert balance.ridge_flops_per_byte == balance.peak_flops / balance.bandwidth_bytes_s


def test_cli_json_has_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["profile", "digits-cnn", "--json", "--ridge", "4"])
    assert exit_info.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"] == 1
    assert set(data) >= {
        "workload",
        "parameters",
        "parameter_bytes",
        "by_dtype",
        "by_layer_type",
        "layers",
        "macs",
        "activation_bytes",
        "machine",
        "bound",
        "techniques",
    }
    layer = data["layers"][0]
    assert set(layer) == {
        "name",
        "type",
        "parameters",
        "bytes",
        "macs",
        "output_shape",
        "activation_bytes",
        "intensity",
        "bound",
    }
    assert ModelProfile.model_validate(data).workload == "digits-cnn"


def test_cli_table_names_layers_and_techniques(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["profile", "digits-cnn", "--ridge", "4"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "features.2" in out and "294,912" in out
    assert "ort-static-int8" in out and "Linear: partly" in out


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["profile", "no-such-workload"], "no-such-workload"),
        (["profile", "digits-cnn", "--large-batch", "1"], "--large-batch"),
        (["profile", "digits-cnn", "--ridge", "-2"], "--ridge"),
    ],
)
def test_bad_input_is_a_usage_error_naming_it(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


def test_a_bad_threads_value_raises_naming_it() -> None:
    with pytest.raises(CompressionInputError, match="--threads"):
        profile_workload("digits-cnn", threads=0)
