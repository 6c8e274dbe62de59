"""Pipelines: a torch stage's model, exported, alone and followed by an ONNX technique;
their ids, provenance fields, failures and place in the schedule."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from as_optimize.compress import (
    ApplyContext,
    Fp16,
    SearchOptions,
    SearchReport,
    TorchStage,
    run_search,
)
from as_optimize.compress import _search as search_module
from as_optimize.compress._search import _item_id, _schedule
from as_optimize.exceptions import CompressionError

FACTORY_MODULE = "as_optimize_test_pipeline_factory"

#: A 32-64-16 MLP whose hidden units 32-63 feed nothing (their outgoing weights are zero):
#: dropping them leaves the outputs as they are.
FACTORY = """
import torch


def make_mlp():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16)
    ).eval()
    with torch.no_grad():
        model[2].weight[:, 32:] = 0.0
    return model, (torch.randn(4, 32),)
"""


@dataclass
class KeepHiddenUnits:
    """A stage that keeps the ``keep`` hidden units with the largest outgoing weights."""

    name: str = "keep-hidden"
    description: str = "slices the hidden layer to its strongest units"
    keep: tuple[int, ...] = (32,)
    seen: list[dict[str, Any]] = field(default_factory=list)

    def applies_to(self, context: ApplyContext) -> tuple[bool, str]:
        import torch

        model = context.torch_model
        ok = isinstance(model, torch.nn.Sequential) and isinstance(model[0], torch.nn.Linear)
        return ok, "a Sequential starting with a Linear" if ok else "not a Sequential MLP"

    def knobs(self) -> list[dict[str, Any]]:
        return [{"keep": k} for k in self.keep]

    def transform(self, model: Any, knobs: Mapping[str, Any], context: ApplyContext) -> Any:
        import torch

        self.seen.append({"knobs": dict(knobs), "work_dir": context.work_dir})
        new = copy.deepcopy(model)
        first, last = new[0], new[2]
        order = last.weight.abs().sum(dim=0).argsort(descending=True)
        kept = order[: int(knobs["keep"])].sort().values
        sliced_first = torch.nn.Linear(first.in_features, len(kept))
        sliced_last = torch.nn.Linear(len(kept), last.out_features)
        with torch.no_grad():
            sliced_first.weight.copy_(first.weight[kept])
            sliced_first.bias.copy_(first.bias[kept])
            sliced_last.weight.copy_(last.weight[:, kept])
            sliced_last.bias.copy_(last.bias)
        new[0], new[2] = sliced_first, sliced_last
        return new.eval()


@dataclass
class Broken:
    """A stage whose every setting fails."""

    name: str = "broken"
    description: str = "always fails"

    def applies_to(self, context: ApplyContext) -> tuple[bool, str]:
        return True, "always"

    def knobs(self) -> list[dict[str, Any]]:
        return [{"level": 1}]

    def transform(self, model: Any, knobs: Mapping[str, Any], context: ApplyContext) -> Any:
        raise CompressionError("no room to work")


@dataclass
class NotForThis:
    """A stage that never applies."""

    name: str = "never"
    description: str = "never applies"

    def applies_to(self, context: ApplyContext) -> tuple[bool, str]:
        return False, "this model has no attention heads"

    def knobs(self) -> list[dict[str, Any]]:
        return [{}]

    def transform(self, model: Any, knobs: Mapping[str, Any], context: ApplyContext) -> Any:
        raise AssertionError("a stage that does not apply is never run")


@dataclass
class RecordingFp16(Fp16):
    """ORT fp16 that records the torch model and workload it was handed."""

    handed: list[tuple[Any, Any]] = field(default_factory=list)

    def apply(
        self, baseline: Path, knobs: Mapping[str, Any], output: Path, context: ApplyContext
    ) -> Path:
        self.handed.append((context.torch_model, context.workload))
        return super().apply(baseline, knobs, output, context)


@dataclass
class Searched:
    report: SearchReport
    output: Path
    stage: KeepHiddenUnits
    fp16: RecordingFp16


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Searched:
    hooks = tmp_path_factory.mktemp("hooks")
    (hooks / f"{FACTORY_MODULE}.py").write_text(FACTORY, encoding="utf-8")
    output = tmp_path_factory.mktemp("pipeline") / "out"
    stage = KeepHiddenUnits()
    fp16 = RecordingFp16()
    with pytest.MonkeyPatch.context() as patch:
        # Every pipeline is tried here, however fast fp16 alone measured: on a loaded
        # machine its 0.05 s measurement can fall under the rule that skips techniques
        # that did not pay alone (tested below, on figures given).
        patch.setattr(search_module, "UNPAID_SPEEDUP", 0.0)
        patch.syspath_prepend(str(hooks))
        path = os.environ.get("PYTHONPATH")
        patch.setenv("PYTHONPATH", str(hooks) + (os.pathsep + path if path else ""))
        report = run_search(
            f"{FACTORY_MODULE}:make_mlp",
            output,
            options=SearchOptions(
                max_time_s=0.05,
                min_time_s=0.01,
                threads=1,
                techniques=[fp16],
                stages=[stage, Broken(), NotForThis()],
                seed=7,
            ),
        )
    return Searched(report, output, stage, fp16)


def test_the_stages_protocol_is_met_by_the_test_stages() -> None:
    assert isinstance(KeepHiddenUnits(), TorchStage) and isinstance(Broken(), TorchStage)


def test_a_stage_model_is_exported_and_tried_alone_and_before_each_technique(
    searched: Searched,
) -> None:
    report, output = searched.report, searched.output
    found = {c.id: c for c in report.candidates}
    alone = found["keep-hidden-32+ort-fp32"]
    assert (alone.stage, alone.stage_knobs, alone.technique) == (
        "keep-hidden",
        {"keep": 32},
        "ort-fp32",
    )
    # The dropped units fed nothing: the stage's model keeps the outputs and is smaller.
    assert alone.status == "passed", alone.reason
    assert alone.quality is not None and alone.quality.mean_cosine > 0.9999
    assert alone.size_bytes is not None and report.baseline.size_bytes is not None
    assert alone.size_bytes < 0.7 * report.baseline.size_bytes
    assert (output / str(alone.path)).is_file()
    then_fp16 = found["keep-hidden-32+ort-fp16-io32"]
    assert then_fp16.stage == "keep-hidden" and then_fp16.technique == "ort-fp16"
    assert then_fp16.status == "passed", then_fp16.reason
    # fp16 of the stage's model, not of the baseline: smaller than both.
    fp16_alone = found["ort-fp16-io32"]
    assert then_fp16.size_bytes is not None and fp16_alone.size_bytes is not None
    assert then_fp16.size_bytes < alone.size_bytes
    assert then_fp16.size_bytes < 0.8 * fp16_alone.size_bytes
    # The technique after the stage was handed the stage's model, and a workload that
    # makes it (converters that start from the workload convert the stage's model).
    (original, workload), (staged, staged_workload) = searched.fp16.handed
    assert original.__class__ is staged.__class__ and staged is not original
    assert staged[0].out_features == 32 and original[0].out_features == 64
    assert staged_workload.make_model() is staged
    assert staged_workload.name == f"{workload.name}+keep-hidden-32"
    stored = json.loads((output / "report.json").read_text(encoding="utf-8"))
    record = next(c for c in stored["candidates"] if c["id"] == then_fp16.id)
    assert record["stage"] == "keep-hidden" and record["stage_knobs"] == {"keep": 32}


def test_a_stage_is_built_once_per_setting_with_a_scratch_folder_of_its_own(
    searched: Searched,
) -> None:
    output, stage = searched.output, searched.stage
    assert [s["knobs"] for s in stage.seen] == [{"keep": 32}]
    assert stage.seen[0]["work_dir"] == output / "work" / "keep-hidden-32"


def test_a_failing_stage_rejects_its_pipelines_and_the_search_goes_on(
    searched: Searched,
) -> None:
    report = searched.report
    found = {c.id: c for c in report.candidates}
    for cid in ("broken-1+ort-fp32", "broken-1+ort-fp16-io32"):
        assert found[cid].status == "rejected"
        assert found[cid].reason == (
            "the stage broken-1 could not be built: CompressionError: no room to work"
        )
    never = found["never"]
    assert never.status == "not applicable" and never.stage == "never"
    assert never.reason == "this model has no attention heads"
    assert report.winner in {"fp32", "ort-fp16-io32", *(c for c in found if "keep-hidden" in c)}


@dataclass
class Settings:
    """A technique with a given number of settings (for the schedule)."""

    name: str
    count: int
    runtime: str = "onnxruntime"

    def knobs(self) -> list[dict[str, Any]]:
        return [{"k": i} for i in range(self.count)]


@dataclass
class StageSettings:
    """A stage with a given number of settings (for the schedule)."""

    name: str
    count: int

    def knobs(self) -> list[dict[str, Any]]:
        return [{"r": i} for i in range(self.count)]


def test_a_small_budget_tries_each_technique_alone_before_pipelines() -> None:
    techniques: Any = [Settings("a", 3), Settings("b", 2)]
    stages: Any = [StageSettings("s", 2), StageSettings("t", 1)]
    order = [_item_id(item) for item in _schedule(techniques, None, 0, stages)]
    assert order == [
        "a-0",
        "b-0",
        # each stage's first setting alone and before each technique's first setting,
        # in turn from each stage
        "s-0+ort-fp32",
        "t-0+ort-fp32",
        "s-0+a-0",
        "t-0+a-0",
        "s-0+b-0",
        "t-0+b-0",
        # the techniques' other settings
        "a-1",
        "b-1",
        "a-2",
        # the stages' other settings
        "s-1+ort-fp32",
        "s-1+a-0",
        "s-1+b-0",
    ]
    budget = [_item_id(item) for item in _schedule(techniques, 4, 0, stages)]
    assert budget == order[:4]
    no_ort = [_item_id(i) for i in _schedule(techniques, None, 0, stages, stage_alone=False)]
    assert "s-0+ort-fp32" not in no_ort and "s-0+a-0" in no_ort


def _alone(cid: str, technique: str, status: str, speedup: float | None) -> Any:
    from as_optimize.compress import CandidateResult

    return CandidateResult(
        id=cid,
        technique=technique,
        knobs={"i": 0},
        status=status,  # type: ignore[arg-type]
        reason="",
        speedup_vs_fp32_onnx=speedup,
    )


def test_pipelines_add_only_techniques_that_paid_alone() -> None:
    from as_optimize.compress._search import _Item, _unpaid

    stage: Any = StageSettings("s", 1)
    results = [
        _alone("slow-0", "slow", "passed", 0.2),
        _alone("bad-0", "bad", "rejected", None),
        _alone("fast-0", "fast", "passed", 2.5),
        _alone("sized-0", "sized", "not measured", None),
    ]

    def why(name: str) -> str | None:
        technique: Any = Settings(name, 1)
        return _unpaid(_Item(technique, {"i": 0}, stage=stage, stage_knobs={"r": 0}), results)

    assert why("fast") is None
    assert why("sized") is None  # not measured alone (Core ML off macOS): still tried
    assert why("unseen") is None
    slow = why("slow")
    assert slow is not None and "0.20x the reference" in slow and "pipelines do not add it" in slow
    bad = why("bad")
    assert bad is not None and "rejected" in bad
    # A technique alone is never skipped by this rule.
    alone: Any = Settings("slow", 1)
    assert _unpaid(_Item(alone, {"i": 0}), results) is None
