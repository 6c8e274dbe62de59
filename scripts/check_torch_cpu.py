"""Check the README's CPU-only PyTorch set-up: torch from the PyTorch CPU index, no CUDA.

On Linux, PyPI's torch brings about 3 GB of ``nvidia-*`` CUDA libraries. The root README
("CPU-only PyTorch on Linux") shows the ``pyproject.toml`` lines that take torch from
https://download.pytorch.org/whl/cpu instead. This script builds a fresh project from
exactly those lines (read from the README, so the two cannot drift apart), runs
``uv sync`` in it and checks, in its environment, that torch imports, that
``torch.version.cuda`` is None and that no ``nvidia-*`` distribution was installed.

It skips, saying why, and exits 0 off Linux (macOS keeps PyPI's torch) and where the index
cannot be reached (an offline machine); ``--require`` turns a skip into a failure.

Usage::

    uv run python scripts/check_torch_cpu.py            # CI: scripts/ci/step torch-cpu
    uv run python scripts/check_torch_cpu.py --keep DIR # keep the project for inspection

Exit status: 0 when the check passes or is skipped, 1 when it fails, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SECTION = "### CPU-only PyTorch on Linux"
INDEX_URL = "https://download.pytorch.org/whl/cpu"

_PROBE = """
import importlib.metadata as md, json, torch
names = sorted(d.metadata["Name"] for d in md.distributions())
print(json.dumps({"version": torch.__version__, "cuda": torch.version.cuda,
                  "nvidia": [n for n in names if n.lower().startswith("nvidia")],
                  "sum": float(torch.ones(3).sum())}))
"""


def readme_snippet(text: str) -> str:
    """The ``toml`` block of the README's CPU-only section."""
    start = text.find(SECTION)
    if start < 0:
        msg = f"the README has no section {SECTION!r}"
        raise ValueError(msg)
    match = re.search(r"```toml\n(.*?)```", text[start:], re.S)
    if match is None:
        msg = f"the README's section {SECTION!r} has no toml block"
        raise ValueError(msg)
    return match.group(1)


def project_file(snippet: str) -> str:
    """A ``pyproject.toml`` that depends on torch, with the README's lines appended."""
    head = (
        "[project]\n"
        'name = "torch-cpu-check"\n'
        'version = "0.0.0"\n'
        'requires-python = ">=3.11"\n'
        'dependencies = ["torch"]\n\n'
    )
    text = head + snippet
    data = tomllib.loads(text)  # the README's lines must be valid TOML
    urls = [index["url"] for index in data["tool"]["uv"]["index"]]
    if INDEX_URL not in urls:
        msg = f"the README's lines name no index {INDEX_URL} (they name {urls})"
        raise ValueError(msg)
    return text


def reachable(url: str, timeout_s: float = 15.0) -> str | None:
    """None when ``url`` answers; otherwise why not."""
    try:
        with urllib.request.urlopen(url + "/torch/", timeout=timeout_s):  # https
            return None
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def check(folder: Path) -> list[str]:
    """Sync the project in ``folder``; return the problems found (empty when it passes)."""
    uv = shutil.which("uv")
    if uv is None:
        return ["uv is not on PATH; install it with `pip install uv`"]
    sync = subprocess.run(
        [uv, "sync", "--no-workspace", "--python", sys.executable],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    if sync.returncode != 0:
        return [f"uv sync failed:\n{sync.stderr.strip()}"]
    probe = subprocess.run(
        [uv, "run", "--no-sync", "python", "-c", _PROBE],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return [f"torch does not import:\n{probe.stderr.strip()}"]
    found = json.loads(probe.stdout)
    print(f"torch-cpu: torch {found['version']}, torch.version.cuda = {found['cuda']}")
    problems = []
    if found["cuda"] is not None:
        problems.append(f"torch was built with CUDA {found['cuda']}: not the CPU index's")
    if found["nvidia"]:
        problems.append(f"CUDA libraries were installed: {', '.join(found['nvidia'])}")
    if found["sum"] != 3.0:
        problems.append(f"torch computes torch.ones(3).sum() = {found['sum']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run the check; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the project here and keep it")
    parser.add_argument("--require", action="store_true", help="fail instead of skipping")
    args = parser.parse_args(argv)
    try:
        text = project_file(readme_snippet(README.read_text(encoding="utf-8")))
    except (ValueError, KeyError, tomllib.TOMLDecodeError) as exc:
        print(f"torch-cpu: FAILED: {exc}", file=sys.stderr)
        return 1
    why = None
    if not sys.platform.startswith("linux"):
        why = f"the CPU index is for Linux; {sys.platform} keeps PyPI's torch"
    elif (reason := reachable(INDEX_URL)) is not None:
        why = f"{INDEX_URL} cannot be reached from this machine ({reason})"
    if why is not None:
        print(f"torch-cpu: {'FAILED' if args.require else 'skipped'}: {why}")
        return 1 if args.require else 0
    with tempfile.TemporaryDirectory(prefix="torch-cpu-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "pyproject.toml").write_text(text, encoding="utf-8")
        problems = check(folder)
    for problem in problems:
        print(f"torch-cpu: FAILED: {problem}", file=sys.stderr)
    if not problems:
        print("torch-cpu: ok: CPU-only torch from the PyTorch index, no nvidia-* package")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
