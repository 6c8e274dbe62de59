"""The manifest schema: valid records round-trip, bad ones name every bad key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from as_deploy import Manifest, ManifestError, check_name, parse_manifest
from as_deploy.exceptions import InvalidNameError
from as_deploy.manifest import read_manifest_bytes

SHA = "a" * 64


def manifest_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": 1,
        "name": "resnet18",
        "version": "1.0.0",
        "format": "onnx",
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 3, 224, 224]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [None, 1000]}],
        "labels": ["cat", "dog"],
        "preprocessing": {"mean": [0.485, 0.456, 0.406], "resize": 256},
        "files": [{"path": "model.onnx", "sha256": SHA, "size_bytes": 10, "role": "model"}],
        "provenance": {
            "source": "torchvision resnet18",
            "created_at": datetime(2026, 11, 26, tzinfo=UTC).isoformat(),
            "tool_versions": {"torch": "2.5.0"},
            "git_commit": None,
        },
        "parity": {
            "runtime": "onnxruntime",
            "reference": "torch",
            "inputs_checked": 4,
            "max_abs_error": 1e-5,
            "max_rel_error": 1e-4,
            "top1_agreement": 1.0,
            "atol": 1e-4,
            "rtol": 1e-3,
            "passed": True,
        },
    }
    data.update(overrides)
    return data


def test_round_trip_through_json() -> None:
    manifest = parse_manifest(manifest_data())
    again = read_manifest_bytes(manifest.to_json().encode())
    assert again == manifest
    assert manifest.inputs[0].shape == [None, 3, 224, 224]
    assert manifest.model_file.path == "model.onnx"


def test_manifest_is_frozen() -> None:
    manifest = parse_manifest(manifest_data())
    with pytest.raises(ValidationError):
        manifest.name = "other"


@pytest.mark.parametrize(
    "bad", ["../x", "a/b", "..", ".hidden", "Upper", "a" * 65, "", "a\n", "-a", "a b"]
)
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid model name"):
        check_name(bad)
    with pytest.raises(ManifestError, match="name"):
        parse_manifest(manifest_data(name=bad))


@pytest.mark.parametrize("good", ["a", "a" * 64, "v1.2.3", "my_model-2", "0"])
def test_good_names_pass(good: str) -> None:
    assert check_name(good) == good


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../model.onnx", "'..'"),
        ("sub/../../x", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:/x", "absolute"),
        ("sub\\model.onnx", "backslash"),
        ("./model.onnx", "'.'"),
        ("a//b", "not a normal path"),
        ("", "empty"),
        ("manifest.json", "reserved"),
    ],
)
def test_bad_file_paths_are_refused(path: str, reason: str) -> None:
    files = [{"path": path, "sha256": SHA, "size_bytes": 1, "role": "model"}]
    with pytest.raises(ManifestError, match=r"files\.0\.path") as info:
        parse_manifest(manifest_data(files=files))
    assert reason in str(info.value)


def test_every_bad_key_is_named_with_the_file() -> None:
    data = manifest_data(
        files=[{"path": "m.onnx", "sha256": "nothex", "size_bytes": -1, "role": "model"}],
        format="pickle",
    )
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, Path("/repo/m/1/manifest.json"))
    message = str(info.value)
    assert message.startswith("/repo/m/1/manifest.json: ")
    for key in ("files.0.sha256", "files.0.size_bytes", "format"):
        assert key in message


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ManifestError, match="surprise: Extra inputs are not permitted"):
        parse_manifest(manifest_data(surprise=1))


def test_schema_version_2_is_refused_plainly() -> None:
    with pytest.raises(ManifestError, match="schema_version 2 is not supported"):
        parse_manifest(manifest_data(schema_version=2))


def test_exactly_one_model_file() -> None:
    files = [
        {"path": "a.onnx", "sha256": SHA, "size_bytes": 1, "role": "model"},
        {"path": "b.onnx", "sha256": SHA, "size_bytes": 1, "role": "model"},
    ]
    with pytest.raises(ManifestError, match="exactly one role 'model'"):
        parse_manifest(manifest_data(files=files))
    files = [{"path": "w.safetensors", "sha256": SHA, "size_bytes": 1, "role": "weights"}]
    with pytest.raises(ManifestError, match="exactly one role 'model'"):
        parse_manifest(manifest_data(files=files))


def test_duplicate_paths_and_tensor_names_are_refused() -> None:
    entry = {"path": "m.onnx", "sha256": SHA, "size_bytes": 1, "role": "model"}
    with pytest.raises(ManifestError, match="duplicate paths"):
        parse_manifest(manifest_data(files=[entry, {**entry, "role": "other"}]))
    spec = {"name": "x", "dtype": "float32", "shape": [1]}
    with pytest.raises(ManifestError, match="inputs has duplicate names"):
        parse_manifest(manifest_data(inputs=[spec, spec]))


def test_naive_created_at_and_bad_parity_are_refused() -> None:
    data = manifest_data()
    data["provenance"]["created_at"] = "2026-11-26T00:00:00"
    data["parity"]["inputs_checked"] = 0
    with pytest.raises(ManifestError) as info:
        parse_manifest(data)
    assert "provenance.created_at" in str(info.value)
    assert "parity.inputs_checked" in str(info.value)


def test_corrupt_json_gives_line_and_column() -> None:
    raw = b'{\n  "name": "x",\n  oops\n}'
    with pytest.raises(ManifestError, match=r"invalid JSON at line 3 column 3"):
        read_manifest_bytes(raw, Path("m.json"))
    with pytest.raises(ManifestError, match="empty"):
        read_manifest_bytes(b"  ")
    with pytest.raises(ManifestError, match="expected a JSON object"):
        read_manifest_bytes(json.dumps([1]).encode())


def test_model_validate_refuses_bad_dtype() -> None:
    with pytest.raises(ValidationError):
        Manifest.model_validate(
            manifest_data(inputs=[{"name": "x", "dtype": "complex", "shape": [1]}])
        )


# -- fields added after 0.1.0: runtime options, description, parity status -----------------


def test_a_010_manifest_still_parses_and_writes_back_unchanged() -> None:
    data = manifest_data()
    manifest = parse_manifest(data)
    assert manifest.parity is not None and manifest.parity.status == "checked"
    assert manifest.runtime_options == {} and manifest.description is None
    # Nothing new is written while it is at its default: 0.1.0 readers can read it.
    written = json.loads(manifest.to_json())
    assert set(written) == set(data)
    assert set(written["parity"]) == set(data["parity"])


def test_parity_not_run_round_trips() -> None:
    parity = {
        "runtime": "coreml",
        "reference": "torch",
        "atol": 0.05,
        "rtol": 0.05,
        "status": "not_run",
        "reason": "Core ML prediction needs macOS",
        "min_top1_agreement": 0.98,
    }
    manifest = parse_manifest(
        manifest_data(
            format="coreml",
            parity=parity,
            runtime_options={"package": "model.mlpackage", "compute_units": "ALL"},
            description="digits",
        )
    )
    again = read_manifest_bytes(manifest.to_json().encode())
    assert again == manifest
    assert again.parity is not None and not again.parity.ran
    assert again.parity.passed is None and again.parity.max_abs_error is None
    assert again.runtime_options["package"] == "model.mlpackage"
    assert '"status": "not_run"' in manifest.to_json()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "not_run"}, "has no inputs_checked"),
        ({"status": "not_run", "reason": "x"}, "has no inputs_checked"),
        ({"passed": None}, "needs passed"),
        ({"max_abs_error": None, "max_rel_error": None}, "needs max_abs_error, max_rel_error"),
        ({"reason": "why"}, "reason is only for status 'not_run'"),
        ({"status": "maybe"}, "parity.status"),
    ],
)
def test_parity_status_and_figures_must_fit(change: dict[str, Any], message: str) -> None:
    data = manifest_data()
    data["parity"].update(change)
    with pytest.raises(ManifestError, match=message):
        parse_manifest(data)


def test_not_run_needs_a_reason() -> None:
    parity = {"runtime": "coreml", "reference": "torch", "atol": 0.1, "rtol": 0.1,
              "status": "not_run"}  # fmt: skip
    with pytest.raises(ManifestError, match="needs a reason"):
        parse_manifest(manifest_data(parity=parity))
