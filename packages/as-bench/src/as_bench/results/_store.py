"""The result store: a folder with one JSON file per :class:`BenchmarkResult`.

One file per result means there is no shared file for concurrent writers to corrupt:
each append writes its own temporary file in the hidden ``.incoming`` folder and renames
it into place atomically, so any number of processes can append at once, and a reader
sees each result completely or not at all. A writer killed mid-write leaves only its
temporary file, which the next open of the store removes (:mod:`._staging`). A damaged
file (a crash of a copy, a bad edit) spoils only itself: reading the store names it and
loads the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from as_bench.exceptions import CorruptResultError, ResultStoreError
from as_bench.measurement import Measurement
from as_bench.results._export import ExportFormat, export_results, format_for
from as_bench.results._frame import results_to_frame
from as_bench.results._git import git_info
from as_bench.results._io import read_result_file
from as_bench.results._measured import function_result
from as_bench.results._runs import RunSummary, claim_run, machine_id, summarize_runs
from as_bench.results._schema import BenchmarkResult
from as_bench.results._staging import remove_leftovers, write_result_file

if TYPE_CHECKING:
    import polars as pl

__all__ = ["OnError", "ResultStore"]

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip", "collect"]
"""What reading does with a corrupt file: raise at the first one; skip each one with a
warning in the log that names it; or read everything and then raise one error that names
every corrupt file."""


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        parts.append(f"{loc}: {error['msg']}" if loc else str(error["msg"]))
    return "; ".join(parts)


class ResultStore:
    """A folder of results, one JSON file each, safe for several writers at once.

    Files are named ``<started_at as UTC, e.g. 20250101T120000123456Z>-<id>.json`` so that
    a listing is in run order. Hidden files and other suffixes are ignored, which is what
    keeps in-flight temporary files out of every read.

    Example:
        >>> store = ResultStore(tmp_path / "results")  # doctest: +SKIP
        >>> store.append(result)  # doctest: +SKIP
        >>> store.to_frame().select("benchmark", "median_s")  # doctest: +SKIP
    """

    def __init__(self, root: Path | str, *, create: bool = True) -> None:
        """Open the store in ``root``.

        Args:
            root: The store's folder.
            create: Create the folder (and its parents) if it does not exist; when
                ``False``, a missing folder is an error.

        Opening the store removes the temporary files of writers that were killed
        mid-write (see :mod:`as_bench.results._staging`).

        Raises:
            ResultStoreError: ``root`` is a file, cannot be created, or is missing and
                ``create`` is ``False``.
        """
        self._root = Path(root)
        self._hardware: dict[str, Any] | None = None  # probed by the first add()
        if self._root.exists() and not self._root.is_dir():
            raise ResultStoreError(f"result store {self._root} is a file, not a folder")
        if not self._root.exists():
            if not create:
                raise ResultStoreError(f"no result store at {self._root}: the folder is missing")
            try:
                self._root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ResultStoreError(
                    f"could not create the result store {self._root}: {exc}"
                ) from exc
        remove_leftovers(self._root)

    @property
    def root(self) -> Path:
        """The store's folder."""
        return self._root

    def __repr__(self) -> str:
        """``ResultStore('<root>')``."""
        return f"{type(self).__name__}({str(self._root)!r})"

    @staticmethod
    def file_name(result: BenchmarkResult) -> str:
        """The name of the file that holds ``result`` in a store."""
        return f"{result.started_at:%Y%m%dT%H%M%S%fZ}-{result.id}.json"

    def paths(self) -> list[Path]:
        """The result files in the store, sorted by name (that is, by start time)."""
        try:
            entries = list(self._root.iterdir())
        except OSError as exc:
            raise ResultStoreError(f"could not list the result store {self._root}: {exc}") from exc
        return sorted(
            p for p in entries if p.suffix == ".json" and not p.name.startswith(".") and p.is_file()
        )

    def __len__(self) -> int:
        """The number of result files (corrupt ones included; nothing is parsed)."""
        return len(self.paths())

    def append(self, result: BenchmarkResult) -> Path:
        """Add ``result`` to the store atomically.

        Appending the same result (same id and start) again replaces its file with
        identical content, so a retried append never makes a duplicate.

        Returns:
            The file written.

        Raises:
            ResultStoreError: The file could not be written.
        """
        content = result.model_dump_json(indent=2).encode("utf-8") + b"\n"
        try:
            # JSON has no NaN or infinity: pydantic writes them as null, which a required
            # float refuses on reading. Check now, so the store never holds a file it
            # cannot read back.
            BenchmarkResult.model_validate_json(content)
        except ValidationError as exc:
            raise ResultStoreError(
                f"result {result.id} ({result.benchmark}) would not read back from JSON, "
                f"so it was not stored in {self._root}: {exc}"
            ) from exc

        try:
            path = write_result_file(self._root, self.file_name(result), content)
        except OSError as exc:
            raise ResultStoreError(
                f"could not write {self._root / self.file_name(result)}: {exc}"
            ) from exc
        logger.debug("stored result %s (%s) in %s", result.id, result.benchmark, path)
        return path

    def append_many(self, results: Iterable[BenchmarkResult]) -> list[Path]:
        """Add each of ``results``; each one is atomic on its own.

        Returns:
            The files written, in the order of ``results``.
        """
        return [self.append(result) for result in results]

    def new_run(self, machine: str | None = None) -> tuple[str, str]:
        """Claim the next run number of ``machine`` in this store (see :mod:`._runs`).

        Give each result of the run the number and machine (``BenchmarkResult(run=...,
        machine=...)``, or ``add(..., run=..., machine=...)``).

        Args:
            machine: The machine id; :func:`machine_id` (this machine) when ``None``.

        Returns:
            ``(run, machine)``, e.g. ``("0007", "linux-x86_64-cpython3.11")``.

        Raises:
            ResultStoreError: The claim could not be written.
        """
        chosen = machine if machine is not None else machine_id()
        return claim_run(self._root, chosen), chosen

    def runs(self, *, on_error: OnError = "skip") -> list[RunSummary]:
        """The numbered runs in the store, oldest first (see :class:`RunSummary`)."""
        return summarize_runs(self.load(on_error=on_error))

    def add(
        self,
        measurement: Measurement,
        name: str,
        *,
        workload: str | None = None,
        batch_size: int = 1,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        run: str | None = None,
        machine: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
    ) -> BenchmarkResult:
        """Store what :func:`as_bench.measure` returned, as a result named ``name``.

        The result is a function result like the pytest plugin's: backend ``"python"``,
        tag ``source="store.add"``, the machine from :func:`as_bench.probe.probe` (probed
        once per store), the git checkout of the current directory, throughput
        ``batch_size`` per median latency.

        Args:
            measurement: The measurement.
            name: The benchmark's name (what comparisons and gates match on).
            workload: The group the report shows and compares it in; ``name`` when
                ``None``. Give several functions the same workload to compare them.
            batch_size: Items one call processes.
            tags: Labels for grouping; ``source`` is ``"store.add"`` unless given here.
            params: Parameters to record with it (sizes, settings).
            run: The run it belongs to (``"0007"``), if any.
            machine: The machine id that run is numbered under, if any.
            started_at: When the measurement started; ``finished_at`` less the
                measurement's ``total_seconds`` when ``None``.
            finished_at: When it finished; ``started_at`` plus ``total_seconds`` when
                ``None``; now when neither is given.

        Returns:
            The result stored.

        Raises:
            TypeError: ``measurement`` is not a :class:`~as_bench.measurement.Measurement`
                (a :class:`BenchmarkResult` goes to :meth:`append`).
            ValueError: ``name`` or ``workload`` is empty, ``batch_size`` is not a
                positive integer, or another field is not valid (the message says which).
            ResultStoreError: The file could not be written.
        """
        given: object = measurement  # checked at run time: callers may not type-check
        if not isinstance(given, Measurement):
            hint = " (store a result with append)" if isinstance(given, BenchmarkResult) else ""
            raise TypeError(
                f"ResultStore.add takes what as_bench.measure() returned, a Measurement; "
                f"got {type(given).__name__}{hint}"
            )
        for label, value in (("name", name), ("workload", workload)):
            if value is None and label == "workload":
                continue
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"ResultStore.add needs a non-empty {label} for the result, got {value!r}"
                )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"ResultStore.add: batch_size must be a positive integer, got {batch_size!r}"
            )
        if self._hardware is None:
            from as_bench.probe import probe

            self._hardware = probe().model_dump(mode="json")
        try:
            result = function_result(
                measurement,
                benchmark=name,
                workload=workload if workload is not None else name,
                batch_size=batch_size,
                hardware=self._hardware,
                git=git_info(),
                source="store.add",
                started_at=started_at,
                finished_at=finished_at,
                tags=tags,
                params=params,
                run=run,
                machine=machine,
            )
        except ValidationError as exc:
            raise ValueError(f"ResultStore.add({name!r}): {_problems(exc)}") from exc
        self.append(result)
        return result

    def load_report(self) -> tuple[list[BenchmarkResult], list[CorruptResultError]]:
        """Read every result, keeping going past corrupt files.

        Returns:
            The results that loaded, sorted by start time (then id), and one
            :class:`CorruptResultError` for each file that did not, naming it and why.
            Nothing is logged: the caller decides how to report them.
        """
        results: list[BenchmarkResult] = []
        errors: list[CorruptResultError] = []
        for path in self.paths():
            try:
                results.append(read_result_file(path))
            except CorruptResultError as exc:
                errors.append(exc)
            except ResultStoreError as exc:
                if not path.exists():
                    # Removed between listing and reading (a user tidying up): not an error.
                    logger.debug("result file %s vanished while reading the store", path)
                    continue
                errors.append(CorruptResultError(path, f"could not be read: {exc.__cause__}"))
        results.sort(key=lambda r: (r.started_at, r.id))
        return results, errors

    def load(self, *, on_error: OnError = "skip") -> list[BenchmarkResult]:
        """Read every result, sorted by start time (then id).

        Args:
            on_error: What to do with corrupt files: ``"skip"`` (the default) loads the
                others and logs a warning naming each corrupt file; ``"raise"`` raises the
                first file's :class:`CorruptResultError`; ``"collect"`` reads every file,
                then raises one :class:`ResultStoreError` naming all the corrupt ones.
                Use :meth:`load_report` to get the results and the errors together.

        Raises:
            CorruptResultError: With ``on_error="raise"``, for the first corrupt file.
            ResultStoreError: With ``on_error="collect"``, when any file is corrupt; or
                whenever the folder cannot be listed.
        """
        if on_error == "raise":
            results = [read_result_file(path) for path in self.paths()]
            results.sort(key=lambda r: (r.started_at, r.id))
            return results
        results, errors = self.load_report()
        if on_error == "skip":
            for error in errors:
                logger.warning("skipped corrupt result file %s: %s", error.path, error.reason)
            return results
        if on_error == "collect":
            if errors:
                listing = "\n".join(f"  {error}" for error in errors)
                raise ResultStoreError(
                    f"{len(errors)} of {len(results) + len(errors)} result files in "
                    f"{self._root} are corrupt:\n{listing}"
                )
            return results
        raise ValueError(f"on_error must be 'raise', 'skip' or 'collect', not {on_error!r}")

    def __iter__(self) -> Iterator[BenchmarkResult]:
        """The results, as :meth:`load` with its default (corrupt files skipped, logged)."""
        return iter(self.load())

    def to_frame(self, *, on_error: OnError = "skip") -> pl.DataFrame:
        """The results as a polars DataFrame, one row each (see :func:`results_to_frame`).

        Args:
            on_error: As for :meth:`load`.
        """
        return results_to_frame(self.load(on_error=on_error))

    def export(
        self, path: Path | str, fmt: ExportFormat | None = None, *, on_error: OnError = "skip"
    ) -> Path:
        """Write every result to one JSON, CSV or Parquet file, atomically.

        Args:
            path: The file to write; missing parent folders are created.
            fmt: ``"json"``, ``"csv"`` or ``"parquet"``; taken from the suffix when ``None``.
            on_error: As for :meth:`load`.

        Returns:
            The path written.

        Raises:
            ResultStoreError: The format is unknown or the file could not be written.
        """
        kind = format_for(Path(path), fmt)  # an unknown suffix fails before any reading
        return export_results(self.load(on_error=on_error), path, kind)
