"""The ``as-deploy export`` command: a model to ONNX, Core ML or TFLite, checked, stored.

::

    as-deploy export digits-cnn --format onnx --repo models
    as-deploy export mypkg.models:build -f coreml --precision fp16 --name mynet --version 2

It exports, runs the parity check against eager PyTorch, writes the version into the
repository and prints a short table. Exit 1 when the parity check fails (the figures are
in the message, nothing is written); exit 2 on a bad option or model name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from as_core.fmt import format_bytes
from as_deploy.cli._common import stdout
from as_deploy.exceptions import UsageError
from as_deploy.export._options import DEFAULT_OPSET

if TYPE_CHECKING:
    from as_deploy.export import ExportResult
    from as_deploy.manifest import ParityReport, TensorSpec

__all__ = ["parse_labels", "register"]


def parse_labels(value: str | None) -> list[str] | None:
    """The labels of ``--labels``: comma-separated, or ``@file`` with one label per line.

    Raises:
        UsageError: The file cannot be read, or no label is given.
    """
    if value is None:
        return None
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the labels file {path}: {exc}") from exc
        labels = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        labels = [part.strip() for part in value.split(",")]
    if not labels or any(not label for label in labels):
        raise UsageError(
            f"--labels {value!r} has an empty label",
            hint="give them comma-separated (--labels cat,dog) or as @file, one per line",
        )
    return labels


def _parity_text(parity: ParityReport | None) -> str:
    if parity is None:
        return "none"
    if parity.status == "not_run":
        return f"not run: {parity.reason}"
    top1 = "" if parity.top1_agreement is None else f", top-1 {parity.top1_agreement:.4f}"
    return (
        f"passed on {parity.inputs_checked} inputs: max abs {parity.max_abs_error:.2e} "
        f"(atol {parity.atol:g}), max rel {parity.max_rel_error:.2e} (rtol {parity.rtol:g})"
        f"{top1}"
    )


def _files_text(result: ExportResult) -> str:
    files = result.manifest.files
    size = sum(entry.size_bytes for entry in files)
    if len(files) == 1:
        return f"{files[0].path} ({format_bytes(size)})"
    top = result.manifest.model_file.path.split("/")[0]
    return f"{len(files)} files, {format_bytes(size)} ({top})"


def _tensors_text(result: ExportResult) -> str:
    def one(spec: TensorSpec) -> str:
        dims = ", ".join("N" if dim is None else str(dim) for dim in spec.shape)
        return f"{spec.name} {spec.dtype}[{dims}]"

    manifest = result.manifest
    return (
        ", ".join(one(spec) for spec in manifest.inputs)
        + " -> "
        + ", ".join(one(spec) for spec in manifest.outputs)
    )


def _show(result: ExportResult) -> None:
    from rich.table import Table

    manifest = result.manifest
    table = Table(title=f"exported {manifest.name}/{manifest.version}", title_justify="left")
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("", overflow="fold")
    table.show_header = False
    precision = manifest.runtime_options.get("precision")
    table.add_row("format", manifest.format + (f" ({precision})" if precision else ""))
    table.add_row("tensors", _tensors_text(result))
    table.add_row("files", _files_text(result))
    table.add_row("parity", _parity_text(manifest.parity))
    table.add_row("written to", str(result.directory))
    stdout.print(table)


def export_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A built-in workload (digits-cnn, mlp, minilm) or 'pkg.module:factory'.",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="onnx, coreml or tflite.", metavar="FORMAT"),
    ] = "onnx",
    repo: Annotated[Path, typer.Option("--repo", help="The model repository.")] = Path("models"),
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Model name (default: derived from SOURCE).", show_default=False
        ),
    ] = None,
    version: Annotated[
        str, typer.Option("--version", help="Version to write (never overwritten).")
    ] = "1",
    precision: Annotated[
        str, typer.Option("--precision", help="fp32, or fp16 (Core ML only).")
    ] = "fp32",
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset.")] = DEFAULT_OPSET,
    compute_units: Annotated[
        str,
        typer.Option("--compute-units", help="Core ML: ALL, CPU_ONLY, CPU_AND_GPU or CPU_AND_NE."),
    ] = "ALL",
    parity_inputs: Annotated[
        int,
        typer.Option("--parity-inputs", min=1, help="Inputs the parity check compares."),
    ] = 32,
    atol: Annotated[
        float | None,
        typer.Option(
            "--atol",
            min=0,
            help="Absolute tolerance (default: by format and precision).",
            show_default=False,
        ),
    ] = None,
    rtol: Annotated[
        float | None,
        typer.Option(
            "--rtol",
            min=0,
            help="Relative tolerance (default: by format and precision).",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="Class labels in output order: a,b,c or @file (one per line).",
            show_default=False,
        ),
    ] = None,
    description: Annotated[
        str | None,
        typer.Option("--description", help="What the model does, in words.", show_default=False),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=1,
            help="Fixed batch of Core ML and TFLite models (default: 1).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Export a model with a parity check and add it to a model repository."""
    from as_deploy.export import ExportOptions, check_format, default_name, export_to_repository
    from as_deploy.manifest import check_name

    options = ExportOptions.parse(
        format=fmt,
        precision=precision,
        opset=opset,
        compute_units=compute_units,
        batch_size=batch_size,
        parity_inputs=parity_inputs,
        atol=atol,
        rtol=rtol,
        labels=parse_labels(labels),
        description=description,
    )
    model_name = name if name is not None else default_name(source)
    check_name(model_name)
    check_name(version, "version")
    check_format(options.format)  # a missing extra fails before anything else is loaded
    result = export_to_repository(source, options, repo, name=model_name, version=version)
    _show(result)


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to ``app``."""
    app.command("export")(export_command)
