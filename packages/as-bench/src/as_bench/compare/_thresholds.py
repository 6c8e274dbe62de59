"""Regression thresholds: ``median:5%``, ``p95:10%``, ``mean:2ms``, and files of them.

A threshold names a metric of the raw samples (``median``, ``mean`` or ``p95``) and how
much worse the candidate may be before the gate fails: relative (``5%``: new/base - 1 above
0.05) or absolute (``2ms``: new - base above 2 ms; units ``ns``, ``us``, ``µs``, ``ms``,
``s``).

A thresholds file (YAML, JSON or TOML) gives defaults and per-benchmark overrides::

    default: ["median:5%"]
    benchmarks:
      "mlp/*": ["p95:10%"]                   # an fnmatch pattern
      "digits-cnn/tflite/cpu/bs1": "median:2%"  # an exact name; one string is fine
      "flaky/*": []                           # an empty list: never gated

A benchmark's thresholds are those of its exact name if the file has it, else those of
the first pattern (in file order) that matches it, else the defaults. An override replaces
the defaults; it does not add to them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from as_bench.exceptions import ThresholdError
from as_core.fmt import format_seconds

__all__ = ["Metric", "Threshold", "ThresholdSet", "load_thresholds", "parse_threshold"]

Metric = Literal["median", "mean", "p95"]

_METRICS: tuple[Metric, ...] = ("median", "mean", "p95")
_UNITS: dict[str, float] = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0}
_FORMS = (
    "METRIC:N% (relative) or METRIC:N<unit> (absolute), METRIC one of median, mean, p95 "
    "and unit one of ns, us, µs, ms, s; e.g. median:5%, p95:10%, mean:2ms"
)
_EXPRESSION = re.compile(
    r"""^\s*(?P<metric>[A-Za-z0-9_]+)\s*:\s*
    (?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*
    (?P<unit>%|[A-Za-zµμ]+)?\s*$""",
    re.VERBOSE,
)


def _number(value: float) -> str:
    return f"{value:.10g}"


class Threshold(BaseModel):
    """How much worse a metric may get before the regression gate fails.

    Exactly one of ``relative`` and ``absolute_s`` is set. ``str(threshold)`` gives the
    expression back in a form :func:`parse_threshold` reads (``"median:5%"``,
    ``"median:2ms"``); pydantic also accepts such a string wherever a threshold is expected.

    Attributes:
        metric: The statistic of the raw samples compared: ``median``, ``mean`` or ``p95``.
        relative: The largest allowed ``new / base - 1`` (0.05 for 5%).
        absolute_s: The largest allowed ``new - base``, seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Metric
    relative: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    absolute_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            parsed = parse_threshold(data)
            return {
                "metric": parsed.metric,
                "relative": parsed.relative,
                "absolute_s": parsed.absolute_s,
            }
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.relative is None) == (self.absolute_s is None):
            raise ValueError("give exactly one of relative and absolute_s")
        return self

    def __str__(self) -> str:
        """The expression, e.g. ``median:5%`` or ``p95:250us``."""
        if self.relative is not None:
            return f"{self.metric}:{_number(self.relative * 100)}%"
        assert self.absolute_s is not None
        value = self.absolute_s
        for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
            if value >= scale:
                return f"{self.metric}:{_number(value / scale)}{unit}"
        return f"{self.metric}:{_number(value / 1e-9)}ns"

    @property
    def limit_text(self) -> str:
        """The limit alone, for people: ``5%`` or ``2 ms``."""
        if self.relative is not None:
            return f"{_number(self.relative * 100)}%"
        return format_seconds(self.absolute_s)


def parse_threshold(text: str) -> Threshold:
    """Read a threshold expression such as ``median:5%``, ``p95:10%`` or ``mean:2ms``.

    Args:
        text: ``METRIC:N%`` (relative) or ``METRIC:N<unit>`` (absolute, unit ``ns``,
            ``us``, ``µs``, ``ms`` or ``s``); ``METRIC`` is ``median``, ``mean`` or
            ``p95`` (any case). ``N`` is a number at least 0.

    Returns:
        The threshold.

    Raises:
        ThresholdError: The text is not such an expression; the message quotes it, says
            what is wrong and lists the accepted forms.
    """
    if not isinstance(text, str):
        raise ThresholdError(f"a threshold must be text like 'median:5%', not {text!r}")
    found = _EXPRESSION.match(text)
    if found is None:
        raise ThresholdError(f"{text!r} is not a threshold; write {_FORMS}")
    metric = found["metric"].lower()
    if metric not in _METRICS:
        raise ThresholdError(
            f"{text!r}: unknown metric {found['metric']!r}; use median, mean or p95 ({_FORMS})"
        )
    number = float(found["number"])
    if not math.isfinite(number) or number < 0:
        raise ThresholdError(f"{text!r}: the limit must be a number at least 0 ({_FORMS})")
    unit = found["unit"]
    if unit is None:
        raise ThresholdError(
            f"{text!r}: the limit has no unit; write {_number(number)}% for a relative "
            f"limit or {_number(number)}ms (ns, us, µs, ms, s) for an absolute one"
        )
    if unit == "%":
        return Threshold(metric=metric, relative=number / 100.0)
    scale = _UNITS.get(unit) or _UNITS.get(unit.lower())
    if scale is None:
        raise ThresholdError(f"{text!r}: unknown unit {unit!r}; use %, ns, us, µs, ms or s")
    return Threshold(metric=metric, absolute_s=number * scale)


class ThresholdSet(BaseModel):
    """Default thresholds and per-benchmark overrides by exact name or fnmatch pattern.

    Thresholds may be given as :class:`Threshold` objects or as expressions
    (``ThresholdSet(default=["median:5%"])``); a single expression stands for a list of one.

    Attributes:
        default: The thresholds of benchmarks that no override names.
        benchmarks: Overrides: a benchmark name or an fnmatch pattern (``*``, ``?``,
            ``[...]``, case-sensitive) to its thresholds. An empty list exempts the
            benchmarks it matches from the gate.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: list[Threshold] = Field(default_factory=list)
    benchmarks: dict[str, list[Threshold]] = Field(default_factory=dict)

    @field_validator("default", mode="before")
    @classmethod
    def _one_default(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | Threshold) else value

    @field_validator("benchmarks", mode="before")
    @classmethod
    def _one_each(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: [v] if isinstance(v, str | Threshold) else v for k, v in value.items()}
        return value

    def for_benchmark(self, name: str) -> list[Threshold]:
        """The thresholds of benchmark ``name``.

        Its exact entry if there is one, else the first pattern (in order) that matches
        it, else the defaults.
        """
        exact = self.benchmarks.get(name)
        if exact is not None:
            return list(exact)
        for pattern, thresholds in self.benchmarks.items():
            if fnmatchcase(name, pattern):
                return list(thresholds)
        return list(self.default)

    @property
    def empty(self) -> bool:
        """Whether no benchmark can have a threshold (nothing to gate on)."""
        return not self.default and not any(self.benchmarks.values())


def _thresholds_at(value: object, path: Path, key: str) -> list[Threshold]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ThresholdError(
            f"{path}: {key}: expected a threshold expression or a list of them "
            f'(e.g. ["median:5%"]), found {type(value).__name__} {value!r}'
        )
    out: list[Threshold] = []
    for index, item in enumerate(items):
        where = f"{key}[{index}]" if not isinstance(value, str) else key
        if not isinstance(item, str):
            raise ThresholdError(
                f"{path}: {where}: expected a threshold expression like 'median:5%', "
                f"found {type(item).__name__} {item!r}"
            )
        try:
            out.append(parse_threshold(item))
        except ThresholdError as exc:
            raise ThresholdError(f"{path}: {where}: {exc}") from exc
    return out


def load_thresholds(path: Path | str) -> ThresholdSet:
    """Read a thresholds file (YAML, JSON or TOML; the format from the suffix).

    The file's top level has ``default`` (thresholds of every benchmark without an
    override) and ``benchmarks`` (name or fnmatch pattern to thresholds); each value is
    an expression or a list of them. An empty file gives an empty set.

    Args:
        path: The file.

    Returns:
        The thresholds.

    Raises:
        ThresholdError: The file is missing, unreadable, not YAML/JSON/TOML, has an
            unknown key or a bad expression; the message names the file and the key.
    """
    from as_config import read_config_file
    from as_config.exceptions import AsConfigError

    path = Path(path)
    try:
        data = read_config_file(path)
    except AsConfigError as exc:
        raise ThresholdError(f"thresholds file: {exc}") from exc
    unknown = sorted(set(data) - {"default", "benchmarks"})
    if unknown:
        raise ThresholdError(
            f"{path}: unknown key(s) {', '.join(unknown)}; a thresholds file has "
            "'default' (a list of thresholds) and 'benchmarks' (name or pattern -> thresholds)"
        )
    default = _thresholds_at(data.get("default", []), path, "default")
    raw_benchmarks = data.get("benchmarks", {})
    if not isinstance(raw_benchmarks, Mapping):
        raise ThresholdError(
            f"{path}: benchmarks: expected a mapping of benchmark name or pattern to "
            f"thresholds, found {type(raw_benchmarks).__name__}"
        )
    benchmarks = {
        str(name): _thresholds_at(value, path, f"benchmarks.{name}")
        for name, value in raw_benchmarks.items()
    }
    return ThresholdSet(default=default, benchmarks=benchmarks)
