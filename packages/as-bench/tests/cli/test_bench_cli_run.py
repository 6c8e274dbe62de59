"""``as-bench run``: flags and suite files, progress, the summary, exit codes, the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

import as_logging
from as_bench.backends import _REGISTRY, Backend, available_backends
from as_bench.cli import main
from as_bench.exceptions import DeviceUnavailableError
from as_bench.results import ResultStore, read_results
from as_bench.suite import load_suite

torch = pytest.importorskip("torch", reason="as-bench run needs the torch extra")
pytest.importorskip("onnxruntime", reason="these runs compare torch with onnxruntime")

FAST = ["--max-time", "0.05"]


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # A developer's own AS_BENCH__ variables must not change these runs.
    for name in list(os.environ):
        if name.upper().startswith("AS_BENCH__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AS_BENCH__MEASURE__MIN_SAMPLES", "3")
    yield
    as_logging.reset()  # the CLI configures logging, as an application does; undo it


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The built-in workloads train once per session, in pytest's folder, not ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.getbasetemp() / "as-bench-cache"
        patch.setenv("AS_BENCH_CACHE_DIR", str(path))
        yield path


def _main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    return code if isinstance(code, int) else 1


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AS_BENCH__")}
    env.update(extra)
    return env


def _benchmarks(folder: Path) -> list[str]:
    return sorted(r.benchmark for r in ResultStore(folder, create=False).load(on_error="raise"))


@pytest.mark.slow
def test_python_m_run_prints_the_summary_and_stores_results(tmp_path: Path, cache: Path) -> None:
    out = tmp_path / "results"
    argv = ["run", "-w", "mlp", "-b", "torch", "-B", "1", *FAST, "-o", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "as_bench", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=_env(AS_BENCH_CACHE_DIR=str(cache), AS_BENCH__MEASURE__MIN_SAMPLES="3"),
    )
    assert done.returncode == 0, done.stderr + done.stdout
    lines = done.stdout.splitlines()
    assert "measuring 1 combination(s) into " + str(out) in lines
    assert any(line.startswith("ok mlp/torch/cpu/bs1: ") for line in lines)
    assert "as-bench run: default" in done.stdout
    (row,) = [line for line in lines if line.startswith("│ mlp ")]
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    assert cells[:4] == ["mlp", "torch", "cpu", "1"]
    assert cells[-2].startswith("ok ")  # vs torch, before the notes
    assert f"1 result(s) stored in {out}" in done.stdout
    assert "problem:" not in done.stdout
    assert _benchmarks(out) == ["mlp/torch/cpu/bs1"]
    assert len(list(out.glob("*.json"))) == 1
    # The invocation is run 0001 of this machine in the store.
    (stored,) = ResultStore(out).load()
    assert stored.run == "0001" and stored.machine is not None


@pytest.mark.slow
def test_json_output_is_only_json_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    argv = ["run", "-w", "mlp", "-b", "torch", "-b", "onnxruntime", "-B", "2", "--json"]
    assert _main([*argv, *FAST, "-o", str(out)]) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["suite"] == "default"
    assert payload["results_dir"] == str(out)
    rows = {row["benchmark"]: row for row in payload["outcomes"]}
    assert set(rows) == {"mlp/torch/cpu/bs2", "mlp/onnxruntime/cpu/bs2"}
    for row in rows.values():
        assert row["status"] == "ok" and row["output_check_passed"] is True
        assert row["accuracy"]["accuracy"] > 0.9
        assert row["throughput_items_per_s"] == pytest.approx(2 / row["latency_median_s"])
    assert sorted(rows) == sorted(_benchmarks(out))
    # Progress and per-benchmark lines went to stderr.
    assert "ok mlp/torch/cpu/bs2" in captured.err
    assert "measuring 2 combination(s)" in captured.err


def test_flags_beat_the_suite_file_and_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        textwrap.dedent(
            f"""\
            name: from-file
            workloads: [digits-cnn]
            backends: [onnxruntime]
            batch_sizes: [8]
            results_dir: {tmp_path / "file-results"}
            tags: {{owner: me}}
            profiles:
              quick:
                measure: {{max_time_s: 0.05}}
                batch_sizes: [3]
            """
        )
    )
    out = tmp_path / "flag-results"
    argv = ["run", str(suite), "-p", "quick", "-w", "mlp", "-b", "torch", "-o", str(out)]
    assert _main([*argv, "--no-accuracy"]) == 0
    assert "as-bench run: from-file" in capsys.readouterr().out
    (result,) = ResultStore(out, create=False).load(on_error="raise")
    assert result.benchmark == "mlp/torch/cpu/bs3"  # the profile's batch size
    assert result.tags["suite"] == "from-file" and result.tags["owner"] == "me"
    assert result.params["measure"]["max_time_s"] == 0.05
    assert result.accuracy is None
    assert not (tmp_path / "file-results").exists()


def test_environment_sets_the_results_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AS_BENCH__RESULTS_DIR", str(tmp_path / "env-results"))
    monkeypatch.chdir(tmp_path)
    assert _main(["run", "-w", "mlp", "-b", "onnxruntime", "-B", "1", "--no-check", *FAST]) == 0
    assert _benchmarks(tmp_path / "env-results") == ["mlp/onnxruntime/cpu/bs1"]
    assert not (tmp_path / "as-bench-results").exists()
    assert "vs torch" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("workloads: [mlp]\nbackend: [torch]\n", ":2:1: backend: unknown key; did you mean"),
        ("batch_sizes: [1, -4]\n", ":1:1: batch_sizes: batch sizes must be at least 1"),
        ("backends: [tensorflow]\n", ":1:1: backends: unknown backend(s) ['tensorflow']"),
    ],
)
def test_malformed_suite_exits_two_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str
) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(text)
    assert _main(["run", str(suite)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"error: invalid suite: {suite}{where}")
    assert "(hint: fix the value at the place named" in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-B", "0"], "batch_sizes: batch sizes must be at least 1, got [0] (from argument)"),
        (["-b", "nosuch"], "backends: unknown backend(s) ['nosuch']"),
        (["-w", "mpl"], "workloads: unknown workload 'mpl'"),
        (["--max-time", "0"], "measure.max_time_s: Input should be greater than 0"),
        (["-p", "quick"], "profile 'quick': no config file was given"),
        (["--device-timing", "kernel"], "measure.device_timing: Input should be 'batched'"),
    ],
)
def test_bad_flags_exit_two(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_missing_suite_file_exits_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "error: config file not found:" in capsys.readouterr().err


def test_cuda_where_there_is_none_exits_two_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "results"
    assert _main(["run", "-w", "mlp", "-b", "torch", "-d", "cuda", "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert "skipped torch cuda:0: torch cannot use 'cuda:0' here (it can: ['cpu'])" in (
        captured.out
    )
    assert captured.err.startswith("error: nothing to run on this machine")
    assert not out.exists() or not any(out.iterdir())


_PERTURBED = """
from as_bench.backends.torch_eager import TorchEagerBackend


class PerturbedBackend(TorchEagerBackend):
    name = "perturbed"

    def prepare(self, workload, device, batch_size, workdir):
        prepared = super().prepare(workload, device, batch_size, workdir)
        exact = prepared.predict
        prepared.predict = lambda batch: [out + 0.1 for out in exact(batch)]
        return prepared
"""


def test_a_wrong_answer_exits_one_with_a_problem_line(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path_factory.mktemp("cli-backends")
    module = f"cli_perturbed_{folder.name.replace('-', '_')}"
    (folder / f"{module}.py").write_text(_PERTURBED)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(_REGISTRY, "perturbed", f"{module}:PerturbedBackend")
    out = tmp_path / "results"
    argv = ["run", "-w", "mlp", "-b", "torch", "-b", "perturbed", "-B", "1", *FAST]
    assert _main([*argv, "-o", str(out)]) == 1
    stdout = capsys.readouterr().out
    assert "mismatch mlp/perturbed/cpu/bs1:" in stdout
    assert "MISMATCH" in stdout  # the table's "vs torch" column
    problems = [line for line in stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1
    assert problems[0].startswith("problem: mlp/perturbed/cpu/bs1: output 0:")
    # The wrong answer is stored, marked as such, for the record.
    results = {r.backend: r for r in ResultStore(out, create=False).load(on_error="raise")}
    check = results["perturbed"].output_check
    assert check is not None and check.passed is False
    assert results["torch"].output_check is not None and results["torch"].output_check.passed


def test_user_model_as_pkg_module_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = f"my_models_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            """\
            import torch

            def make():
                return torch.nn.Linear(4, 2), torch.randn(3, 4)
            """
        )
    )
    monkeypatch.chdir(tmp_path)  # where a user runs it: the loader looks in the cwd
    monkeypatch.delitem(sys.modules, module, raising=False)
    spec = f"{module}:make"
    argv = ["run", "-w", spec, "-b", "torch", "-b", "onnxruntime", "-B", "1", "-B", "5", *FAST]
    try:
        assert _main(argv) == 0
    finally:
        sys.modules.pop(module, None)
    stdout = capsys.readouterr().out
    assert "4 result(s) stored in as-bench-results" in stdout
    results = ResultStore(tmp_path / "as-bench-results", create=False).load(on_error="raise")
    assert sorted(r.benchmark for r in results) == sorted(
        f"{spec}/{b}/cpu/bs{n}" for b in ("torch", "onnxruntime") for n in (1, 5)
    )
    for result in results:
        assert result.output_check is not None and result.output_check.passed
        assert result.accuracy is None


@pytest.mark.slow  # the spawned child imports torch and rebuilds the workload
def test_isolate_flag_measures_in_a_fresh_process(tmp_path: Path) -> None:
    out = tmp_path / "results"
    argv = ["run", "-w", "mlp", "-b", "torch", "-B", "1", "--isolate", *FAST, "-o", str(out)]
    assert _main(argv) == 0
    (result,) = ResultStore(out, create=False).load(on_error="raise")
    assert result.measurement.isolated
    assert result.output_check is not None and result.output_check.passed


def test_progress_on_a_terminal(tmp_path: Path) -> None:
    from io import StringIO

    from as_bench.cli.run import print_report, run_with_progress

    buffer = StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, color_system=None)
    suite = load_suite(
        overrides={
            "workloads": ["mlp"],
            "backends": ["torch"],
            "batch_sizes": [1],
            "measure": {"max_time_s": 0.05},
            "results_dir": str(tmp_path),
        }
    )
    report = run_with_progress(suite, console)
    assert print_report(report, console, as_json=False) == 0
    text = buffer.getvalue()
    assert "measuring 1 combination(s)" in text and "ok mlp/torch/cpu/bs1" in text
    assert "1/1" in text  # the progress bar's count, drawn before it was cleared
    assert "as-bench run: default" in text


def _usable_devices(backend: Backend) -> list[str]:
    """A backend's devices here; none when it says it cannot run here (the run skips it)."""
    try:
        return backend.devices()
    except DeviceUnavailableError:  # torch-compile-cudagraphs without a GPU
        return []


@pytest.mark.slow  # converts to every backend installed here, LiteRT and MLX included
def test_no_arguments_runs_the_default_suite_everywhere(tmp_path: Path, cache: Path) -> None:
    script = Path(sys.executable).with_name("as-bench")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "as_bench"]
    done = subprocess.run(
        [*command, "run"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env=_env(
            AS_BENCH_CACHE_DIR=str(cache),
            AS_BENCH__MEASURE__MAX_TIME_S="0.05",
            AS_BENCH__BATCH_SIZES="[1]",
        ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    expected = sorted(
        f"{workload}/{backend.name}/{device}/bs1"
        for backend in available_backends()
        for device in _usable_devices(backend)
        for workload in ("mlp", "digits-cnn")
    )
    assert {"torch", "onnxruntime"} <= {b.name for b in available_backends()}
    store = tmp_path / "as-bench-results"
    results = ResultStore(store, create=False).load(on_error="raise")
    assert sorted(r.benchmark for r in results) == expected
    for result in results:
        assert result.output_check is not None, result.benchmark
        assert result.output_check.passed, (result.benchmark, result.output_check.failures)
        assert result.accuracy is not None and result.accuracy["accuracy"] > 0.9
    assert f"{len(expected)} result(s) stored in as-bench-results" in done.stdout
    assert "problem:" not in done.stdout and "failed" not in done.stdout
    # The done-when: the results read back in every format.
    plain = ResultStore(store)
    for suffix in ("json", "csv", "parquet"):
        frame = read_results(plain.export(tmp_path / f"all.{suffix}"), on_error="raise")
        assert sorted(frame["benchmark"].to_list()) == expected, suffix


def test_warnings_are_listed_under_the_table_once_each(tmp_path: Path) -> None:
    from io import StringIO

    from as_bench.cli.run import print_report
    from as_bench.suite import Outcome, run_suite

    suite = load_suite(
        overrides={
            "workloads": ["mlp"],
            "backends": ["torch", "onnxruntime"],
            "batch_sizes": [1],
            "measure": {"max_time_s": 0.05},
            "results_dir": str(tmp_path),
            "accuracy": False,
        }
    )
    report = run_suite(suite)
    texts = (["noisy clock", "not stable"], ["noisy clock"])
    outcomes: list[Outcome] = []
    for outcome, warnings in zip(report.outcomes, texts, strict=True):
        assert outcome.result is not None
        measurement = outcome.result.measurement.model_copy(update={"warnings": warnings})
        result = outcome.result.model_copy(update={"measurement": measurement})
        outcomes.append(Outcome(outcome.combination, outcome.status, result, outcome.message))
    report.outcomes = outcomes
    buffer = StringIO()
    console = Console(file=buffer, width=100, color_system=None)
    assert print_report(report, console, as_json=False) == 0
    lines = buffer.getvalue().splitlines()
    assert "warnings:" in lines
    listed = lines[lines.index("warnings:") + 1 :]
    assert listed[:2] == [
        "  noisy clock (mlp/torch/cpu/bs1, mlp/onnxruntime/cpu/bs1)",
        "  not stable (mlp/torch/cpu/bs1)",
    ]
    assert listed[2].startswith("2 result(s) stored in ")


def test_help_shows_the_defaults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from as_bench.suite import MeasureSection, Suite

    monkeypatch.setenv("COLUMNS", "200")
    assert _main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    fields = MeasureSection.model_fields
    suite = Suite.model_fields
    for option, default in (
        ("--max-time", fields["max_time_s"].default),
        ("--target-ci", fields["target_rel_ci"].default),
        (
            "--batch-size",
            ", ".join(map(str, suite["batch_sizes"].get_default(call_default_factory=True))),
        ),
        ("--workload", ", ".join(suite["workloads"].get_default(call_default_factory=True))),
        ("--results-dir", suite["results_dir"].default),
    ):
        row = text.split(option, 1)[1].split("│", 1)[0]
        assert f"[default: ({default})]" in row, (option, row)
    assert "[default: (no-isolate)]" in text


def test_no_backend_installed_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from as_bench.suite import _runner

    monkeypatch.setattr(_runner, "_available_backends", list)  # as with no extras installed
    assert _main(["run", "-w", "mlp"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: nothing to run on this machine: no backend is installed")
    assert 'uv add "as-bench[torch]"' in err
    assert "--debug" not in err


def test_an_unknown_factory_is_one_error_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = "no_such_models_here:make"
    argv = ["run", "-w", spec, "-b", "torch", "-b", "onnxruntime", "-B", "1", "-B", "2"]
    assert _main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing planned, measured or failed per combination
    assert captured.err.count("\n") == 1, captured.err
    assert "error: workload 'no_such_models_here:make': module 'no_such_models_here'" in (
        captured.err
    )
    assert "(hint: a workload of your own is 'pkg.module:factory'" in captured.err
    assert not (tmp_path / "as-bench-results").exists()


def test_a_skipped_backend_line_keeps_its_reason(tmp_path: Path) -> None:
    from io import StringIO

    from as_bench.cli.run import _status_line, run_with_progress
    from as_bench.suite import Combination, Outcome

    if torch.backends.mps.is_available():
        pytest.skip("torch can use mps here")
    buffer = StringIO()
    console = Console(file=buffer, width=40, color_system=None)  # narrow, not a terminal
    suite = load_suite(
        overrides={
            "workloads": ["mlp"],
            "backends": ["torch"],
            "devices": ["cpu", "mps"],
            "batch_sizes": [1],
            "measure": {"max_time_s": 0.05},
            "results_dir": str(tmp_path),
            "accuracy": False,
        }
    )
    run_with_progress(suite, console)
    lines = buffer.getvalue().splitlines()
    assert "skipped torch mps: torch cannot use 'mps' here (it can: ['cpu'])" in lines
    silent = Outcome(Combination("mlp", "tflite", "-", 0), "skipped", message="")
    assert _status_line(silent) == (
        "[yellow]skipped[/] tflite -: no reason given (run again with --debug)"
    )


def test_device_timing_flag_reaches_the_suite_and_the_column_says_what_it_means(
    tmp_path: Path,
) -> None:
    from io import StringIO

    from as_bench.cli.run import outcome_row, summary_table
    from as_bench.suite import Combination, Outcome, RunReport
    from as_bench.testing import make_measurement, make_result

    suite = load_suite(
        overrides={"results_dir": str(tmp_path), "measure": {"device_timing": "per_call"}}
    )
    assert suite.measure.to_options().device_timing == "per_call"
    default = load_suite(overrides={"results_dir": str(tmp_path)})
    assert default.measure.device_timing == "batched"

    def outcome(device: str, timer: str | None) -> Outcome:
        m = make_measurement([1e-3, 1.2e-3], device_samples_s=[8e-4, 9e-4], device=device)
        if timer is None:
            m = m.model_copy(update={"device_time": None})
        else:
            assert m.device_time is not None
            series = m.device_time.model_copy(update={"timer": timer})
            m = m.model_copy(update={"device_time": series})
        combo = Combination("mlp", "torch", device, 1)
        result = make_result(combo.name, measurement=m, backend="torch", device=device)
        return Outcome(combo, "ok", result)

    def table_text(*outcomes: Outcome) -> str:
        report = RunReport(suite, ResultStore(tmp_path), list(outcomes))
        buffer = StringIO()
        Console(file=buffer, width=250, color_system=None).print(summary_table(report))
        return buffer.getvalue()

    cpu, batched = outcome("cpu", None), outcome("cuda:0", "cuda_events")
    per_call = outcome("cuda:1", "cuda_events_per_call")
    assert "device time (back-to-back)" in table_text(cpu, batched)
    assert "device time (per call)" in table_text(cpu, per_call)
    mixed = table_text(batched, per_call)
    assert "device time (back-to-back)" not in mixed.splitlines()[1]  # the heading
    assert "(per call)" in mixed and "(back-to-back)" in mixed  # said in each cell
    assert outcome_row(per_call)["device_timing"] == "per_call"
    assert outcome_row(cpu)["device_timing"] is None
