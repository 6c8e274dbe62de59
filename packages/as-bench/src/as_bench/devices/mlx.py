"""MLX (Apple's array framework; ``mlx[cpu]`` on Linux): lazy arrays evaluated in the timer.

An MLX call returns a lazy graph, so a timer around the bare call measures graph
building. The call loop therefore evaluates every call's outputs (``mx.eval(out)``, which
takes arrays and nested lists, tuples and dicts of them, and ignores other values), and
each latency sample ends with ``mx.synchronize()`` so that asynchronously evaluated work
is included too. MLX has no event timer: latency is its only series. Memory:
``mx.reset_peak_memory`` / ``mx.get_peak_memory`` (``mx.metal.*`` on older mlx);
the budget is Metal's recommended working set where there is one, else
``mx.get_memory_limit()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar

from as_bench.devices._base import CallLoop, Device, DeviceKind, make_call_loop
from as_bench.exceptions import DeviceUnavailableError, MissingExtraError
from as_bench.measurement import TimerKind
from as_core import install_hint
from as_core.extras import is_installed, require

__all__ = ["MlxDevice"]

MLX_MISSING = (
    'mlx is not installed (it comes with the "mlx" extra: '
    f"{install_hint(MissingExtraError.package, 'mlx')})"
)


def _mlx_function(mx: ModuleType, name: str) -> Any:
    """``mx.<name>``, or ``mx.metal.<name>`` on mlx releases that had it only there."""
    fn = getattr(mx, name, None)
    if fn is None:
        metal = getattr(mx, "metal", None)
        fn = getattr(metal, name, None)
    return fn


class MlxDevice(Device):
    """MLX's default device (the GPU on Apple Silicon, the CPU with ``mlx[cpu]``).

    Raises:
        DeviceUnavailableError: mlx is missing or does not import.
    """

    kind: ClassVar[DeviceKind] = "mlx"
    asynchronous: ClassVar[bool] = True
    latency_timer: ClassVar[TimerKind] = "mlx_eval_clock"
    latency_label: ClassVar[str] = "latency (mx.eval + mx.synchronize, wall clock)"
    extra: ClassVar[str | None] = "mlx"

    def __init__(self) -> None:
        """Import mlx.core."""
        reason = self.unavailable_reason()
        if reason is not None:
            msg = f"mlx is not available: {reason}"
            raise DeviceUnavailableError(msg)
        self._mx = require("mlx.core", "mlx", error=MissingExtraError)
        self._sync = getattr(self._mx, "synchronize", None)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """``None`` when ``mlx.core`` imports; else why not."""
        if not is_installed("mlx"):
            return MLX_MISSING
        try:
            require("mlx.core", "mlx", error=MissingExtraError)
        except ImportError as exc:
            return f"mlx.core failed to import: {exc}"
        return None

    def synchronize(self) -> None:
        """``mx.synchronize()`` where mlx has it (``mx.eval`` already blocks)."""
        if self._sync is not None:
            self._sync()

    def make_call_loop(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> CallLoop:
        """Calls whose outputs are evaluated (``mx.eval``) inside the loop."""
        return make_call_loop(fn, args, kwargs, finish=self._mx.eval)

    def reset_peak_memory(self) -> None:
        """``mx.reset_peak_memory()``."""
        reset = _mlx_function(self._mx, "reset_peak_memory")
        if reset is not None:
            reset()

    def device_memory(self) -> dict[str, int | None]:
        """MLX's peak memory since the reset and its budget."""
        peak = _mlx_function(self._mx, "get_peak_memory")
        return {
            "device_peak_allocated_bytes": int(peak()) if peak is not None else None,
            "device_peak_reserved_bytes": None,
            "device_budget_bytes": self._budget(),
        }

    def _budget(self) -> int | None:
        info = self._device_info()
        recommended = info.get("max_recommended_working_set_size")
        if isinstance(recommended, int) and recommended > 0:
            return recommended
        limit = getattr(self._mx, "get_memory_limit", None)
        return int(limit()) if limit is not None else None

    def _device_info(self) -> dict[str, Any]:
        info = _mlx_function(self._mx, "device_info")
        if info is None:
            return {}
        try:
            return dict(info())
        except RuntimeError:  # no device to describe
            return {}

    def describe(self) -> dict[str, Any]:
        """The mlx version, default device and ``mx.device_info()``."""
        mx = self._mx
        info = {
            k: v if isinstance(v, int | float | str) else str(v)
            for k, v in self._device_info().items()
        }
        return {
            "kind": "mlx",
            "name": str(info.get("device_name", mx.default_device())),
            "default_device": str(mx.default_device()),
            "mlx": str(getattr(mx, "__version__", "unknown")),
            **{f"info_{k}": v for k, v in info.items()},
        }
