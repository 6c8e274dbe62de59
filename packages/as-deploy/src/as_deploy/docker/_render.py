"""Rendering the Dockerfile and ``.dockerignore`` of a planned build context (pure text)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from as_deploy._version import __version__
from as_deploy.docker._context import (
    _MODELS_DIR,
    _UID,
    _WHEEL_RE,
    _WHEELS_DIR,
    DEFAULT_PORT,
    DEFAULT_PYTHON,
    DEFAULT_TAG,
    GENERATED_MARKER,
    TFLITE_RUNTIME,
    UV_IMAGE,
    DockerContext,
    ShippedVersion,
)
from as_deploy.docker._verify import prepare_docker_context

__all__ = ["render", "render_dockerfile", "render_dockerignore"]


def _requirements(plan: DockerContext) -> list[str]:
    if plan.wheels is None:
        requirements = [f"as-deploy=={__version__}"]
    else:
        # A direct file reference pins each workspace package to its wheel: no index can
        # offer a package of the same name in its place.
        requirements = []
        for name in plan.wheel_files:
            match = _WHEEL_RE.fullmatch(name)
            assert match is not None  # _find_wheels only returns matching names
            dist = match["dist"].lower().replace("_", "-")
            requirements.append(f"{dist} @ file://{_WHEELS_DIR}/{name}")
    if "tflite" in plan.formats:
        requirements.append(TFLITE_RUNTIME)
    return requirements


def _header(plan: DockerContext) -> list[str]:
    def models(items: Sequence[ShippedVersion]) -> str:
        return ", ".join(f"{item.path} ({item.format})" for item in items)

    source = (
        [
            f"as-deploy comes from the package index (PyPI): as-deploy=={__version__}.",
            "Until it is published there, generate this file with --wheels or --build-wheels.",
        ]
        if plan.wheels is None
        else [
            f"as-deploy and its sibling packages come from the wheels in {plan.wheels}/,",
            "installed by file; their other dependencies come from the package index.",
        ]
    )
    lines = [
        f"{GENERATED_MARKER.removeprefix('# ')} {__version__} (`as-deploy dockerfile`); "
        "regenerate it rather than edit it.",
        "",
        f"Serves the model repository {plan.repo}/ with `as-deploy serve` on port {plan.port}:",
        f"  {models(plan.shipped)}",
    ]
    if plan.skipped:
        lines += [
            "Left out (Core ML needs macOS; a Linux container has no Core ML, MPS or Metal):",
            f"  {models(plan.skipped)}",
        ]
    lines += [
        *source,
        "",
        "Build context: this file's folder.",
        *(f"  {line}" for line in plan.layout()),
        "",
        "Build, run and check (in this file's folder):",
        f"  {plan.build_command()}",
        f"  {plan.run_command()}",
        f"  curl http://localhost:{plan.port}/health",
        "",
        "Server settings come from the environment, never from this file: the server reads",
        "them from variables prefixed AS_DEPLOY__ (__ nests), for example",
        f"  docker run -e AS_DEPLOY__BATCHING__MAX_BATCH_SIZE=64 -p {plan.port}:{plan.port} "
        f"{plan.tag}",
        "Only the repository, host and port are fixed, in CMD below.",
        "",
        "Apple Silicon and other arm64 hosts:",
        "  - Docker on Apple Silicon runs linux/arm64 images natively: `docker build` there",
        "    makes an arm64 image, and what it installs has aarch64 Linux wheels",
        "    (onnxruntime, numpy, ...); an amd64 image would run under emulation, slowly.",
        "  - A Linux container has no Core ML, MPS or Metal: models run on the CPU with",
        "    ONNX Runtime (or LiteRT for .tflite). Serve Core ML models on macOS directly.",
        "  - One image for both architectures (needs a registry, or the containerd store):",
        f"      {plan.buildx_command()}",
    ]
    return ["# syntax=docker/dockerfile:1", *(f"# {line}".rstrip() for line in lines)]


def render(plan: DockerContext) -> str:
    requirements = _requirements(plan)
    install = [
        "RUN --mount=type=cache,target=/root/.cache/uv \\",
        "    uv venv --python /usr/local/bin/python3 /opt/venv \\",
        " && uv pip install --python /opt/venv/bin/python \\",
        *(f'      "{requirement}" \\' for requirement in requirements[:-1]),
        f'      "{requirements[-1]}"',
    ]
    copy_wheels = []
    if plan.wheels is not None:
        sources = " ".join(f"{plan.wheels}/{name}" for name in plan.wheel_files)
        copy_wheels = [f"COPY {sources} {_WHEELS_DIR}/"]
    health = (
        "import sys, urllib.request; "
        f"sys.exit(urllib.request.urlopen('http://127.0.0.1:{plan.port}/health', "
        "timeout=4).status != 200)"
    )
    command = ["as-deploy", "serve", "--repo", _MODELS_DIR, "--host", "0.0.0.0"]
    command += ["--port", str(plan.port)]
    cmd = ", ".join(f'"{part}"' for part in command)
    lines = [
        *_header(plan),
        "",
        f"ARG PYTHON_IMAGE=python:{plan.python}-slim",
        "",
        f"FROM {UV_IMAGE} AS uv",
        "",
        "# -- builder: the virtual environment ----------------------------------------------",
        "FROM ${PYTHON_IMAGE} AS builder",
        "COPY --from=uv /uv /usr/local/bin/uv",
        "ENV UV_COMPILE_BYTECODE=1 \\",
        "    UV_LINK_MODE=copy \\",
        "    UV_PYTHON_DOWNLOADS=never",
        *copy_wheels,
        *install,
        "",
        "# -- runtime: the environment, the models, a user without privileges -------------",
        "FROM ${PYTHON_IMAGE} AS runtime",
        f"RUN groupadd --system --gid {_UID} app \\",
        f" && useradd --system --no-log-init --uid {_UID} --gid app \\",
        "      --create-home --home-dir /home/app --shell /usr/sbin/nologin app",
        "COPY --from=builder /opt/venv /opt/venv",
        "# Owned by root: the server reads the models and cannot change them.",
        f"COPY {plan.repo}/ {_MODELS_DIR}/",
        'ENV PATH="/opt/venv/bin:${PATH}" \\',
        "    PYTHONUNBUFFERED=1 \\",
        "    PYTHONDONTWRITEBYTECODE=1",
        "WORKDIR /home/app",
        f"USER {_UID}:{_UID}",
        f"EXPOSE {plan.port}",
        "# Slim images have no curl: the check uses the image's own Python.",
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \\",
        f'    CMD ["python", "-c", "{health}"]',
        f"CMD [{cmd}]",
    ]
    return "\n".join(lines) + "\n"


def render_dockerignore(plan: DockerContext) -> str:
    lines = [
        f"{GENERATED_MARKER} {__version__} with {plan.dockerfile.name}: only the model repository",
        "# (and the wheels) reach the builder; everything else in this folder stays out.",
        "*",
        f"!{plan.repo}",
        "# Hidden folders are unfinished repository writes.",
        f"{plan.repo}/**/.*",
    ]
    if plan.skipped:
        lines.append("# Core ML versions: a Linux container cannot run them.")
        lines.extend(f"{plan.repo}/{item.path}" for item in plan.skipped)
    if plan.wheels is not None:
        lines.extend(f"!{plan.wheels}/{name}" for name in plan.wheel_files)
    return "\n".join(lines) + "\n"


def render_dockerfile(
    repo: Path,
    *,
    port: int = DEFAULT_PORT,
    python: str = DEFAULT_PYTHON,
    wheels: Path | None = None,
    out: Path | None = None,
    tag: str = DEFAULT_TAG,
) -> str:
    """Return the Dockerfile that serves ``repo``, after verifying every version in it.

    Args:
        repo: The model repository.
        port: The server's port in the container.
        python: The base image's Python version (``3.11`` or later).
        wheels: A folder of as-deploy's wheels (see :func:`prepare_docker_context`);
            ``None`` installs ``as-deploy==<this version>`` from the index.
        out: Where the Dockerfile would go (its folder is the build context); next to
            ``repo`` when ``None``.
        tag: The image name in the header's commands.

    Returns:
        The Dockerfile's text.

    Raises:
        UsageError: See :func:`prepare_docker_context`, which lists the other errors.
    """
    plan = prepare_docker_context(repo, out, port=port, python=python, wheels=wheels, tag=tag)
    return render(plan)
