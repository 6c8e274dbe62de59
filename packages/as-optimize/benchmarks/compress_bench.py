"""Every compression technique against eager PyTorch fp32 and ONNX Runtime fp32, per workload.

For each workload (the built-in digits CNN, MLP and MiniLM, and user models given as
factories), ``as_optimize.optimize`` runs its search (every technique the search knows:
``available_techniques()`` or ``default_techniques()``, and the torch stages of
``default_stages()`` where the pipeline module exists) and picks a winner under the
default quality gate (``--goal-gates``: the workload goal's quality). Then every model it
built, with eager PyTorch fp32 and the fp32 ONNX model, is measured again **in one
interleaved run**: all models of the workload round-robin, at batch 1 and 32, over several
rounds, each model's latency the median of its rounds' medians, so that a change in the
machine's load hits every model alike. For each model it prints the speed-up at batch 1
and 32 against eager and against ONNX Runtime fp32, the size against both, and the quality
change against both (accuracy points for classifiers with data, the cosine of the outputs
otherwise); then the automated pick against the best single technique (the fastest at
batch 1 of those that passed the gate without a torch stage), beside this machine's goals.
A JSON file holds every figure.

Usage (from the workspace root)::

    uv run python packages/as-optimize/benchmarks/compress_bench.py
    uv run python packages/as-optimize/benchmarks/compress_bench.py \\
        --workloads digits-cnn,mlp --no-factory --trials 6 --rounds 3 --json out.json
    uv run python packages/as-optimize/benchmarks/compress_bench.py \\
        --workloads "" --factory my_pkg.models:make_net

``--factory`` may be repeated; without it the small example in ``example_factory.py``
(this folder, put on the import path) is the user model.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
BATCHES = (1, 32)
EXAMPLE_FACTORY = "example_factory:make_model"


@dataclass(frozen=True)
class Goal:
    """What the automated pick should reach on this machine's CPU against eager fp32."""

    speedup_b1: float
    speedup_b32: float
    max_size_ratio: float
    max_accuracy_loss_pt: float | None = None
    min_mean_cosine: float | None = None
    min_min_cosine: float | None = None

    def describe(self) -> str:
        quality = []
        if self.max_accuracy_loss_pt is not None:
            quality.append(
                "no accuracy loss"
                if self.max_accuracy_loss_pt == 0
                else f"<={self.max_accuracy_loss_pt:g} pt loss"
            )
        if self.min_mean_cosine is not None:
            quality.append(f"mean cosine >={self.min_mean_cosine:g}")
        if self.min_min_cosine is not None:
            quality.append(f"min cosine >={self.min_min_cosine:g}")
        return (
            f">={self.speedup_b1:g}x (b1) / >={self.speedup_b32:g}x (b32) vs eager, "
            f"size <={self.max_size_ratio:g}, {', '.join(quality)}"
        )


GOALS = {
    "digits-cnn": Goal(6.0, 7.0, 0.16, max_accuracy_loss_pt=0.5),
    "mlp": Goal(3.5, 2.7, 0.17, max_accuracy_loss_pt=0.0),
    "minilm": Goal(3.5, 2.0, 0.20, min_mean_cosine=0.995, min_min_cosine=0.99),
}


@dataclass
class ModelRow:
    """One model of a workload and its figures from the interleaved run."""

    id: str
    kind: str  # "eager", "ort-fp32", "technique", "pipeline", "stage"
    status: str
    description: str
    median_s: dict[str, float | None] = field(default_factory=dict)
    rounds_s: dict[str, list[float]] = field(default_factory=dict)
    size_bytes: int | None = None
    speedup_vs_eager: dict[str, float | None] = field(default_factory=dict)
    speedup_vs_ort: dict[str, float | None] = field(default_factory=dict)
    size_vs_eager: float | None = None
    size_vs_ort: float | None = None
    accuracy: float | None = None
    accuracy_change_vs_eager_pt: float | None = None
    accuracy_change_vs_ort_pt: float | None = None
    cosine_vs_eager: tuple[float, float] | None = None  # mean, min
    cosine_vs_ort: tuple[float, float] | None = None
    note: str = ""


# ---- the search -------------------------------------------------------------------------


def _techniques() -> list[Any]:
    from as_optimize import compress

    make = getattr(compress, "available_techniques", None) or compress.default_techniques
    return list(make())


def _stages(enabled: bool) -> list[Any] | None:
    """The pipeline module's stages when it exists (``None``: the search has no stages)."""
    try:
        from as_optimize.compress._pipeline import default_stages
    except ImportError:
        return None
    return list(default_stages()) if enabled else []


def _search(spec: str, output: Path, args: argparse.Namespace) -> Any:
    from as_optimize import optimize

    kwargs: dict[str, Any] = {
        "output": output,
        "batch_sizes": BATCHES,
        "threads": args.threads,
        "max_time_s": args.search_max_time,
        "trials": args.trials,
        "techniques": _techniques(),
        "progress": (lambda line: print(f"  {line}", flush=True)) if args.verbose else None,
    }
    stages = _stages(not args.no_stages)
    if stages is not None and "stages" in inspect.signature(optimize).parameters:
        kwargs["stages"] = stages
    goal = GOALS.get(spec)
    if args.goal_gates and goal is not None:
        # The quality the goal asks for is the search's gate: the pick must meet it.
        if goal.max_accuracy_loss_pt is not None:
            kwargs["max_accuracy_drop"] = goal.max_accuracy_loss_pt
        if goal.min_mean_cosine is not None:
            kwargs["min_cosine"] = goal.min_mean_cosine
        kwargs["max_size_ratio"] = goal.max_size_ratio
    return optimize(spec, **kwargs)


# ---- the interleaved run ----------------------------------------------------------------


def _float32(arrays: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(
        np.array(a, dtype=np.float32 if a.dtype.kind == "f" else a.dtype, order="C", copy=True)
        for a in arrays
    )


def _session(path: Path, threads: int) -> Any:
    """A session opened as the search's evaluation and as-deploy's server open theirs."""
    from as_core.runtime import RuntimeOptions, onnxruntime_session

    return onnxruntime_session(path, RuntimeOptions(intra_op_threads=threads))


def _feeds(session: Any, arrays: Sequence[Any]) -> dict[str, Any]:
    feeds = {}
    for spec, array in zip(session.get_inputs(), arrays, strict=True):
        if spec.type == "tensor(float16)":
            array = array.astype(np.float16)
        feeds[spec.name] = array
    return feeds


def _ort_runner(session: Any, arrays: Sequence[Any]) -> Callable[[], Any]:
    feeds = _feeds(session, arrays)
    return lambda: session.run(None, feeds)


def _ort_outputs(session: Any, inputs: Sequence[Any], chunk: int = 64) -> Any:
    rows = inputs[0].shape[0]
    parts = []
    for start in range(0, rows, chunk):
        part = [a[start : start + chunk] for a in inputs]
        parts.append(np.asarray(session.run(None, _feeds(session, part))[0], dtype=np.float64))
    return np.concatenate(parts)


def _cosines(a: Any, b: Any) -> tuple[float, float]:
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = np.where(norms > 0, (a * b).sum(axis=1) / np.where(norms > 0, norms, 1), 0.0)
    return float(cosine.mean()), float(cosine.min())


def _kind(candidate: Any) -> str:
    if getattr(candidate, "stage", None):
        return "pipeline" if candidate.technique not in ("", "none", "fp32") else "stage"
    return "technique"


@dataclass
class _Loaded:
    """The models of one workload, ready to run."""

    rows: list[ModelRow]
    runners: dict[str, dict[int, Callable[[], Any]]]
    outputs: dict[str, Any]
    eager_bytes: int
    scoring_examples: int


def _eager(spec: str, report: Any, threads: int) -> tuple[Any, _Loaded, dict[int, Any], Any]:
    import torch

    from as_bench.export import load_torch_model, load_workload, torch_inputs
    from as_optimize.compress._handoff import scoring_inputs

    workload = load_workload(spec)
    model = load_torch_model(workload, "compress_bench")
    torch.set_num_threads(threads)
    batch_inputs = {b: _float32(workload.inputs(b)) for b in BATCHES}
    scoring = _float32(scoring_inputs(spec, report)[0])
    with torch.inference_mode():
        out = model(*torch_inputs(scoring))
        first = out[0] if isinstance(out, (tuple, list)) else out
        eager_out = np.asarray(first.float().numpy(), dtype=np.float64)
    eager_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())

    def runner(arrays: Sequence[Any]) -> Callable[[], Any]:
        tensors = torch_inputs(arrays)

        def run() -> Any:
            with torch.inference_mode():
                return model(*tensors)

        return run

    row = ModelRow("eager", "eager", "reference", "eager PyTorch fp32", size_bytes=eager_bytes)
    row.accuracy = report.eager.get("accuracy")
    loaded = _Loaded(
        rows=[row],
        runners={"eager": {b: runner(batch_inputs[b]) for b in BATCHES}},
        outputs={"eager": eager_out},
        eager_bytes=eager_bytes,
        scoring_examples=int(scoring[0].shape[0]),
    )
    return model, loaded, batch_inputs, scoring


def _load(spec: str, result: Any, threads: int) -> _Loaded:
    """Eager PyTorch and every ONNX Runtime model of the search, with their outputs."""
    from as_optimize.compress._report import describe_candidate

    report, output = result.report, Path(result.output)
    _, loaded, batch_inputs, scoring = _eager(spec, report, threads)
    for candidate in [report.baseline, *report.candidates]:
        is_base = candidate is report.baseline
        runtime = getattr(candidate, "runtime", "onnxruntime")
        if candidate.path and runtime == "torch" and not is_base:
            loaded.rows.append(
                _torch_candidate(spec, candidate, output, loaded, batch_inputs, scoring)
            )
            continue
        if not candidate.path or runtime != "onnxruntime":
            if not is_base and candidate.status not in ("not applicable", "not tried"):
                loaded.rows.append(
                    ModelRow(
                        candidate.id,
                        _kind(candidate),
                        candidate.status,
                        describe_candidate(candidate),
                        note=f"not measured here ({runtime}): {candidate.reason}",
                    )
                )
            continue
        rid = "ort-fp32" if is_base else candidate.id
        row = ModelRow(
            rid,
            "ort-fp32" if is_base else _kind(candidate),
            candidate.status + (" (winner)" if candidate.id == report.winner else ""),
            "ONNX Runtime fp32" if is_base else describe_candidate(candidate),
            size_bytes=candidate.size_bytes,
        )
        if candidate.quality is not None:
            row.accuracy = candidate.quality.accuracy
        try:
            session = _session(output / candidate.path, threads)
            loaded.runners[rid] = {b: _ort_runner(session, batch_inputs[b]) for b in BATCHES}
            loaded.outputs[rid] = _ort_outputs(session, scoring)
        except Exception as exc:  # a model that fails here is reported, not fatal
            row.note = f"could not run: {type(exc).__name__}: {exc}"
        loaded.rows.append(row)
    return loaded


def _torch_candidate(
    spec: str,
    candidate: Any,
    output: Path,
    loaded: _Loaded,
    batch_inputs: dict[int, Any],
    scoring: Sequence[Any],
) -> ModelRow:
    """A torch-runtime candidate (``model.torch/``) rebuilt as the search's torch child does."""
    from as_optimize.compress._report import describe_candidate

    row = ModelRow(
        candidate.id,
        _kind(candidate),
        candidate.status,
        describe_candidate(candidate),
        size_bytes=candidate.size_bytes,
    )
    if candidate.quality is not None:
        row.accuracy = candidate.quality.accuracy
    try:
        import torch

        from as_optimize.compress._torchao import compute_dtype, load_fp32, prepare, read_facts

        folder = output / candidate.path
        facts = read_facts(folder)
        model = prepare(
            load_fp32(folder, spec), str(facts["technique"]), dict(facts.get("knobs") or {}), "cpu"
        )
        dtype = compute_dtype(model)
    except Exception as exc:  # no torch runtime here, or the artifact changed shape
        row.note = f"not measured here (torch): {type(exc).__name__}: {exc}"
        return row

    def tensors(arrays: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            torch.from_numpy(a).to(dtype) if a.dtype.kind == "f" else torch.from_numpy(a)
            for a in arrays
        )

    def runner(arrays: Sequence[Any]) -> Callable[[], Any]:
        args = tensors(arrays)

        def run() -> Any:
            with torch.inference_mode():
                return model(*args)

        return run

    with torch.inference_mode():
        out = model(*tensors(scoring))
    first = out[0] if isinstance(out, (tuple, list)) else out
    loaded.outputs[row.id] = np.asarray(first.float().numpy(), dtype=np.float64)
    loaded.runners[row.id] = {b: runner(batch_inputs[b]) for b in BATCHES}
    return row


def _measure(loaded: _Loaded, args: argparse.Namespace) -> float:
    """All runnable models round-robin, each round from another start; returns seconds."""
    import as_bench

    options = as_bench.MeasureOptions(
        max_time_s=args.max_time,
        min_time_s=min(args.min_time, args.max_time),
        target_rel_ci=0.02,
        remeasure_noisy=0,
    )
    measured = [r for r in loaded.rows if r.id in loaded.runners]
    for r in measured:
        r.rounds_s = {str(b): [] for b in BATCHES}
    started = time.perf_counter()
    for index in range(args.rounds):
        shift = index % len(measured)
        for r in measured[shift:] + measured[:shift]:
            for b in BATCHES:
                m = as_bench.measure(loaded.runners[r.id][b], device="cpu", options=options)
                r.rounds_s[str(b)].append(float(m.latency.stats.median))
    for r in measured:
        r.median_s = {b: statistics.median(v) for b, v in r.rounds_s.items()}
    return time.perf_counter() - started


def _figures(loaded: _Loaded) -> None:
    """Speed-ups, size ratios and quality changes against eager and ONNX Runtime fp32."""
    by_id = {r.id: r for r in loaded.rows}
    eager = by_id["eager"]
    ort = by_id.get("ort-fp32")
    for r in loaded.rows:
        for b in (str(x) for x in BATCHES):
            own = r.median_s.get(b)
            r.speedup_vs_eager[b] = _ratio(eager.median_s.get(b), own)
            r.speedup_vs_ort[b] = _ratio(None if ort is None else ort.median_s.get(b), own)
        r.size_vs_eager = _ratio(r.size_bytes, loaded.eager_bytes)
        r.size_vs_ort = _ratio(r.size_bytes, None if ort is None else ort.size_bytes)
        if r.accuracy is not None and eager.accuracy is not None:
            r.accuracy_change_vs_eager_pt = r.accuracy - eager.accuracy
        if r.accuracy is not None and ort is not None and ort.accuracy is not None:
            r.accuracy_change_vs_ort_pt = r.accuracy - ort.accuracy
        if r.id in loaded.outputs:
            r.cosine_vs_eager = _cosines(loaded.outputs[r.id], loaded.outputs["eager"])
            if "ort-fp32" in loaded.outputs:
                r.cosine_vs_ort = _cosines(loaded.outputs[r.id], loaded.outputs["ort-fp32"])


def _interleaved(
    spec: str, result: Any, args: argparse.Namespace, threads: int
) -> tuple[list[ModelRow], dict[str, Any]]:
    """Every model of the search and eager PyTorch measured round-robin; quality per model."""
    loaded = _load(spec, result, threads)
    elapsed = _measure(loaded, args)
    _figures(loaded)
    meta = {
        "rounds": args.rounds,
        "max_time_s": args.max_time,
        "interleaved_s": elapsed,
        "threads": threads,
        "scoring_examples": loaded.scoring_examples,
        "eager_param_bytes": loaded.eager_bytes,
    }
    return loaded.rows, meta


def _interleaved_in_child(
    spec: str, output: Path, args: argparse.Namespace, threads: int
) -> tuple[list[ModelRow], dict[str, Any]]:
    """:func:`_interleaved` in a fresh process of this script.

    What the search left in its own process (torch stages trained, thread pools started,
    caches warmed for some models only) cannot then weigh on any model's measurement:
    every model starts in the same clean process.
    """
    figures = output / "interleaved.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--measure-search",
        str(output),
        "--workloads",
        spec,
        "--threads",
        str(threads),
        "--rounds",
        str(args.rounds),
        "--max-time",
        str(args.max_time),
        "--min-time",
        str(args.min_time),
        "--json",
        str(figures),
    ]
    subprocess.run(command, check=True)
    data = json.loads(figures.read_text(encoding="utf-8"))
    rows = []
    for item in data["rows"]:
        for key in ("cosine_vs_eager", "cosine_vs_ort"):
            if item[key] is not None:
                item[key] = tuple(item[key])
        rows.append(ModelRow(**item))
    return rows, data["meta"]


def _measure_search(args: argparse.Namespace) -> int:
    """``--measure-search DIR``: the interleaved run of one search's models, as JSON."""
    from types import SimpleNamespace

    from as_optimize.compress import SearchReport

    output = Path(args.measure_search)
    report = SearchReport.model_validate_json((output / "report.json").read_text("utf-8"))
    result = SimpleNamespace(report=report, output=output)
    rows, meta = _interleaved(args.workloads, result, args, args.threads)
    document = {"rows": [asdict(r) for r in rows], "meta": meta}
    args.json.write_text(json.dumps(document, default=str), encoding="utf-8")
    return 0


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``; ``None`` when either is missing or not positive."""
    if not numerator or not denominator or numerator <= 0 or denominator <= 0:
        return None
    return numerator / denominator


# ---- the pick, the goals, the table -------------------------------------------------------


def _pick(rows: list[ModelRow], report: Any) -> dict[str, Any]:
    """The automated pick and the best single technique, by the interleaved batch-1 median."""
    winner = report.winner
    auto = next((r for r in rows if r.id == winner), None)
    if auto is None and winner == report.baseline.id:
        auto = next((r for r in rows if r.id == "ort-fp32"), None)
    singles = [
        r
        for r in rows
        if r.kind == "technique" and r.status.startswith("passed") and r.median_s.get("1")
    ]
    best = min(singles, key=lambda r: r.median_s["1"] or math.inf, default=None)
    return {
        "auto": None if auto is None else auto.id,
        "best_single": None if best is None else best.id,
        "auto_vs_best_single_b1": (
            None
            if auto is None or best is None
            else _ratio(best.median_s.get("1"), auto.median_s.get("1"))
        ),
    }


def _goal_check(goal: Goal, row: ModelRow) -> dict[str, bool | None]:
    def at_least(value: float | None, floor: float) -> bool | None:
        return None if value is None else value >= floor

    checks: dict[str, bool | None] = {
        "speedup_b1": at_least(row.speedup_vs_eager.get("1"), goal.speedup_b1),
        "speedup_b32": at_least(row.speedup_vs_eager.get("32"), goal.speedup_b32),
        "size": None if row.size_vs_ort is None else row.size_vs_ort <= goal.max_size_ratio,
    }
    if goal.max_accuracy_loss_pt is not None:
        change = row.accuracy_change_vs_eager_pt
        checks["accuracy"] = None if change is None else -change <= goal.max_accuracy_loss_pt + 1e-9
    if goal.min_mean_cosine is not None:
        cos = row.cosine_vs_eager
        checks["mean_cosine"] = None if cos is None else cos[0] >= goal.min_mean_cosine
        checks["min_cosine"] = (
            None if cos is None or goal.min_min_cosine is None else cos[1] >= goal.min_min_cosine
        )
    return checks


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _r(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pt(value: float | None) -> str:
    return "-" if value is None else f"{round(value, 2) + 0.0:+.2f}"


def _cos(value: tuple[float, float] | None) -> str:
    return "-" if value is None else f"{value[0]:.4f}/{value[1]:.4f}"


HEADERS = (
    "model",
    "status",
    "b1 eager",
    "b1 ORT",
    "b32 eager",
    "b32 ORT",
    "size/eager",
    "size/ORT",
    "dacc eager",
    "dacc ORT",
    "cos eager",
    "cos ORT",
)


def _table(rows: list[ModelRow]) -> list[str]:
    cells = [
        [
            r.id,
            r.status,
            _x(r.speedup_vs_eager.get("1")),
            _x(r.speedup_vs_ort.get("1")),
            _x(r.speedup_vs_eager.get("32")),
            _x(r.speedup_vs_ort.get("32")),
            _r(r.size_vs_eager),
            _r(r.size_vs_ort),
            _pt(r.accuracy_change_vs_eager_pt),
            _pt(r.accuracy_change_vs_ort_pt),
            _cos(r.cosine_vs_eager),
            _cos(r.cosine_vs_ort),
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(HEADERS)]
    line = "  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    out += [f"    {r.id}: {r.note}" for r in rows if r.note]
    return out


def _safe(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec).strip("-") or "model"


def bench(spec: str, args: argparse.Namespace, root: Path, threads: int) -> dict[str, Any]:
    """Search, measure interleaved and check the goals for one workload; print its table."""
    output = root / f"search-{_safe(spec)}"
    if output.exists():
        shutil.rmtree(output)
    print(f"\n== {spec}: searching ({'all' if args.trials is None else args.trials} trials)")
    started = time.perf_counter()
    result = _search(spec, output, args)
    search_s = time.perf_counter() - started
    print(f"   search took {search_s:.0f} s; winner {result.report.winner}")
    rows, meta = _interleaved_in_child(spec, output, args, threads)
    pick = _pick(rows, result.report)
    print(f"== {spec}: interleaved run, {meta['rounds']} rounds ({meta['interleaved_s']:.0f} s)")
    print("   speed-ups and size ratios against eager PyTorch fp32 and ONNX Runtime fp32;")
    print("   dacc: accuracy change in points; cos: mean/min cosine of the outputs")
    for line in _table(rows):
        print("   " + line)
    by_id = {r.id: r for r in rows}
    auto = by_id.get(pick["auto"] or "")
    best = by_id.get(pick["best_single"] or "")
    if auto is not None:
        print(
            f"   automated pick {auto.id}: {_x(auto.speedup_vs_eager.get('1'))} (b1) / "
            f"{_x(auto.speedup_vs_eager.get('32'))} (b32) vs eager"
        )
    if best is not None:
        print(
            f"   best single technique {best.id}: {_x(best.speedup_vs_eager.get('1'))} (b1) / "
            f"{_x(best.speedup_vs_eager.get('32'))} (b32) vs eager; the pick is "
            f"{_x(pick['auto_vs_best_single_b1'])} its speed at batch 1"
        )
    goal = GOALS.get(spec)
    checks = None
    if goal is not None and auto is not None:
        checks = _goal_check(goal, auto)
        shown = ", ".join(
            f"{k} {'met' if v else 'MISSED' if v is not None else 'n/a'}" for k, v in checks.items()
        )
        print(f"   goal ({goal.describe()}): {shown}")
    return {
        "workload": spec,
        "search_s": search_s,
        "winner": result.report.winner,
        "winner_reason": result.report.winner_reason,
        "gate": result.report.gate,
        "meta": meta,
        "pick": pick,
        "goal": None if goal is None else asdict(goal),
        "goal_checks": checks,
        "models": [asdict(r) for r in rows],
    }


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="digits-cnn,mlp,minilm", help="comma-separated")
    parser.add_argument("--factory", action="append", default=None, help="pkg.mod:fn (repeat)")
    parser.add_argument("--no-factory", action="store_true", help="no user model")
    parser.add_argument("--trials", type=int, default=None, help="candidates per search")
    parser.add_argument("--no-stages", action="store_true", help="techniques alone, no pruning")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--max-time", type=float, default=0.3, help="s per measurement")
    parser.add_argument("--min-time", type=float, default=0.1, help="s per measurement")
    parser.add_argument("--search-max-time", type=float, default=0.2, help="s, in the search")
    parser.add_argument("--threads", type=int, default=None, help="default: every CPU")
    parser.add_argument("--out", type=Path, default=None, help="folder for the searches")
    parser.add_argument("--json", type=Path, default=Path("compress_bench.json"))
    parser.add_argument("--verbose", action="store_true", help="the searches' progress")
    parser.add_argument(
        "--goal-gates",
        action="store_true",
        help="gate each built-in workload's search on its goal's quality (0.5 pt, 0 pt, "
        "mean cosine 0.995) and size (0.16, 0.17, 0.20) instead of the default gate",
    )
    parser.add_argument(
        "--measure-search", default=None, help="only the interleaved run of this search folder"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    # The example factory lives beside this script; child processes inherit the path.
    sys.path.insert(0, str(HERE))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p
    )
    if args.measure_search is not None:
        return _measure_search(args)
    import as_bench
    from as_core.runtime import available_cpus

    threads = args.threads or available_cpus()
    args.threads = threads
    specs = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if not args.no_factory:
        specs += args.factory or [EXAMPLE_FACTORY]
    root = args.out or Path(tempfile.mkdtemp(prefix="compress-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"compress_bench: {', '.join(specs)}; {threads} thread(s); searches in {root}")
    results = [bench(spec, args, root, threads) for spec in specs]
    document = {
        "benchmark": "compress_bench",
        "command": " ".join(sys.argv),
        "batches": list(BATCHES),
        "hardware": as_bench.probe_hardware().model_dump(mode="json"),
        "workloads": results,
    }
    args.json.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
