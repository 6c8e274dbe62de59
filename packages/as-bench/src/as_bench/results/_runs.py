"""Runs: the results of one session (one ``as-bench run``, one pytest session), numbered.

A store can hold many runs. Each is numbered per machine, like pytest-benchmark's
autosave (``0001``, ``0002``, ...), so that "the latest run on this machine" and "run 7"
mean something. A number is claimed atomically by creating the empty file
``.runs/<machine>/<NNNN>`` in the store with ``O_CREAT | O_EXCL``: two sessions that start
at once get different numbers, and the claim survives a crash (a claimed number is never
reused, even when its run stored nothing). The folder is hidden, so readers of result
files never see it.

:func:`machine_id` names a machine by what makes its numbers comparable (OS,
architecture, Python implementation and version), not by its host name, which changes on
every CI runner.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from as_bench.exceptions import ResultStoreError
from as_bench.results._schema import BenchmarkResult

__all__ = ["RunSummary", "claim_run", "machine_id", "select_run", "summarize_runs"]

RUNS_FOLDER = ".runs"
_NUMBER = re.compile(r"^[0-9]{4,}$")


def machine_id() -> str:
    """This machine's id for numbering runs: ``linux-x86_64-cpython3.11``."""
    impl = platform.python_implementation().lower()
    major, minor = platform.python_version_tuple()[:2]
    raw = f"{platform.system()}-{platform.machine()}-{impl}{major}.{minor}".lower()
    return re.sub(r"[^0-9a-z._-]+", "_", raw)


def claim_run(root: Path, machine: str) -> str:
    """Claim the next run number for ``machine`` in the store at ``root``.

    Raises:
        ResultStoreError: The claim could not be written (the message names the folder).
    """
    folder = root / RUNS_FOLDER / machine
    try:
        folder.mkdir(parents=True, exist_ok=True)
        taken = [int(p.name) for p in folder.iterdir() if _NUMBER.match(p.name)]
    except OSError as exc:
        raise ResultStoreError(f"could not number a run in {folder}: {exc}") from exc
    number = max(taken, default=0) + 1
    while True:
        name = f"{number:04d}"
        try:
            os.close(os.open(folder / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:  # another session claimed it between listing and now
            number += 1
            continue
        except OSError as exc:
            raise ResultStoreError(f"could not number a run in {folder}: {exc}") from exc
        return name


@dataclass(frozen=True)
class RunSummary:
    """One run of a store, as ``as-bench list`` shows it.

    Attributes:
        run: The run's number (``"0007"``).
        machine: The machine id it is numbered under.
        started_at: When its first result started.
        finished_at: When its last result finished.
        results: How many results it holds.
        benchmarks: The benchmarks' names, sorted.
        commit: The git commit it measured (short), or ``None``.
        dirty: Whether that tree had uncommitted changes.
        source: Where it came from: ``pytest``, ``as-bench run``, ``store.add``.
    """

    run: str
    machine: str
    started_at: datetime
    finished_at: datetime
    results: int
    benchmarks: list[str]
    commit: str | None
    dirty: bool
    source: str

    @property
    def name(self) -> str:
        """``0007 (linux-x86_64-cpython3.11)``."""
        return f"{self.run} ({self.machine})"


def _source(result: BenchmarkResult) -> str:
    return result.tags.get("source") or ("as-bench run" if result.backend != "python" else "-")


def summarize_runs(results: Sequence[BenchmarkResult]) -> list[RunSummary]:
    """The runs among ``results``, oldest first (results without a run are left out)."""
    groups: dict[tuple[str, str], list[BenchmarkResult]] = {}
    for result in results:
        if result.run is not None:
            groups.setdefault((result.machine or "unknown", result.run), []).append(result)
    runs = []
    for (machine, run), group in groups.items():
        git = next((r.git for r in group if r.git is not None), None)
        runs.append(
            RunSummary(
                run=run,
                machine=machine,
                started_at=min(r.started_at for r in group),
                finished_at=max(r.finished_at for r in group),
                results=len(group),
                benchmarks=sorted({r.benchmark for r in group}),
                commit=git.commit[:10] if git is not None else None,
                dirty=bool(git is not None and git.dirty),
                source=_source(group[0]),
            )
        )
    runs.sort(key=lambda r: (r.started_at, r.machine, r.run))
    return runs


def select_run(
    results: Sequence[BenchmarkResult],
    run: str | None = None,
    *,
    machine: str | None = None,
    where: str = "the results",
) -> tuple[list[BenchmarkResult], RunSummary | None]:
    """The results of one run: ``run`` (a number, or ``"latest"``/``None`` for the latest).

    The latest is the one started last; with ``machine``, the latest of that machine when
    it has any. Results outside any run (older files) are only chosen when no result has
    a run, and then all of them are returned with ``None`` for the summary.

    Raises:
        ResultStoreError: ``run`` is not a number, or no run has it (the message lists
            the runs there are).
    """
    runs = summarize_runs(results)
    if not runs:
        if run not in (None, "latest"):
            raise ResultStoreError(f"{where} hold no numbered runs, so there is no run {run}")
        return list(results), None
    if run in (None, "latest"):
        mine = [r for r in runs if r.machine == machine] if machine else []
        chosen = (mine or runs)[-1]
    else:
        if not _NUMBER.match(run.zfill(4)):
            raise ResultStoreError(
                f"{run!r} is not a run number: use the number `as-bench list` shows (e.g. "
                "0003) or 'latest'"
            )
        wanted = run.zfill(4)
        matches = [r for r in runs if r.run == wanted]
        if machine:
            matches = [r for r in matches if r.machine == machine] or matches
        if not matches:
            listing = ", ".join(r.name for r in runs[-10:])
            raise ResultStoreError(f"{where} hold no run {wanted}; the latest runs: {listing}")
        chosen = matches[-1]
    picked = [
        r for r in results if r.run == chosen.run and (r.machine or "unknown") == chosen.machine
    ]
    return picked, chosen
