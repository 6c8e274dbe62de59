"""The runner's memory per benchmark: from before the model loads, this benchmark only.

The backends below are eager PyTorch with a real allocation of their own (no mock of
what is measured): ``hog`` keeps 300 MB alive in the process after it ran (as a converter
that imports a large library does), ``bulky`` holds 300 MB while its model is loaded and
frees it on close. The assertions are margins of hundreds of MB, not timings.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from as_bench.backends import _REGISTRY
from as_bench.measurement import MemoryReport
from as_bench.suite import RunReport, load_suite, run_suite

pytest.importorskip("torch", reason="the runner's reference backend is PyTorch")

MB = 1_000_000
HELD = 300 * MB
FAST: dict[str, Any] = {
    "min_samples": 3,
    "min_time_s": 0.01,
    "max_time_s": 0.05,
    "warmup_max_time_s": 0.05,
}

_BACKENDS = f'''
import numpy as np

from as_bench.backends.torch_eager import TorchEagerBackend

KEPT = []


class HogBackend(TorchEagerBackend):
    """Eager PyTorch that leaves {HELD} bytes behind in the process when it loads."""

    name = "hog"

    def prepare(self, workload, device, batch_size, workdir):
        KEPT.append(np.ones({HELD} // 8))  # written, so resident
        return super().prepare(workload, device, batch_size, workdir)


class BulkyBackend(TorchEagerBackend):
    """Eager PyTorch whose model holds {HELD} bytes while loaded and frees them on close."""

    name = "bulky"

    def prepare(self, workload, device, batch_size, workdir):
        prepared = super().prepare(workload, device, batch_size, workdir)
        weights = [np.ones({HELD} // 8)]
        close = prepared.close

        def release():
            weights.clear()
            close()

        prepared.close = release
        return prepared
'''
_MODULE = "as_bench_runner_memory_backends"


@pytest.fixture(autouse=True)
def _no_user_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("AS_BENCH__"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The built-in workloads train once, in pytest's folder, not ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.getbasetemp() / "as-bench-cache"
        patch.setenv("AS_BENCH_CACHE_DIR", str(path))
        yield path


@pytest.fixture
def memory_backends(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path_factory.getbasetemp() / "runner-memory-backends"
    folder.mkdir(exist_ok=True)
    (folder / f"{_MODULE}.py").write_text(textwrap.dedent(_BACKENDS))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, _MODULE, raising=False)
    monkeypatch.setitem(_REGISTRY, "hog", f"{_MODULE}:HogBackend")
    monkeypatch.setitem(_REGISTRY, "bulky", f"{_MODULE}:BulkyBackend")


def _run(tmp_path: Path, backends: list[str], **fields: Any) -> dict[str, MemoryReport]:
    data: dict[str, Any] = {
        "name": "memory-test",
        "workloads": ["mlp"],
        "backends": backends,
        "devices": ["cpu"],
        "batch_sizes": [1],
        "measure": FAST,
        "accuracy": False,
        "results_dir": str(tmp_path / "results"),
    }
    data.update(fields)
    report: RunReport = run_suite(load_suite(overrides=data))
    assert [o.status for o in report.outcomes] == ["ok"] * len(report.outcomes), [
        o.message for o in report.outcomes
    ]
    return {o.combination.backend: o.result.measurement.memory for o in report.outcomes if o.result}


def test_memory_an_earlier_benchmark_left_behind_is_not_the_next_ones(
    tmp_path: Path, memory_backends: None
) -> None:
    memory = _run(tmp_path, ["hog", "torch"])
    hog, torch = memory["hog"], memory["torch"]
    assert hog.model_memory_bytes is not None and torch.model_memory_bytes is not None
    # The hog's allocation is its own model+inference memory...
    assert hog.model_memory_bytes >= HELD * 0.9
    # ...and still in the process when torch loads: its baseline and the process peak
    # carry it, torch's own increase does not.
    assert torch.host_before_load_rss_bytes is not None
    assert hog.host_before_load_rss_bytes is not None
    assert torch.host_before_load_rss_bytes >= hog.host_before_load_rss_bytes + HELD * 0.9
    assert torch.host_peak_rss_bytes is not None
    assert torch.host_peak_rss_bytes >= torch.host_before_load_rss_bytes
    assert torch.model_memory_bytes < 100 * MB
    # The first benchmark of the process is clean; the second comes after another.
    assert hog.host_memory_polluted is False
    assert torch.host_memory_polluted is True


def test_a_loaded_models_peak_is_its_own_and_ends_with_it(
    tmp_path: Path, memory_backends: None
) -> None:
    memory = _run(tmp_path, ["bulky", "torch"])
    bulky, torch = memory["bulky"], memory["torch"]
    assert bulky.model_memory_bytes is not None and bulky.model_memory_bytes >= HELD * 0.9
    # Measured from before loading: the engine's baseline (after loading) already holds it.
    assert bulky.host_baseline_rss_bytes is not None
    assert bulky.host_before_load_rss_bytes is not None
    assert bulky.host_baseline_rss_bytes >= bulky.host_before_load_rss_bytes + HELD * 0.9
    assert torch.model_memory_bytes is not None and torch.model_memory_bytes < 100 * MB


@pytest.mark.slow
def test_isolated_benchmarks_are_each_the_first_of_their_process(tmp_path: Path) -> None:
    report = run_suite(
        load_suite(
            overrides={
                "name": "memory-test",
                "workloads": ["mlp"],
                "backends": ["torch"],
                "devices": ["cpu"],
                "batch_sizes": [1, 2],
                "measure": {**FAST, "isolate": True},
                "accuracy": False,
                "results_dir": str(tmp_path / "results"),
            }
        )
    )
    results = report.results
    assert len(results) == 2
    for result in results:
        memory = result.measurement.memory
        assert result.measurement.isolated
        assert memory.host_memory_polluted is False
        assert memory.model_memory_bytes is not None
        assert memory.host_before_load_rss_bytes is not None


def test_old_results_without_the_new_fields_read_as_not_recorded() -> None:
    old = MemoryReport.model_validate({"host_peak_rss_bytes": 10, "host_baseline_rss_bytes": 5})
    assert old.model_memory_bytes is None
    assert old.host_memory_polluted is None
    grew = MemoryReport(host_before_load_rss_bytes=100, host_load_peak_rss_bytes=350)
    assert grew.model_memory_bytes == 250
    shrank = MemoryReport(host_before_load_rss_bytes=100, host_load_peak_rss_bytes=90)
    assert shrank.model_memory_bytes == 0
