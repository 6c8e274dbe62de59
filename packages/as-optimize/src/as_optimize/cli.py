"""The ``as-optimize`` command line: ``profile`` a model, ``run`` a compression search, ``worker``.

Exit codes: 0 success; 1 a failure (the baseline could not be exported or evaluated, or
an unexpected error); 2 a usage error (an unknown workload, an option out of range, an
output folder that already holds a report). Tables go to stdout, progress and errors to
stderr; ``--debug`` adds tracebacks.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from as_core.cli import CommandLine
from as_core.fmt import format_bytes, format_seconds
from as_optimize._version import __version__
from as_optimize.exceptions import AsOptimizeError, CompressionInputError

app = typer.Typer(
    name="as-optimize",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_cli = CommandLine(
    app, "as-optimize", package_error=AsOptimizeError, usage_errors=(CompressionInputError,)
)
_cli.add_root_options(
    __version__,
    help="Profile models and compress them under a quality gate (CPU, CUDA, MPS, Core ML, "
    "TFLite targets).",
)

ModelArg = Annotated[
    str,
    typer.Argument(
        help="A workload: a built-in name (digits-cnn, mlp, minilm) or pkg.module:factory."
    ),
]


def _print_wide(table: Table) -> None:
    """A table at the terminal's width, or at 160 columns when stdout is a file or a pipe."""
    out = _cli.stdout
    if not out.is_terminal:
        out.width = max(out.width, 160)
    out.print(table)


def _layer_fit(kind: str, fit: dict[str, Any]) -> str:
    reason = str(fit["reason"])
    if not fit["applies"]:
        return f"{kind}: no ({reason})"
    if reason.startswith("partly: "):
        return f"{kind}: partly ({reason.removeprefix('partly: ')})"
    return f"{kind}: yes"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


@app.command()
def profile(
    model: ModelArg,
    large_batch: Annotated[
        int, typer.Option("--large-batch", help="The larger batch for arithmetic intensity.")
    ] = 64,
    threads: Annotated[int, typer.Option(help="torch threads for the timed passes.")] = 1,
    ridge: Annotated[
        float | None,
        typer.Option(help="The machine's ridge point in FLOP/byte; measured when absent."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
) -> None:
    """Parameters, MACs, activation memory, time per layer type, and what applies where."""
    from as_logging import capture_native_output
    from as_optimize.compress import profile as profile_model

    # torch.profiler's C++ side prints its start, stop and a GPU probe's failure on stderr;
    # they go to the log (all of it shows with --debug).
    with (
        capture_native_output("as_optimize.profile", level="DEBUG")
        if not _cli.debug
        else nullcontext()
    ):
        result = profile_model(model, large_batch=large_batch, threads=threads, ridge=ridge)
    out = _cli.stdout
    if as_json:
        out.print_json(result.model_dump_json())
        return
    large = f"batch_{result.large_batch}"
    out.print(
        f"[bold]{result.workload}[/] ({result.task}): {_count(result.parameters)} parameters, "
        f"{format_bytes(result.parameter_bytes)}; "
        + ", ".join(f"{k} {format_bytes(v.bytes)}" for k, v in result.by_dtype.items())
    )
    out.print(
        f"MACs: {_count(result.macs['batch_1'])} at batch 1, {_count(result.macs[large])} at "
        f"batch {result.large_batch}; activations written: "
        f"{format_bytes(result.activation_bytes['batch_1'])} / "
        f"{format_bytes(result.activation_bytes[large])}; forward at batch 1: "
        f"{format_seconds(result.forward_time_s)} ({result.machine.threads} thread(s))"
    )
    machine = result.machine
    measured = (
        f"{machine.peak_flops / 1e9:.1f} GFLOP/s matmul / "
        f"{machine.bandwidth_bytes_s / 1e9:.1f} GB/s copy"
        if machine.peak_flops and machine.bandwidth_bytes_s
        else "given"
    )
    out.print(
        f"machine ridge point: {machine.ridge_flops_per_byte:.1f} FLOP/byte ({measured}); "
        f"model: {result.bound['batch_1']}-bound at batch 1, "
        f"{result.bound[large]}-bound at batch {result.large_batch}"
    )
    types = Table(title="by layer type")
    for column in ("type", "layers", "params", "bytes", "MACs (bs1)", "activations", "time share"):
        types.add_column(column, justify="left" if column == "type" else "right")
    for kind, entry in sorted(result.by_layer_type.items(), key=lambda kv: -kv[1].latency_share):
        types.add_row(
            kind,
            str(entry.layers),
            _count(entry.parameters),
            format_bytes(entry.bytes),
            _count(entry.macs),
            format_bytes(entry.activation_bytes),
            _pct(entry.latency_share),
        )
    types.add_row("(outside layers)", "", "", "", "", "", _pct(result.latency_outside_layers_share))
    _print_wide(types)
    layers = Table(title="layers")
    for column in (
        "layer",
        "type",
        "params",
        "MACs (bs1)",
        "output",
        "FLOP/B bs1",
        f"FLOP/B bs{result.large_batch}",
        "bound",
    ):
        layers.add_column(column)
    for layer in result.layers:
        one, many = layer.intensity["batch_1"], layer.intensity[large]
        layers.add_row(
            layer.name,
            layer.type,
            _count(layer.parameters),
            _count(layer.macs),
            "x".join(map(str, layer.output_shape)),
            "-" if one is None else f"{one:.2f}",
            "-" if many is None else f"{many:.2f}",
            f"{layer.bound['batch_1']} / {layer.bound[large]}",
        )
    _print_wide(layers)
    fits = Table(title="techniques")
    fits.add_column("technique")
    fits.add_column("applies")
    fits.add_column("layer types (why not)")
    for fit in result.techniques:
        details = "; ".join(_layer_fit(kind, v) for kind, v in fit.layer_types.items())
        fits.add_row(fit.technique, f"{'yes' if fit.applies else 'no'}: {fit.reason}", details)
    _print_wide(fits)


@app.command()
def run(
    model: ModelArg,
    target: Annotated[
        str,
        typer.Option(
            help="Where the models are meant to run: cpu (ONNX Runtime and torch on the CPU), "
            "cuda (torch on the GPU), mps (torch on Apple's GPU), coreml (Core ML; off macOS "
            "candidates are converted and sized, not measured), tflite (LiteRT)."
        ),
    ] = "cpu",
    technique: Annotated[
        list[str] | None,
        typer.Option("--technique", help="Try only this technique (repeatable); all when absent."),
    ] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option(
            "--stage",
            help="Start pipelines with only this torch stage (repeatable: prune-channels, "
            "distill); every available stage when absent. With --search optuna, the "
            "study searches the stages' knobs too.",
        ),
    ] = None,
    no_stages: Annotated[
        bool, typer.Option("--no-stages", help="No pipelines: techniques alone.")
    ] = False,
    max_accuracy_drop: Annotated[
        str | None,
        typer.Option(help="Accuracy a classifier may lose, in points (1pt, 0.5pt)."),
    ] = None,
    min_cosine: Annotated[
        float | None,
        typer.Option(help="Mean cosine similarity to the fp32 outputs a candidate must reach."),
    ] = None,
    max_size: Annotated[
        float | None,
        typer.Option(
            help="Largest size on disk a candidate may have, as a fraction of the fp32 "
            "model's (0.2); the quality limit still applies."
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            help="grid: at most this many candidates (all when absent). optuna: the trials "
            "the study must evaluate (20 for a new study; a resumed one keeps its own)."
        ),
    ] = None,
    time_budget: Annotated[
        float,
        typer.Option(
            help="grid: seconds of trying candidates; none is started after them (the rest "
            "are reported not tried). 0: no limit."
        ),
    ] = 420.0,
    objective: Annotated[
        str,
        typer.Option(
            help="The winner among the models that pass the gate: latency (the fastest at "
            "the first batch size; of statistically tied ones, the smallest), size, or "
            "memory (the least resident memory once loaded and run)."
        ),
    ] = "latency",
    search: Annotated[
        str,
        typer.Option(
            help="grid: every knob setting in turn. optuna: Optuna's multi-objective search "
            "over the knobs (needs as-optimize[search])."
        ),
    ] = "grid",
    storage: Annotated[
        str | None,
        typer.Option(
            help="optuna: the study's storage, an SQLAlchemy URL or a file path (SQLite, one "
            "process). postgresql://user@host/db (read as postgresql+psycopg://) for workers "
            "on many machines. Default: OUTPUT/study.db."
        ),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(help="optuna: the study's name (as-optimize-MODEL when absent)."),
    ] = None,
    sampler: Annotated[
        str, typer.Option(help="optuna: tpe (multi-objective TPE), nsga2 or random.")
    ] = "tpe",
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the optuna sampler and of the stages' training (0)."),
    ] = None,
    heartbeat_interval: Annotated[
        int, typer.Option(help="optuna: seconds between a worker's heartbeats on its trial.")
    ] = 10,
    grace_period: Annotated[
        int,
        typer.Option(
            help="optuna: a trial without a heartbeat this long is failed and retried (s)."
        ),
    ] = 60,
    calibration_examples: Annotated[
        int | None,
        typer.Option(
            help="Examples set aside to calibrate on (never scored on); the largest "
            "calibration size asked, at most half the data, when absent."
        ),
    ] = None,
    batch_size: Annotated[
        list[int] | None,
        typer.Option("--batch-size", "-B", help="Batch sizes to measure; the first ranks."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="Runtime threads (every CPU available when absent).")
    ] = None,
    max_time: Annotated[
        float, typer.Option(help="Seconds of sampling per measurement, at most.")
    ] = 2.0,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for report.json, winner/, candidates/.")
    ] = Path("as-optimize-out"),
    repo: Annotated[
        Path | None,
        typer.Option(
            help="An as-deploy model repository: the winner is written there as a new "
            "version, with its provenance (needs as-optimize[deploy]). Nothing is written "
            "when no candidate passes the gate (exit 1)."
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="--repo: the model's name (the workload's when absent)."),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            "--version", help="--repo: the version to write (the next number when absent)."
        ),
    ] = None,
    export: Annotated[
        list[str] | None,
        typer.Option(
            "--export",
            help="--repo: also store the workload's plain fp32 export in this format "
            "(coreml, tflite) as NAME-FORMAT with the same version (repeatable).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Build fp32 ONNX and compressed candidates, measure, gate, and keep the best."""
    from as_optimize.compress import optimize

    err = _cli.stderr
    if no_stages and stage:
        raise CompressionInputError("--no-stages and --stage contradict each other; give one")

    def say(line: str) -> None:
        err.print(line, markup=False)

    result = optimize(
        model,
        output=output,
        target=target,
        max_accuracy_drop=max_accuracy_drop,
        min_cosine=min_cosine,
        max_size_ratio=max_size,
        trials=trials,
        time_budget_s=time_budget or None,
        objective=objective,
        search=search,
        storage=storage,
        study=study,
        sampler=sampler,
        seed=seed,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        calibration_examples=calibration_examples,
        batch_sizes=tuple(batch_size or (1,)),
        threads=threads,
        max_time_s=max_time,
        technique_names=technique or None,
        stage_names=() if no_stages else (stage or None),
        repo=repo,
        name=name,
        version=version,
        export=tuple(export or ()),
        progress=say,
    )
    _print_run(result, output, as_json)


def _print_run(result: Any, output: Path, as_json: bool) -> None:
    """What ``run`` prints: the report as JSON, or the table, reasons and files."""
    report = result.report
    out = _cli.stdout
    if as_json:
        out.print_json(report.model_dump_json())
        return
    table = _run_table(report)
    _print_wide(table)
    for note in report.target_notes:
        out.print(f"--target {report.target}: {note}", markup=False)
    left: dict[str, list[str]] = {}
    for item in report.candidates:
        for note in item.notes:
            out.print(f"{item.id}: {note}", markup=False)
        if item.status in ("rejected", "not applicable", "not measured"):
            out.print(f"{item.id}: {item.status}: {item.reason}", markup=False)
        elif item.status == "not tried":
            left.setdefault(item.reason, []).append(item.id)
    for reason, ids in left.items():  # one line per reason, not one per candidate
        shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
        out.print(f"{reason} ({len(ids)}): {shown}", markup=False)
    out.print(f"[bold]winner:[/] {report.winner}: {report.winner_reason}")
    written = [output / report.winner_path] if report.winner_path else []
    out.print(
        "written: "
        + ", ".join(
            str(p)
            for p in [*written, *(output / f for f in ("report.json", "report.md", "report.html"))]
        ),
        markup=False,
    )
    out.print(f"Pareto front (latency, size, quality): {', '.join(report.pareto)}", markup=False)
    if report.study is not None:
        states = ", ".join(f"{n} {k.lower()}" for k, n in sorted(report.study["states"].items()))
        out.print(
            f"study {report.study['name']} in {report.study['storage']}: {states}", markup=False
        )
    if result.deployment is not None:
        deployed = result.deployment
        out.print(
            f"repository: {deployed.name}/{deployed.version} written to {deployed.directory} "
            f"(as-deploy serve --repo {deployed.repo})",
            markup=False,
        )
        for extra in deployed.exports:
            out.print(
                f"repository: {extra.name}/{extra.version} (plain fp32 export) written to "
                f"{extra.directory}",
                markup=False,
            )


@app.command()
def worker(
    storage: Annotated[
        str,
        typer.Option(
            help="The study's storage: postgresql://user@host/db (read as "
            "postgresql+psycopg://) or another SQLAlchemy URL."
        ),
    ],
    study: Annotated[str, typer.Option(help="The study's name (as-optimize run --study).")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Folder for this worker's baseline and candidates."),
    ] = Path("as-optimize-worker"),
    seed: Annotated[int | None, typer.Option(help="The sampler's seed in this worker.")] = None,
) -> None:
    """Take trials from an Optuna study until it holds its trials (many machines, one study).

    The study, created by `as-optimize run MODEL --search optuna --storage URL --study
    NAME`, holds the model, gate, options and search space; the worker needs only the
    storage and the name. A worker that stops (killed, machine lost) stops its heartbeat;
    its trial is marked failed and its knobs retried by another worker.
    """
    from as_optimize.compress import run_worker

    err = _cli.stderr
    done = run_worker(
        storage, study, output, seed=seed, progress=lambda line: err.print(line, markup=False)
    )
    _cli.stdout.print(f"{done} trial(s) evaluated by this worker", markup=False)


def _latency_text(lat: Any, with_ci: bool) -> str:
    if lat is None:
        return "-"
    median = format_seconds(lat.median_s if hasattr(lat, "median_s") else lat["median_s"])
    if not with_ci:
        return median
    low = lat.ci_low_s if hasattr(lat, "ci_low_s") else lat["ci_low_s"]
    high = lat.ci_high_s if hasattr(lat, "ci_high_s") else lat["ci_high_s"]
    return f"{median} ({format_seconds(low)}-{format_seconds(high)})"


def _quality_text(quality: Any) -> str:
    if quality is None:
        return "-"
    if quality.accuracy is not None:
        return f"{quality.accuracy:.2f}%"
    return f"cos {quality.mean_cosine:.4f}"


def _run_table(report: Any) -> Table:
    """Eager torch, the fp32 baseline and every candidate; later batch sizes as columns."""
    first, *others = [str(b) for b in report.batch_sizes]
    onnx_reference = report.reference == "fp32 ONNX"
    table = Table(
        title=f"{report.workload} on {report.target} ({report.device}; reference: "
        f"{report.reference}; gate: {report.gate})"
    )
    columns = [
        "model",
        "status",
        f"bs{first} latency (95% CI)",
        "vs fp32 ONNX",
        "vs eager",
        *(f"bs{b} latency" for b in others),
        "size",
        "quality",
        "Pareto",
    ]
    for column in columns:
        table.add_column(column)
    eager = report.eager["latency"]
    accuracy = report.eager.get("accuracy")
    if onnx_reference:  # elsewhere eager torch is the baseline row itself
        table.add_row(
            "eager torch fp32",
            "reference",
            _latency_text(eager[first], True),
            f"{report.baseline.latency[first].median_s / eager[first]['median_s']:.2f}x",
            "1.00x",
            *(_latency_text(eager[b], False) for b in others),
            "",
            "-" if accuracy is None else f"{accuracy:.2f}%",
            "",
        )
    # Candidates that were not tried are listed under the table with the reason.
    tried = [c for c in report.candidates if c.status not in ("not applicable", "not tried")]
    for item in [report.baseline, *tried]:
        table.add_row(
            item.id + (" [bold](winner)[/]" if item.id == report.winner else ""),
            item.status,
            _latency_text(item.latency.get(first), True),
            "-" if item.speedup_vs_fp32_onnx is None else f"{item.speedup_vs_fp32_onnx:.2f}x",
            "-" if item.speedup_vs_eager is None else f"{item.speedup_vs_eager:.2f}x",
            *(_latency_text(item.latency.get(b), False) for b in others),
            format_bytes(item.size_bytes),
            _quality_text(item.quality),
            "yes" if item.pareto else "",
        )
    return table


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``as-optimize`` script."""
    _cli.run(argv)
