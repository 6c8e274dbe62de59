"""Train a small built-in classifier once and keep its weights in the user's cache.

Weights are stored as safetensors (never pickle: a cache file is data, not code) under
``cache_dir()/weights/<name>-<key>.safetensors``. The key hashes everything that decides
the weights (architecture, training recipe, data), so changing any of them trains afresh
instead of loading stale weights. Files are written to a temporary name and moved into
place with ``os.replace``, so a crash or a second process never leaves half a file; a
file that still fails to load (corrupt, truncated, from another key) is retrained over.

This module imports torch at the top: the registry imports it only after checking extras.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from as_bench.exceptions import MissingExtraError
from as_bench.workloads._cache import cache_dir
from as_core.extras import require

__all__ = ["TrainConfig", "TrainedModelSpec", "TrainedWeights", "load_or_train", "weights_path"]

logger = logging.getLogger(__name__)

# Bump when the file layout, the metadata or the training code changes, so that files
# written by an older as-bench are retrained instead of misread.
_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe; every field is part of the cache key."""

    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    seed: int


@dataclass(frozen=True)
class TrainedModelSpec:
    """A classifier trained on fixed data with a fixed recipe.

    Attributes:
        name: Cache file prefix (``"digits-cnn"``).
        build: Builds the untrained module (a class or a module-level function, so that the
            spec pickles into spawned processes).
        config: The training recipe.
        data_id: Words that pin down the training data; part of the cache key.
    """

    name: str
    build: Callable[[], nn.Module]
    config: TrainConfig
    data_id: str

    def key(self) -> str:
        """Hash of architecture, recipe and data: the identity of the trained weights."""
        facts = {
            "format": _FORMAT,
            "name": self.name,
            "architecture": repr(self.build()),
            "config": asdict(self.config),
            "data": self.data_id,
        }
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class TrainedWeights:
    """Facts about the weights that :func:`load_or_train` returned."""

    path: Path
    key: str
    held_out_accuracy: float
    train_seconds: float
    from_cache: bool


Array = npt.NDArray[np.generic]


def weights_path(spec: TrainedModelSpec) -> Path:
    """Where the weights of ``spec`` are cached."""
    return cache_dir() / "weights" / f"{spec.name}-{spec.key()[:16]}.safetensors"


def load_or_train(
    spec: TrainedModelSpec,
    train: tuple[Array, Array],
    held_out: tuple[Array, Array],
) -> tuple[nn.Module, TrainedWeights]:
    """The trained model of ``spec``, in eval mode on the CPU: from the cache, or trained now.

    Args:
        spec: What to train and how.
        train: ``(inputs, labels)`` to train on.
        held_out: ``(inputs, labels)`` to score on; the accuracy is stored with the weights.
    """
    require("safetensors", "torch", error=MissingExtraError)
    key = spec.key()
    path = weights_path(spec)
    model = spec.build()
    if path.exists():
        loaded = _load(path, key, model)
        if loaded is not None:
            accuracy, seconds = loaded
            model.eval()
            return model, TrainedWeights(path, key, accuracy, seconds, from_cache=True)
    start = time.perf_counter()
    model = _train(spec, *train)
    seconds = time.perf_counter() - start
    accuracy = accuracy_of(model, *held_out)
    logger.info(
        "trained %s in %.1f s: held-out accuracy %.4f; caching it at %s",
        spec.name,
        seconds,
        accuracy,
        path,
    )
    _save(path, model, {"key": key, "accuracy": repr(accuracy), "train_seconds": repr(seconds)})
    return model, TrainedWeights(path, key, accuracy, seconds, from_cache=False)


def accuracy_of(model: nn.Module, inputs: Array, labels: Array) -> float:
    """Fraction of ``inputs`` that ``model`` classifies as ``labels``."""
    with torch.inference_mode():
        logits = model(torch.from_numpy(np.array(inputs)))
    predicted = logits.argmax(dim=-1).numpy()
    return float(np.mean(predicted == labels))


def _adam_step(
    params: list[nn.Parameter],
    moments: list[tuple[torch.Tensor, torch.Tensor]],
    step: int,
    config: TrainConfig,
) -> None:
    """One Adam update (L2 weight decay, as ``torch.optim.Adam``'s ``weight_decay``).

    Written out because any ``torch.optim`` optimizer imports TorchDynamo, several seconds
    that would dwarf the one second this training takes.
    """
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    with torch.no_grad():
        for param, (mean, var) in zip(params, moments, strict=True):
            if param.grad is None:
                continue
            grad = param.grad + config.weight_decay * param
            mean.mul_(beta1).add_(grad, alpha=1 - beta1)
            var.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denominator = (var / (1 - beta2**step)).sqrt_().add_(eps)
            param.addcdiv_(mean, denominator, value=-config.learning_rate / (1 - beta1**step))
            param.grad = None


def _train(spec: TrainedModelSpec, inputs: Array, labels: Array) -> nn.Module:
    # One thread: these models are too small for intra-op parallelism to pay, and on a busy
    # machine torch's spinning worker threads made training 15x slower. It also makes the
    # order of the arithmetic, hence the weights, independent of the number of cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_single_thread(spec, inputs, labels)
    finally:
        torch.set_num_threads(threads)


def _train_single_thread(spec: TrainedModelSpec, inputs: Array, labels: Array) -> nn.Module:
    config = spec.config
    # fork_rng keeps the caller's global RNG state untouched; devices=[] because training
    # runs on the CPU and CUDA state must not be initialised for it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = spec.build()
        generator = torch.Generator().manual_seed(config.seed)
        x = torch.from_numpy(np.array(inputs))
        y = torch.from_numpy(np.array(labels))
        params = list(model.parameters())
        moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
        step = 0
        model.train()
        for _ in range(config.epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), config.batch_size):
                batch = order[start : start + config.batch_size]
                loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
                torch.autograd.backward(loss)
                step += 1
                _adam_step(params, moments, step, config)
    model.eval()
    return model


def _load(path: Path, key: str, model: nn.Module) -> tuple[float, float] | None:
    """Load cached weights into ``model``; ``None`` (with a warning) if they are unusable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            if metadata.get("key") != key:
                msg = f"it was written for key {metadata.get('key')!r}, expected {key!r}"
                raise ValueError(msg)
            state = {name: f.get_tensor(name) for name in f.keys()}
        model.load_state_dict(state, strict=True)
        return float(metadata["accuracy"]), float(metadata["train_seconds"])
    except Exception as exc:  # any failure to read a cache file means: train again
        logger.warning("cached weights %s are unusable (%s); retraining", path, exc)
        return None


def _save(path: Path, model: nn.Module, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            save_file(state, str(tmp), metadata=metadata)
            tmp.replace(path)  # atomic: os.replace
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        # The model is still usable; only the next process pays for training again.
        logger.warning("could not cache trained weights at %s (%s)", path, exc)
