"""The hand-off: a search's winner written into an as-deploy model repository.

:func:`hand_off` stores the winning model as a new version of a model in an as-deploy
repository through as-deploy's public :func:`as_deploy.export.add_onnx_model`: the
manifest an ONNX export of the same workload gets (inputs, outputs, labels,
preprocessing, every file's sha256), a parity check of the stored file against eager
PyTorch fp32 recorded as as-deploy records an export's, and the search's provenance in
``provenance.optimization`` (:func:`optimization_record`). ``as-deploy serve --repo``
serves it as it is. It needs the ``deploy`` extra (``uv add "as-optimize[deploy]"``).

The parity tolerances are as-deploy's ONNX fp32 ones widened by what the search measured
on its scoring data, which the check runs on too. Every output element of the winner is
within its largest difference from the fp32 ONNX model (``e1``) of that model's output,
which is within the export's largest difference from eager PyTorch (``e2``) of PyTorch's
output, so ``atol`` is fp32's plus ``e1 + e2``. Likewise at most ``1 - a1`` of the rows
change class against fp32 ONNX and ``1 - a2`` of those against PyTorch, so the top-1 floor
is fp32's 0.99 lowered by both; and for embeddings the angles add, so the row cosine
floor is ``cos(acos(0.9999) + acos(c1) + acos(c2))`` with the search's minimum cosines.
A file that changed since it was measured, or that runs otherwise as the server runs it,
fails the check, and nothing is written.

With ``export`` (``as-optimize run --repo DIR --export tflite``), the workload is also
exported in those formats through as-deploy's public export API
(:func:`as_deploy.export.export_to_repository`), each parity-checked against PyTorch as
``as-deploy export`` checks it, and stored under as-deploy's name for the format
(:func:`as_deploy.pack.model_name_for`: ``<name>-tflite``, ``<name>-coreml``) with the
winner's version number. These are plain fp32 exports, not compressed (as-deploy stores
a compressed model as ONNX only): their manifests have no ``provenance.optimization``, and
the winner's ``provenance.optimization["artifacts"]`` lists every file the hand-off wrote,
saying which one is the compressed winner and which are plain exports. All or nothing:
the exports are made and checked in a scratch repository first, and the repository is
written only once the winner and every export have passed.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from as_core.extras import require
from as_optimize._version import __version__
from as_optimize.compress._search import (
    CandidateResult,
    SearchOptions,
    SearchReport,
    _split_data,
)
from as_optimize.exceptions import CompressionError, CompressionInputError, MissingExtraError

if TYPE_CHECKING:
    from as_deploy import Manifest
    from as_deploy.export import Tolerances

__all__ = [
    "EXPORT_FORMATS",
    "OPTIMIZATION_SCHEMA_VERSION",
    "Deployment",
    "HandOff",
    "hand_off",
    "optimization_record",
    "parity_tolerances",
]

Array = npt.NDArray[Any]

#: The version of the layout of ``provenance.optimization``.
OPTIMIZATION_SCHEMA_VERSION = 1

#: The formats ``export`` takes: as-deploy's formats other than ONNX (the winner is the
#: ONNX version).
EXPORT_FORMATS = ("coreml", "tflite")


@dataclass(frozen=True)
class HandOff:
    """Where the winner goes: a model of an as-deploy repository.

    Attributes:
        repo: The model repository's folder (created if missing).
        name: The model's name there; ``None``: the workload's, as ``as-deploy export``
            names it (a built-in keeps its name; ``pkg.models:make_net`` becomes
            ``models-make_net``).
        version: The version to write; ``None``: one more than the model's highest
            numeric version (``1`` for a new model).
    """

    repo: Path
    name: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class Deployment:
    """A version the hand-off wrote.

    Attributes:
        repo: The model repository.
        name: The model's name.
        version: The version written.
        directory: The version's folder.
        manifest: Its manifest (an :class:`as_deploy.Manifest`).
        exports: The plain exports written beside the winner (``export``), one per
            format, each a :class:`Deployment` of its own (``<name>-<format>``).
    """

    repo: Path
    name: str
    version: str
    directory: Path
    manifest: Manifest
    exports: tuple[Deployment, ...] = ()


def _deploy() -> Any:
    require("as_deploy", "deploy", error=MissingExtraError, feature="--repo (the hand-off)")
    import as_deploy.export

    return as_deploy


def check_exports(export: Sequence[str]) -> tuple[str, ...]:
    """The export formats asked for, normalised (lower case, no repeats), and checked.

    Raises:
        CompressionInputError: A format is not one of :data:`EXPORT_FORMATS` (``onnx``
            included: the winner is the ONNX version).
        MissingExtraError: as-deploy, or the library a format needs, is not installed
            (as-deploy's error, naming its extra).
    """
    wanted = tuple(dict.fromkeys(str(f).strip().lower() for f in export))
    if not wanted:
        return ()
    _deploy()
    from as_deploy.export import check_format

    for fmt in wanted:
        if fmt == "onnx":
            raise CompressionInputError(
                "--export onnx: the winner is already stored as the ONNX version; --export "
                f"adds the other formats ({', '.join(EXPORT_FORMATS)})"
            )
        if fmt not in EXPORT_FORMATS:
            raise CompressionInputError(
                f"--export {fmt!r} is not a format as-deploy exports besides ONNX: use "
                f"{' or '.join(EXPORT_FORMATS)}"
            )
        check_format(fmt)
    return wanted


def _export_names(name: str, formats: Sequence[str]) -> dict[str, str]:
    as_deploy = _deploy()
    from as_deploy.pack import model_name_for

    try:
        return {fmt: model_name_for(name, fmt) for fmt in formats}
    except as_deploy.InvalidNameError as exc:
        raise CompressionInputError(f"--name with --export: {exc}") from exc


def _check_free(repo: Path, names: Sequence[str], version: str) -> None:
    for name in names:
        existing = repo / name / version
        if existing.exists() or existing.is_symlink():
            raise CompressionInputError(
                f"{name}/{version} already exists in {repo}: a version is never "
                "overwritten; give another --version, or none for the next one"
            )


def resolve(spec: str, handoff: HandOff, export: Sequence[str] = ()) -> tuple[str, str | None]:
    """The model's name and the version asked for, checked before a search starts.

    With ``export``, the formats are checked too (:func:`check_exports`), and so are
    their models' names and, for a given version, that it is free for each of them.

    Raises:
        MissingExtraError: as-deploy, or an export format's library, is not installed.
        CompressionInputError: The name, version or an export format is invalid, or the
            version exists.
    """
    as_deploy = _deploy()
    from as_deploy.export import default_name

    name = handoff.name or default_name(spec)
    try:
        as_deploy.check_name(name)
        if handoff.version is not None:
            as_deploy.check_name(handoff.version, "version")
    except as_deploy.InvalidNameError as exc:
        raise CompressionInputError(f"--name/--version: {exc}") from exc
    formats = check_exports(export)
    names = [name, *_export_names(name, formats).values()]
    repo = Path(handoff.repo)
    if repo.exists() and not repo.is_dir():
        raise CompressionInputError(f"--repo {repo} exists and is not a folder")
    if handoff.version is not None:
        _check_free(repo, names, handoff.version)
    return name, handoff.version


def next_version(repo: Path, name: str) -> str:
    """One more than the highest numeric version of ``name`` in ``repo`` (``1`` if none)."""
    as_deploy = _deploy()
    try:
        versions = as_deploy.ModelRepository(repo).versions(name)
    except as_deploy.ModelNotFoundError:
        return "1"
    return str(max((int(v) for v in versions if v.isdigit()), default=0) + 1)


_LATENCY_KEYS = ("median_s", "ci_low_s", "ci_high_s", "samples", "converged")


def _latencies(latency: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Median, 95% CI, samples and convergence per batch size, from records or dicts."""
    found = {}
    for batch, lat in latency.items():
        data = lat if isinstance(lat, dict) else lat.model_dump()
        found[batch] = {key: data[key] for key in _LATENCY_KEYS if key in data}
    return found


def scoring_inputs(spec: str, report: SearchReport) -> tuple[tuple[Array, ...], str]:
    """The inputs the search scored every model on (the same split), and their description.

    Raises:
        CompressionInputError: ``spec`` names no workload.
    """
    import as_bench
    from as_bench.export import load_workload

    try:
        workload = load_workload(spec)
    except as_bench.MissingExtraError:
        raise
    except as_bench.AsBenchError as exc:
        raise CompressionInputError(f"MODEL {spec!r}: {exc}") from exc
    options = SearchOptions(calibration_examples=report.calibration_examples)
    inputs = _split_data(workload, options).inputs
    return tuple(a[: report.scoring_examples] for a in inputs), report.scoring_data


def optimization_record(
    report: SearchReport, winner: CandidateResult, hardware: dict[str, Any]
) -> dict[str, Any]:
    """What the manifest's ``provenance.optimization`` holds for ``winner`` of ``report``.

    The technique and its knobs; for each batch size measured, the winner's latency
    (median and its 95% CI, seconds) and its speed-up against eager PyTorch fp32 and
    against ONNX Runtime fp32 (their latencies beside it, from the same run); the size
    on disk against the fp32 ONNX model's; the quality and the gate; the hardware
    (``as_bench.probe_hardware()``); the scoring data; the versions; the date.
    """
    baseline = report.baseline
    eager_latency = report.eager.get("latency", {})
    speedup = {}
    for batch, lat in winner.latency.items():
        eager = eager_latency.get(batch)
        ort = baseline.latency.get(batch)
        speedup[batch] = {
            "vs_eager_fp32": None if eager is None else eager["median_s"] / lat.median_s,
            "vs_ort_fp32": None if ort is None else ort.median_s / lat.median_s,
        }
    quality = winner.quality.model_dump() if winner.quality is not None else None
    base_quality = baseline.quality
    return {
        "schema_version": OPTIMIZATION_SCHEMA_VERSION,
        "tool": "as-optimize",
        "as_optimize_version": __version__,
        "created_at": datetime.now(UTC).isoformat(),
        "workload": report.workload,
        "task": report.task,
        "target": report.target,
        "candidate": winner.id,
        "technique": winner.technique,
        "knobs": dict(winner.knobs),
        # A pipeline's torch stage (pruning, distillation) ran first, then the technique.
        "stage": winner.stage,
        "stage_knobs": dict(winner.stage_knobs),
        "pipeline": [
            *([{"stage": winner.stage, "knobs": dict(winner.stage_knobs)}] if winner.stage else []),
            {"technique": winner.technique, "knobs": dict(winner.knobs)},
        ],
        "why_chosen": report.winner_reason,
        "status": winner.status,
        "gate": {"rule": report.gate, "passed": True, "reason": winner.reason},
        "quality": quality,
        "fp32_onnx_quality": None if base_quality is None else base_quality.model_dump(),
        "eager_fp32_accuracy": report.eager.get("accuracy"),
        "scoring_data": report.scoring_data,
        "scoring_examples": report.scoring_examples,
        "calibration_examples": report.calibration_examples,
        "size_bytes": winner.size_bytes,
        "fp32_onnx_size_bytes": baseline.size_bytes,
        "size_ratio_vs_fp32_onnx": (
            None
            if not winner.size_bytes or not baseline.size_bytes
            else winner.size_bytes / baseline.size_bytes
        ),
        "batch_sizes": list(report.batch_sizes),
        "threads": report.threads,
        "latency": _latencies(dict(winner.latency)),
        "speedup": speedup,
        "eager_fp32_latency": _latencies(dict(eager_latency)),
        "ort_fp32_latency": _latencies(dict(baseline.latency)),
        "candidates_tried": sum(c.status in ("passed", "rejected") for c in report.candidates),
        "candidates_passed": sum(c.status == "passed" for c in report.candidates),
        "search": "optuna" if report.study is not None else "grid",
        "versions": dict(report.versions),
        "hardware": hardware,
    }


def parity_tolerances(report: SearchReport, winner: CandidateResult) -> Tolerances:
    """as-deploy's ONNX fp32 tolerances widened by what the search measured (module doc)."""
    from as_deploy.export import Tolerances, default_tolerances

    base = default_tolerances("onnx", "fp32", report.task)
    quality = winner.quality
    eager = report.eager.get("parity_fp32_onnx") or {}
    if quality is None:
        raise CompressionError(f"{winner.id} has no measured quality to check parity against")
    atol = base.atol + quality.max_abs_error + float(eager.get("max_abs_error", 0.0))
    top1 = base.min_top1_agreement
    if top1 is not None:
        lost = (1.0 - (quality.top1_agreement or 1.0)) + (
            1.0 - float(eager.get("top1_agreement") or 1.0)
        )
        top1 = max(0.0, top1 - lost)
    cosine = base.min_cosine_similarity
    if cosine is not None:
        angle = sum(
            math.acos(max(-1.0, min(1.0, value)))
            for value in (cosine, quality.min_cosine, float(eager.get("min_cosine", 1.0)))
        )
        cosine = math.cos(min(math.pi, angle))
    return Tolerances(
        atol=atol, rtol=base.rtol, min_top1_agreement=top1, min_cosine_similarity=cosine
    )


def _no_winner_message(report: SearchReport, repo: Path, output: Path) -> str:
    tried = [c for c in report.candidates if c.status not in ("not applicable", "not tried")]
    reasons = "; ".join(f"{c.id}: {c.reason}" for c in tried) or "no technique applied"
    return (
        f"nothing written to {repo}: no candidate passed the quality gate ({report.gate}), "
        f"so there is no compressed model to hand off. {reasons}. The report is in "
        f"{output / 'report.json'}"
    )


def hand_off(
    spec: str,
    report: SearchReport,
    output: Path,
    handoff: HandOff,
    *,
    export: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> Deployment:
    """Write the winner of ``report`` (its files under ``output``) into the repository.

    With ``export``, the workload is also exported (fp32, not compressed) in each of
    those formats, as ``<name>-<format>`` with the same version (module doc); the
    winner's provenance lists every file written and which one is compressed.

    Args:
        spec: The workload the search ran on (a built-in name or ``pkg.module:factory``).
        report: The search's report.
        output: The search's output folder (``winner/`` and ``report.json``).
        handoff: The repository, name and version.
        export: Formats to export the workload in besides the winner's ONNX version
            (:data:`EXPORT_FORMATS`: ``coreml``, ``tflite``).
        progress: Called with a line of text when the version is written.

    Raises:
        CompressionError: No candidate passed the gate (nothing is written, the message
            lists each candidate's reason), or the stored file failed the parity check
            against PyTorch, or an export failed its own (nothing is written either
            way), or the repository could not be written.
        CompressionInputError: The name, version or an export format is invalid, or the
            version exists (for the winner or an export's name).
        MissingExtraError: as-deploy, or an export format's library, is not installed.
    """
    as_deploy = _deploy()
    import as_bench

    name, version = resolve(spec, handoff, export)
    formats = check_exports(export)
    export_names = _export_names(name, formats)
    repo = Path(handoff.repo)
    if not any(c.status == "passed" for c in report.candidates):
        raise CompressionError(_no_winner_message(report, repo, Path(output)))
    if not report.winner_path:
        raise CompressionError(
            f"nothing written to {repo}: the winner {report.winner!r} has no model file to "
            f"store ({report.winner_reason})"
        )
    winner = next((c for c in [report.baseline, *report.candidates] if c.id == report.winner), None)
    if winner is None:
        raise CompressionError(f"the report names a winner {report.winner!r} it does not hold")
    runtime = getattr(winner, "runtime", "onnxruntime")
    if runtime != "onnxruntime":
        raise CompressionError(
            f"nothing written to {repo}: the winner {winner.id} runs on {runtime}, and "
            "as-deploy stores a compressed model as ONNX only; search with --target cpu "
            "for an ONNX winner, and add --export for plain exports in other formats"
        )
    version = version or next_version(repo, name)
    _check_free(repo, [name, *export_names.values()], version)
    hardware = as_bench.probe_hardware().model_dump(mode="json")
    inputs, described = scoring_inputs(spec, report)
    record = optimization_record(report, winner, hardware)
    with tempfile.TemporaryDirectory(prefix="as-optimize-export-") as scratch:
        staged = _stage_exports(spec, export_names, version, Path(scratch), repo)
        record["artifacts"] = _artifacts(name, version, winner, staged)
        result = _add_winner(
            Path(output) / report.winner_path,
            spec,
            repo,
            name,
            version,
            winner,
            report,
            inputs,
            described,
            record,
        )
        if progress is not None:
            progress(f"wrote {winner.id} as {name}/{version} in {repo} ({result.directory})")
        exports = []
        repository = as_deploy.ModelRepository(repo)
        for fmt, manifest, directory in staged:
            files = {entry.path: directory / entry.path for entry in manifest.files}
            try:
                final = repository.add(manifest, files)
            except as_deploy.AsDeployError as exc:
                raise CompressionError(
                    f"the winner is written as {name}/{version}, but writing the {fmt} export "
                    f"{manifest.name}/{version} to {repo} failed: {exc}"
                ) from exc
            exports.append(
                Deployment(
                    repo=repo,
                    name=manifest.name,
                    version=version,
                    directory=final,
                    manifest=manifest,
                )
            )
            if progress is not None:
                progress(f"wrote the plain {fmt} export as {manifest.name}/{version} ({final})")
    return Deployment(
        repo=repo,
        name=name,
        version=version,
        directory=result.directory,
        manifest=result.manifest,
        exports=tuple(exports),
    )


def _stage_exports(
    spec: str, names: dict[str, str], version: str, scratch: Path, repo: Path
) -> list[tuple[str, Manifest, Path]]:
    """Each format exported and parity-checked into a scratch repository."""
    as_deploy = _deploy()
    from as_deploy.export import ExportOptions, export_to_repository

    staged = []
    for fmt, model_name in names.items():
        try:
            result = export_to_repository(
                spec,
                ExportOptions.parse(format=fmt),
                scratch / "repo",
                name=model_name,
                version=version,
                workdir=scratch / "work",
            )
        except as_deploy.MissingExtraError:
            raise
        except as_deploy.ParityError as exc:
            raise CompressionError(
                f"nothing written to {repo}: the {fmt} export failed as-deploy's parity check "
                f"against PyTorch fp32: {exc}"
            ) from exc
        except as_deploy.AsDeployError as exc:
            raise CompressionError(
                f"nothing written to {repo}: exporting {spec!r} to {fmt} failed: {exc}"
            ) from exc
        staged.append((fmt, result.manifest, result.directory))
    return staged


def _artifacts(
    name: str, version: str, winner: CandidateResult, staged: list[tuple[str, Manifest, Path]]
) -> list[dict[str, Any]]:
    """Every version the hand-off writes: the compressed winner, then the plain exports."""
    artifacts: list[dict[str, Any]] = [
        {
            "name": name,
            "version": version,
            "format": "onnx",
            "file": "model.onnx",
            "compressed": True,
            "what": f"the compressed winner {winner.id} ({winner.technique})",
        }
    ]
    for fmt, manifest, _ in staged:
        model = next(entry.path for entry in manifest.files if entry.role == "model")
        artifacts.append(
            {
                "name": manifest.name,
                "version": version,
                "format": fmt,
                "file": model,
                "compressed": False,
                "what": f"a plain fp32 {fmt} export of the workload (not compressed)",
            }
        )
    return artifacts


def _add_winner(
    model_file: Path,
    spec: str,
    repo: Path,
    name: str,
    version: str,
    winner: CandidateResult,
    report: SearchReport,
    inputs: tuple[Array, ...],
    described: str,
    record: dict[str, Any],
) -> Any:
    as_deploy = _deploy()
    from as_deploy.export import add_onnx_model

    try:
        return add_onnx_model(
            model_file,
            spec,
            repo,
            name=name,
            version=version,
            tolerances=parity_tolerances(report, winner),
            parity_inputs=inputs,
            parity_data_description=described,
            optimization=record,
            extra_tool_versions={"as-optimize": __version__},
        )
    except as_deploy.VersionExistsError as exc:
        raise CompressionInputError(str(exc)) from exc
    except as_deploy.ParityError as exc:
        raise CompressionError(
            f"nothing written to {repo}: the winner {winner.id} failed as-deploy's parity "
            f"check against PyTorch fp32: {exc}"
        ) from exc
    except as_deploy.AsDeployError as exc:
        raise CompressionError(f"writing {name}/{version} to {repo} failed: {exc}") from exc
