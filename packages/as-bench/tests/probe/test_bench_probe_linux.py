"""Linux readers on prepared ``proc``/``sys`` trees: cgroup v2, v1, hybrid; governors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from as_bench.exceptions import ProbeError
from as_bench.probe import (
    CgroupLimits,
    parse_cfs_quota,
    parse_cpu_max,
    parse_cpuinfo_model,
    parse_memory_max,
    parse_os_release,
    parse_proc_cgroup,
    read_cgroup_limits,
    read_cpu_governor,
)
from as_bench.probe._linux import collect_linux

GiB = 2**30
V1_UNLIMITED = "9223372036854771712"  # what v1 memory.limit_in_bytes says with no limit


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def v2_tree(root: Path, group: str) -> Path:
    write(root, "proc/self/cgroup", f"0::{group}\n")
    write(root, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
    return root / "sys/fs/cgroup"


def test_v2_limits_of_the_group_and_its_ancestors(tmp_path: Path) -> None:
    v2_tree(tmp_path, "/user.slice/job.scope")
    write(tmp_path, "sys/fs/cgroup/user.slice/cpu.max", "max 100000\n")
    write(tmp_path, "sys/fs/cgroup/user.slice/memory.max", f"{512 * 2**20}\n")
    write(tmp_path, "sys/fs/cgroup/user.slice/job.scope/cpu.max", "250000 100000\n")
    write(tmp_path, "sys/fs/cgroup/user.slice/job.scope/memory.max", f"{GiB}\n")
    limits = read_cgroup_limits(tmp_path)
    # The parent's 512 MiB binds the child's 1 GiB.
    assert limits == CgroupLimits(
        version=2,
        path="/user.slice/job.scope",
        cpu_limit_cores=2.5,
        memory_limit_bytes=512 * 2**20,
    )


def test_v2_max_means_unlimited(tmp_path: Path) -> None:
    v2_tree(tmp_path, "/a")
    write(tmp_path, "sys/fs/cgroup/a/cpu.max", "max 100000\n")
    write(tmp_path, "sys/fs/cgroup/a/memory.max", "max\n")
    limits = read_cgroup_limits(tmp_path)
    assert (limits.version, limits.cpu_limit_cores, limits.memory_limit_bytes) == (2, None, None)


def test_v2_container_sees_its_group_as_the_mount_root(tmp_path: Path) -> None:
    # With a cgroup namespace the path may name a group the container cannot see; the
    # limits are then those of the mount's root, which is the container's own group.
    fs = v2_tree(tmp_path, "/docker/0123abcd")
    write(tmp_path, "sys/fs/cgroup/cpu.max", "200000 100000\n")
    write(tmp_path, "sys/fs/cgroup/memory.max", f"{4 * GiB}\n")
    assert not (fs / "docker").exists()
    limits = read_cgroup_limits(tmp_path)
    assert (limits.cpu_limit_cores, limits.memory_limit_bytes) == (2.0, 4 * GiB)


def test_v1_limits_and_unlimited(tmp_path: Path) -> None:
    write(tmp_path, "proc/self/cgroup", "4:memory:/docker/x\n3:cpu,cpuacct:/docker/x\n0::/\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_quota_us", "150000\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_period_us", "100000\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    write(tmp_path, "sys/fs/cgroup/memory/docker/x/memory.limit_in_bytes", f"{2 * GiB}\n")
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", V1_UNLIMITED + "\n")
    assert read_cgroup_limits(tmp_path) == CgroupLimits(
        version=1, path="/docker/x", cpu_limit_cores=1.5, memory_limit_bytes=2 * GiB
    )


def test_v1_hybrid_without_limits(tmp_path: Path) -> None:
    # The layout of this project's own CI machine: v1 controllers plus an empty unified
    # hierarchy under /sys/fs/cgroup/unified (no cgroup.controllers at the top).
    write(tmp_path, "proc/self/cgroup", "4:memory:/process_api/e9ab\n1:cpu:/\n0::/\n")
    write(tmp_path, "sys/fs/cgroup/unified/cgroup.controllers", "")
    write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n")
    write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n")
    write(tmp_path, "sys/fs/cgroup/memory/process_api/e9ab/memory.limit_in_bytes", V1_UNLIMITED)
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", V1_UNLIMITED)
    assert read_cgroup_limits(tmp_path) == CgroupLimits(version=1, path="/")


def test_no_cgroup_filesystem(tmp_path: Path) -> None:
    assert read_cgroup_limits(tmp_path) == CgroupLimits()


def test_a_garbled_limit_file_is_skipped_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    v2_tree(tmp_path, "/a")
    write(tmp_path, "sys/fs/cgroup/a/cpu.max", "lots\n")
    write(tmp_path, "sys/fs/cgroup/cpu.max", "50000 100000\n")
    assert read_cgroup_limits(tmp_path).cpu_limit_cores == 0.5
    assert "cpu.max 'lots'" in caplog.text


@pytest.mark.parametrize(
    ("text", "cores"),
    [("max 100000", None), ("max", None), ("200000 100000", 2.0), ("50000", 0.5)],
)
def test_parse_cpu_max(text: str, cores: float | None) -> None:
    assert parse_cpu_max(text) == cores


@pytest.mark.parametrize("text", ["", "lots", "0 100000", "1 2 3"])
def test_parse_cpu_max_rejects(text: str) -> None:
    with pytest.raises(ProbeError, match=r"cpu\.max"):
        parse_cpu_max(text)


def test_parse_cfs_quota() -> None:
    assert parse_cfs_quota("-1\n", "100000\n") is None
    assert parse_cfs_quota("300000", "100000") == 3.0
    with pytest.raises(ProbeError, match="not integers"):
        parse_cfs_quota("x", "100000")


@pytest.mark.parametrize(
    ("text", "limit"),
    [("max\n", None), (V1_UNLIMITED, None), ("1073741824\n", GiB)],
)
def test_parse_memory_max(text: str, limit: int | None) -> None:
    assert parse_memory_max(text) == limit


def test_parse_memory_max_rejects() -> None:
    with pytest.raises(ProbeError, match="neither 'max' nor a byte count"):
        parse_memory_max("1G")


def test_parse_proc_cgroup() -> None:
    text = "9:name=systemd:/\n4:memory:/process_api/e9ab\n2:cpu,cpuacct:/\n0::/\n\nbogus\n"
    assert parse_proc_cgroup(text) == [
        (9, ("name=systemd",), "/"),
        (4, ("memory",), "/process_api/e9ab"),
        (2, ("cpu", "cpuacct"), "/"),
        (0, (), "/"),
    ]


def test_governor_single_mixed_and_absent(tmp_path: Path) -> None:
    assert read_cpu_governor(tmp_path) is None
    for cpu in range(4):
        write(
            tmp_path, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", "performance\n"
        )
    write(tmp_path, "sys/devices/system/cpu/cpufreq/policy0/scaling_governor", "ignored\n")
    assert read_cpu_governor(tmp_path) == "performance"
    write(tmp_path, "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor", "powersave\n")
    assert read_cpu_governor(tmp_path) == "performance,powersave"


def test_cpuinfo_model_x86_and_arm() -> None:
    x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7R13 Processor\n"
    arm = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n\nHardware\t: BCM2835\n"
    assert parse_cpuinfo_model(x86) == "AMD EPYC 7R13 Processor"
    assert parse_cpuinfo_model(arm) == "BCM2835"
    assert parse_cpuinfo_model("processor\t: 0\n") is None


def test_os_release_quotes() -> None:
    text = "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME='Ubuntu'\nVERSION_ID=24.04\n# comment\n"
    assert parse_os_release(text) == {
        "PRETTY_NAME": "Ubuntu 24.04.1 LTS",
        "NAME": "Ubuntu",
        "VERSION_ID": "24.04",
    }


def test_collect_linux_on_a_prepared_root(tmp_path: Path) -> None:
    write(tmp_path, "proc/cpuinfo", "processor\t: 0\nmodel name\t: Test CPU 9000\n")
    write(tmp_path, "etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "schedutil\n")
    v2_tree(tmp_path, "/")
    write(tmp_path, "sys/fs/cgroup/cpu.max", "100000 100000\n")
    info, model, distribution = collect_linux(tmp_path)
    assert (model, distribution) == ("Test CPU 9000", "Debian GNU/Linux 12 (bookworm)")
    assert info.cpu_governor == "schedutil"
    assert info.cgroup == CgroupLimits(version=2, path="/", cpu_limit_cores=1.0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this Linux machine")
def test_this_linux_machine() -> None:
    info, model, distribution = collect_linux()
    assert model, "/proc/cpuinfo should name the CPU"
    assert distribution
    assert info.affinity_cpus is not None and info.affinity_cpus >= 1
    assert info.cgroup.version in (1, 2)
