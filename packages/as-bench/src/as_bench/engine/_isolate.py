"""Process isolation: one measurement in a fresh spawned process, returned as JSON.

The parent pickles the function, its arguments and ``setup`` (a clear
:class:`~as_bench.exceptions.MeasurementError` if they cannot be), sets the thread
environment variables for the child when ``options.threads`` is given, and starts a
``multiprocessing`` *spawn* child: a new interpreter that shares nothing with the caller
(no imported modules, no allocator state, no warmed caches). The child measures in
process and sends back ``Measurement.model_dump_json()`` over a pipe, with
``isolated=True`` and the host peak taken from the child's own ``getrusage`` (its
lifetime high-water mark; ``ru_maxrss`` is in KiB on Linux, bytes on macOS). An
exception in the child comes back as its traceback text; a child that dies without
answering gives its exit code (or signal).

The usual ``multiprocessing`` rule holds: a script that calls ``measure(...,
isolate=True)`` at import time must guard it with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from as_bench.devices import Device, get_device
from as_bench.engine._measure import describe_callable, run_measurement
from as_bench.engine._threads import child_thread_env
from as_bench.engine.options import MeasureOptions
from as_bench.exceptions import DeviceUnavailableError, MeasurementError
from as_bench.measurement import Measurement

__all__ = ["child_result", "run_isolated", "rusage_peak_rss_bytes"]

# os.environ is process-wide: two threads starting children with different thread
# settings must not interleave.
_ENV_LOCK = threading.Lock()
_JOIN_AFTER_ANSWER_S = 30.0


def rusage_peak_rss_bytes() -> int | None:
    """This process's peak RSS from ``getrusage`` in bytes (``None`` where unavailable)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024


def child_result(result: Measurement) -> Measurement:
    """``result`` as a spawned child reports it: isolated, with the child's own peak RSS."""
    peak = rusage_peak_rss_bytes()
    memory = result.memory
    if peak is not None:
        memory = memory.model_copy(update={"host_peak_rss_bytes": peak})
    return result.model_copy(update={"isolated": True, "memory": memory})


def _child_main(conn: Connection, payload: bytes, device: str, options_json: str) -> None:
    """Entry point of the spawned child: measure, answer over ``conn``, exit."""
    try:
        try:
            fn, args, kwargs, setup = pickle.loads(payload)
        except Exception as exc:
            msg = (
                f"the isolated child could not load the function ({type(exc).__name__}: "
                f"{exc}); it must be importable by its module name in a fresh process: "
                "define it at module level in an importable module"
            )
            raise MeasurementError(msg) from exc
        options = MeasureOptions.model_validate_json(options_json)
        result = run_measurement(
            fn,
            args,
            kwargs,
            get_device(device),
            options,
            setup,
            env_threads_applied=options.threads is not None,
        )
        conn.send(("ok", child_result(result).model_dump_json()))
    except BaseException as exc:
        conn.send(("error", type(exc).__name__, str(exc), traceback.format_exc()))
    finally:
        conn.close()


def _check_picklable(
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    setup: Callable[[], Any] | None,
) -> bytes:
    try:
        return pickle.dumps((fn, tuple(args), dict(kwargs), setup), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        msg = (
            f"isolate=True runs {describe_callable(fn)} in a fresh process, so the function, "
            f"its arguments and setup must be picklable, and they are not "
            f"({type(exc).__name__}: {exc}). Define the function at module level in an "
            "importable module (not a lambda, a nested function or a bound method of a "
            "local object), or measure with isolate=False"
        )
        raise MeasurementError(msg) from exc


def _exit_text(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _receive(conn: Connection, process: Any, timeout: float | None) -> tuple[Any, ...] | None:
    """The child's answer; ``None`` if it died without one. Kills it on timeout."""
    if not conn.poll(timeout):
        process.kill()
        process.join()
        msg = f"the isolated measurement timed out after {timeout:g} s; the child was killed"
        raise MeasurementError(msg)
    try:
        answer: tuple[Any, ...] = conn.recv()
    except (EOFError, OSError):
        return None
    return answer


def run_isolated(
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    device: str | Device,
    options: MeasureOptions,
    setup: Callable[[], Any] | None = None,
) -> Measurement:
    """Measure in a fresh spawned process (see the module docstring).

    Raises:
        MeasurementError: Not picklable; the device has a clock of its own (the child could
            not use it); the child raised, crashed or timed out.
        DeviceUnavailableError: The device cannot be used (checked here first).
    """
    payload = _check_picklable(fn, args, kwargs, setup)
    chosen = get_device(device)  # fail here, early, on a bad or missing device
    if not chosen.has_default_clock:
        msg = (
            f"isolate=True recreates the device from its name ({chosen.name!r}) in a fresh "
            f"process, so {chosen!r}'s own clock cannot go with it: measure a device with "
            "another clock (a fake in tests) with isolate=False"
        )
        raise MeasurementError(msg)
    device_name = chosen.name
    child_options = options.model_copy(update={"isolate": False}).model_dump_json()
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_child_main,
        args=(sender, payload, device_name, child_options),
        name="as-bench-isolated-measure",
    )
    with _ENV_LOCK, child_thread_env(options.threads):
        process.start()
    sender.close()  # the child holds the only writer: its death means EOF here
    try:
        answer = _receive(receiver, process, options.isolate_timeout_s)
    finally:
        receiver.close()
    process.join(_JOIN_AFTER_ANSWER_S)
    if process.is_alive():  # pragma: no cover - answered but hangs on exit
        process.kill()
        process.join()
    if answer is None:
        msg = (
            f"the isolated child measuring {describe_callable(fn)} {_exit_text(process.exitcode)} "
            "before returning a result (its stderr, above, may say why)"
        )
        raise MeasurementError(msg)
    if answer[0] == "ok":
        return Measurement.model_validate_json(answer[1])
    _, type_name, text, child_traceback = answer
    if type_name in {"DeviceUnavailableError", "InvalidDeviceSpecError"}:
        raise DeviceUnavailableError(f"in the isolated child: {text}")
    msg = f"in the isolated child: {text}\n\nchild traceback:\n{child_traceback}"
    raise MeasurementError(msg)
