"""The suite runner: suite files, planning, running into the store, catching wrong answers."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from as_bench.backends import _REGISTRY
from as_bench.exceptions import SuiteError
from as_bench.results import (
    BenchmarkResult,
    ResultStore,
    git_info,
    read_result_objects,
    read_results,
)
from as_bench.suite import (
    DEFAULT_RESULTS_DIR,
    Combination,
    Outcome,
    RunReport,
    Suite,
    load_suite,
    plan,
    run_suite,
)

torch = pytest.importorskip("torch", reason="the runner's reference backend is PyTorch")
pytest.importorskip("onnxruntime", reason="these suites compare torch with onnxruntime")

REPO = Path(__file__).resolve().parents[4]

# Short measurements: these tests check what the runner records, not how fast anything is.
FAST: dict[str, Any] = {
    "min_samples": 3,
    "min_time_s": 0.01,
    "max_time_s": 0.05,
    "warmup_max_time_s": 0.05,
}

# Backends for the tests below, registered by module path like the real ones. The module
# is written to a folder on sys.path, since test modules are not importable by name under
# --import-mode=importlib.
_TEST_BACKENDS = '''
from as_bench.backends._base import Backend
from as_bench.backends.torch_eager import TorchEagerBackend
from as_bench.exceptions import BackendError, MissingExtraError


class PerturbedBackend(TorchEagerBackend):
    """Eager PyTorch whose answers are off by 0.1: fast, and wrong."""

    name = "perturbed"

    def prepare(self, workload, device, batch_size, workdir):
        prepared = super().prepare(workload, device, batch_size, workdir)
        exact = prepared.predict
        prepared.predict = lambda batch: [out + 0.1 for out in exact(batch)]
        return prepared


class BrokenBackend(TorchEagerBackend):
    """A backend whose exporter cannot take the model."""

    name = "broken"

    def prepare(self, workload, device, batch_size, workdir):
        raise BackendError(f"broken: cannot export {workload.name}: unsupported op 'Frobnicate'")


class AbsentBackend(Backend):
    """A backend whose library is not installed."""

    name = "absent"
    extra = "absent"

    def is_available(self):
        return False

    def devices(self):
        raise MissingExtraError("absent_runtime", self.extra)

    def prepare(self, workload, device, batch_size, workdir):
        raise MissingExtraError("absent_runtime", self.extra)


class MuteBackend(TorchEagerBackend):
    """A backend whose device check fails with an error that has no message."""

    name = "mute"

    def devices(self):
        raise BackendError("")
'''

_MODULE = "as_bench_runner_test_backends"


@pytest.fixture(autouse=True)
def _no_user_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own AS_BENCH__ variables must not change these suites.
    import os

    for name in list(os.environ):
        if name.upper().startswith("AS_BENCH__"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The built-in workloads train once per session, in pytest's folder, not ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.getbasetemp() / "as-bench-cache"
        patch.setenv("AS_BENCH_CACHE_DIR", str(path))
        yield path


@pytest.fixture
def test_backends(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Register ``perturbed``, ``broken`` and ``absent`` beside the real backends."""
    folder = tmp_path_factory.getbasetemp() / "runner-test-backends"
    folder.mkdir(exist_ok=True)
    (folder / f"{_MODULE}.py").write_text(textwrap.dedent(_TEST_BACKENDS))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, _MODULE, raising=False)
    for name, cls in (
        ("perturbed", "PerturbedBackend"),
        ("broken", "BrokenBackend"),
        ("absent", "AbsentBackend"),
        ("mute", "MuteBackend"),
    ):
        monkeypatch.setitem(_REGISTRY, name, f"{_MODULE}:{cls}")


def _suite(results: Path, **fields: Any) -> Suite:
    data: dict[str, Any] = {
        "name": "runner-test",
        "workloads": ["mlp"],
        "backends": ["torch", "onnxruntime"],
        "devices": ["cpu"],
        "batch_sizes": [2],
        "measure": FAST,
        "results_dir": str(results),
    }
    data.update(fields)
    return load_suite(overrides=data)


def _by_name(report: RunReport) -> dict[str, Outcome]:
    return {o.combination.name: o for o in report.outcomes if o.status != "skipped"}


# --- suite files ---------------------------------------------------------------------------


def test_defaults_are_the_first_run_suite() -> None:
    suite = load_suite()
    assert suite.workloads == ["mlp", "digits-cnn"]
    assert suite.backends == [] and suite.devices == []  # everything available here
    assert suite.batch_sizes == [1, 32]
    assert suite.results_dir == DEFAULT_RESULTS_DIR
    assert suite.check_outputs and suite.accuracy


def test_yaml_suite_file(tmp_path: Path) -> None:
    path = tmp_path / "nightly.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: nightly
            workloads: [mlp, " digits-cnn", mypkg.models:make_model, mlp]
            backends: [torch, ONNXRuntime]
            devices: [CPU, cuda, mps:0]
            batch_sizes: [32, 1, 8, 1]
            measure: {max_time_s: 5, target_rel_ci: 0.01, isolate: true, threads: 4}
            results_dir: out/results
            tags: {runner: ci}
            """
        )
    )
    suite = load_suite(path)
    assert suite.name == "nightly"
    assert suite.workloads == ["mlp", "digits-cnn", "mypkg.models:make_model"]
    assert suite.backends == ["torch", "onnxruntime"]
    assert suite.devices == ["cpu", "cuda:0", "mps"]
    assert suite.batch_sizes == [1, 8, 32]
    assert suite.measure.isolate and suite.measure.threads == 4
    assert suite.measure.min_samples == 10  # the default, untouched
    assert suite.results_dir == Path("out/results")
    assert suite.tags == {"runner": "ci"}
    options = suite.measure.to_options()
    assert (options.max_time_s, options.target_rel_ci, options.threads) == (5, 0.01, 4)


def test_toml_suite_with_profiles(tmp_path: Path) -> None:
    path = tmp_path / "suite.toml"
    path.write_text(
        textwrap.dedent(
            """\
            name = "release"
            workloads = ["mlp", "digits-cnn"]
            batch_sizes = [1, 32]

            [measure]
            min_samples = 20
            max_time_s = 10.0

            [profiles.quick]
            batch_sizes = [1]

            [profiles.quick.measure]
            max_time_s = 0.5
            """
        )
    )
    plain = load_suite(path)
    assert plain.batch_sizes == [1, 32] and plain.measure.max_time_s == 10.0
    quick = load_suite(path, profile="quick")
    assert quick.name == "release"
    assert quick.batch_sizes == [1]
    # The profile's section merges into the file's, key by key.
    assert (quick.measure.max_time_s, quick.measure.min_samples) == (0.5, 20)
    with pytest.raises(SuiteError, match="nightly"):
        load_suite(path, profile="nightly")


def test_environment_beats_the_file_and_overrides_beat_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text("results_dir: from-file\nbatch_sizes: [4]\nmeasure: {max_time_s: 3}\n")
    monkeypatch.setenv("AS_BENCH__RESULTS_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("AS_BENCH__BATCH_SIZES", "[1, 2]")  # lists are JSON in the environment
    monkeypatch.setenv("AS_BENCH__MEASURE__MIN_SAMPLES", "4")
    suite = load_suite(path)
    assert suite.results_dir == tmp_path / "from-env"
    assert suite.batch_sizes == [1, 2]
    assert (suite.measure.min_samples, suite.measure.max_time_s) == (4, 3)
    flags = load_suite(path, overrides={"results_dir": "from-flag", "measure": {"max_time_s": 1}})
    assert flags.results_dir == Path("from-flag")
    assert (flags.measure.min_samples, flags.measure.max_time_s) == (4, 1)


def test_a_short_max_time_lowers_the_default_min_time() -> None:
    suite = load_suite(overrides={"measure": {"max_time_s": 0.05}})
    assert suite.measure.min_time_s == 0.05
    options = suite.measure.to_options()  # the engine accepts it
    assert options.min_time_s <= options.max_time_s
    short_warmup = load_suite(overrides={"measure": {"warmup_max_time_s": 0}}).measure
    assert short_warmup.to_options().warmup_max_time_s == 0
    with pytest.raises(SuiteError, match=r"measure: max_time_s \(0.05\) is below min_time_s"):
        load_suite(overrides={"measure": {"max_time_s": 0.05, "min_time_s": 1}})


def test_environment_sets_a_short_max_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS_BENCH__MEASURE__MAX_TIME_S", "0.05")
    assert load_suite().measure.to_options().max_time_s == 0.05


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("workloads: [mlp]\nbogus: 1\n", ":2:1: bogus:", "unknown key"),
        ("measure:\n  max_tim: 1\n", ":2:3: measure.max_tim:", "did you mean 'max_time_s'"),
        ("batch_sizes: [1, 0]\n", ":1:1: batch_sizes:", "must be at least 1"),
        ("backends: [torch, tensorrt]\n", ":1:1: backends:", "unknown backend(s) ['tensorrt']"),
        ("workloads: [mpl]\n", ":1:1: workloads:", "unknown workload 'mpl'"),
        ("workloads: ['my models:make']\n", ":1:1: workloads:", "is not 'pkg.module:factory'"),
        ("workloads: [mlp\n", ":2:1", "invalid YAML"),
    ],
)
def test_malformed_suite_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    error = str(caught.value)
    assert "\n" not in error
    assert f"{path}{where}" in error and message in error
    hint = getattr(caught.value, "hint", None)
    assert isinstance(hint, str) and hint


def test_every_problem_of_a_suite_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS_BENCH__BATCH_SIZES", "[0]")
    with pytest.raises(SuiteError) as caught:
        load_suite(overrides={"backends": ["nosuch"]})
    error = str(caught.value)
    assert "backends: unknown backend(s) ['nosuch']" in error and "(from argument)" in error
    assert "(from environment variable AS_BENCH__BATCH_SIZES)" in error


def test_missing_suite_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="config file not found"):
        load_suite(tmp_path / "nope.yaml")


# --- plan ----------------------------------------------------------------------------------


def test_plan_is_every_combination_in_order(tmp_path: Path) -> None:
    suite = _suite(tmp_path, workloads=["mlp", "digits-cnn"], batch_sizes=[1, 8])
    todo, skipped = plan(suite)
    assert skipped == []
    assert [c.name for c in todo] == [
        f"{w}/{b}/cpu/bs{n}"
        for b in ("torch", "onnxruntime")
        for w in ("mlp", "digits-cnn")
        for n in (1, 8)
    ]


def test_plan_without_devices_uses_every_device_of_each_backend(tmp_path: Path) -> None:
    from as_bench.backends import get_backend

    todo, _ = plan(_suite(tmp_path, devices=[]))
    expected = {f"{b}:{d}" for b in ("torch", "onnxruntime") for d in get_backend(b).devices()}
    assert {f"{c.backend}:{c.device}" for c in todo} == expected


def test_plan_device_filter_skips_backends_that_cannot_use_it(tmp_path: Path) -> None:
    pytest.importorskip("mlx.core", reason="needs a backend with a device of its own")
    todo, skipped = plan(_suite(tmp_path, backends=["torch", "mlx"], devices=["cpu"]))
    assert {c.backend for c in todo} == {"torch"}
    (mlx,) = skipped
    assert mlx.status == "skipped" and mlx.combination.backend == "mlx"
    assert "mlx cannot use 'cpu' here (it can: ['mlx'])" in mlx.message


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS")
def test_coreml_off_macos_is_skipped_with_the_reason(tmp_path: Path) -> None:
    todo, skipped = plan(_suite(tmp_path, backends=["torch", "coreml"], devices=[]))
    assert {c.backend for c in todo} == {"torch"}
    (coreml,) = skipped
    assert coreml.combination.backend == "coreml" and coreml.combination.device == "-"
    if _installed("coremltools"):
        assert "cannot run on this platform" in coreml.message
    else:
        assert 'uv add "as-bench[coreml]"' in coreml.message


def _installed(module: str) -> bool:
    from as_core.extras import is_installed

    return is_installed(module)


def test_unavailable_backends_say_what_to_install(
    tmp_path: Path, test_backends: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import as_bench.backends.onnxruntime as ort_backend
    from as_core import install_hint
    from as_core.extras import is_installed as real

    monkeypatch.setattr(ort_backend, "is_installed", lambda m: m != "onnxscript" and real(m))
    todo, skipped = plan(_suite(tmp_path, backends=["torch", "onnxruntime", "absent"]))
    assert {c.backend for c in todo} == {"torch"}
    reasons = {o.combination.backend: o.message for o in skipped}
    assert reasons["absent"] == f"not installed here: {install_hint('as-bench', 'absent')}"
    onnx = install_hint("as-bench", "onnx")
    assert reasons["onnxruntime"] == f"some of its libraries are missing: {onnx}"


def test_cuda_where_there_is_none_is_skipped_and_nothing_to_run_is_an_error(
    tmp_path: Path,
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    suite = _suite(tmp_path, devices=["cuda"])
    assert suite.devices == ["cuda:0"]
    todo, skipped = plan(suite)
    assert todo == []
    assert [(o.combination.backend, o.combination.device) for o in skipped] == [
        ("torch", "cuda:0"),
        ("onnxruntime", "cuda:0"),
    ]
    assert "torch cannot use 'cuda:0' here (it can: ['cpu'])" in skipped[0].message
    seen: list[tuple[list[Combination], list[Outcome]]] = []
    with pytest.raises(SuiteError, match="nothing to run on this machine") as caught:
        run_suite(suite, on_plan=lambda todo, skipped: seen.append((todo, skipped)))
    assert "torch cannot use 'cuda:0'" in str(caught.value)
    assert seen and seen[0][0] == []  # the plan was shown before the error
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_a_device_check_without_a_message_still_gives_a_reason(
    tmp_path: Path, test_backends: None
) -> None:
    todo, skipped = plan(_suite(tmp_path, backends=["torch", "mute"]))
    assert {c.backend for c in todo} == {"torch"}
    (mute,) = skipped
    assert mute.combination.backend == "mute"
    assert mute.message == "BackendError (no message)"


def test_no_backend_installed_names_the_command_that_installs_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from as_bench.suite import _runner
    from as_core import install_hint

    monkeypatch.setattr(_runner, "_available_backends", list)  # as with no extras installed
    suite = _suite(tmp_path / "results", backends=[], devices=[])
    assert plan(suite) == ([], [])
    with pytest.raises(SuiteError, match="no backend is installed") as caught:
        run_suite(suite)
    hint = caught.value.hint  # type: ignore[attr-defined]  # the CLI prints it
    assert install_hint("as-bench", "torch") in hint
    assert 'uv add "as-bench[torch]"' in hint


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, "module 'runner_nosuch_{}' not found"),
        ("def other():\n    return None\n", "has no attribute 'make'"),
    ],
)
def test_an_unknown_factory_fails_once_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str | None, message: str
) -> None:
    from as_bench.exceptions import WorkloadError

    module = f"runner_nosuch_{tmp_path.name.replace('-', '_')}"
    if source is not None:
        (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    planned: list[list[Combination]] = []
    suite = _suite(tmp_path / "results", workloads=[f"{module}:make"], batch_sizes=[1, 2])
    with pytest.raises(WorkloadError, match=message.format(tmp_path.name.replace("-", "_"))):
        run_suite(suite, on_plan=lambda todo, skipped: planned.append(todo))
    assert planned == []  # nothing was planned, measured or stored
    assert not (tmp_path / "results").exists()


# --- run_suite -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Iterator[RunReport]:
    """mlp on torch and onnxruntime, batch sizes 1 and 4, run once for the module."""
    results = tmp_path_factory.mktemp("run") / "results"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)  # results record the git state of the working directory
        suite = _suite(results, batch_sizes=[1, 4], tags={"purpose": "test"})
        planned: list[list[Combination]] = []
        seen: list[Outcome] = []
        run = run_suite(
            suite, on_plan=lambda todo, skipped: planned.append(todo), on_outcome=seen.append
        )
    assert planned == [[o.combination for o in run.outcomes]]
    assert seen == run.outcomes
    yield run


def test_every_combination_is_ok_and_stored_one_file_each(report: RunReport) -> None:
    assert [(o.combination.name, o.status) for o in report.outcomes] == [
        ("mlp/torch/cpu/bs1", "ok"),
        ("mlp/torch/cpu/bs4", "ok"),
        ("mlp/onnxruntime/cpu/bs1", "ok"),
        ("mlp/onnxruntime/cpu/bs4", "ok"),
    ]
    assert report.problems == []
    store = report.store
    assert store.root == report.suite.results_dir
    assert [p.name for p in store.paths()] == sorted(
        ResultStore.file_name(r) for r in report.results
    )
    assert store.load(on_error="raise") == report.results


def test_results_record_what_was_measured(report: RunReport) -> None:
    for outcome in report.outcomes:
        result = outcome.result
        assert result is not None
        combo = outcome.combination
        assert (result.benchmark, result.workload, result.backend, result.device) == (
            combo.name,
            "mlp",
            combo.backend,
            "cpu",
        )
        assert result.batch_size == combo.batch_size
        median = result.measurement.latency.stats.median
        assert median > 0
        assert result.throughput_items_per_s == pytest.approx(combo.batch_size / median)
        assert result.measurement.latency.stats.n >= FAST["min_samples"]
        assert not result.measurement.isolated
        assert result.params["measure"]["max_time_s"] == FAST["max_time_s"]
        assert result.params["timing_device"] == "cpu"
        assert result.tags["suite"] == "runner-test" and result.tags["purpose"] == "test"
        assert result.tags["parameters"] == "85002"  # the workload's own tags
        assert result.model_size_bytes is not None and result.model_size_bytes > 0
        assert result.started_at <= result.finished_at


def test_outputs_are_checked_against_eager_torch(report: RunReport) -> None:
    for result in report.results:
        check = result.output_check
        assert check is not None
        assert check.passed, check.failures
        assert check.reference_backend == "torch"
        assert check.top1_agreement == 1.0
        assert check.max_abs_error is not None and check.max_abs_error < 1e-4
        if result.backend == "torch":
            assert check.max_abs_error == 0.0  # the reference itself


def test_accuracy_on_held_out_digits(report: RunReport) -> None:
    accuracies = {r.benchmark: r.accuracy for r in report.results}
    for accuracy in accuracies.values():
        assert accuracy is not None and accuracy["accuracy"] > 0.9
    # Every backend gets the same answer on the same images.
    assert len({a["accuracy"] for a in accuracies.values() if a}) == 1


def test_backend_info_hardware_and_git(report: RunReport) -> None:
    expected_git = git_info(REPO)
    for result in report.results:
        if result.backend == "onnxruntime":
            assert result.backend_info["providers"] == ["CPUExecutionProvider"]
        else:
            assert result.backend_info["torch_version"] == torch.__version__
        assert result.hardware["memory"]["total_bytes"] > 0
        assert result.hardware["libraries"]["torch"] is not None
        assert result.git == expected_git
    if expected_git is None:
        pytest.skip(f"{REPO} is not a git checkout: nothing to compare the git record with")
    assert report.results[0].git is not None and len(report.results[0].git.commit) == 40


def test_store_reads_back_in_every_format(report: RunReport, tmp_path: Path) -> None:
    names = sorted(r.benchmark for r in report.results)
    frame = report.store.to_frame(on_error="raise")
    assert sorted(frame["benchmark"].to_list()) == names
    assert frame["output_check_passed"].to_list() == [True] * len(names)
    for suffix in ("json", "csv", "parquet"):
        exported = report.store.export(tmp_path / f"results.{suffix}")
        back = read_results(exported, on_error="raise")
        assert sorted(back["benchmark"].to_list()) == names, suffix
        assert back.columns == frame.columns, suffix
        assert (
            back.sort("benchmark")["median_s"].to_list()
            == frame.sort("benchmark")["median_s"].to_list()
        )
    assert read_result_objects(tmp_path / "results.json") == report.store.load()
    assert sorted(read_results(report.store.root)["benchmark"].to_list()) == names


# --- wrong answers and failures ------------------------------------------------------------


def test_a_fast_wrong_answer_is_caught_and_stored(tmp_path: Path, test_backends: None) -> None:
    report = run_suite(_suite(tmp_path / "results", backends=["torch", "perturbed"]))
    outcomes = _by_name(report)
    assert outcomes["mlp/torch/cpu/bs2"].status == "ok"
    wrong = outcomes["mlp/perturbed/cpu/bs2"]
    assert wrong.status == "mismatch"
    assert report.problems == [wrong]
    assert "differ by more than atol + rtol*|ref|" in wrong.message
    assert wrong.result is not None
    check = wrong.result.output_check
    assert check is not None and not check.passed
    assert check.max_abs_error == pytest.approx(0.1, rel=1e-3)
    assert check.top1_agreement == 1.0  # a constant shift keeps every class: still caught
    stored = {r.benchmark: r for r in ResultStore(tmp_path / "results").load(on_error="raise")}
    assert set(stored) == {"mlp/torch/cpu/bs2", "mlp/perturbed/cpu/bs2"}
    stored_check = stored["mlp/perturbed/cpu/bs2"].output_check
    assert stored_check is not None and stored_check.passed is False
    assert stored_check.failures == check.failures


def test_without_checks_nothing_is_compared(tmp_path: Path, test_backends: None) -> None:
    report = run_suite(
        _suite(tmp_path, backends=["perturbed"], check_outputs=False, accuracy=False)
    )
    (outcome,) = report.outcomes
    assert outcome.status == "ok" and outcome.result is not None
    assert outcome.result.output_check is None and outcome.result.accuracy is None


def test_a_failing_backend_does_not_stop_the_suite(tmp_path: Path, test_backends: None) -> None:
    report = run_suite(
        _suite(tmp_path / "results", backends=["broken", "torch"], batch_sizes=[1, 2])
    )
    statuses = {name: o.status for name, o in _by_name(report).items()}
    assert statuses == {
        "mlp/broken/cpu/bs1": "failed",
        "mlp/broken/cpu/bs2": "failed",
        "mlp/torch/cpu/bs1": "ok",
        "mlp/torch/cpu/bs2": "ok",
    }
    failed = _by_name(report)["mlp/broken/cpu/bs1"]
    assert failed.result is None
    assert failed.message == "broken: cannot export mlp: unsupported op 'Frobnicate'"
    assert len(report.problems) == 2
    assert len(ResultStore(tmp_path / "results")) == 2


_FAILING_FACTORY = """
import json
from pathlib import Path

def make():
    calls = Path(__file__).with_suffix(".calls")
    count = int(calls.read_text()) if calls.exists() else 0
    calls.write_text(str(count + 1))
    raise RuntimeError("weights file missing")
"""


def test_a_workload_that_cannot_load_fails_its_combinations_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"runner_failing_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(_FAILING_FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    report = run_suite(_suite(tmp_path / "results", workloads=[f"{module}:make"]))
    assert [o.status for o in report.outcomes] == ["failed", "failed"]
    assert report.problems == report.outcomes
    for outcome in report.problems:
        assert "the factory make() raised RuntimeError: weights file missing" in outcome.message
    assert (tmp_path / f"{module}.calls").read_text() == "1"


def test_user_factory_workload_is_checked_on_every_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"runner_linear_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        "import torch\n\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Linear(4, 2), torch.randn(3, 4)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    report = run_suite(_suite(tmp_path / "results", workloads=[f"{module}:make"]))
    assert [o.status for o in report.outcomes] == ["ok", "ok"]
    for result in report.results:
        assert result.accuracy is None  # no held-out data
        assert result.output_check is not None and result.output_check.passed
        assert result.output_check.top1_agreement is None  # regression: numbers only
        assert result.tags["source"] == f"{module}:make"


# --- isolation -----------------------------------------------------------------------------


@pytest.mark.slow  # the spawned child imports torch and rebuilds the workload
def test_isolated_combination_runs_in_a_fresh_process(tmp_path: Path) -> None:
    report = run_suite(
        _suite(tmp_path / "results", backends=["torch"], measure={**FAST, "isolate": True})
    )
    (outcome,) = report.outcomes
    assert outcome.status == "ok", outcome.message
    assert outcome.result is not None and outcome.result.measurement.isolated
    (stored,) = ResultStore(tmp_path / "results").load(on_error="raise")
    assert stored.measurement.isolated
    assert stored.output_check is not None and stored.output_check.passed
    assert stored == outcome.result


def test_outcome_json_round_trip(report: RunReport) -> None:
    # What an isolated child sends back reads back as the same outcome.
    from as_bench.suite._runner import _OutcomeRecord

    outcome = report.outcomes[0]
    text = _OutcomeRecord(outcome).to_json()
    json.loads(text)
    back = _OutcomeRecord.from_json(text, outcome.combination)
    assert back == outcome
    assert isinstance(back.result, BenchmarkResult)
