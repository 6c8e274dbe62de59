"""Distillation: a smaller student of the same family, trained to reproduce the model.

:func:`make_student` builds the student. It supports models whose forward pass is a chain
of layers, one after the other (an ``nn.Sequential``, or a module whose ``forward`` calls
its sub-modules in a row, as as-bench's ``mlp`` and ``digits-cnn`` do), made of ``Linear``
and ``Conv1d``/``Conv2d`` layers, normalisations, activations, pooling, ``Flatten`` and
``Dropout``; the chain is read with ``torch.fx``. The student keeps that chain and:

- scales every hidden width (a layer's output channels or features) by ``width``, at least
  1; the model's input size and its output size never change;
- with ``depth`` below 1, drops hidden weighted layers (every weighted layer but the first
  and the last may go), with the activations, normalisations and dropouts that follow
  them; pooling and ``Flatten`` stay. ``floor(depth * n)`` of the ``n`` droppable layers
  are kept, the ones nearest the input first.

The sizes of the layers after a change are read by running the example inputs through the
student as it is built, so a ``Linear`` after a ``Flatten`` gets the new flattened size.
Its weights are freshly initialised (PyTorch's defaults, seeded). Other architectures
(transformers such as MiniLM, branches, skip connections) raise
:class:`~as_optimize.exceptions.CompressionError` with the reason.

:class:`Distillation` is the pipeline stage (:mod:`as_optimize.compress._pipeline`): it
builds a student per knob setting and trains it with
:func:`~as_optimize.compress._finetune.train_from_teacher` on ``context.training``.
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from as_core.extras import require
from as_optimize.compress._finetune import first_tensor, train_from_teacher
from as_optimize.compress._techniques import ApplyContext
from as_optimize.exceptions import CompressionError, CompressionInputError, MissingExtraError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Distillation", "make_student"]

#: Layers that carry the widths the student changes.
_WEIGHTED = ("Linear", "Conv1d", "Conv2d")
#: Layers that go with the weighted layer before them when it is dropped.
_FOLLOWERS = (
    "ReLU",
    "ReLU6",
    "LeakyReLU",
    "GELU",
    "SiLU",
    "Tanh",
    "Sigmoid",
    "Hardswish",
    "ELU",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Identity",
)
#: Layers that change shapes but have no weights; they stay in every student.
_STRUCTURAL = (
    "Flatten",
    "MaxPool1d",
    "MaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
)
#: Every layer type a student is built from: what a rebuilt ``nn.Sequential`` may hold.
STUDENT_LAYERS = frozenset((*_WEIGHTED, *_FOLLOWERS, *_STRUCTURAL))
_SUPPORTED = frozenset((*_WEIGHTED, *_FOLLOWERS, *_STRUCTURAL))


def _looks_like_transformer(model: Any) -> bool:
    import torch

    if getattr(getattr(model, "config", None), "num_hidden_layers", None) is not None:
        return True
    return any(
        isinstance(m, torch.nn.MultiheadAttention) or "attention" in type(m).__name__.lower()
        for m in model.modules()
    )


def _chain(model: Any) -> list[Any]:
    """The model's layers in the order its forward pass runs them, or why it is no chain."""
    import torch
    import torch.fx

    kind = type(model).__name__
    if _looks_like_transformer(model):
        raise CompressionError(
            f"distillation's student builder does not support {kind}: it is a transformer "
            "(attention layers, as in MiniLM), whose student needs layers and attention "
            "heads removed; only chains of Linear/Conv layers (MLPs, simple CNNs) are supported"
        )
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:
        raise CompressionError(
            f"distillation's student builder could not trace {kind} with torch.fx ({exc}); "
            "only chains of Linear/Conv layers (MLPs, simple CNNs) are supported"
        ) from exc
    modules = dict(model.named_modules())
    layers: list[Any] = []
    previous = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if previous is not None:
                raise CompressionError(
                    f"distillation's student builder supports models with one input; {kind} "
                    "takes several"
                )
            previous = node
            continue
        if node.op == "output":
            if node.args != (previous,):
                raise CompressionError(
                    f"{kind} does not return its last layer's output; its forward pass is no "
                    "chain of layers, which the student builder needs"
                )
            continue
        if node.op != "call_module" or node.args != (previous,) or node.kwargs:
            what = f"{node.op} {node.target}"
            raise CompressionError(
                f"{kind} is no chain of layers ({what} is not a layer applied to the previous "
                "layer's output: a branch, a skip connection or a function call); the "
                "student builder supports chains of Linear/Conv layers (MLPs, simple CNNs)"
            )
        layer = modules[str(node.target)]
        name = type(layer).__name__
        if name not in _SUPPORTED:
            raise CompressionError(
                f"{kind}: layer {node.target} is a {name}, which the student builder does "
                f"not support (it supports {', '.join(sorted(_SUPPORTED))})"
            )
        if name in ("Conv1d", "Conv2d") and layer.groups != 1:
            raise CompressionError(
                f"{kind}: layer {node.target} is a grouped convolution (groups="
                f"{layer.groups}), which the student builder does not support"
            )
        layers.append(layer)
        previous = node
    if not any(type(layer).__name__ in _WEIGHTED for layer in layers):
        raise CompressionError(f"{kind} has no Linear or Conv layer to make smaller")
    return layers


def _resized(layer: Any, name: str, h: Any, out_size: int | None) -> Any:
    """A fresh copy of ``layer`` for the input ``h``, with ``out_size`` outputs if given."""
    import torch

    nn = torch.nn
    if name == "Linear":
        out = layer.out_features if out_size is None else out_size
        return nn.Linear(int(h.shape[-1]), out, bias=layer.bias is not None)
    if name in ("Conv1d", "Conv2d"):
        conv: Any = nn.Conv1d if name == "Conv1d" else nn.Conv2d
        out = layer.out_channels if out_size is None else out_size
        return conv(
            int(h.shape[1]),
            out,
            kernel_size=layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            bias=layer.bias is not None,
            padding_mode=layer.padding_mode,
        )
    if name in ("BatchNorm1d", "BatchNorm2d"):
        norm: Any = nn.BatchNorm1d if name == "BatchNorm1d" else nn.BatchNorm2d
        return norm(
            int(h.shape[1]),
            eps=layer.eps,
            momentum=layer.momentum,
            affine=layer.affine,
            track_running_stats=layer.track_running_stats,
        )
    if name == "LayerNorm":
        if len(layer.normalized_shape) != 1:
            raise CompressionError(
                "the student builder supports LayerNorm over the last axis only, not "
                f"{tuple(layer.normalized_shape)}"
            )
        return nn.LayerNorm(
            int(h.shape[-1]), eps=layer.eps, elementwise_affine=layer.elementwise_affine
        )
    return copy.deepcopy(layer)


def make_student(
    teacher: nn.Module,
    width: float,
    depth: float,
    example_inputs: Sequence[Any],
    *,
    seed: int = 0,
) -> nn.Module:
    """A smaller, untrained model of the teacher's family; see the module's docstring.

    Args:
        teacher: The model (not changed).
        width: Factor on every hidden width, in (0, 1].
        depth: Fraction of the droppable hidden weighted layers kept, in (0, 1].
        example_inputs: One batch of the model's inputs (NumPy arrays or tensors), to read
            the sizes after each layer.
        seed: Seeds the student's initial weights.

    Returns:
        An ``nn.Sequential`` in eval mode on the CPU, fp32, with the teacher's input and
        output shapes.

    Raises:
        CompressionInputError: ``width`` or ``depth`` is out of range.
        CompressionError: The architecture is not supported (the message says why).
        MissingExtraError: torch is not installed.
    """
    torch = require("torch", "compress", error=MissingExtraError)
    if not 0.0 < width <= 1.0:
        raise CompressionInputError(f"distillation: width must be in (0, 1], not {width}")
    if not 0.0 < depth <= 1.0:
        raise CompressionInputError(f"distillation: depth must be in (0, 1], not {depth}")
    layers = _chain(teacher)
    if len(example_inputs) != 1:
        raise CompressionError(
            f"distillation's student builder supports models with one input, not "
            f"{len(example_inputs)}"
        )
    x = example_inputs[0]
    if not isinstance(x, torch.Tensor):
        array = np.asarray(x)
        x = torch.from_numpy(
            np.array(array, dtype=np.float32 if array.dtype.kind == "f" else array.dtype)
        )
    x = x.detach().cpu()
    with torch.no_grad():
        reference = first_tensor(copy.deepcopy(teacher).cpu().eval()(x))
    student, h = _build(layers, width, depth, x, seed)
    if tuple(h.shape) != tuple(reference.shape):
        raise CompressionError(
            f"distillation: the student's output shape {tuple(h.shape)} differs from the "
            f"teacher's {tuple(reference.shape)}"
        )
    return student


def _dropped(names: list[str], depth: float) -> set[int]:
    """The positions of the layers a student of ``depth`` leaves out."""
    weighted = [i for i, name in enumerate(names) if name in _WEIGHTED]
    droppable = weighted[1:-1]
    keep = math.floor(depth * len(droppable) + 1e-9)
    dropped: set[int] = set()
    for i in droppable[keep:]:
        dropped.add(i)
        j = i + 1
        while j < len(names) and names[j] in _FOLLOWERS:
            dropped.add(j)
            j += 1
    return dropped


def _build(
    layers: list[Any], width: float, depth: float, x: Any, seed: int
) -> tuple[nn.Sequential, Any]:
    """The student's ``nn.Sequential`` and its output for ``x``."""
    import torch

    names = [type(layer).__name__ for layer in layers]
    last_weighted = max(i for i, name in enumerate(names) if name in _WEIGHTED)
    dropped = _dropped(names, depth)
    built: list[Any] = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        h = x
        for i, (layer, name) in enumerate(zip(layers, names, strict=True)):
            if i in dropped:
                continue
            out_size = None
            if name in _WEIGHTED and i != last_weighted:
                full = layer.out_features if name == "Linear" else layer.out_channels
                out_size = max(1, round(full * width))
            try:
                new = _resized(layer, name, h, out_size)
                h = new.eval()(h)
            except CompressionError:
                raise
            except Exception as exc:
                raise CompressionError(
                    f"distillation: the student's layer {len(built)} ({name}) does not fit "
                    f"the shape {tuple(h.shape)} before it: {exc}"
                ) from exc
            built.append(new)
    return torch.nn.Sequential(*built).float().eval(), h


def parameter_count(model: Any) -> int:
    """The number of parameters of a torch module."""
    return int(sum(p.numel() for p in model.parameters()))


@dataclass
class Distillation:
    """The distillation stage: a narrower (or shallower) student trained from the model.

    Attributes:
        widths: The ``width`` knob's values (factor on the hidden widths), most
            promising first (a half-width digits CNN student kept its accuracy: 97.6% mean
            over 3 seeds against the teacher's 97.8%, at 0.26 of its parameters).
        depths: The ``depth`` knob's values (fraction of droppable layers kept).
        temperatures: The ``temperature`` knob's values (soft targets).
        epochs: Training epochs for each student.
        lr: Adam's learning rate.
        batch_size: Examples per step.
        alpha: Weight of the teacher's soft targets against the labels.
        min_steps: The fewest optimizer steps a student gets: with few training examples
            (a workload without a training split trains on its 64 calibration examples,
            one step per epoch) the epochs are raised to reach it. On the ``mlp``, 10
            steps on those 64 examples left a half-width student at chance, 300 steps
            brought it to 93% of the held-out digits.
    """

    widths: Sequence[float] = (0.5, 0.75)
    depths: Sequence[float] = (1.0,)
    temperatures: Sequence[float] = (4.0, 2.0)
    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 64
    alpha: float = 0.7
    min_steps: int = 300
    name: str = "distill"
    description: str = (
        "a student with narrower hidden layers (and optionally fewer), trained on the "
        "training examples to reproduce the model's outputs (knowledge distillation)"
    )
    when_it_pays: str = (
        "models wider than their task needs: the student has about width^2 of the hidden "
        "layers' weights and multiply-adds, with no special kernels needed, and any runtime "
        "technique applies on top. Costs a training run per setting and needs training "
        "examples; the quality gate decides whether the student is good enough"
    )

    def applies_to(self, context: ApplyContext) -> tuple[bool, str]:
        """It applies to supported chains of layers when there are examples to train on."""
        if context.torch_model is None:
            return False, "needs the torch model; none was given"
        if context.training is None or len(context.training) == 0:
            return False, "needs training examples; the workload has no data"
        try:
            layers = _chain(context.torch_model)
        except CompressionError as exc:
            return False, str(exc)
        count = sum(type(layer).__name__ in _WEIGHTED for layer in layers)
        return True, (
            f"a chain of {len(layers)} layers ({count} Linear/Conv); students are trained on "
            f"{len(context.training)} examples ({context.training.name})"
        )

    def knobs(self) -> list[dict[str, Any]]:
        """Every width x depth x temperature setting, widest students first."""
        return [
            {
                "width": float(width),
                "depth": float(depth),
                "temperature": float(temperature),
                "epochs": int(self.epochs),
            }
            for width in self.widths
            for depth in self.depths
            for temperature in self.temperatures
        ]

    def search_space(self) -> dict[str, tuple[Any, ...]]:
        """Width, depth, temperature and epochs for a search to choose from."""
        return {
            "width": (0.25, 0.5, 0.75),
            "depth": (0.5, 1.0),
            "temperature": (1.0, 2.0, 4.0, 8.0),
            "epochs": (10, 20, 40),
        }

    def epochs_for(self, epochs: int, examples: int) -> int:
        """``epochs``, raised so that training takes at least :attr:`min_steps` steps."""
        steps_per_epoch = max(1, math.ceil(examples / self.batch_size))
        return max(epochs, math.ceil(self.min_steps / steps_per_epoch))

    def transform(self, model: Any, knobs: Mapping[str, Any], context: ApplyContext) -> Any:
        """Build the student for ``knobs`` and train it from ``model``; ``model`` is unchanged.

        Raises:
            CompressionInputError: An unknown knob or a value out of range.
            CompressionError: No training data, an unsupported architecture, or the
                training failed (a NaN, with its step).
        """
        unknown = set(knobs) - {"width", "depth", "temperature", "epochs"}
        if unknown:
            raise CompressionInputError(f"{self.name}: unknown knobs {sorted(unknown)}")
        if context.training is None:
            raise CompressionError(f"{self.name}: needs training examples; the workload has none")
        example = context.example_inputs
        if example is None:
            example = tuple(np.asarray(a)[:1] for a in context.training.inputs)
        student = make_student(
            model,
            float(knobs.get("width", 0.5)),
            float(knobs.get("depth", 1.0)),
            example,
            seed=context.seed,
        )
        task = getattr(context.workload, "task", None)
        epochs = int(knobs.get("epochs", self.epochs))
        setting = "-".join(f"{k}{knobs[k]}" for k in sorted(knobs))
        with tempfile.TemporaryDirectory(prefix="distill-") as scratch:
            base = context.work_dir if context.work_dir is not None else Path(scratch)
            train_from_teacher(
                student,
                model,
                context.training,
                epochs=self.epochs_for(epochs, len(context.training)),
                lr=self.lr,
                batch_size=self.batch_size,
                temperature=float(knobs.get("temperature", 2.0)),
                alpha=self.alpha,
                seed=context.seed,
                run_dir=base / f"{self.name}-{setting}",
                task=task,
            )
        return student.cpu().float().eval()
