"""The training monitor: metrics, failure detection and checkpoints for a plain PyTorch loop."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Protocol

from as_optimize.exceptions import (
    CheckpointWriteError,
    MonitorInputError,
    NoCheckpointError,
)
from as_optimize.training._checkpoint import CheckpointInfo, CheckpointStore, LoadedCheckpoint
from as_optimize.training._detectors import (
    DivergenceDetector,
    ExplodingGradientDetector,
    Finding,
    LeakDetector,
    SlowdownDetector,
    StallDetector,
    nonfinite_finding,
)
from as_optimize.training._events import Action, Decision, Event, strongest
from as_optimize.training._metrics import MetricsWriter, StepValues, step_record
from as_optimize.training._progress import ProgressReporter, choose_mode
from as_optimize.training._rss import RssReader
from as_optimize.training._sampler import ResumableSampler
from as_optimize.training._settings import MonitorSettings
from as_optimize.training._state import capture_rng, restore_rng
from as_optimize.training._tensorboard import TensorBoardSink, load_tensorboard
from as_optimize.training._torch import load_torch

if TYPE_CHECKING:
    import torch

    from as_bench.devices import Device
else:
    torch = load_torch()

__all__ = ["Monitor", "Stateful"]

logger = logging.getLogger("as_optimize.training")

#: Keys of a step or evaluation record that evaluation metrics cannot take.
RESERVED = frozenset({"kind", "step", "epoch", "time_s"})

# A step without events returns one of these (Decision is frozen): no allocation per step.
_DECISIONS: dict[str, Decision] = {a: Decision(a) for a in ("continue", "stop", "rollback")}


class Sink(Protocol):
    """Another destination of the monitor's records and events (TensorBoard)."""

    def record(self, record: Mapping[str, Any]) -> None:
        """Take a step or evaluation record (``record["kind"]`` says which)."""
        ...

    def event(self, event: Event) -> None:
        """Take an event."""
        ...

    def flush(self) -> None:
        """Hand what is pending to the operating system."""
        ...

    def close(self) -> None:
        """Flush and close; safe to call twice."""
        ...


class Stateful(Protocol):
    """Anything with ``state_dict()`` and ``load_state_dict()`` (an EMA model, a scaler)."""

    def state_dict(self) -> Mapping[str, Any]:
        """The object's state."""
        ...

    def load_state_dict(self, state_dict: dict[str, Any], /) -> Any:
        """Restore :meth:`state_dict`'s output."""
        ...


class Monitor:
    """Watches a plain PyTorch training loop; see the package README for a full loop.

    ::

        sampler = ResumableSampler(len(dataset), seed=0)
        loader = DataLoader(dataset, batch_size=64, sampler=sampler)
        with Monitor("runs/r1", model=model, optimizer=opt, sampler=sampler) as monitor:
            for epoch in monitor.epochs(10):          # resumes where the run stopped
                for x, y in loader:
                    opt.zero_grad()
                    loss = loss_fn(model(x), y)
                    loss.backward()
                    opt.step()
                    if monitor.step(loss=loss, batch_size=len(x)).interrupt:
                        break                         # a stop, or a rollback to redo
                monitor.evaluate({"val_loss": validate(model)})

    Call :meth:`step` once per optimizer step, after ``optimizer.step()`` and before the
    gradients are zeroed (they give the gradient norm), or pass ``grad_norm=`` (the value
    ``clip_grad_norm_`` returns). Entering the block resumes from the newest complete
    checkpoint of ``run_dir`` (or writes one at step 0); leaving it normally writes a
    final checkpoint.

    Args:
        run_dir: The run's folder: ``metrics.jsonl``, ``events.jsonl``, ``checkpoints/``.
        model: The model being trained.
        optimizer: Its optimizer; needed for learning rates, rollback and exact resume.
        scheduler: A learning-rate scheduler, saved and restored with the rest.
        scaler: A ``torch.amp.GradScaler``, saved and restored with the rest.
        sampler: A :class:`ResumableSampler` feeding the loop, for the same data order
            on resume; then ``batch_size`` is required at each step.
        stateful: More objects to save and restore, by name (an EMA model, ...).
        settings: Detectors, policies, checkpoints, metrics file and progress.
        device: Where memory is read (``"cuda:0"``, an ``as_bench`` Device); by default
            the device of the model's first parameter.
        total_steps: The number of steps of the whole run, for the ETA; by default
            estimated from the sampler and :meth:`epochs`' count.
        clock: A monotonic clock in integer nanoseconds (``time.perf_counter_ns``).
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Stateful | None = None,
        scaler: Stateful | None = None,
        sampler: ResumableSampler | None = None,
        stateful: Mapping[str, Stateful] | None = None,
        settings: MonitorSettings | None = None,
        device: str | Device | None = None,
        total_steps: int | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        """Describe the run; files are opened when the ``with`` block is entered."""
        if not isinstance(model, torch.nn.Module):
            raise MonitorInputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if sampler is not None and not isinstance(sampler, ResumableSampler):
            raise MonitorInputError(
                f"sampler must be an as_optimize.training.ResumableSampler, got "
                f"{type(sampler).__name__}"
            )
        self.run_dir = Path(run_dir)
        self.settings = settings or MonitorSettings()
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.sampler = sampler
        self.stateful = dict(stateful or {})
        self.clock: Callable[[], int] = clock or time.perf_counter_ns
        self.total_steps = total_steps
        s = self.settings
        self.store = CheckpointStore(
            self.run_dir / "checkpoints",
            keep_last=s.checkpoint.keep_last,
            keep_best=s.checkpoint.keep_best,
            best_metric=s.best_metric,
            best_mode=s.checkpoint.best_mode,
        )
        self.events: list[Event] = []
        self.global_step = 0
        self.epoch = 0
        self.samples_in_epoch = 0
        self.last_metrics: dict[str, float] = {}
        self.resumed_from: CheckpointInfo | None = None
        self.last_checkpoint: CheckpointInfo | None = None
        self.rollbacks = 0
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._uniform_params = (
            hasattr(torch, "_foreach_norm")
            and len({(p.device, p.dtype) for p in self._params}) == 1
            and not any(p.is_sparse for p in self._params)
        )
        self._params_on_cpu = all(p.device.type == "cpu" for p in self._params)
        self._device = _resolve_device(model, device)
        self._rss: RssReader | None = None
        self._memory_every = s.metrics.memory_every_steps
        self._checkpoint_every = s.checkpoint.every_steps
        self._flush_every_ns = int(s.metrics.flush_every_s * 1e9)
        self._flushed_at = 0
        # Where records and events go besides the files (TensorBoard, when enabled).
        self._sinks: list[Sink] = []
        self._divergence = DivergenceDetector(s.divergence)
        self._exploding = ExplodingGradientDetector(s.exploding_gradient)
        self._stall = StallDetector(s.stall)
        self._slowdown = SlowdownDetector(s.slowdown)
        self._host_leak = LeakDetector(s.leak, "host RSS")
        self._device_leak = LeakDetector(s.leak, "device memory")
        self._writer: MetricsWriter | None = None
        self._events_file: IO[str] | None = None
        self._progress = ProgressReporter(
            choose_mode(s.progress.mode), every_steps=s.progress.every_steps, clock=self.clock
        )
        self._progress_on = self._progress.mode != "off"
        if s.tensorboard.enabled:
            load_tensorboard()  # a missing extra is said now, not when the run opens
        self._t0 = 0
        self._last_mark = 0
        self._stopped = False
        self._rolled_back = False
        self._epoch_count: int | None = None
        self._saved_at_step: int | None = None
        self._new_events: list[Event] = []
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[CheckpointInfo] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Monitor:
        """Open the run: files, resume from the newest checkpoint (or write step 0)."""
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the run; a final checkpoint only when the block ended normally."""
        self.close(final_checkpoint=exc_type is None)

    def open(self) -> None:
        """What entering the ``with`` block does (for code that cannot use one)."""
        s = self.settings
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._t0 = self._flushed_at = self.clock()
        self._writer = MetricsWriter(
            self.run_dir / s.metrics.filename,
            max_bytes=s.metrics.max_bytes,
            backup_count=s.metrics.backup_count,
        )
        self._events_file = (self.run_dir / "events.jsonl").open("a", encoding="utf-8")
        if s.tensorboard.enabled:
            self._sinks.append(
                TensorBoardSink(
                    self.run_dir / s.tensorboard.log_dir,
                    every_steps=s.tensorboard.every_steps,
                    flush_every_s=s.metrics.flush_every_s,
                )
            )
        removed = self.store.clean_temporary()
        if removed:
            logger.info(
                "removed %d unfinished checkpoint folder(s) left by an interrupted run: %s",
                len(removed),
                ", ".join(p.name for p in removed),
            )
        if s.checkpoint.resume:
            try:
                loaded = self.store.load_latest()
            except NoCheckpointError:
                loaded = None
            if loaded is not None:
                self._apply(loaded)
                self.resumed_from = loaded.info
                self.last_checkpoint = loaded.info
                self._resume_record()
                self._emit(
                    "resume",
                    f"resumed from checkpoint {loaded.info.path.name} at step "
                    f"{self.global_step}, epoch {self.epoch}",
                    figures={"checkpoint": loaded.info.path.name, "step": self.global_step},
                )
        if self.resumed_from is None and s.checkpoint.at_start:
            self.save_checkpoint()
        self._progress.start(self.global_step, self.total_steps)
        self._last_mark = self.clock()

    def close(self, *, final_checkpoint: bool = True) -> None:
        """Write the final checkpoint (unless stopped or told not to) and close the files."""
        try:
            if final_checkpoint:
                self._finish_pending()
            else:
                self._finish_pending_quietly()
            if (
                final_checkpoint
                and self._writer is not None
                and not self._stopped
                and self._saved_at_step != self.global_step
            ):
                self.save_checkpoint()
        finally:
            self._finish_pending_quietly()
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            self._progress.finish(self.global_step)
            self._progress.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            for sink in self._sinks:
                sink.close()
            self._sinks = []
            if self._rss is not None:
                self._rss.close()
                self._rss = None
            if self._events_file is not None:
                self._events_file.close()
                self._events_file = None

    @property
    def stopped(self) -> bool:
        """Whether a detector (or :meth:`request_stop`) stopped the run."""
        return self._stopped

    def request_stop(self) -> None:
        """Stop the run as a ``stop`` policy would: :meth:`epochs` ends."""
        self._stopped = True

    def epochs(self, count: int) -> Iterator[int]:
        """The epochs still to run, from the resumed one on; ends early on a stop.

        Before each epoch the sampler is put at the epoch's first sample not yet
        consumed. After a rollback the restored epoch is yielded again, from the
        checkpoint's position.
        """
        self._epoch_count = count
        while not self._stopped and self.epoch < count:
            self._rolled_back = False
            if self.sampler is not None:
                self.sampler.set_position(self.epoch, self.samples_in_epoch)
            yield self.epoch
            if self.stopped:
                return
            if self._rolled_back:
                continue
            self.epoch += 1
            self.samples_in_epoch = 0

    # -- per step ----------------------------------------------------------------------

    def step(
        self,
        *,
        loss: float | torch.Tensor,
        batch_size: int | None = None,
        model: torch.nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        grad_norm: float | torch.Tensor | None = None,
    ) -> Decision:
        """Record one optimizer step, run the detectors, checkpoint when due.

        Args:
            loss: The step's loss (a number or a one-element tensor).
            batch_size: Samples in the step's batch: for samples/s and the data position.
            model: The model, if you like to pass it here too (it must be the monitor's).
            optimizer: Likewise for the optimizer.
            grad_norm: The gradients' global norm when you computed it already
                (``clip_grad_norm_``'s result); otherwise it is computed from ``.grad``.

        Returns:
            What to do: ``decision.interrupt`` means leave the batch loop.

        Raises:
            MonitorInputError: A value is not a number, or the objects are not the
                monitor's, or ``batch_size`` is missing while a sampler is attached.
            CheckpointWriteError: A due checkpoint could not be written (disk full);
                the previous one is intact.
        """
        # The hot path: about 30 us warm on the benchmark's CNN, 90 to 170 us right after
        # a training step (cold caches; README "Cost"); the rarer work (memory, findings,
        # checkpoints, flushes) sits behind cheap tests.
        writer = self._writer
        if writer is None:
            writer = self._require_open()
        now = self.clock()
        pending = self._pending
        if pending is not None and pending.done():
            self._finish_pending()
        step_time = (now - self._last_mark) / 1e9
        self.global_step = step = self.global_step + 1
        if model is not None or optimizer is not None:
            self._check_same(model, optimizer, step)
        loss_value = _scalar(loss, "loss", step)
        norm = self._grad_norm() if grad_norm is None else _scalar(grad_norm, "grad_norm", step)
        rate = self._count_samples(batch_size, step_time, step)
        if step % self._memory_every == 0 or step == 1:
            memory, findings = self._memory(step)
        else:
            memory, findings = None, []
        values = (
            step,
            self.epoch,
            (now - self._t0) / 1e9,
            loss_value,
            norm,
            self._lrs(),
            step_time,
            rate,
            memory,
        )
        writer.write_step(values)
        if self._sinks:
            self._to_sinks(step_record(values))
        step_findings = self._step_findings(loss_value, norm, step_time)
        if step_findings:
            findings[:0] = step_findings
        action: Action = self._handle(findings) if findings else "continue"
        if action == "rollback":
            action = self._rollback(step)
        self._routine(writer, values, now, checkpoint=action == "continue")
        if self._new_events:
            decision = Decision(action, tuple(self._new_events))
            self._new_events.clear()
        else:
            decision = _DECISIONS[action]
        self._last_mark = self.clock()
        return decision

    def _routine(
        self, writer: MetricsWriter, values: StepValues, now: int, *, checkpoint: bool
    ) -> None:
        """A step's checkpoint when due, the metrics file's flush, the progress."""
        step = values[0]
        every = self._checkpoint_every
        if checkpoint and every and step % every == 0:
            self._due_checkpoint()
        if now - self._flushed_at >= self._flush_every_ns:
            writer.flush()
            self._flushed_at = now
        if self._progress_on and self._progress.due(self.global_step, now):
            # After a rollback the count is the checkpoint's, the figures the failed step's.
            self._progress.show(self.global_step, step_record(values), now)

    def _require_open(self) -> MetricsWriter:
        if self._writer is None:
            raise MonitorInputError(
                "the monitor is not open: use it as `with Monitor(...) as monitor:` "
                "(or call open() first)"
            )
        return self._writer

    def _check_same(
        self, model: torch.nn.Module | None, optimizer: torch.optim.Optimizer | None, step: int
    ) -> None:
        if model is not None and model is not self.model:
            raise MonitorInputError(
                f"step {step}: model= is not the model this monitor was created with"
            )
        if optimizer is not None and optimizer is not self.optimizer:
            raise MonitorInputError(
                f"step {step}: optimizer= is not the optimizer this monitor was created with"
            )

    def _grad_norm(self) -> float | None:
        grads = [p.grad for p in self._params if p.grad is not None]
        if not grads:
            return None
        if self._uniform_params:
            # One device and dtype, dense: the norms of all gradients in one foreach call,
            # then one stack and one norm on the device, so a GPU is waited for once (the
            # .item()). On the CPU the per-tensor norms are summed in Python instead: a
            # stack and a norm cost more there than the few .item() calls (22 us against
            # 25 us on the benchmark CNN, and float64 sums that cannot overflow).
            norms = torch._foreach_norm(grads)
            if self._params_on_cpu:
                return math.sqrt(math.fsum(n.item() ** 2 for n in norms))
            return float(torch.linalg.vector_norm(torch.stack(norms)).item())
        return float(torch.nn.utils.get_total_norm(grads, 2.0).item())

    def _lrs(self) -> tuple[float | None, ...] | None:
        if self.optimizer is None:
            return None
        groups = self.optimizer.param_groups
        if len(groups) == 1:  # the common case, without a generator
            lr = groups[0].get("lr")
            return (lr if type(lr) is float else _lr(lr),)
        return tuple(_lr(group.get("lr")) for group in groups)

    def _count_samples(self, batch_size: int | None, step_time: float, step: int) -> float | None:
        if batch_size is None:
            if self.sampler is not None:
                raise MonitorInputError(
                    f"step {step}: batch_size= is required when a sampler is attached: the "
                    "monitor counts consumed samples to resume the data order exactly"
                )
            return None
        if type(batch_size) is not int or batch_size < 0:
            raise MonitorInputError(
                f"step {step}: batch_size must be an integer >= 0, got {batch_size!r}"
            )
        self.samples_in_epoch += batch_size
        if self.total_steps is None and self.sampler is not None and self._epoch_count:
            per_epoch = math.ceil(self.sampler.size / batch_size) if batch_size else 0
            if per_epoch:
                self.total_steps = per_epoch * self._epoch_count
                self._progress.set_total(self.total_steps)
        return batch_size / step_time if step_time > 0 else None

    def _memory(self, step: int) -> tuple[tuple[int | None, ...], list[Finding]]:
        if self._rss is None:
            self._rss = RssReader()
        rss = self._rss()
        allocated = reserved = None
        device = self._device
        if device is not None and device.kind != "cpu":
            try:
                if device.needs_memory_polling:
                    device.poll_memory()
                memory = device.device_memory()
                device.reset_peak_memory()
                allocated = memory.get("device_peak_allocated_bytes")
                reserved = memory.get("device_peak_reserved_bytes")
            except Exception as exc:  # memory is a nice-to-have: never break training
                logger.debug("device memory unreadable (%s); no longer read", exc)
                self._device = None
        found: list[Finding] = []
        if self.settings.leak.enabled:
            for detector, value in ((self._host_leak, rss), (self._device_leak, allocated)):
                finding = detector.observe(step, value)
                if finding is not None:
                    found.append(finding)
        return (rss, allocated, reserved), found

    def _step_findings(
        self, loss: float | None, grad: float | None, step_time: float
    ) -> list[Finding]:
        s = self.settings
        found: list[Finding] = []
        # x - x is 0.0 for every finite float, NaN for NaN and infinities.
        if s.nonfinite.enabled and not (
            (loss is None or loss - loss == 0.0) and (grad is None or grad - grad == 0.0)
        ):
            nonfinite = nonfinite_finding(loss, grad)
            if nonfinite is not None:
                found.append(nonfinite)
        if s.divergence.enabled:
            divergence = self._divergence.observe(loss)
            if divergence is not None:
                found.append(divergence)
        if s.exploding_gradient.enabled:
            exploding = self._exploding.observe(grad)
            if exploding is not None:
                found.append(exploding)
        if s.slowdown.enabled:
            slow = self._slowdown.observe(step_time)
            if slow is not None:
                slow.figures.update(_thermal_figures())
                found.append(slow)
        return found

    # -- evaluation --------------------------------------------------------------------

    def evaluate(self, metrics: Mapping[str, float | torch.Tensor]) -> Decision:
        """Record evaluation metrics at the current step and run the stall detector.

        Args:
            metrics: Name -> value (numbers or one-element tensors); the names ``kind``,
                ``step``, ``epoch`` and ``time_s`` are reserved.

        Returns:
            What to do (a stall may stop the run or roll it back).

        Raises:
            MonitorInputError: A name is reserved or not a string, or a value is not a
                number; nothing is recorded then.
        """
        writer = self._require_open()
        step = self.global_step
        values: dict[str, float] = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or name in RESERVED:
                raise MonitorInputError(
                    f"evaluation at step {step}: metric name {name!r} is reserved or not a "
                    f"string (reserved: {', '.join(sorted(RESERVED))})"
                )
            parsed = _scalar(value, f"metric {name!r}", step)
            if parsed is None:
                raise MonitorInputError(f"evaluation at step {step}: metric {name!r} is None")
            values[name] = parsed
        record = {
            "kind": "eval",
            "step": step,
            "epoch": self.epoch,
            "time_s": (self.clock() - self._t0) / 1e9,
            **values,
        }
        writer.write(record)
        if self._sinks:
            self._to_sinks(record)
        self.last_metrics.update(values)
        findings: list[Finding] = []
        if self.settings.stall.enabled:
            stall = self._stall.observe(values)
            if stall is not None:
                findings.append(stall)
        action = self._handle(findings, policy_of={"stall": self.settings.stall.policy})
        if action == "rollback":
            action = self._rollback(step + 1)
        decision = Decision(action, tuple(self._new_events))
        self._new_events.clear()
        self._last_mark = self.clock()
        return decision

    # -- policies ----------------------------------------------------------------------

    def _policy(self, kind: str) -> str:
        s = self.settings
        table = {
            "nonfinite": s.nonfinite.policy,
            "divergence": s.divergence.policy,
            "exploding_gradient": s.exploding_gradient.policy,
            "stall": s.stall.policy,
            "slowdown": s.slowdown.policy,
            "leak": s.leak.policy,
        }
        return table[kind]

    def _handle(
        self, findings: list[Finding], policy_of: Mapping[str, str] | None = None
    ) -> Action:
        actions: list[Action] = []
        for finding in findings:
            policy = (policy_of or {}).get(finding.kind) or self._policy(finding.kind)
            action: Action = "continue" if policy == "warn" else policy  # type: ignore[assignment]
            actions.append(action)
            self._emit(
                finding.kind,
                finding.message,
                policy=policy,
                action=action,
                figures=finding.figures,
                level=logging.WARNING,
            )
        action = strongest(actions)
        if action == "stop":
            self._stopped = True
        return action

    def _rollback(self, failed_step: int) -> Action:
        s = self.settings.rollback
        if self.rollbacks >= s.max_rollbacks:
            self._emit(
                "rollback",
                f"no rollback at step {failed_step}: the run already rolled back "
                f"{self.rollbacks} time(s), the limit (rollback.max_rollbacks); stopping",
                action="stop",
                figures={"rollbacks": self.rollbacks},
                level=logging.ERROR,
            )
            self._stopped = True
            return "stop"
        self._finish_pending()
        try:
            loaded = self.store.load_latest(before_step=failed_step)
        except NoCheckpointError as exc:
            self._emit(
                "rollback",
                f"no rollback at step {failed_step}: {exc}; stopping",
                action="stop",
                level=logging.ERROR,
            )
            self._stopped = True
            return "stop"
        count = self.rollbacks + 1
        self._apply(loaded)
        self.rollbacks = count
        lrs = self._scale_lr(s.lr_factor)
        self._resume_record()
        self._emit(
            "rollback",
            f"rolled back from step {failed_step} to checkpoint {loaded.info.path.name} "
            f"(step {self.global_step}); learning rate x{s.lr_factor:g} -> "
            f"{', '.join(f'{lr:.3g}' for lr in lrs) or 'no optimizer'}",
            action="rollback",
            figures={
                "from_step": failed_step,
                "to_step": self.global_step,
                "lr_factor": s.lr_factor,
                "lr": lrs[0] if lrs else None,
                "rollbacks": count,
            },
            level=logging.WARNING,
        )
        self._rolled_back = True
        return "rollback"

    def _scale_lr(self, factor: float) -> list[float]:
        lrs: list[float] = []
        if self.optimizer is not None:
            for group in self.optimizer.param_groups:
                for key in ("lr", "initial_lr"):
                    if isinstance(group.get(key), float | int):
                        group[key] = group[key] * factor
                lrs.append(float(group["lr"]))
        base = getattr(self.scheduler, "base_lrs", None)
        if isinstance(base, list):
            self.scheduler.base_lrs = [lr * factor for lr in base]  # type: ignore[union-attr]
        return lrs

    def _emit(
        self,
        kind: str,
        message: str,
        *,
        policy: str | None = None,
        action: Action = "continue",
        figures: Mapping[str, Any] | None = None,
        level: int = logging.INFO,
    ) -> None:
        event = Event(
            kind=kind,  # type: ignore[arg-type]
            step=self.global_step,
            epoch=self.epoch,
            message=message,
            policy=policy,
            action=action,
            figures=dict(figures or {}),
            time_s=(self.clock() - self._t0) / 1e9,
        )
        self.events.append(event)
        self._new_events.append(event)
        logger.log(
            level,
            "step %d: %s%s",
            event.step,
            message,
            f" [policy {policy}: {action}]" if policy else "",
            extra={"event": kind, "step": event.step, "figures": dict(event.figures)},
        )
        if self._events_file is not None:
            self._events_file.write(json.dumps(event.to_json()) + "\n")
            self._events_file.flush()
        if self._writer is not None:
            self._writer.flush()
        for sink in self._sinks:
            sink.event(event)
            sink.flush()

    def _resume_record(self) -> None:
        record = {"kind": "resume", "step": self.global_step}
        assert self._writer is not None
        self._writer.write(record)
        self._to_sinks(record)

    def _to_sinks(self, record: Mapping[str, Any]) -> None:
        for sink in self._sinks:
            sink.record(record)

    # -- checkpoints -------------------------------------------------------------------

    def save_checkpoint(self) -> CheckpointInfo:
        """Write a checkpoint of the current state now, and wait for it.

        The monitor writes the due ones itself (in the background, by default).

        Raises:
            CheckpointWriteError: The write failed (this one or a background one before
                it); the previous checkpoint is intact.
        """
        self._finish_pending()
        if self._writer is not None:
            self._writer.flush()
        try:
            info = self.store.save(
                step=self.global_step,
                epoch=self.epoch,
                model=self.model,
                state=self._state(),
                metrics=self.last_metrics,
            )
        except CheckpointWriteError as exc:
            self._failed(exc)
            raise
        self.last_checkpoint = info
        self._saved_at_step = self.global_step
        return info

    def _due_checkpoint(self) -> None:
        if not self.settings.checkpoint.background:
            self.save_checkpoint()
            return
        self._finish_pending()
        if self._writer is not None:
            self._writer.flush()
        snapshot = self.store.snapshot(
            step=self.global_step,
            epoch=self.epoch,
            model=self.model,
            state=self._state(),
            metrics=self.last_metrics,
        )
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="as-optimize-checkpoint")
        self._pending = self._executor.submit(self.store.write, snapshot)
        self._saved_at_step = self.global_step

    def _finish_pending(self) -> None:
        """Wait for the background write, if any; raise its error."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            self.last_checkpoint = pending.result()
        except CheckpointWriteError as exc:
            self._failed(exc)
            raise

    def _finish_pending_quietly(self) -> None:
        # Leaving on an exception: the background write is waited for, and its own
        # failure logged rather than raised over the exception that is propagating.
        try:
            self._finish_pending()
        except CheckpointWriteError:
            logger.debug("background checkpoint failed while closing", exc_info=True)

    def _failed(self, exc: CheckpointWriteError) -> None:
        self._emit(
            "checkpoint_failed",
            str(exc),
            figures={"errno": getattr(exc, "errno", None)},
            level=logging.ERROR,
        )

    def _state(self) -> dict[str, object]:
        device_types = {p.device.type for p in self._params} | {"cpu"}
        sampler = None
        if self.sampler is not None:
            sampler = self.sampler.state_dict() | {
                "epoch": self.epoch,
                "offset": self.samples_in_epoch,
            }
        return {
            "position": {
                "step": self.global_step,
                "epoch": self.epoch,
                "samples_in_epoch": self.samples_in_epoch,
            },
            "sampler": sampler,
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "stateful": {name: obj.state_dict() for name, obj in self.stateful.items()},
            "rng": capture_rng(device_types),
            "monitor": {
                "rollbacks": self.rollbacks,
                "last_metrics": dict(self.last_metrics),
                "divergence": self._divergence.state_dict(),
                "exploding_gradient": self._exploding.state_dict(),
                "stall": self._stall.state_dict(),
            },
        }

    def _apply(self, loaded: LoadedCheckpoint) -> None:
        state = loaded.state
        loaded.restore_model(self.model)
        for name, target in (
            ("optimizer", self.optimizer),
            ("scheduler", self.scheduler),
            ("scaler", self.scaler),
        ):
            saved = state.get(name)
            if target is not None and saved is not None:
                target.load_state_dict(saved)
            elif target is not None:
                logger.warning("checkpoint %s holds no %s state", loaded.info.path.name, name)
        saved_stateful = state.get("stateful") or {}
        for name, obj in self.stateful.items():
            if name in saved_stateful:
                obj.load_state_dict(saved_stateful[name])
            else:
                logger.warning("checkpoint %s holds no state for %r", loaded.info.path.name, name)
        position = state.get("position") or {}
        self.global_step = int(position.get("step", loaded.info.step))
        self.epoch = int(position.get("epoch", loaded.info.epoch))
        self.samples_in_epoch = int(position.get("samples_in_epoch", 0))
        monitor = state.get("monitor") or {}
        self.rollbacks = int(monitor.get("rollbacks", 0))
        self.last_metrics = {
            str(k): float(v) for k, v in (monitor.get("last_metrics") or {}).items()
        }
        self._divergence.load_state_dict(monitor.get("divergence") or {})
        self._exploding.load_state_dict(monitor.get("exploding_gradient") or {})
        self._stall.load_state_dict(monitor.get("stall") or {})
        self._saved_at_step = self.global_step
        rng = state.get("rng") or {}

        def restore() -> None:
            for note in restore_rng(rng):
                logger.warning("%s", note)

        if self.sampler is not None:
            saved_sampler = state.get("sampler")
            if saved_sampler is not None:
                self.sampler.load_state_dict(saved_sampler)
            self.sampler.set_position(self.epoch, self.samples_in_epoch)
            self.sampler.call_before_next_iteration(restore)
        else:
            restore()


def _lr(value: object) -> float | None:
    """A parameter group's learning rate as a float (it may be a tensor or an int)."""
    if isinstance(value, int | float | torch.Tensor) and not isinstance(value, bool):
        return float(value)
    return None


def _scalar(value: object, what: str, step: int) -> float | None:
    if type(value) is float:
        return value
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise MonitorInputError(
                f"step {step}: {what} must be a number or a one-element tensor, got a tensor "
                f"of shape {tuple(value.shape)}"
            )
        return float(value.item())
    if value is None:
        return None
    if isinstance(value, bool):
        raise MonitorInputError(f"step {step}: {what} must be a number, got a bool")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MonitorInputError(
            f"step {step}: {what} must be a number or a one-element tensor, got "
            f"{type(value).__name__} {value!r:.60}"
        ) from None


def _resolve_device(model: torch.nn.Module, device: str | Device | None) -> Device | None:
    from as_bench import DeviceUnavailableError
    from as_bench.devices import get_device

    if device is None:
        first = next(iter(model.parameters()), None)
        if first is None:
            return None
        kind = first.device.type
        if kind == "cuda":
            device = f"cuda:{first.device.index or 0}"
        elif kind in ("cpu", "mps"):
            device = kind
        else:
            return None
    try:
        return get_device(device)
    except DeviceUnavailableError as exc:
        logger.debug("no device memory readings: %s", exc)
        return None


def _thermal_figures() -> dict[str, str | int | None]:
    """The thermal state of macOS now (``pmset -g therm``), to tell throttling from contention."""
    platform: str = sys.platform
    if platform != "darwin":
        return {}
    from as_bench import ProbeError
    from as_bench.probe import parse_pmset_therm

    try:
        done = subprocess.run(
            ["/usr/bin/pmset", "-g", "therm"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        info = parse_pmset_therm(done.stdout)
    except (OSError, subprocess.SubprocessError, ProbeError) as exc:
        return {"thermal_state": f"unknown ({exc})"}
    return {"thermal_state": info.state, "cpu_speed_limit": info.cpu_speed_limit}
