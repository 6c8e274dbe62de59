"""The versioned manifest of one model version: :class:`Manifest` and its parts.

A manifest lives next to the model's files as ``<repo>/<name>/<version>/manifest.json``.
It records the inputs and outputs (names, dtypes, shapes with dynamic dimensions as
``None``), labels, preprocessing, where the model came from, each file's sha256 and the
parity report. Every manifest carries ``schema_version``; a reader refuses a version it
does not know rather than guessing at its fields.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from as_deploy.exceptions import InvalidNameError, ManifestError

__all__ = [
    "MANIFEST_FILENAME",
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_DEPTH",
    "NAME_PATTERN",
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "DType",
    "FileEntry",
    "Manifest",
    "ParityReport",
    "Provenance",
    "TensorSpec",
    "check_name",
    "parse_manifest",
    "read_manifest_bytes",
]

SCHEMA_VERSION: Final = 1
"""The manifest schema version this release writes."""

SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1,)
"""The manifest schema versions this release reads."""

MANIFEST_FILENAME: Final = "manifest.json"
"""The manifest's file name inside a version folder."""

MAX_MANIFEST_BYTES: Final = 1024 * 1024
"""The largest manifest file read (1 MiB; real ones are a few KiB, labels included)."""

MAX_MANIFEST_DEPTH: Final = 64
"""The deepest nesting of arrays and objects a manifest may have."""

NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,63}$"
"""What model names and versions must match: safe as one path component everywhere."""

# fullmatch, not match: "$" would also accept a trailing newline.
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# A JSON string (escapes included), or one bracket: what the depth check looks at.
# Python refuses to convert longer integers (sys.get_int_max_str_digits()); say so here.
_MAX_INT_DIGITS = 4300
_JSON_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_SHA256_RE = re.compile(r"[0-9a-f]{64}")

DType = Literal[
    "float64",
    "float32",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
    "string",
]
"""The element types a tensor may have."""

_NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def check_name(value: str, what: str = "name") -> str:
    """Return ``value`` if it is a valid model name or version.

    Args:
        value: The name or version to check.
        what: What it is, for the message (``"name"`` or ``"version"``).

    Raises:
        InvalidNameError: ``value`` does not match :data:`NAME_PATTERN`.
    """
    if not isinstance(value, str) or _NAME_RE.fullmatch(value) is None:
        raise InvalidNameError(
            f"invalid model {what} {value!r}: it must match {NAME_PATTERN} "
            "(lowercase letters, digits, '.', '_', '-'; 1 to 64 characters; "
            "starting with a letter or digit)"
        )
    return value


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Record):
    """One input or output tensor.

    Attributes:
        name: The tensor's name in the model.
        dtype: Its element type.
        shape: Its dimensions; ``None`` marks a dynamic one (e.g. the batch).
        description: What it holds, in words.
    """

    name: str = Field(min_length=1)
    dtype: DType
    shape: list[Annotated[int, Field(ge=0)] | None]
    description: str | None = None


class FileEntry(_Record):
    """One file of a model version.

    Attributes:
        path: Relative POSIX path inside the version folder (no ``..``, not absolute).
        sha256: Lowercase hex sha256 of the file's bytes.
        size_bytes: The file's size.
        role: ``"model"`` (exactly one per manifest), ``"weights"``, ``"labels"`` or
            ``"other"``.
    """

    path: str
    sha256: str
    size_bytes: int = Field(ge=0)
    role: Literal["model", "weights", "labels", "other"]

    @field_validator("path")
    @classmethod
    def _relative_posix(cls, value: str) -> str:
        if not value:
            raise ValueError("the path is empty")
        if "\\" in value:
            raise ValueError(f"{value!r} contains a backslash; use '/'")
        if "\x00" in value:
            raise ValueError(f"{value!r} contains a NUL byte")
        pure = PurePosixPath(value)
        if pure.is_absolute() or re.match(r"[A-Za-z]:", value):
            raise ValueError(f"{value!r} is absolute; it must be relative to the version")
        if any(part in ("..", ".") for part in value.split("/")):
            raise ValueError(f"{value!r} contains '..' or '.'")
        if str(pure) != value:
            raise ValueError(f"{value!r} is not a normal path (write it as {str(pure)!r})")
        if value == MANIFEST_FILENAME:
            raise ValueError(f"{value!r} is reserved for the manifest")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if _SHA256_RE.fullmatch(value) is None:
            raise ValueError(f"{value!r} is not 64 lowercase hex digits")
        return value


class ParityReport(_Record):
    """How the exported model's outputs compared with the reference's.

    A report either holds the figures of a check that ran (``status="checked"``, the
    default and the only kind as-deploy 0.1.0 wrote) or says why none could run here
    (``status="not_run"``, e.g. Core ML prediction needs macOS); then ``reason`` says why,
    the figures and ``passed`` are ``None``, and the tolerances are those the check will
    use where it can run.

    Attributes:
        runtime: The runtime that ran (or will run) the exported model (``"onnxruntime"``).
        reference: What it was compared with (e.g. ``"torch"``).
        inputs_checked: How many inputs were compared (at least one); ``None`` if not run.
        max_abs_error: Largest absolute difference; ``None`` if not run.
        max_rel_error: Largest relative difference (over elements whose reference
            magnitude exceeds ``atol``); ``None`` if not run.
        top1_agreement: Fraction of inputs whose arg-max agrees; ``None`` when the outputs
            are not class scores or the check did not run.
        atol: Absolute tolerance used.
        rtol: Relative tolerance used.
        passed: Whether the differences were within the tolerances; ``None`` if not run.
        status: ``"checked"`` or ``"not_run"``.
        reason: Why the check did not run (only with ``"not_run"``).
        min_top1_agreement: The top-1 agreement floor the check required, if any.
        data: What the inputs were, in words (``"scikit-learn digits, 20% held out"``).
    """

    runtime: str = Field(min_length=1)
    reference: str = Field(min_length=1)
    inputs_checked: Annotated[int, Field(ge=1)] | None = None
    max_abs_error: _NonNegFloat | None = None
    max_rel_error: _NonNegFloat | None = None
    top1_agreement: Annotated[float, Field(ge=0, le=1)] | None = None
    atol: _NonNegFloat
    rtol: _NonNegFloat
    passed: bool | None = None
    status: Literal["checked", "not_run"] = "checked"
    reason: str | None = None
    min_top1_agreement: Annotated[float, Field(ge=0, le=1)] | None = None
    data: str | None = None

    @model_validator(mode="after")
    def _status_fits(self) -> ParityReport:
        figures = {
            "inputs_checked": self.inputs_checked,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
            "passed": self.passed,
        }
        if self.status == "checked":
            missing = [key for key, value in figures.items() if value is None]
            if missing:
                raise ValueError(f"a checked parity report needs {', '.join(missing)}")
            if self.reason is not None:
                raise ValueError("reason is only for status 'not_run'")
        else:
            present = [key for key, value in figures.items() if value is not None]
            if self.top1_agreement is not None:
                present.append("top1_agreement")
            if present:
                raise ValueError(f"a parity report that did not run has no {', '.join(present)}")
            if not self.reason:
                raise ValueError("status 'not_run' needs a reason")
        return self

    @property
    def ran(self) -> bool:
        """Whether the check ran (``status == "checked"``)."""
        return self.status == "checked"


class Provenance(_Record):
    """Where the model came from.

    Attributes:
        source: The original model (a path, a hub id, a URL), in words.
        created_at: When this version was made (time zone required).
        tool_versions: Versions of the tools that made it, by package name.
        git_commit: The commit of the code that made it, if known.
        optimization: How the model was optimized, when a tool such as as-optimize made
            it from ``source`` (free-form, JSON-compatible: the techniques and their
            knobs, the measured figures, the hardware); ``None`` for a plain export.
            ``GET /v1/models/{name}`` shows it with the rest of the provenance.
    """

    source: str = Field(min_length=1)
    created_at: AwareDatetime
    tool_versions: dict[str, str] = Field(default_factory=dict)
    git_commit: str | None = None
    optimization: dict[str, Any] | None = None


class Manifest(_Record):
    """Everything the repository knows about one model version.

    Attributes:
        schema_version: The manifest schema version (1).
        name: The model's name (matches :data:`NAME_PATTERN`).
        version: The version (matches :data:`NAME_PATTERN`).
        format: The model's format.
        inputs: The input tensors (at least one, unique names).
        outputs: The output tensors (at least one, unique names).
        labels: Class labels, in output order, if any.
        preprocessing: How to prepare inputs (free-form, JSON-compatible).
        files: The version's files (at least one, unique paths, exactly one ``"model"``).
        provenance: Where the model came from.
        parity: The parity report: the figures of the check, or why it did not run.
        description: What the model does, in words.
        runtime_options: How the runtime should run the file, by format (free-form,
            JSON-compatible): ``opset`` and ``dynamic_batch`` for ONNX; ``precision``,
            ``compute_units``, ``package`` (the ``.mlpackage`` folder inside the version)
            and ``batch_size`` for Core ML; ``batch_size`` and ``signature`` for TFLite.
    """

    schema_version: Literal[1] = 1
    name: str
    version: str
    format: Literal["onnx", "coreml", "tflite"]
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    labels: list[str] | None = None
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    files: list[FileEntry] = Field(min_length=1)
    provenance: Provenance
    parity: ParityReport | None = None
    description: str | None = None
    runtime_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name", "version")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if _NAME_RE.fullmatch(value) is None:
            raise ValueError(f"{value!r} does not match {NAME_PATTERN}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        for field, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [spec.name for spec in specs]
            if len(set(names)) != len(names):
                raise ValueError(f"{field} has duplicate names: {_duplicates(names)}")
        paths = [entry.path for entry in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError(f"files has duplicate paths: {_duplicates(paths)}")
        models = [entry.path for entry in self.files if entry.role == "model"]
        if len(models) != 1:
            raise ValueError(f"files must hold exactly one role 'model', found {models}")
        return self

    @property
    def model_file(self) -> FileEntry:
        """The one file whose role is ``"model"``."""
        return next(entry for entry in self.files if entry.role == "model")

    def to_json(self) -> str:
        """Return the manifest as indented JSON, as the repository writes it.

        Fields added after as-deploy 0.1.0 are written only when they differ from their
        defaults, so a manifest that uses none of them stays readable by 0.1.0.
        """
        data = self.model_dump(mode="json")
        _drop_defaults(data, _ADDED_MANIFEST_FIELDS)
        if isinstance(data.get("parity"), dict):
            _drop_defaults(data["parity"], _ADDED_PARITY_FIELDS)
        if isinstance(data.get("provenance"), dict):
            _drop_defaults(data["provenance"], _ADDED_PROVENANCE_FIELDS)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# Fields added after 0.1.0 and their defaults: left out of the JSON while at the default.
_ADDED_MANIFEST_FIELDS: dict[str, Any] = {"description": None, "runtime_options": {}}
_ADDED_PARITY_FIELDS: dict[str, Any] = {
    "status": "checked",
    "reason": None,
    "min_top1_agreement": None,
    "data": None,
}
_ADDED_PROVENANCE_FIELDS: dict[str, Any] = {"optimization": None}


def _drop_defaults(data: dict[str, Any], defaults: dict[str, Any]) -> None:
    for key, default in defaults.items():
        if key in data and data[key] == default:
            del data[key]


def _duplicates(values: list[str]) -> list[str]:
    return sorted({value for value in values if values.count(value) > 1})


def parse_manifest(data: object, path: Path | None = None) -> Manifest:
    """Validate decoded JSON ``data`` as a :class:`Manifest`.

    Args:
        data: The decoded JSON.
        path: The file it came from, for the message.

    Raises:
        ManifestError: ``data`` is not a valid manifest; the message names the file and
            every bad key (e.g. ``files.0.sha256``), or the unsupported schema version.
    """
    if not isinstance(data, dict):
        raise ManifestError(path, f"expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ManifestError(
            path,
            f"schema_version {version!r} is not supported; this release of as-deploy "
            f"reads {list(SUPPORTED_SCHEMA_VERSIONS)} (upgrade as-deploy to read it)",
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        raise ManifestError(path, "invalid manifest: " + "; ".join(problems)) from exc


def _check_depth(text: str, path: Path | None) -> None:
    """Refuse JSON nested deeper than :data:`MAX_MANIFEST_DEPTH`, before it is parsed.

    The parser and the validators recurse: a file of 100,000 ``[`` would exhaust the stack.
    """
    depth = 0
    for match in _JSON_TOKEN_RE.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_MANIFEST_DEPTH:
                line = text.count("\n", 0, match.start()) + 1
                raise ManifestError(
                    path,
                    f"JSON nested deeper than {MAX_MANIFEST_DEPTH} levels (at line {line}); "
                    "a manifest is a few levels deep",
                )
        elif token in "]}":
            depth -= 1


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is out of range (not finite)")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _integer(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > _MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits (at most {_MAX_INT_DIGITS})")
    return int(text)


def read_manifest_bytes(raw: bytes, path: Path | None = None) -> Manifest:
    """Decode and validate a manifest from its file's bytes.

    Raises:
        ManifestError: Empty, not UTF-8, not JSON (with line and column), nested deeper
            than :data:`MAX_MANIFEST_DEPTH`, a number that is not finite (``NaN``,
            ``Infinity``, ``1e999``) or whose digits are over Python's limit, or invalid.
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            path, f"the file is {len(raw)} bytes; a manifest may hold at most {MAX_MANIFEST_BYTES}"
        )
    if not raw.strip():
        raise ManifestError(path, "the file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(path, f"not UTF-8 text (byte {exc.start})") from exc
    _check_depth(text, path)
    try:
        data = json.loads(
            text, parse_float=_finite, parse_int=_integer, parse_constant=_no_constant
        )
    except json.JSONDecodeError as exc:
        raise ManifestError(
            path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        # A number refused by the hooks above (too many digits, not finite, NaN).
        raise ManifestError(path, f"invalid JSON: {exc}") from None
    return parse_manifest(data, path)
