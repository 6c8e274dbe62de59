"""Atomic writes: the old file or the new one, never half, and no temp file left behind."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import IO

import pytest

from as_core.fs import TEMP_SUFFIX, atomic_writer, write_bytes_atomic, write_text_atomic


def test_text_is_written_with_unix_line_ends_and_mode(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "file.txt"
    write_text_atomic(target, "a\nb\n", mode=0o600)
    assert target.read_bytes() == b"a\nb\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")

    def half_then_crash(handle: IO[bytes]) -> None:
        handle.write(b"new but incomp")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_bytes_atomic(target, half_then_crash)
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_replacing_a_file_keeps_readers_on_a_whole_version(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    write_bytes_atomic(target, b"first")
    with target.open("rb") as reader, atomic_writer(target) as handle:
        handle.write(b"second")
        # Until the block ends the target is still the first version.
        assert target.read_bytes() == b"first"
    assert reader.closed
    assert target.read_bytes() == b"second"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)]


def test_a_rename_that_fails_leaves_the_target_and_no_temp(tmp_path: Path) -> None:
    # The target is a non-empty folder: the final rename fails after the data was written.
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("keep")
    with pytest.raises(OSError):
        write_text_atomic(target, "text")
    assert (target / "inside").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
