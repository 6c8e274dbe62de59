"""``as-deploy pack``: the real digits CNN exported, checked, stored and given a Dockerfile.

The exports are real (PyTorch -> ONNX / TFLite / Core ML with the parity check), so those
tests are slow. The refusals are checked before any export runs, so they are fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import as_logging
from as_deploy import InvalidNameError, ModelRepository, VersionExistsError
from as_deploy.cli import main
from as_deploy.docker import DockerOptions
from as_deploy.exceptions import UsageError
from as_deploy.pack import model_name_for, pack


def run_cli(argv: list[str]) -> int:
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
    finally:
        as_logging.reset()  # the CLI configures logging, as an application does; undo it
    code = exit_info.value.code
    return code if isinstance(code, int) else 1


def instructions(text: str) -> list[tuple[str, str]]:
    """(keyword, arguments) of each instruction, continuations joined, comments dropped."""
    found: list[tuple[str, str]] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1].rstrip() + " "
            continue
        keyword, _, args = (buffer + line).partition(" ")
        found.append((keyword.upper(), args.strip()))
        buffer = ""
    return found


@pytest.mark.slow
def test_deploy_pack_cli_digits_cnn_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "deploy" / "models"
    code = run_cli(
        ["pack", "digits-cnn", "--repo", str(repo), "--name", "digits", "--version", "1",
         "--port", "8123"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    loaded = ModelRepository(repo).load("digits")  # verifies every sha256
    assert loaded.manifest.version == "1"
    assert loaded.manifest.format == "onnx"
    assert loaded.manifest.parity is not None and loaded.manifest.parity.passed
    assert loaded.model_path.name == "model.onnx"
    assert "added digits/1 (onnx; parity passed" in out
    dockerfile = tmp_path / "deploy" / "Dockerfile"
    text = dockerfile.read_text()
    assert "digits/1 (onnx)" in text
    parsed = instructions(text)
    assert ("COPY", "models/ /models/") in parsed
    assert ("EXPOSE", "8123") in parsed
    cmd = [args for keyword, args in parsed if keyword == "CMD"]
    assert json.loads(cmd[-1])[-1] == "8123"
    assert "!models" in (tmp_path / "deploy" / ".dockerignore").read_text().splitlines()


@pytest.mark.slow
def test_deploy_pack_several_formats_names_and_image(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    result = pack(
        "digits-cnn",
        repo,
        name="digits",
        version="3",
        formats=["onnx", "tflite", "coreml"],
        docker=DockerOptions(tag="digits:3"),
    )
    assert [(v.format, v.manifest.name) for v in result.versions] == [
        ("onnx", "digits"),
        ("tflite", "digits-tflite"),
        ("coreml", "digits-coreml"),
    ]
    repository = ModelRepository(repo)
    assert repository.list_models() == [
        ("digits", "3"), ("digits-coreml", "3"), ("digits-tflite", "3"),
    ]  # fmt: skip
    for name, fmt in (("digits", "onnx"), ("digits-tflite", "tflite"), ("digits-coreml", "coreml")):
        assert repository.load(name, "3").manifest.format == fmt
    # The image serves ONNX and TFLite (with the LiteRT runtime); Core ML stays out.
    assert [v.path for v in result.docker.shipped] == ["digits/3", "digits-tflite/3"]
    assert [v.path for v in result.docker.skipped] == ["digits-coreml/3"]
    text = result.docker.dockerfile.read_text()
    assert '"ai-edge-litert>=1.2"' in text
    assert "docker build -t digits:3 ." in text
    assert "models/digits-coreml/3" in result.docker.dockerignore.read_text().splitlines()


@pytest.mark.slow
def test_deploy_pack_parity_failure_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Zero tolerance: ONNX Runtime sums in another order than PyTorch, so some logit
    # differs by a few 1e-6 and the check must fail.
    project = tmp_path / "project"
    repo = project / "models"
    code = run_cli(
        ["pack", "digits-cnn", "--repo", str(repo), "--name", "digits", "--version", "1",
         "--atol", "0", "--rtol", "0"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "onnx parity check failed" in err
    assert "nothing was written" in err
    assert not repo.exists()
    assert not (project / "Dockerfile").exists()


def test_deploy_pack_model_names_by_format() -> None:
    assert model_name_for("digits", "onnx") == "digits"
    assert model_name_for("digits", "tflite") == "digits-tflite"
    assert model_name_for("digits", "coreml") == "digits-coreml"
    with pytest.raises(InvalidNameError):
        model_name_for("d" * 64, "tflite")  # the suffix makes it too long


def test_deploy_pack_refuses_before_exporting(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    with pytest.raises(UsageError, match="unknown format 'onnx2'"):
        pack("digits-cnn", repo, name="digits", version="1", formats=["onnx2"])
    with pytest.raises(UsageError, match="Core ML models cannot be served"):
        pack("digits-cnn", repo, name="digits", version="1", formats=["coreml"])
    with pytest.raises(InvalidNameError, match="'Digits'"):
        pack("digits-cnn", repo, name="Digits", version="1")
    with pytest.raises(UsageError, match="not inside the build context"):
        pack("digits-cnn", repo, name="digits", version="1", dockerfile=tmp_path / "x" / "D")
    assert not repo.exists()


def test_deploy_pack_existing_version_or_foreign_dockerfile_is_refused_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "models"
    (repo / "digits-tflite" / "1").mkdir(parents=True)
    with pytest.raises(VersionExistsError, match="digits-tflite/1 already exists"):
        pack("digits-cnn", repo, name="digits", version="1", formats=["onnx", "tflite"])
    assert not (repo / "digits").exists()  # the ONNX export did not run ahead of it
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert run_cli(["pack", "digits-cnn", "--repo", str(repo), "--name", "digits",
                    "--version", "2"]) == 2  # fmt: skip
    assert "not generated by as-deploy" in capsys.readouterr().err
    assert not (repo / "digits").exists()
    assert (tmp_path / "Dockerfile").read_text() == "FROM scratch\n"
