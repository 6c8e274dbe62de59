"""Evaluating a torch candidate: ``python -m as_optimize.compress._child_torch SPEC``.

The spec and the result follow :mod:`as_optimize.compress._child`'s contract. The
candidate is the ``artifact``, a ``model.torch/`` folder written by a technique of
:mod:`as_optimize.compress._torchao`: the child rebuilds the fp32 module from
``spec["workload"]`` (and the folder's ``technique.json``), loads its weights, applies
the technique on ``spec["device"]`` (:func:`~as_optimize.compress._torchao.prepare`),
runs the scoring inputs in chunks of ``chunk`` rows (float inputs cast to the model's
dtype, the first output written as float32) and times each batch size with
:func:`as_bench.measure` on that device.

It answers ``{"unavailable": reason}`` (exit 0) when the device is not there (no CUDA GPU,
no MPS) or the technique has no kernel on it (int4 on the CPU, float8 on a GPU older than
compute capability 8.9): the search keeps the candidate as not measured. Besides the
usual keys the result has ``weight_bytes`` (the transformed module's weights in memory),
``dtype`` (the model's compute dtype) and ``quantized_weights`` (each ``Linear``
weight's storage, ``Int8Tensor:int8`` for instance).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from as_optimize.compress._child import latency_entry, run_child, score


def device_missing(device: str) -> str | None:
    """Why torch cannot use ``device`` here, or ``None`` when it can."""
    import torch

    if device == "cpu":
        return None
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return (
                f"torch sees no CUDA GPU here (device {device!r}): no GPU, no driver, or a "
                "CPU-only torch build"
            )
        return None
    if device == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            return "torch's MPS backend is not available here (it needs macOS on Apple silicon)"
        return None
    return f"unknown torch device {device!r}"


def _tensors(arrays: list[Any], device: str, dtype: Any) -> tuple[Any, ...]:
    import torch

    out = []
    for array in arrays:
        tensor = torch.from_numpy(np.array(array, order="C", copy=True))
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
        out.append(tensor.to(device))
    return tuple(out)


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Rebuild, transform, score, measure; the result as plain values."""
    import torch

    device = str(spec.get("device") or "cpu")
    missing = device_missing(device)
    if missing is not None:
        return {"unavailable": missing}

    import as_bench
    from as_optimize.compress._finetune import first_tensor
    from as_optimize.compress._torchao import (
        TechniqueUnavailable,
        compute_dtype,
        load_fp32,
        prepare,
        quantized_weights,
        read_facts,
        torchao_version,
        weight_bytes,
    )

    threads = spec.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    folder = Path(spec.get("artifact") or spec["model"])
    facts = read_facts(folder)
    technique = str(facts["technique"])
    knobs = dict(facts.get("knobs") or {})

    started = time.perf_counter()
    model = load_fp32(folder, str(spec["workload"]))
    try:
        model = prepare(model, technique, knobs, device)
    except TechniqueUnavailable as exc:
        return {"unavailable": str(exc)}
    dtype = compute_dtype(model)
    open_s = time.perf_counter() - started

    def forward(*inputs: Any) -> Any:
        with torch.inference_mode():
            return first_tensor(model(*inputs))

    names = list(spec["input_names"])
    score(spec, lambda arrays: forward(*_tensors(arrays, device, dtype)).float().cpu().numpy())

    latency: dict[str, Any] = {}
    options = as_bench.MeasureOptions(**spec["measure"])
    with np.load(spec["bench_inputs"]) as bench:
        for batch in spec["batch_sizes"]:
            inputs = _tensors([bench[f"b{batch}_in{i}"] for i in range(len(names))], device, dtype)
            m = as_bench.measure(forward, *inputs, device=device, options=options)
            latency[str(batch)] = latency_entry(m)
    return {
        "session_open_s": open_s,
        "providers": [f"torch:{device}"],
        "runtime_options": {
            "device": device,
            "threads": torch.get_num_threads(),
            "dtype": str(dtype).removeprefix("torch."),
            "technique": technique,
            "knobs": knobs,
            "torch": str(torch.__version__),
            "torchao": torchao_version(),
        },
        "dtype": str(dtype).removeprefix("torch."),
        "weight_bytes": weight_bytes(model),
        "quantized_weights": quantized_weights(model),
        "latency": latency,
    }


def main(argv: list[str]) -> int:
    """Run the spec named by ``argv[0]``; exit 0 with the result written, 1 on an error."""
    return run_child(evaluate, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
