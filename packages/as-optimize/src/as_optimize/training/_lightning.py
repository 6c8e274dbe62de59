"""The training monitor as a PyTorch Lightning callback (the ``lightning`` extra).

::

    import lightning as L
    from as_optimize.training import MonitorCallback

    callback = MonitorCallback("runs/r1", settings=settings)
    trainer = L.Trainer(callbacks=[callback], enable_checkpointing=False, max_epochs=10)
    trainer.fit(model, loader, ckpt_path=callback.resume_path())

The callback feeds a :class:`~as_optimize.training.Monitor` from Lightning's hooks: every
optimizer step's loss, gradient norm and learning rates; the validation metrics; the
detectors and their policies (``stop`` sets ``trainer.should_stop``; ``rollback`` puts
back the weights, optimizer and scheduler of the last good checkpoint and lowers the
learning rate while Lightning's loop goes on from the batch it is at); and the
monitor's checkpoints (atomic, verified, nothing pickled), which also hold Lightning's
own state (loop progress, callbacks, precision plugin). ``resume_path()`` names the
newest one; Lightning loads it through the callback's checkpoint I/O, which verifies it
(a corrupt one is skipped for the one before it), and the monitor resumes at the same
step.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from as_core.extras import require
from as_optimize.exceptions import MissingExtraError, MonitorInputError, NoCheckpointError
from as_optimize.training._checkpoint import CheckpointStore
from as_optimize.training._monitor import Monitor
from as_optimize.training._settings import MonitorSettings
from as_optimize.training._torch import load_torch

if TYPE_CHECKING:
    import lightning.pytorch as pl
    import torch
    from lightning.fabric.plugins import CheckpointIO
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
else:
    torch = load_torch()
    pl = require(
        "lightning.pytorch", "lightning", error=MissingExtraError, feature="MonitorCallback"
    )
    from lightning.fabric.plugins import CheckpointIO
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

__all__ = ["MonitorCallback", "MonitorCheckpointIO"]

logger = logging.getLogger("as_optimize.training")

_STEP = re.compile(r"step-(\d{9,})")
# Lightning's checkpoint entries that the monitor's checkpoint holds in its own slots.
_OWN = ("state_dict", "optimizer_states", "lr_schedulers")


class _LightningState:
    """Lightning's checkpoint, less what the monitor saves itself (weights, optimizers)."""

    def __init__(self, trainer: pl.Trainer) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        dumped = self.trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        for key in _OWN:
            dumped.pop(key, None)
        return dumped

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        # Lightning restores its own state from resume_path() (loops, callbacks); a
        # rollback inside a running fit cannot rewind its loop, so nothing here.
        return None


class MonitorCheckpointIO(CheckpointIO):
    """Lightning's checkpoint I/O over the monitor's checkpoints.

    Loading a path inside the monitor's ``checkpoints/`` folder (what
    :meth:`MonitorCallback.resume_path` returns) reads the newest checkpoint at or before
    that step that verifies, and rebuilds Lightning's checkpoint dictionary from it. Other
    paths (a ``ModelCheckpoint``'s files) go to Lightning's usual torch I/O.
    """

    def __init__(self, store: CheckpointStore) -> None:
        """Serve the checkpoints of ``store``."""
        self.store = store
        self._torch_io = TorchCheckpointIO()

    def _step_of(self, path: Path) -> int | None:
        match = _STEP.fullmatch(path.name)
        if match is None or path.resolve().parent != self.store.folder.resolve():
            return None
        return int(match.group(1))

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Lightning's own checkpoints (``ModelCheckpoint``) are saved as usual."""
        self._torch_io.save_checkpoint(checkpoint, path, storage_options)

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read a monitor checkpoint as Lightning's dictionary (others: torch I/O).

        Raises:
            NoCheckpointError: No checkpoint at or before that step verifies.
        """
        step = self._step_of(Path(path))
        if step is None:
            return dict(self._torch_io.load_checkpoint(path, map_location, weights_only))
        loaded = self.store.load_latest(before_step=step + 1)
        state = loaded.state
        lightning = (state.get("stateful") or {}).get("lightning")
        if not isinstance(lightning, dict):
            raise NoCheckpointError(
                f"checkpoint {loaded.info.path} holds no Lightning state: it was not written "
                "by MonitorCallback",
                path=loaded.info.path,
            )
        weights = dict(loaded.model)
        for name, target in loaded.aliases.items():
            weights[name] = loaded.model[target]
        checkpoint = dict(lightning)
        checkpoint["state_dict"] = weights
        optimizer = state.get("optimizer")
        checkpoint["optimizer_states"] = [optimizer] if optimizer is not None else []
        scheduler = state.get("scheduler")
        checkpoint["lr_schedulers"] = [scheduler] if scheduler is not None else []
        return checkpoint

    def remove_checkpoint(self, path: Any) -> None:
        """Lightning's own checkpoints are removed as usual."""
        self._torch_io.remove_checkpoint(path)


class MonitorCallback(pl.Callback):
    """Feeds a :class:`Monitor` from a Lightning ``Trainer``; see the module's docstring.

    Args:
        run_dir: The run's folder, as for :class:`Monitor`.
        settings: The monitor's settings.
        monitor_kwargs: More arguments for :class:`Monitor` (``device=``, ``clock=``,
            ``stateful=``, ``total_steps=``).

    Attributes:
        monitor: The monitor, from the start of training (None before).
        decisions: What each of the monitor's calls decided, in order.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        settings: MonitorSettings | None = None,
        **monitor_kwargs: Any,
    ) -> None:
        """Describe the run; the monitor starts with training."""
        super().__init__()
        self.run_dir = Path(run_dir)
        self.settings = settings or MonitorSettings()
        self.monitor_kwargs = monitor_kwargs
        self.monitor: Monitor | None = None
        self.decisions: list[Any] = []
        self.store = CheckpointStore(self.run_dir / "checkpoints")
        self.checkpoint_io = MonitorCheckpointIO(self.store)
        self._last_global_step = -1

    def resume_path(self) -> str | None:
        """The newest complete checkpoint of the run, for ``trainer.fit(ckpt_path=...)``.

        None when the run has none (a new run). Its files are verified when Lightning
        loads it; a corrupt one is skipped for the one before it.
        """
        infos = self.store.checkpoints()
        return str(infos[0].path) if infos else None

    # -- Lightning hooks ---------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Route the trainer's checkpoint loading through the monitor's checkpoints."""
        if stage == "fit":
            trainer.strategy.checkpoint_io = self.checkpoint_io

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Open the monitor, after Lightning restored its state (when resuming)."""
        optimizers = trainer.optimizers
        configs = trainer.lr_scheduler_configs
        if len(optimizers) > 1:
            logger.warning(
                "MonitorCallback follows the first of %d optimizers (learning rates, rollback)",
                len(optimizers),
            )
        kwargs = dict(self.monitor_kwargs)
        stateful = dict(kwargs.pop("stateful", None) or {})
        stateful["lightning"] = _LightningState(trainer)
        self.monitor = Monitor(
            self.run_dir,
            model=pl_module,
            optimizer=optimizers[0] if optimizers else None,
            scheduler=configs[0].scheduler if configs else None,
            stateful=stateful,
            settings=self.settings,
            **kwargs,
        )
        self.monitor.open()
        self.monitor.epoch = trainer.current_epoch
        if self.monitor.global_step != trainer.global_step:
            at = self.monitor.global_step
            self.monitor.close(final_checkpoint=False)
            self.monitor = None
            raise MonitorInputError(
                f"the run folder {self.run_dir} resumes at step {at}, the trainer is at "
                f"step {trainer.global_step}: pass ckpt_path=callback.resume_path() to "
                "trainer.fit, or use a new run folder"
            )
        self._last_global_step = trainer.global_step

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """One call of the monitor per optimizer step, with the step's loss."""
        monitor = self.monitor
        if monitor is None or trainer.global_step == self._last_global_step:
            return  # no optimizer step (gradient accumulation)
        self._last_global_step = trainer.global_step
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is None:
            return
        if isinstance(loss, torch.Tensor):
            loss = loss.detach()
        monitor.epoch = trainer.current_epoch
        decision = monitor.step(loss=loss, batch_size=_batch_size(batch))
        self._apply(trainer, decision)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The validation metrics (``trainer.callback_metrics``) as an evaluation."""
        monitor = self.monitor
        if monitor is None or trainer.sanity_checking:
            return
        metrics = {
            name: value
            for name, value in trainer.callback_metrics.items()
            if isinstance(value, torch.Tensor) and value.numel() == 1
        }
        if metrics:
            self._apply(trainer, monitor.evaluate(metrics))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Close the monitor: a final checkpoint (unless a policy stopped the run)."""
        if self.monitor is not None:
            self.monitor.close(final_checkpoint=True)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Close the monitor without a final checkpoint."""
        if self.monitor is not None:
            self.monitor.close(final_checkpoint=False)

    def _apply(self, trainer: pl.Trainer, decision: Any) -> None:
        self.decisions.append(decision)
        if decision.action == "stop":
            trainer.should_stop = True
        elif decision.action == "rollback" and self.monitor is not None:
            # The weights, optimizer and scheduler are the checkpoint's; Lightning's loop
            # cannot be rewound inside fit(), so the monitor's count follows Lightning's.
            self.monitor.global_step = trainer.global_step
            self.monitor.epoch = trainer.current_epoch


def _batch_size(batch: Any) -> int | None:
    first = batch[0] if isinstance(batch, list | tuple) and batch else batch
    if isinstance(first, Mapping):
        first = next(iter(first.values()), None)
    if isinstance(first, torch.Tensor) and first.dim() > 0:
        return int(first.shape[0])
    return None
