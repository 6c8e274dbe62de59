"""The ``as-deploy dockerfile`` command: a Dockerfile and .dockerignore for a repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from as_deploy._version import __version__
from as_deploy.cli._common import stdout
from as_deploy.docker import (
    DEFAULT_PORT,
    DEFAULT_PYTHON,
    DEFAULT_TAG,
    DockerContext,
    write_docker_context,
)

__all__ = ["dockerfile", "print_context", "register"]

OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Where to write the Dockerfile (a file, or a folder for 'Dockerfile'); its "
        "folder is the build context and must contain the repository. "
        "[default: next to the repository]",
    ),
]
PortOption = Annotated[
    int, typer.Option("--port", min=1, max=65535, help="The server's port in the container.")
]
PythonOption = Annotated[
    str, typer.Option("--python", help="The Python of the base image (python:<version>-slim).")
]
WheelsOption = Annotated[
    Path | None,
    typer.Option(
        "--wheels",
        help="Install as-deploy from the wheels in this folder (as-deploy and its siblings "
        "as-core, as-logging, as-config) instead of the package index; copied into the "
        "build context when outside it.",
    ),
]
BuildWheelsOption = Annotated[
    bool,
    typer.Option(
        "--build-wheels",
        help="Build those wheels first with `uv build` (run inside the as-toolkit "
        "workspace), into --wheels or <context>/wheels.",
    ),
]
TagOption = Annotated[str, typer.Option("--tag", "-t", help="The image name in the commands.")]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force", help="Overwrite a Dockerfile or .dockerignore that as-deploy did not write."
    ),
]


def print_context(plan: DockerContext) -> None:
    """Print where the files went, the build context and the commands to run."""
    stdout.print(f"wrote {escape(str(plan.dockerfile))} and {escape(str(plan.dockerignore))}")
    stdout.print("serves: " + ", ".join(f"{v.path} ({v.format})" for v in plan.shipped))
    if plan.skipped:
        stdout.print(
            "[yellow]left out[/] (Core ML needs macOS; a Linux container has no Core ML, "
            "MPS or Metal): " + ", ".join(v.path for v in plan.skipped)
        )
    stdout.print(f"build context: {escape(str(plan.context))}")
    for line in plan.layout():
        stdout.print(f"  {escape(line)}")
    stdout.print("build and run:")
    stdout.print(f"  cd {escape(str(plan.context))}")
    stdout.print(f"  {escape(plan.build_command())}")
    stdout.print(f"  {escape(plan.run_command())}")
    stdout.print("one image for amd64 and arm64 (Apple Silicon runs linux/arm64):")
    stdout.print(f"  {escape(plan.buildx_command())}")
    if plan.wheels is None:
        stdout.print(
            f"[yellow]note:[/] the image installs as-deploy=={__version__} from the package "
            "index; until it is published there, use --build-wheels (in the as-toolkit "
            "workspace) or --wheels DIR"
        )


def dockerfile(
    repo: Annotated[
        Path, typer.Argument(metavar="REPO", help="The model repository (<name>/<version>/...).")
    ],
    out: OutOption = None,
    port: PortOption = DEFAULT_PORT,
    python: PythonOption = DEFAULT_PYTHON,
    wheels: WheelsOption = None,
    build_wheels: BuildWheelsOption = False,
    tag: TagOption = DEFAULT_TAG,
    force: ForceOption = False,
) -> None:
    """Write a Dockerfile and .dockerignore that serve a model repository.

    Every version is verified (sha256s) first. The image is multi-stage (uv builds the
    environment), runs `as-deploy serve` as a non-root user with a health check on
    /health, and serves ONNX and TFLite models; Core ML versions are left out (no Core ML
    in a Linux container). Server settings come from AS_DEPLOY__... environment variables.
    """
    plan = write_docker_context(
        repo,
        out,
        port=port,
        python=python,
        wheels=wheels,
        build=build_wheels,
        tag=tag,
        force=force,
    )
    print_context(plan)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("dockerfile")(dockerfile)
