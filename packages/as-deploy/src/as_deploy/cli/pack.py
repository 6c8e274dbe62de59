"""The ``as-deploy pack`` command: export, parity check, repository and Dockerfile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from as_deploy.cli._common import stdout
from as_deploy.cli.dockerfile import (
    BuildWheelsOption,
    ForceOption,
    OutOption,
    PortOption,
    PythonOption,
    TagOption,
    WheelsOption,
    print_context,
)
from as_deploy.docker import DEFAULT_PORT, DEFAULT_PYTHON, DEFAULT_TAG, DockerOptions
from as_deploy.export._options import DEFAULT_OPSET
from as_deploy.manifest import Manifest

__all__ = ["pack", "register"]


def _parity_summary(manifest: Manifest) -> str:
    parity = manifest.parity
    if parity is None:
        return "no parity report"
    if parity.status == "not_run":
        return f"parity not run: {parity.reason}"
    return f"parity passed, max abs error {parity.max_abs_error:.3g}"


def pack(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="The model: an as-bench built-in (digits-cnn, mlp, minilm) or pkg.module:factory.",
        ),
    ],
    repo: Annotated[Path, typer.Option("--repo", help="The model repository.")],
    name: Annotated[str, typer.Option("--name", help="The model's name in the repository.")],
    version: Annotated[str, typer.Option("--version", help="The version to write.")],
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            "-f",
            help="onnx (default), tflite or coreml; repeat for several. ONNX is stored as "
            "NAME, the others as NAME-<format>. Core ML is exported but not served in the "
            "image.",
        ),
    ] = None,
    out: OutOption = None,
    precision: Annotated[
        str, typer.Option("--precision", help="fp32, or fp16 (Core ML only).")
    ] = "fp32",
    opset: Annotated[int, typer.Option("--opset", help="The ONNX opset.")] = DEFAULT_OPSET,
    compute_units: Annotated[
        str, typer.Option("--compute-units", help="Core ML compute units.")
    ] = "ALL",
    parity_inputs: Annotated[
        int, typer.Option("--parity-inputs", min=1, help="Inputs the parity check compares.")
    ] = 32,
    atol: Annotated[float | None, typer.Option("--atol", help="Absolute parity tolerance.")] = None,
    rtol: Annotated[float | None, typer.Option("--rtol", help="Relative parity tolerance.")] = None,
    port: PortOption = DEFAULT_PORT,
    python: PythonOption = DEFAULT_PYTHON,
    wheels: WheelsOption = None,
    build_wheels: BuildWheelsOption = False,
    tag: TagOption = DEFAULT_TAG,
    force: ForceOption = False,
) -> None:
    """Export a model, check parity, add it to a repository and write its Dockerfile.

    All formats are exported and checked before the repository is touched: a failed
    parity check writes nothing.
    """
    from as_deploy.export import ExportOptions, check_format
    from as_deploy.pack import pack as run_pack

    chosen = formats or ["onnx"]
    options = ExportOptions.parse(
        format=chosen[0],
        precision=precision,
        opset=opset,
        compute_units=compute_units,
        parity_inputs=parity_inputs,
        atol=atol,
        rtol=rtol,
    )
    for fmt in dict.fromkeys(chosen):
        check_format(ExportOptions.parse(format=fmt).format)  # the missing extra, first
    result = run_pack(
        source,
        repo,
        name=name,
        version=version,
        formats=chosen,
        options=options,
        dockerfile=out,
        docker=DockerOptions(
            port=port, python=python, wheels=wheels, build_wheels=build_wheels, tag=tag
        ),
        force=force,
    )
    for packed in result.versions:
        stdout.print(
            f"added {packed.manifest.name}/{packed.manifest.version} ({packed.format}; "
            f"{escape(_parity_summary(packed.manifest))}) at {escape(str(packed.directory))}"
        )
    print_context(result.docker)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("pack")(pack)
