"""``as-deploy dockerfile``: what it writes and prints, and its exit codes."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import as_logging
from as_deploy import FileEntry, Manifest, ModelRepository, Provenance, TensorSpec
from as_deploy.cli import main


def add_version(repo: Path, name: str, version: str, fmt: str = "onnx") -> Path:
    data = f"{name} {version}".encode() * 16
    source = repo.parent / "src" / f"{name}-{version}.bin"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    path = "model.onnx" if fmt == "onnx" else "model.mlpackage/x"
    manifest = Manifest(
        name=name,
        version=version,
        format=fmt,  # type: ignore[arg-type]
        inputs=[TensorSpec(name="x", dtype="float32", shape=[None, 64])],
        outputs=[TensorSpec(name="y", dtype="float32", shape=[None, 10])],
        files=[
            FileEntry(
                path=path,
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=len(data),
                role="model",
            )
        ],
        provenance=Provenance(source="unit test", created_at=datetime(2026, 11, 26, tzinfo=UTC)),
    )
    return ModelRepository(repo).add(manifest, {path: source})


def run_cli(argv: list[str]) -> int:
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
    finally:
        as_logging.reset()  # the CLI configures logging, as an application does; undo it
    code = exit_info.value.code
    return code if isinstance(code, int) else 1


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "models"
    add_version(repo, "digits", "1")
    return repo


def test_deploy_docker_cli_writes_and_prints_the_build(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(["dockerfile", str(repo), "--port", "8080", "--tag", "digits:1"])
    out = capsys.readouterr().out
    assert code == 0
    dockerfile = repo.parent / "Dockerfile"
    assert "EXPOSE 8080" in dockerfile.read_text()
    assert (repo.parent / ".dockerignore").is_file()
    assert f"wrote {dockerfile.resolve()}" in out
    assert "serves: digits/1 (onnx)" in out
    assert "docker build -t digits:1 ." in out
    assert "docker buildx build --platform linux/amd64,linux/arm64" in out
    assert "until it is published there" in out


def test_deploy_docker_cli_core_ml_is_left_out(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_version(repo, "digits-coreml", "1", "coreml")
    assert run_cli(["dockerfile", str(repo)]) == 0
    assert "left out (Core ML needs macOS" in capsys.readouterr().out


def test_deploy_docker_cli_missing_repository_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["dockerfile", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "does not exist" in err and str(tmp_path / "nope") in err


def test_deploy_docker_cli_corrupt_manifest_exits_1_naming_the_file(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = repo / "digits" / "1" / "manifest.json"
    manifest.write_text('{"schema_version": 1}')
    assert run_cli(["dockerfile", str(repo)]) == 1
    err = capsys.readouterr().err
    assert str(manifest) in err and "invalid manifest" in err
    assert not (repo.parent / "Dockerfile").exists()


def test_deploy_docker_cli_bad_folder_name_exits_2(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "Digits").mkdir()
    assert run_cli(["dockerfile", str(repo)]) == 2
    assert "invalid model name 'Digits'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "options", [["--port", "0"], ["--python", "2.7"], ["--tag", "Bad Tag"], ["--nope"]]
)
def test_deploy_docker_cli_bad_options_exit_2(repo: Path, options: list[str]) -> None:
    assert run_cli(["dockerfile", str(repo), *options]) == 2
    assert not (repo.parent / "Dockerfile").exists()


def test_deploy_docker_cli_foreign_dockerfile_needs_force(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = repo.parent / "Dockerfile"
    mine.write_text("FROM scratch\n")
    assert run_cli(["dockerfile", str(repo)]) == 2
    assert "hint: pass --force" in capsys.readouterr().err
    assert mine.read_text() == "FROM scratch\n"
    assert run_cli(["dockerfile", str(repo), "--force"]) == 0
    assert "as-deploy serve" in mine.read_text()


def test_deploy_docker_cli_out_outside_the_context_exits_2(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    assert run_cli(["dockerfile", str(repo), "-o", str(other)]) == 2
    assert "not inside the build context" in capsys.readouterr().err


def test_deploy_docker_python_m_runs_the_command(repo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "as_deploy", "dockerfile", str(repo), "-o", str(repo.parent)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (repo.parent / "Dockerfile").is_file()


@pytest.mark.slow
@pytest.mark.network  # uv build fetches the build backend (hatchling) unless cached
def test_deploy_docker_cli_build_wheels_fills_the_context(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("uv") is None:
        pytest.skip("uv is not installed: it builds the wheels")
    monkeypatch.chdir(Path(__file__).resolve().parents[4])  # inside the uv workspace
    assert run_cli(["dockerfile", str(repo), "--build-wheels"]) == 0
    out = capsys.readouterr().out
    wheels = sorted(p.name.split("-")[0] for p in (repo.parent / "wheels").glob("*.whl"))
    assert wheels == ["as_config", "as_core", "as_deploy", "as_logging"]
    text = (repo.parent / "Dockerfile").read_text()
    assert "as-deploy @ file:///tmp/wheels/as_deploy-" in text
    assert "until it is published there" not in out
    # Building again replaces the wheels rather than piling up versions.
    assert run_cli(["dockerfile", str(repo), "--build-wheels"]) == 0
    assert len(list((repo.parent / "wheels").glob("*.whl"))) == 4
