"""scripts/check_torch_cpu.py: the README's CPU-only torch lines, and the check's skips.

The check itself needs download.pytorch.org (CI runs it: ``scripts/ci/step torch-cpu``);
here, offline, the parts that decide what it checks and when it skips.
"""

from __future__ import annotations

import tomllib

import check_torch_cpu
import pytest


def test_the_readme_lines_make_a_valid_project_that_takes_torch_from_the_cpu_index() -> None:
    text = check_torch_cpu.project_file(
        check_torch_cpu.readme_snippet(check_torch_cpu.README.read_text(encoding="utf-8"))
    )
    data = tomllib.loads(text)
    assert data["project"]["dependencies"] == ["torch"]
    (index,) = data["tool"]["uv"]["index"]
    assert index == {"name": "pytorch-cpu", "url": check_torch_cpu.INDEX_URL, "explicit": True}
    (source,) = data["tool"]["uv"]["sources"]["torch"]
    assert source["index"] == "pytorch-cpu"
    assert source["marker"] == "sys_platform == 'linux'"


def test_a_readme_without_the_section_or_the_index_fails() -> None:
    with pytest.raises(ValueError, match="no section"):
        check_torch_cpu.readme_snippet("# nothing here\n")
    block = (
        check_torch_cpu.SECTION
        + "\n\n```toml\n[[tool.uv.index]]\nname = 'x'\nurl = 'https://example.org'\n```\n"
    )
    with pytest.raises(ValueError, match="name no index"):
        check_torch_cpu.project_file(check_torch_cpu.readme_snippet(block))


@pytest.mark.parametrize(("require", "code"), [(False, 0), (True, 1)])
def test_an_unreachable_index_skips_and_says_why_unless_required(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], require: bool, code: int
) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr(check_torch_cpu, "reachable", lambda url: "Name or service not known")
    assert check_torch_cpu.main(["--require"] if require else []) == code
    out = capsys.readouterr().out
    word = "FAILED" if require else "skipped"
    assert out == (
        f"torch-cpu: {word}: {check_torch_cpu.INDEX_URL} cannot be reached from this machine "
        "(Name or service not known)\n"
    )


def test_off_linux_it_skips(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.platform", "darwin")
    assert check_torch_cpu.main([]) == 0
    assert (
        "skipped: the CPU index is for Linux; darwin keeps PyPI's torch" in capsys.readouterr().out
    )
