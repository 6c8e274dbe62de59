"""The options of one export, parsed and checked once: :class:`ExportOptions`.

The command line (and any caller holding plain strings) builds them with
:meth:`ExportOptions.parse`, which turns strings into the typed values or raises
:class:`~as_deploy.exceptions.UsageError`; everything below (the exporter, the
converters, the parity check, :func:`as_deploy.pack.pack`) takes the one frozen object.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from as_deploy.exceptions import UsageError

__all__ = [
    "COMPUTE_UNITS",
    "DEFAULT_OPSET",
    "FORMATS",
    "PRECISIONS",
    "ComputeUnits",
    "ExportOptions",
    "Format",
    "Precision",
]

Format = Literal["onnx", "coreml", "tflite"]
"""The export formats."""

Precision = Literal["fp32", "fp16"]
"""Compute precision: ``fp16`` is a Core ML option."""

ComputeUnits = Literal["ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE"]
"""Core ML compute units (``coremltools.ComputeUnit`` members)."""

FORMATS: tuple[Format, ...] = ("onnx", "coreml", "tflite")
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16")
#: Core ML compute units a model may be loaded with.
COMPUTE_UNITS: tuple[ComputeUnits, ...] = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")

#: The ONNX opset exports use unless told otherwise. It equals
#: ``as_bench.export.DEFAULT_OPSET`` (a test checks); it is repeated here because as-deploy's
#: core install, the server, has no as-bench to read it from.
DEFAULT_OPSET = 18

_Choice = TypeVar("_Choice", bound=str)


def _choose(value: str, choices: tuple[_Choice, ...], what: str, hint: str) -> _Choice:
    for choice in choices:
        if choice == value:
            return choice
    raise UsageError(f"unknown {what} {value!r}", hint=hint)


@dataclass(frozen=True)
class ExportOptions:
    """How to export one model and check it: checked when created, never changed.

    Attributes:
        format: ``"onnx"``, ``"coreml"`` or ``"tflite"``.
        precision: ``"fp32"``, or ``"fp16"`` (Core ML only).
        opset: The ONNX opset (7 to 30).
        compute_units: Core ML compute units recorded for (and used by) prediction.
        batch_size: The fixed batch of Core ML and TFLite models (default 1); for ONNX,
            the batch traced when the batch axis cannot be dynamic.
        parity_inputs: Inputs the parity check compares; ``None`` takes every held-out
            example of the workload.
        atol: Absolute parity tolerance; ``None`` takes the format's default.
        rtol: Relative parity tolerance; ``None`` takes the format's default.
        labels: Class labels in output order; ``None`` takes the source's.
        description: What the model does, in words; ``None`` takes the source's.

    Raises:
        UsageError: A value is out of range or does not fit the format.
    """

    format: Format = "onnx"
    precision: Precision = "fp32"
    opset: int = DEFAULT_OPSET
    compute_units: ComputeUnits = "ALL"
    batch_size: int | None = None
    parity_inputs: int | None = 32
    atol: float | None = None
    rtol: float | None = None
    labels: tuple[str, ...] | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        """Check every value (see the class docstring)."""
        _choose(self.format, FORMATS, "format", f"use one of {', '.join(FORMATS)}")
        _choose(self.precision, PRECISIONS, "precision", "use fp32 or fp16")
        _choose(
            self.compute_units,
            COMPUTE_UNITS,
            "Core ML compute units",
            f"use one of {', '.join(COMPUTE_UNITS)}",
        )
        if self.precision == "fp16" and self.format != "coreml":
            raise UsageError(
                f"{self.format} export is fp32 only; fp16 is a Core ML option",
                hint="drop --precision fp16, or export to coreml",
            )
        if not 7 <= self.opset <= 30:
            raise UsageError(
                f"ONNX opset {self.opset} is out of range",
                hint=f"{DEFAULT_OPSET} suits every runtime",
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, not {self.batch_size}")
        if self.parity_inputs is not None and self.parity_inputs < 1:
            raise UsageError(f"parity_inputs must be at least 1, not {self.parity_inputs}")
        for what, value in (("atol", self.atol), ("rtol", self.rtol)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise UsageError(f"{what} must be a finite number >= 0, not {value!r}")
        if self.labels is not None:
            if not self.labels or any(not label for label in self.labels):
                raise UsageError("labels must be non-empty strings", hint="e.g. --labels cat,dog")
            if len(set(self.labels)) != len(self.labels):
                raise UsageError(f"labels has duplicates: {list(self.labels)}")

    @classmethod
    def parse(
        cls,
        *,
        format: str = "onnx",
        precision: str = "fp32",
        opset: int = DEFAULT_OPSET,
        compute_units: str = "ALL",
        batch_size: int | None = None,
        parity_inputs: int | None = 32,
        atol: float | None = None,
        rtol: float | None = None,
        labels: Sequence[str] | None = None,
        description: str | None = None,
    ) -> ExportOptions:
        """Options from plain values (command-line strings), normalised and checked.

        ``format`` is lowercased and ``compute_units`` uppercased; surrounding blanks go.

        Raises:
            UsageError: A value is unknown, out of range or does not fit the format.
        """
        fmt = _choose(format.strip().lower(), FORMATS, "format", f"use one of {', '.join(FORMATS)}")
        return cls(
            format=fmt,
            precision=_choose(precision.strip(), PRECISIONS, "precision", "use fp32 or fp16"),
            opset=opset,
            compute_units=_choose(
                compute_units.strip().upper(),
                COMPUTE_UNITS,
                "Core ML compute units",
                f"use one of {', '.join(COMPUTE_UNITS)}",
            ),
            batch_size=batch_size,
            parity_inputs=parity_inputs,
            atol=atol,
            rtol=rtol,
            labels=None if labels is None else tuple(str(label) for label in labels),
            description=description,
        )

    def for_format(self, fmt: Format) -> ExportOptions:
        """The same options for another format (``pack`` exports one source to several)."""
        return replace(self, format=fmt)
