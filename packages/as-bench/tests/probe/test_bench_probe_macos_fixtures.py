"""The macOS parsers on outputs captured from real Macs (M1 ... M5 Max).

The fixtures and where each came from are in ``fixtures/macos`` (``SOURCES.md``). Every
expected value below was read from the fixture file itself. A new fixture file without
an entry in ``EXPECTED`` fails ``test_every_fixture_has_expectations``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from as_bench.exceptions import ProbeError
from as_bench.probe import (
    AppleGpuInfo,
    MacHardwareOverview,
    ThermalInfo,
    apple_silicon_from,
    parse_chip,
    parse_number_processors,
    parse_pmset_lowpowermode,
    parse_pmset_therm,
    parse_sw_vers,
    parse_sysctl,
    parse_sysctl_values,
    parse_system_profiler_displays,
    parse_system_profiler_hardware,
    perf_levels_from_sysctl,
)
from as_bench.probe._apple import core_counts

FIXTURES = Path(__file__).parents[1] / "fixtures" / "macos"
GiB = 2**30


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


# (index, name, kind, physical, logical, l2 bytes, cpus per l2)
Level = tuple[int, str | None, str, int | None, int | None, int | None, int | None]


def sysctl_case(
    brand: str | None,
    memsize: str | None,
    ncpu: str | None,
    levels: list[Level],
    cores: tuple[int | None, int | None],
) -> tuple[str, dict[str, Any]]:
    return "sysctl", {
        "brand": brand,
        "memsize": memsize,
        "ncpu": ncpu,
        "levels": levels,
        "cores": cores,
    }


def hardware_case(
    chip: str, name: str, ident: str, memory_gib: int, total: int, p: int | None, e: int | None
) -> tuple[str, MacHardwareOverview]:
    return "hardware", MacHardwareOverview(
        chip=chip,
        model_name=name,
        model_identifier=ident,
        memory_bytes=memory_gib * GiB,
        total_cores=total,
        performance_cores=p,
        efficiency_cores=e,
    )


EXPECTED: dict[str, tuple[str, Any]] = {
    # sysctl `key: value`
    "m3-max-sysctl-hw-machdep.txt": sysctl_case(
        "Apple M3 Max",
        "38654705664",
        "14",
        [
            (0, "Performance", "performance", 10, 10, 16777216, 5),
            (1, "Efficiency", "efficiency", 4, 4, 4194304, 4),
        ],
        (10, 4),
    ),
    "m4-max-sysctl-hw-machdep.txt": sysctl_case(
        "Apple M4 Max",
        "68719476736",
        "16",
        [
            (0, "Performance", "performance", 12, 12, 16777216, 6),
            (1, "Efficiency", "efficiency", 4, 4, 4194304, 4),
        ],
        (12, 4),
    ),
    "m5-sysctl-hw-machdep.txt": sysctl_case(
        "Apple M5",
        "25769803776",
        "10",
        [
            (0, "Super", "super", 4, 4, 16777216, 4),
            (1, "Efficiency", "efficiency", 6, 6, 6291456, 6),
        ],
        (4, 6),
    ),
    "m5-max-sysctl-perflevel.txt": sysctl_case(
        None,
        None,
        None,
        [
            (0, "Super", "super", 6, 6, 16777216, 6),
            (1, "Performance", "performance", 12, 12, 8388608, 6),
        ],
        (18, 0),
    ),
    "m1-virtual-sysctl.txt": sysctl_case(
        "Apple M1 (Virtual)",
        "7516192768",
        None,
        [(0, "Standard", "standard", 3, None, None, None)],
        (None, None),
    ),
    "m1-pro-8core-sysctl-a-grep-cpu.txt": sysctl_case(
        "Apple M1 Pro",
        None,
        "8",
        [
            (0, None, "performance", 6, 6, None, 3),
            (1, None, "efficiency", 2, 2, None, 2),
        ],
        (6, 2),
    ),
    "m1-pro-10core-sysctl-a-perflevel-TRUNCATED.txt": sysctl_case(
        None,
        None,
        "10",
        [
            (0, None, "performance", 8, 8, 12582912, 4),
            (1, None, "efficiency", 2, 2, 4194304, 2),
        ],
        (8, 2),
    ),
    "m4-pro-inferred-12core-sysctl-hw-machdep-TRUNCATED.txt": sysctl_case(
        None,
        "25769803776",
        "12",
        [
            (0, "Performance", "performance", 8, 8, 16777216, 4),
            (1, "Efficiency", "efficiency", 4, 4, 4194304, 4),
        ],
        (8, 4),
    ),
    "m2-sysctl-a-grep-machdep-cpu-memsize.txt": sysctl_case(
        "Apple M2", "17179869184", None, [], (None, None)
    ),
    # sysctl -n: values only, in the order of the names on the command line
    "m2-ultra-sysctl-n-memsize-ncpu-brand_string.txt": (
        "sysctl-n",
        {
            "hw.memsize": "68719476736",
            "hw.ncpu": "24",
            "machdep.cpu.brand_string": "Apple M2 Ultra",
        },
    ),
    "m1-pro-8core-sysctl-n-brand_string.txt": (
        "sysctl-n",
        {"machdep.cpu.brand_string": "Apple M1 Pro"},
    ),
    # system_profiler SPHardwareDataType: JSON, a broken JSON excerpt, text
    "m1-system_profiler-SPHardwareDataType.json": hardware_case(
        "Apple M1", "MacBook Air", "MacBookAir10,1", 16, 8, 4, 4
    ),
    "m1-virtual-system_profiler-SPHardwareDataType.json": hardware_case(
        "Apple M1 (Virtual)", "Apple Virtual Machine 1", "VirtualMac2,1", 7, 3, None, None
    ),
    "m2-system_profiler-SPHardwareDataType.json": hardware_case(
        "Apple M2", "MacBook Pro", "Mac14,7", 16, 8, 4, 4
    ),
    "m2-ultra-system_profiler-SPHardwareDataType.json": hardware_case(
        "Apple M2 Ultra", "Mac Studio", "Mac14,14", 64, 24, 16, 8
    ),
    "m4-max-system_profiler-SPHardwareDataType.json": hardware_case(
        "Apple M4 Max", "MacBook Pro", "Mac16,5", 48, 16, 12, 4
    ),
    "m4-system_profiler-SPHardwareDataType-PARTIAL.txt": hardware_case(
        "Apple M4", "MacBook Air", "Mac16,12", 16, 10, 4, 6
    ),
    "m5-max-system_profiler-SPHardwareDataType.json": hardware_case(
        "Apple M5 Max", "MacBook Pro", "Mac17,6", 128, 18, 18, 0
    ),
    "m1-pro-8core-system_profiler-SPHardwareDataType.txt": hardware_case(
        "Apple M1 Pro", "MacBook Pro", "MacBookPro18,3", 16, 8, 6, 2
    ),
    "m1-pro-10core-system_profiler-SPHardwareDataType-mini.txt": hardware_case(
        "Apple M1 Pro", "MacBook Pro", "MacBookPro18,1", 16, 10, 8, 2
    ),
    "m2-pro-system_profiler-SPHardwareDataType-mini.txt": hardware_case(
        "Apple M2 Pro", "MacBook Pro", "Mac14,10", 16, 12, 8, 4
    ),
    # system_profiler SPDisplaysDataType
    "m1-7coregpu-system_profiler-SPDisplaysDataType.json": (
        "displays",
        AppleGpuInfo(name="Apple M1", cores=7, metal_support="Metal 3"),
    ),
    "m1-pro-system_profiler-SPDisplaysDataType.json": (
        "displays",
        AppleGpuInfo(name="Apple M1 Pro", cores=14, metal_support="Apple GPU family 7"),
    ),
    "m2-max-system_profiler-SPDisplaysDataType-TRIMMED.json": (
        "displays",
        AppleGpuInfo(name="Apple M2 Max", cores=30, metal_support="Metal 4"),
    ),
    "m3-max-system_profiler-SPDisplaysDataType.json": (
        "displays",
        AppleGpuInfo(name="Apple M3 Max", cores=40, metal_support="supported"),
    ),
    # pmset, sw_vers
    "m1-pro-pmset-therm.txt": ("therm", ThermalInfo(state="nominal")),
    "apple-silicon-unknown-chip-pmset-g.txt": ("lowpowermode", False),
    "m1-pro-10core-sw_vers.txt": (
        "sw_vers",
        {"ProductName": "macOS", "ProductVersion": "13.6.3", "BuildVersion": "22G436"},
    ),
}


def test_every_fixture_has_expectations_and_a_source() -> None:
    files = {p.name for p in FIXTURES.iterdir() if p.name != "SOURCES.md"}
    assert files == set(EXPECTED)
    sources = read("SOURCES.md")
    missing = [name for name in sorted(files) if f"`{name}`" not in sources]
    assert not missing, f"fixtures without a SOURCES.md entry: {missing}"


def check_sysctl(text: str, expected: dict[str, Any]) -> None:
    values = parse_sysctl(text)
    assert values.get("machdep.cpu.brand_string") == expected["brand"]
    assert values.get("hw.memsize") == expected["memsize"]
    assert values.get("hw.ncpu") == expected["ncpu"]
    levels = perf_levels_from_sysctl(values)
    got = [
        (
            lv.index,
            lv.name,
            lv.kind,
            lv.physical_cores,
            lv.logical_cores,
            lv.l2_cache_bytes,
            lv.cpus_per_l2,
        )
        for lv in levels
    ]
    assert got == expected["levels"]
    assert core_counts(levels) == expected["cores"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_the_values_it_holds(name: str) -> None:
    kind, expected = EXPECTED[name]
    text = read(name)
    if kind == "sysctl":
        check_sysctl(text, expected)
    elif kind == "sysctl-n":
        assert parse_sysctl_values(text, list(expected)) == expected
    elif kind == "hardware":
        assert parse_system_profiler_hardware(text) == expected
    elif kind == "displays":
        assert parse_system_profiler_displays(text) == expected
    elif kind == "therm":
        assert parse_pmset_therm(text) == expected
    elif kind == "lowpowermode":
        assert parse_pmset_lowpowermode(text) is expected
    elif kind == "sw_vers":
        assert parse_sw_vers(text) == expected
    else:  # pragma: no cover - a typo in the table
        pytest.fail(f"unknown kind {kind!r}")


def test_empty_sysctl_value_is_kept_with_or_without_its_trailing_space() -> None:
    # m5 keeps the space after `hw.osenvironment:`, m3 does not.
    assert parse_sysctl(read("m5-sysctl-hw-machdep.txt"))["hw.osenvironment"] == ""
    assert parse_sysctl(read("m3-max-sysctl-hw-machdep.txt"))["hw.osenvironment"] == ""


def test_sysctl_n_output_is_not_mistaken_for_key_value_output() -> None:
    with pytest.raises(ProbeError, match="no 'key: value' line"):
        parse_sysctl(read("m2-ultra-sysctl-n-memsize-ncpu-brand_string.txt"))
    with pytest.raises(ProbeError, match="3 line"):
        parse_sysctl_values(read("m2-ultra-sysctl-n-memsize-ncpu-brand_string.txt"), ["a", "b"])


def test_partial_json_is_read_pair_by_pair_and_still_refuses_nonsense() -> None:
    # The PARTIAL file is not valid JSON (trailing comma); its pairs are still read.
    assert parse_system_profiler_hardware(read("m4-system_profiler-SPHardwareDataType-PARTIAL.txt"))
    with pytest.raises(ProbeError, match="no SPHardwareDataType fields"):
        parse_system_profiler_hardware('{"unrelated": "value",}')
    with pytest.raises(ProbeError, match="no SPHardwareDataType item"):
        parse_system_profiler_hardware(read("m3-max-system_profiler-SPDisplaysDataType.json"))


def test_displays_parser_errors_and_non_apple_gpus() -> None:
    with pytest.raises(ProbeError, match="not valid JSON"):
        parse_system_profiler_displays(read("m1-pro-pmset-therm.txt"))
    with pytest.raises(ProbeError, match="no SPDisplaysDataType list"):
        parse_system_profiler_displays(read("m1-system_profiler-SPHardwareDataType.json"))
    amd_only = '{"SPDisplaysDataType": [{"sppci_model": "AMD Radeon Pro 5500M", '
    amd_only += '"spdisplays_vendor": "sppci_vendor_amd"}]}'
    assert parse_system_profiler_displays(amd_only) is None


def test_pmset_parsers_on_the_wrong_output() -> None:
    with pytest.raises(ProbeError, match="pmset -g therm"):
        parse_pmset_therm(read("apple-silicon-unknown-chip-pmset-g.txt"))
    assert parse_pmset_lowpowermode(read("m1-pro-pmset-therm.txt")) is None
    with pytest.raises(ProbeError, match="sw_vers"):
        parse_sw_vers("")


def test_therm_with_recorded_levels_and_limits() -> None:
    # The layout pmset's source prints: a dated level line, tab-indented CPU entries.
    text = (
        "2024-01-06 10:00:00 +0100 Thermal Warning Level = 0\n"
        "2024-01-06 10:00:00 +0100 Performance Warning Level = 0\n"
        "2024-01-06 10:00:00 +0100 CPU Power notify\n"
        "\tCPU_Scheduler_Limit \t= 100\n\tCPU_Available_CPUs \t= 12\n\tCPU_Speed_Limit \t= 62\n"
    )
    thermal = parse_pmset_therm(text)
    assert thermal.state == "throttled"
    assert (thermal.thermal_warning_level, thermal.cpu_speed_limit) == (0, 62)
    assert thermal.cpu_available_cpus == 12
    assert parse_pmset_therm("Thermal Warning Level = 5\n").state == "warning"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (" lowpowermode         1", True),
        (" **lowpowermode         0**", False),
        (" powermode            1", True),  # Pro/Max with a high-power mode: 1 = low power
        (" powermode            2", False),
        (" highpowermode        1", None),
    ],
)
def test_low_power_mode_lines(line: str, expected: bool | None) -> None:
    assert parse_pmset_lowpowermode(f"Currently in use:\n{line}\n womp 1\n") is expected


@pytest.mark.parametrize(
    ("brand", "expected"),
    [
        ("Apple M1", (1, None, False)),
        ("Apple M1 Pro", (1, "Pro", False)),
        ("Apple M2 Ultra", (2, "Ultra", False)),
        ("Apple M3 Max", (3, "Max", False)),
        ("Apple M5", (5, None, False)),
        ("Apple M1 (Virtual)", (1, None, True)),
        ("Intel(R) Core(TM) i9-9980HK CPU @ 2.40GHz", (None, None, False)),
    ],
)
def test_parse_chip(brand: str, expected: tuple[int | None, str | None, bool]) -> None:
    assert tuple(parse_chip(brand)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("proc 8:4:4", (8, 4, 4)),
        ("proc 24:16:8:0", (24, 16, 8)),
        ("proc 18:6:0:12", (18, 18, 0)),
        (3, (3, None, None)),
        ("10 (8 performance and 2 efficiency)", (10, 8, 2)),
        ("12", (12, None, None)),
    ],
)
def test_number_processors_forms(value: str | int, expected: tuple[int, int, int]) -> None:
    assert parse_number_processors(value) == expected


@pytest.mark.parametrize("value", ["proc 8:4:5", "proc 8", "eight", "10 (8 performance)"])
def test_number_processors_that_do_not_add_up(value: str) -> None:
    with pytest.raises(ProbeError, match=r"number_processors|cores"):
        parse_number_processors(value)


@given(st.integers(0, 64), st.integers(0, 64), st.integers(0, 64))
def test_four_field_form_counts_both_fast_levels(top: int, efficiency: int, mid: int) -> None:
    total = top + efficiency + mid
    assert parse_number_processors(f"proc {total}:{top}:{efficiency}:{mid}") == (
        total,
        top + mid,
        efficiency,
    )


_KEY = st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z0-9_]{1,8}){0,3}", fullmatch=True)
_VALUE = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30)


@given(st.dictionaries(_KEY, _VALUE, min_size=1, max_size=20))
def test_sysctl_round_trip(values: dict[str, str]) -> None:
    text = "".join(f"{key}: {value}\n" for key, value in values.items())
    assert parse_sysctl(text) == {k: v.strip() for k, v in values.items()}


def test_m5_max_from_sysctl_and_system_profiler_agree() -> None:
    sysctl = parse_sysctl(read("m5-max-sysctl-perflevel.txt"))
    hardware = parse_system_profiler_hardware(
        read("m5-max-system_profiler-SPHardwareDataType.json")
    )
    info = apple_silicon_from(sysctl=sysctl, hardware=hardware)
    assert info is not None
    assert (info.chip, info.generation, info.variant, info.virtual) == (
        "Apple M5 Max",
        5,
        "Max",
        False,
    )
    assert [lv.name for lv in info.perf_levels] == ["Super", "Performance"]
    assert (info.performance_cores, info.efficiency_cores) == (18, 0)
    assert (hardware.performance_cores, hardware.efficiency_cores) == (18, 0)
    assert info.unified_memory_bytes == 128 * GiB
    assert (info.model_name, info.model_identifier) == ("MacBook Pro", "Mac17,6")


def test_m5_sysctl_alone() -> None:
    info = apple_silicon_from(sysctl=parse_sysctl(read("m5-sysctl-hw-machdep.txt")))
    assert info is not None
    assert (info.generation, info.variant) == (5, None)
    assert (info.performance_cores, info.efficiency_cores) == (4, 6)
    assert info.unified_memory_bytes == 24 * GiB


def test_m3_max_with_gpu() -> None:
    info = apple_silicon_from(
        sysctl=parse_sysctl(read("m3-max-sysctl-hw-machdep.txt")),
        gpu=parse_system_profiler_displays(read("m3-max-system_profiler-SPDisplaysDataType.json")),
    )
    assert info is not None
    assert info.gpu is not None and info.gpu.cores == 40
    assert (info.performance_cores, info.efficiency_cores) == (10, 4)
    assert info.unified_memory_bytes == 36 * GiB


def test_m2_ultra_cores_come_from_system_profiler_when_sysctl_has_no_levels() -> None:
    keys = ["hw.memsize", "hw.ncpu", "machdep.cpu.brand_string"]
    sysctl = parse_sysctl_values(read("m2-ultra-sysctl-n-memsize-ncpu-brand_string.txt"), keys)
    hardware = parse_system_profiler_hardware(
        read("m2-ultra-system_profiler-SPHardwareDataType.json")
    )
    info = apple_silicon_from(sysctl=sysctl, hardware=hardware)
    assert info is not None
    assert (info.generation, info.variant) == (2, "Ultra")
    assert info.perf_levels == []
    assert (info.performance_cores, info.efficiency_cores) == (16, 8)
    assert info.unified_memory_bytes == 64 * GiB == hardware.memory_bytes


def test_virtual_mac_has_standard_cores_and_no_p_e_split() -> None:
    info = apple_silicon_from(
        sysctl=parse_sysctl(read("m1-virtual-sysctl.txt")),
        hardware=parse_system_profiler_hardware(
            read("m1-virtual-system_profiler-SPHardwareDataType.json")
        ),
    )
    assert info is not None
    assert info.virtual is True
    assert (info.performance_cores, info.efficiency_cores) == (None, None)
    assert info.unified_memory_bytes == 7516192768  # sysctl's exact bytes win over "7 GB"
    assert info.model_identifier == "VirtualMac2,1"


def test_m1_pro_10core_text_sources_and_macos_version() -> None:
    info = apple_silicon_from(
        sysctl=parse_sysctl(read("m1-pro-10core-sysctl-a-perflevel-TRUNCATED.txt")),
        hardware=parse_system_profiler_hardware(
            read("m1-pro-10core-system_profiler-SPHardwareDataType-mini.txt")
        ),
        sw_vers=parse_sw_vers(read("m1-pro-10core-sw_vers.txt")),
        thermal=parse_pmset_therm(read("m1-pro-pmset-therm.txt")),
        low_power_mode=False,
    )
    assert info is not None
    assert info.chip == "Apple M1 Pro"  # the truncated sysctl has no brand string
    assert (info.performance_cores, info.efficiency_cores) == (8, 2)
    assert (info.macos_version, info.macos_build) == ("13.6.3", "22G436")
    assert info.thermal == ThermalInfo(state="nominal")
    assert info.unified_memory_bytes == 16 * GiB


def test_intel_mac_or_nothing_is_not_apple_silicon() -> None:
    intel = {"machdep.cpu.brand_string": "Intel(R) Core(TM) i9-9980HK CPU @ 2.40GHz"}
    assert apple_silicon_from(sysctl=intel) is None
    assert apple_silicon_from() is None
