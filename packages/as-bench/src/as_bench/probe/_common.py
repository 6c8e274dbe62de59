"""Facts every platform has: interpreter, libraries, threads, memory, cores; running tools.

Nothing here imports a heavy library: versions come from package metadata, and torch's
thread counts are read only when the caller has imported torch already.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Sequence

import psutil

from as_bench._version import __version__
from as_bench.exceptions import ProbeError
from as_bench.probe._records import MemoryInfo, PythonInfo

__all__ = [
    "LIBRARIES",
    "THREAD_ENV_VARS",
    "cpu_counts",
    "library_versions",
    "memory_info",
    "python_info",
    "run_command",
    "thread_settings",
]

log = logging.getLogger(__name__)

# Distribution names (as pip knows them) of the libraries whose versions decide results.
LIBRARIES: tuple[str, ...] = (
    "as-bench",
    "torch",
    "onnxruntime",
    "coremltools",
    "ai-edge-litert",
    "litert-torch",
    "mlx",
    "numpy",
)

# The thread-count variables the BLAS and OpenMP runtimes under torch/numpy/ONNX read.
THREAD_ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)


def run_command(args: Sequence[str], *, timeout: float, check: bool = True) -> str:
    """Run a tool and return its standard output.

    Args:
        args: The command and its arguments.
        timeout: Seconds to wait before giving up.
        check: Whether a non-zero exit status is an error. ``False`` keeps the output of
            a tool that fails but still prints (``sysctl`` exits 1 when one of several
            names is unknown, after printing the others).

    Raises:
        ProbeError: The tool is missing, timed out, or failed (with ``check``, or
            without output).
    """
    command = " ".join(args)
    try:
        done = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            # A locale other than English would translate pmset's notes.
            env={**os.environ, "LC_ALL": "C"},
        )
    except FileNotFoundError as exc:
        raise ProbeError(f"`{command}`: {args[0]} is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(f"`{command}` did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise ProbeError(f"`{command}` could not be started: {exc}") from exc
    if done.returncode != 0 and (check or not done.stdout.strip()):
        # Some tools (nvidia-smi) print their error on stdout.
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        detail = said[-1] if said else "no output"
        raise ProbeError(f"`{command}` exited with status {done.returncode}: {detail}")
    if done.returncode != 0:
        log.debug("`%s` exited with status %d; using its output", command, done.returncode)
    return done.stdout


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str | None]:
    """Installed versions of ``names`` from package metadata (nothing is imported).

    Args:
        names: Distribution names, e.g. ``"ai-edge-litert"``.

    Returns:
        Each name mapped to its version, or ``None`` when it is not installed.
    """
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    if "as-bench" in versions and versions["as-bench"] is None:
        # Run from a source tree without installed metadata: the version is still known.
        versions["as-bench"] = __version__
    return versions


def _env_threads(value: str | None) -> int | str | None:
    if value is None:
        return None
    stripped = value.strip()
    return int(stripped) if stripped.isdigit() else value


def thread_settings() -> dict[str, int | str | None]:
    """Thread settings in force: the environment variables, and torch's when imported.

    torch's counts are read only when the caller has imported torch already, so that the
    probe never pays for (or changes the process by) importing it.

    Returns:
        ``OMP_NUM_THREADS`` ... ``OPENBLAS_NUM_THREADS`` (an int when numeric, the raw
        string otherwise, ``None`` when unset), plus ``torch_intra_op`` and
        ``torch_inter_op`` when torch is in ``sys.modules``.
    """
    threads: dict[str, int | str | None] = {
        name: _env_threads(os.environ.get(name)) for name in THREAD_ENV_VARS
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            threads["torch_intra_op"] = int(torch.get_num_threads())
            threads["torch_inter_op"] = int(torch.get_num_interop_threads())
        except (AttributeError, RuntimeError) as exc:  # a half-imported or stub torch
            log.debug("torch thread counts unavailable: %s", exc)
    return threads


def python_info() -> PythonInfo:
    """The running interpreter."""
    return PythonInfo(
        version=platform.python_version(),
        implementation=platform.python_implementation(),
        executable=sys.executable,
    )


def memory_info() -> MemoryInfo:
    """Total and available main memory (psutil)."""
    vm = psutil.virtual_memory()
    return MemoryInfo(total_bytes=int(vm.total), available_bytes=int(vm.available))


def cpu_counts() -> tuple[int | None, int | None]:
    """Physical and logical CPU counts; ``None`` where the OS does not tell."""
    physical = psutil.cpu_count(logical=False)
    logical = psutil.cpu_count(logical=True) or os.cpu_count()
    return (
        int(physical) if physical else None,
        int(logical) if logical else None,
    )
