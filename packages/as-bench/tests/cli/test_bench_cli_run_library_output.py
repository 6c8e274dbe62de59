"""``as-bench run`` keeps the libraries' stderr (C++ included) off the terminal, in its log.

A "noisy" backend (eager torch that writes a glog line to descriptor 2 from C while it
prepares, as TensorFlow does when litert-torch converts) stands in for the real LiteRT
conversion, which takes many seconds.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import as_logging
from as_bench.backends import _REGISTRY
from as_bench.cli import _quiet, main

pytest.importorskip("torch", reason="the noisy backend is eager torch")

FAST = ["--max-time", "0.05", "--no-check", "--no-accuracy"]
NOISE = "noisy.cc:42] converted in C++, printed on stderr"
PY_NOISE = "a third-party Python handler bound to sys.stderr"

_NOISY = f"""
import ctypes
import logging

from as_bench.backends.torch_eager import TorchEagerBackend


class NoisyBackend(TorchEagerBackend):
    name = "noisy"

    def prepare(self, workload, device, batch_size, workdir):
        # As torch does on import: a handler of its own, bound to the sys.stderr of now.
        third_party = logging.getLogger("third_party_{NOISE[:5]}")
        if not third_party.handlers:
            third_party.addHandler(logging.StreamHandler())
            third_party.propagate = False
        third_party.warning("{PY_NOISE}")
        libc = ctypes.CDLL(None)
        stderr = ctypes.c_void_p.in_dll(libc, "stderr")
        libc.fprintf(stderr, b"I0000 00:00:1796414001.291150    5974 {NOISE}\\n")
        libc.fflush(stderr)
        if batch_size == 13:
            raise RuntimeError("the conversion failed")
        return super().prepare(workload, device, batch_size, workdir)
"""


@pytest.fixture
def noisy(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Register the noisy backend; yield the folder that holds its module."""
    folder = tmp_path_factory.mktemp("noisy-backend")
    module = f"cli_noisy_{folder.name.replace('-', '_')}"
    (folder / f"{module}.py").write_text(_NOISY)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(_REGISTRY, "noisy", f"{module}:NoisyBackend")
    for name in list(os.environ):
        if name.upper().startswith("AS_BENCH__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AS_BENCH__MEASURE__MIN_SAMPLES", "3")
    yield folder
    as_logging.reset()  # the CLI configures logging, as an application does; undo it


@pytest.fixture
def logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "logs"
    monkeypatch.setattr(_quiet, "log_dir", lambda: folder)
    return folder


def _main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    return code if isinstance(code, int) else 1


def _logged(folder: Path) -> list[str]:
    lines = (folder / _quiet.LOG_FILENAME).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["message"] for line in lines]


def test_cpp_stderr_goes_to_the_log_file_not_the_terminal(
    noisy: Path, logs: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "-w", "mlp", "-b", "noisy", "-B", "1", *FAST, "-o", str(tmp_path / "r")]
    assert _main(argv) == 0
    out, err = capfd.readouterr()
    assert NOISE not in out + err
    assert "ok mlp/noisy/cpu/bs1" in out
    log_file = logs / _quiet.LOG_FILENAME
    assert f"1 line(s) of library output (TensorFlow, torch, ...) kept in {log_file}" in err
    assert any(NOISE in message for message in _logged(logs))


def test_json_progress_still_reaches_stderr(
    noisy: Path, logs: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "-w", "mlp", "-b", "noisy", "-B", "1", *FAST, "--json"]
    assert _main([*argv, "-o", str(tmp_path / "r")]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out)["outcomes"][0]["status"] == "ok"
    assert "ok mlp/noisy/cpu/bs1" in err
    assert NOISE not in out + err


def test_a_failing_backend_logs_its_output_and_the_failure_is_shown(
    noisy: Path, logs: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "-w", "mlp", "-b", "noisy", "-B", "13", *FAST, "-o", str(tmp_path / "r")]
    assert _main(argv) == 1
    out, err = capfd.readouterr()
    assert "the conversion failed" in out  # the failure line and the problem line
    assert NOISE not in out + err
    assert any(NOISE in message for message in _logged(logs))


def test_debug_lets_the_output_through(
    noisy: Path, logs: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["--debug", "run", "-w", "mlp", "-b", "noisy", "-B", "1", *FAST]
    assert _main([*argv, "-o", str(tmp_path / "r")]) == 0
    assert NOISE in capfd.readouterr().err
    assert not logs.exists()


def _run_on_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on a pseudo-terminal; its exit code and output."""
    main_fd, child_fd = pty.openpty()
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(main_fd, 65536)
            except OSError:  # EIO: the child side is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            argv, stdout=child_fd, stderr=child_fd, env=env, timeout=300, check=False
        )
    finally:
        os.close(child_fd)
        reader.join(timeout=30)
        os.close(main_fd)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return done.returncode, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # colours, cursor


@pytest.mark.slow  # a fresh interpreter imports torch
@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_on_a_real_terminal_no_library_line_shows(noisy: Path, tmp_path: Path) -> None:
    # On a terminal the progress bar is live (rich redirects sys.stdout while it runs), as
    # a user sees it; the log goes to the cache folder named by AS_BENCH_CACHE_DIR.
    cache = tmp_path / "cache"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(noisy)!r})
        from as_bench.backends import _REGISTRY
        from as_bench.cli import main
        _REGISTRY["noisy"] = {_REGISTRY["noisy"]!r}
        main(sys.argv[1:])
        """
    )
    argv = ["run", "-w", "mlp", "-b", "noisy", "-B", "1", *FAST, "-o", str(tmp_path / "r")]
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AS_BENCH__")}
    env.update(AS_BENCH_CACHE_DIR=str(cache), AS_BENCH__MEASURE__MIN_SAMPLES="3")
    env.update(COLUMNS="200", TERM="xterm")
    code, shown = _run_on_a_terminal([sys.executable, "-c", script, *argv], env)
    assert code == 0, shown
    assert "ok mlp/noisy/cpu/bs1" in shown
    assert NOISE not in shown
    assert PY_NOISE not in shown
    log_file = cache / "logs" / _quiet.LOG_FILENAME
    assert "kept in" in shown
    logged = _logged(log_file.parent)
    assert any(NOISE in message for message in logged)
    assert any(PY_NOISE in message for message in logged)
