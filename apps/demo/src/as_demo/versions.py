"""Store as-optimize's winner as a version of a repository's model, beside its fp32 one.

as-optimize (``as-optimize run MODEL -o OUT``) writes ``OUT/report.json`` (its
:class:`as_optimize.compress.SearchReport`) and ``OUT/winner/`` (the winning model's
files). It does not write into a model repository: the two packages do not import each
other, and an application that composes them, as the demo does, stores the winner.
:func:`add_optimized_version` copies the inputs, outputs, labels and preprocessing of the
version it was made from (the model's latest by default), records the technique and the
quality gate in the new manifest, opens it in its runtime first, and adds it with
:meth:`as_deploy.ModelRepository.add` (every file hashed; atomic; never overwrites). The
demo then offers it in the version list, next to the fp32 one.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from as_demo.errors import DemoError
from as_deploy import (
    AsDeployError,
    FileEntry,
    Manifest,
    ModelRepository,
    Provenance,
    check_name,
    sha256_file,
)
from as_deploy.runtime import load_runner

__all__ = ["add_optimized_version"]


def add_optimized_version(
    repo_root: Path,
    search_dir: Path,
    version: str,
    *,
    name: str | None = None,
    base_version: str | None = None,
    candidate: str | None = None,
) -> Path:
    """Add the winner of an as-optimize search as ``name/version``; return its folder.

    Args:
        repo_root: The model repository.
        search_dir: The folder ``as-optimize run -o`` wrote (``report.json``, ``winner/``).
        version: The new version's name (``2-int8``).
        name: The model in the repository; the search's workload name when ``None``.
        base_version: The version the winner replaces (its manifest is the template);
            the model's latest when ``None``.
        candidate: Another candidate of the search to add instead of the winner (its id
            in the report); it must have passed the quality gate.

    Raises:
        DemoError: The search's output is missing or unreadable, the winner is the fp32
            baseline itself, the candidate is unknown or did not pass the gate, the base
            version cannot be loaded, the model does not run with the base version's
            inputs and outputs, or the version exists already.
    """
    from as_optimize.compress import SearchReport

    report_path = search_dir / "report.json"
    try:
        report = SearchReport.model_validate_json(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DemoError(f"{report_path}: not an as-optimize report: {exc}") from exc
    chosen = candidate or report.winner
    winner = next((c for c in report.candidates if c.id == chosen), None)
    if winner is None and candidate is None:
        raise DemoError(
            f"{report_path}: the winner is {report.winner!r}, the fp32 baseline: no "
            "compressed model passed the gate and beat it, so there is nothing to add "
            "(--candidate adds another that passed)"
        )
    if winner is None or winner.status != "passed":
        passed = [c.id for c in report.candidates if c.status == "passed"]
        why = "is not one" if winner is None else f"did not pass: {winner.reason}"
        raise DemoError(
            f"{report_path}: candidate {chosen!r} {why}; those that passed the gate: "
            f"{', '.join(passed) or 'none'}"
        )
    relative = report.winner_path if candidate is None else winner.path
    model_file = search_dir / (relative or f"candidates/{winner.id}/model.onnx")
    if not model_file.is_file():
        raise DemoError(f"{model_file}: the model file of {winner.id!r} is missing")
    name = name or report.workload
    try:
        check_name(name)
        check_name(version, "version")
        repo = ModelRepository(repo_root)
        base = repo.load(name, base_version)
    except AsDeployError as exc:
        raise DemoError(f"cannot add {name}/{version}: {exc}") from exc

    files = {p.name: p for p in sorted(model_file.parent.iterdir()) if p.is_file()}
    entries = [
        FileEntry(
            path=relative,
            sha256=sha256_file(path),
            size_bytes=path.stat().st_size,
            role="model" if relative == model_file.name else "weights",
        )
        for relative, path in files.items()
    ]
    knobs = ", ".join(f"{key}={value}" for key, value in winner.knobs.items())
    manifest = base.manifest.model_copy(
        update={
            "version": version,
            "files": entries,
            "parity": None,
            "provenance": Provenance(
                source=f"as-optimize {winner.id} of {name}/{base.manifest.version}",
                created_at=dt.datetime.now(dt.UTC),
                tool_versions=dict(report.versions),
            ),
            "description": (
                f"{base.manifest.description or name}; compressed by as-optimize with "
                f"{winner.technique} ({knobs}): {winner.reason} (gate: {report.gate})"
            ),
        }
    )
    try:
        _check_runs(manifest, files)
        return repo.add(manifest, files)
    except AsDeployError as exc:
        raise DemoError(f"cannot add {name}/{version}: {exc}") from exc


def _check_runs(manifest: Manifest, files: dict[str, Path]) -> None:
    """Open the new version in its runtime in a scratch repository (names, files, format)."""
    with tempfile.TemporaryDirectory(prefix="as-demo-check-") as scratch:
        repo = ModelRepository(Path(scratch))
        repo.add(manifest, files)
        load_runner(repo.load(manifest.name, manifest.version)).close()
