"""Pipelines: a torch stage (pruning, distillation) followed by a runtime technique.

A candidate of ``as-optimize run`` is either a technique alone, applied to the fp32 ONNX
baseline, or a *pipeline*: a :class:`TorchStage` turns the fp32 torch model into another
fp32 torch model (fewer channels, a smaller student), that model is exported to ONNX as
the baseline is (``as_bench.export.export_onnx``, dynamic batch where the model allows),
and an ONNX technique is applied to that export, or none ("ORT fp32 of the stage's
model"). Candidate ids join the parts with ``+``: ``prune-channels-0.5+ort-static-int8-...``.

The stage contract (what a stage class must do):

- ``name`` (short, unique, usable in a folder name: ``prune-channels``) and
  ``description`` (one line for people).
- ``applies_to(context) -> (bool, why)``: whether it can work on this model, with the
  reason in words either way; ``context`` is the search's
  :class:`~as_optimize.compress.ApplyContext` (``torch_model``, ``workload``, ``training``,
  ``example_inputs``, ``seed``, ...). It must be cheap: it runs once per search.
- ``knobs() -> list[dict]``: the settings to try, most promising first; each setting is
  one stage model (and so one pipeline per technique setting it is combined with). Values
  are plain JSON values (bool, int, float, str); they go into the report and the id.
- ``transform(model, knobs, context) -> nn.Module``: a NEW fp32 model for ``knobs``, in
  eval mode, on the CPU, taking the same inputs and giving outputs of the same shape as
  ``model``. It must not change ``model`` (``copy.deepcopy`` it first): the same model is
  handed to every setting. It may train (on ``context.training`` only, never on the
  scoring data), seeded from ``context.seed``, with scratch files only under
  ``context.work_dir``. A setting that cannot be made raises
  :class:`~as_optimize.exceptions.CompressionError` (or ``CompressionInputError`` for a
  bad knob) with the reason; the pipeline is then rejected with it and the search goes on.
- Optionally ``search_space() -> dict[str, tuple]`` (the values a search may choose from
  per knob), as a technique may.

How the search runs them (:func:`~as_optimize.compress._search.run_search`, grid search
only): each stage that applies is run once per setting (``candidates/<stage-id>+ort-fp32/``
holds its export, ``work/<stage-id>/`` its scratch); the exported model is a candidate
itself (``ort-fp32``: ONNX Runtime fp32, on targets that measure ONNX Runtime) and each
technique of the target that applies to it is applied with its first (most promising)
setting. A technique after a stage gets the stage's export as its baseline, the stage's
model as ``context.torch_model``, and as ``context.workload`` a copy of the workload whose
``make_model`` gives the stage's model (converters that start from the workload, Core ML's
and LiteRT's, convert it); its artifact must hold the stage's model (the spec's
``workload`` string rebuilds the original one). Pipelines count against ``--trials``
like any candidate and come after each technique's first setting alone (see
``_schedule``), so a small budget still tries every technique alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from as_optimize.compress._techniques import ApplyContext

__all__ = ["TorchStage", "default_stages"]


@runtime_checkable
class TorchStage(Protocol):
    """A torch-side transformation of the fp32 model (see the module's contract).

    Attributes:
        name: Short unique name, usable in a folder name (``prune-channels``).
        description: One line for people.
    """

    name: str
    description: str

    def applies_to(self, context: ApplyContext) -> tuple[bool, str]:
        """Whether it can work on ``context.torch_model``, and why (or why not)."""
        ...

    def knobs(self) -> list[dict[str, Any]]:
        """The settings to try, most promising first; each is one stage model."""
        ...

    def transform(self, model: Any, knobs: Mapping[str, Any], context: ApplyContext) -> Any:
        """A new fp32 ``nn.Module`` (eval mode, CPU) for ``knobs``; ``model`` is not changed."""
        ...


#: Modules and the stage classes they offer; a module not installed yet is skipped.
_STAGE_CLASSES: tuple[tuple[str, str], ...] = (
    ("as_optimize.compress._prune", "ChannelPruning"),
    ("as_optimize.compress._distill", "Distillation"),
)


def default_stages() -> list[TorchStage]:
    """The built-in stages that are available: structured channel pruning, distillation.

    A stage whose module or class is missing is left out.
    """
    import importlib

    stages: list[TorchStage] = []
    for module_name, class_name in _STAGE_CLASSES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, class_name, None)
        if cls is None:
            continue
        stage = cls()
        if isinstance(stage, TorchStage):
            stages.append(stage)
    return stages
