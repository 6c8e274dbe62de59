"""``system_profiler`` output: the hardware overview and the integrated GPU.

``SPHardwareDataType`` comes as JSON (``-json``) or as indented text; both are read. The
core count field changed form over the years, as seen on real Macs:

- ``"proc 8:4:4"``: total, performance, efficiency (M1 ... M4);
- ``"proc 24:16:8:0"`` and ``"proc 18:6:0:12"``: total, top-level cores, efficiency,
  then a third level: the M2 Ultra has 16 performance + 8 efficiency + 0, the M5 Max
  6 ``Super`` + 0 efficiency + 12 ``Performance`` (its sysctl perf levels agree);
- an integer (``3``) on macOS virtual machines, which have a single ``Standard`` level.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from as_bench.exceptions import ProbeError
from as_bench.probe._records import AppleGpuInfo, MacHardwareOverview

__all__ = [
    "parse_memory_size",
    "parse_number_processors",
    "parse_system_profiler_displays",
    "parse_system_profiler_hardware",
]

log = logging.getLogger(__name__)

_UNITS = {"KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}
_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]B)\s*$", re.IGNORECASE)
_PROC = re.compile(r"^\s*proc\s+(?P<fields>\d+(?::\d+)+)\s*$")
_TEXT_CORES = re.compile(r"^\s*(?P<total>\d+)\s*(?:\((?P<detail>[^)]*)\))?\s*$")
_TEXT_CORE_PART = re.compile(r"(?P<count>\d+)\s+(?P<kind>[A-Za-z]+)")
# One `"key" : value` pair, for JSON that does not parse as a whole (a pasted excerpt).
_JSON_PAIR = re.compile(r'"(?P<key>[^"\\]+)"\s*:\s*(?:"(?P<text>(?:[^"\\]|\\.)*)"|(?P<num>-?\d+))')
_TEXT_LINE = re.compile(r"^\s*(?P<label>[A-Za-z][\w ()/-]*?):\s*(?P<value>\S.*?)\s*$")

# Labels of the text form mapped to the JSON keys.
_TEXT_LABELS = {
    "Chip": "chip_type",
    "Model Name": "machine_name",
    "Model Identifier": "machine_model",
    "Memory": "physical_memory",
    "Total Number of Cores": "number_processors",
}
_FAST_WORDS = frozenset({"performance", "super"})


def parse_memory_size(text: str) -> int:
    """Bytes of a ``system_profiler`` size like ``"16 GB"`` (Apple's GB are GiB).

    Raises:
        ProbeError: Not a number followed by KB, MB, GB or TB.
    """
    match = _SIZE.match(text)
    if match is None:
        raise ProbeError(f"memory size {text!r} is not like '16 GB'")
    return round(float(match["number"]) * _UNITS[match["unit"].upper()])


def parse_number_processors(value: str | int) -> tuple[int, int | None, int | None]:
    """Read ``number_processors`` (or the text form's ``Total Number of Cores``).

    Returns:
        ``(total, performance, efficiency)`` where performance counts every level above
        efficiency (``Super`` and ``Performance``); the last two are ``None`` when the
        value is a bare count.

    Raises:
        ProbeError: The value has none of the known forms, or its parts do not add up.
    """
    if isinstance(value, int):
        return value, None, None
    proc = _PROC.match(value)
    if proc is not None:
        fields = [int(part) for part in proc["fields"].split(":")]
        total, parts = fields[0], fields[1:]
        if len(parts) not in (2, 3) or sum(parts) != total:
            raise ProbeError(f"number_processors {value!r}: the core fields do not add up")
        # total:top:efficiency[:next level]; see the module docstring.
        return total, parts[0] + sum(parts[2:]), parts[1]
    text = _TEXT_CORES.match(value)
    if text is None:
        raise ProbeError(f"number_processors {value!r} is not 'proc T:P:E', 'N' or 'N (...)'")
    total = int(text["total"])
    if not text["detail"]:
        return total, None, None
    fast = efficient = 0
    for part in _TEXT_CORE_PART.finditer(text["detail"]):
        kind = part["kind"].lower()
        if kind in _FAST_WORDS:
            fast += int(part["count"])
        elif kind == "efficiency":
            efficient += int(part["count"])
    if fast + efficient != total:
        raise ProbeError(f"cores {value!r}: the named core types do not add up to the total")
    return total, fast, efficient


def _load_json(text: str) -> Any | None:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _hardware_item(data: Any) -> Mapping[str, Any] | None:
    if isinstance(data, Mapping):
        items = data.get("SPHardwareDataType")
        if isinstance(items, list) and items and isinstance(items[0], Mapping):
            return items[0]
        if "chip_type" in data or "number_processors" in data or "physical_memory" in data:
            return data  # the inner item alone
    return None


def _pairs_from_broken_json(text: str) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for match in _JSON_PAIR.finditer(text):
        value: Any = int(match["num"]) if match["num"] is not None else match["text"]
        pairs.setdefault(match["key"], value)
    return pairs


def _pairs_from_text(text: str) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for line in text.splitlines():
        match = _TEXT_LINE.match(line)
        if match and match["label"] in _TEXT_LABELS:
            pairs.setdefault(_TEXT_LABELS[match["label"]], match["value"])
    return pairs


def _hardware_fields(source: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(source, Mapping):
        item = _hardware_item(source)
        if item is None:
            raise ProbeError("system_profiler data has no SPHardwareDataType item")
        return dict(item)
    stripped = source.strip()
    if stripped.startswith(("{", "[")):
        data = _load_json(stripped)
        if data is not None:
            item = _hardware_item(data)
            if item is None:
                raise ProbeError("system_profiler JSON has no SPHardwareDataType item")
            return dict(item)
        # Not valid JSON (a pasted excerpt, a cut-off capture): keep the pairs it has.
        log.debug("SPHardwareDataType is not valid JSON; reading its key-value pairs")
        return _pairs_from_broken_json(stripped)
    return _pairs_from_text(stripped)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def parse_system_profiler_hardware(source: str | Mapping[str, Any]) -> MacHardwareOverview:
    """Parse ``system_profiler SPHardwareDataType`` in any of its forms.

    Accepts the ``-json`` output (alone or combined with other data types), its inner
    item, a JSON excerpt that no longer parses (the pairs it still has are read), the
    text form (``Chip: Apple M1 Pro``), or an already-decoded mapping.

    Raises:
        ProbeError: None of the hardware fields could be found.
    """
    fields = _hardware_fields(source)
    chip = _text(fields.get("chip_type"))
    memory: int | None = None
    raw_memory = _text(fields.get("physical_memory"))
    if raw_memory is not None:
        try:
            memory = parse_memory_size(raw_memory)
        except ProbeError as exc:
            log.warning("%s", exc)
    total = fast = efficient = None
    raw_cores = fields.get("number_processors")
    if isinstance(raw_cores, int | str):
        try:
            total, fast, efficient = parse_number_processors(raw_cores)
        except ProbeError as exc:
            log.warning("%s", exc)
    overview = MacHardwareOverview(
        chip=chip,
        model_name=_text(fields.get("machine_name")),
        model_identifier=_text(fields.get("machine_model")),
        memory_bytes=memory,
        total_cores=total,
        performance_cores=fast,
        efficiency_cores=efficient,
    )
    if overview == MacHardwareOverview():
        what = "mapping" if isinstance(source, Mapping) else repr(source.strip()[:60])
        raise ProbeError(f"no SPHardwareDataType fields found in {what}")
    return overview


def _metal_support(item: Mapping[str, Any]) -> str | None:
    raw = (
        item.get("spdisplays_mtlgpufamilysupport")
        or item.get("spdisplays_metalfamily")
        or item.get("spdisplays_metal")
    )
    if not isinstance(raw, str):
        return None
    value = raw.removeprefix("spdisplays_")
    if match := re.fullmatch(r"metal(\d+)", value):
        return f"Metal {match[1]}"
    if match := re.fullmatch(r"mtlgpufamilyapple(\d+)", value):
        return f"Apple GPU family {match[1]}"
    return value


def parse_system_profiler_displays(source: str | Mapping[str, Any]) -> AppleGpuInfo | None:
    """The Apple GPU from ``system_profiler -json SPDisplaysDataType``.

    Args:
        source: The JSON text (alone or combined with other data types) or the decoded
            mapping.

    Returns:
        The first GPU whose vendor or model is Apple, or ``None`` when there is none
        (an Intel Mac's AMD or Intel GPUs).

    Raises:
        ProbeError: The text is not JSON, or has no ``SPDisplaysDataType`` list.
    """
    data: Any = source
    if isinstance(source, str):
        data = _load_json(source)
        if data is None:
            head = source.strip()[:60]
            raise ProbeError(f"SPDisplaysDataType output is not valid JSON (starts {head!r})")
    items = data.get("SPDisplaysDataType") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise ProbeError("system_profiler JSON has no SPDisplaysDataType list")
    for item in items:
        if not isinstance(item, Mapping):
            continue
        model = _text(item.get("sppci_model")) or _text(item.get("_name")) or ""
        apple = item.get("spdisplays_vendor") == "sppci_vendor_Apple" or model.startswith("Apple")
        if not apple:
            continue
        cores_raw = _text(item.get("sppci_cores"))
        cores = int(cores_raw) if cores_raw and cores_raw.isdigit() else None
        return AppleGpuInfo(name=model, cores=cores, metal_support=_metal_support(item))
    return None
