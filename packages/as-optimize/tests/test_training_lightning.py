"""The monitor under PyTorch Lightning (the ``lightning`` extra): a real Trainer on the CPU."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from as_optimize import MonitorInputError
from as_optimize.training import MonitorSettings, read_events, read_metrics

pytest.importorskip("lightning", reason="the lightning extra is not installed")

import lightning as L
from lightning.fabric.utilities.warnings import PossibleUserWarning

from as_optimize.training import MonitorCallback

pytestmark = [
    pytest.mark.slow,  # real Trainer runs: about 10 s each
    # lightning 2.6 with torch 2.14: its pytree helper uses an API torch deprecated.
    pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)`:FutureWarning"),
]

Data = tuple[torch.Tensor, torch.Tensor]
STEPS_PER_EPOCH = 15  # 1797 digits in batches of 128


class Crash(RuntimeError):
    """Stands for the process dying mid-epoch: no final checkpoint."""


class Digits(L.LightningModule):
    def __init__(self, nan_at: int = -1, crash_at: int = -1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10)
        )
        self.nan_at = nan_at
        self.crash_at = crash_at
        self.injected = False

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        step = self.trainer.global_step + 1
        if step == self.crash_at:
            raise Crash(f"died at step {step}")
        if step == self.nan_at and not self.injected:
            self.injected = True
            loss = loss * math.nan
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.net(x), y))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.9)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _settings(**sections: dict[str, object]) -> MonitorSettings:
    base: dict[str, dict[str, object]] = {
        "checkpoint": {"every_steps": 5, "keep_last": 10},
        "progress": {"mode": "off"},
        "divergence": {"warmup": 10, "window": 10},
        "exploding_gradient": {"warmup": 10, "window": 10},
    }
    base.update(sections)
    return MonitorSettings.model_validate(base)


def _fit(
    run: Path,
    data: Data,
    config: MonitorSettings,
    *,
    epochs: int,
    module: Digits | None = None,
    resume: bool = False,
) -> tuple[Any, MonitorCallback, Digits]:
    images, labels = data
    torch.manual_seed(1)
    loader = DataLoader(TensorDataset(images, labels), batch_size=128, shuffle=True)
    val = DataLoader(TensorDataset(images[:256], labels[:256]), batch_size=256)
    callback = MonitorCallback(run, settings=config)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
        default_root_dir=run,
    )
    module = module or Digits()
    ckpt = callback.resume_path() if resume else None
    trainer.fit(module, loader, val, ckpt_path=ckpt)
    return trainer, callback, module


@pytest.fixture(autouse=True)
def _quiet_lightning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lightning")


def test_metrics_evaluations_and_checkpoints_under_a_trainer(digits: Data, tmp_path: Path) -> None:
    run = tmp_path / "run"
    trainer, callback, _ = _fit(run, digits, _settings(), epochs=2)
    assert trainer.global_step == 2 * STEPS_PER_EPOCH
    frame = read_metrics(run)
    steps = frame.filter(frame["kind"] == "step")
    assert steps["step"].to_list() == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert steps["grad_norm"].min() > 0  # type: ignore[operator]
    assert steps["samples_per_s"].drop_nulls().len() == 2 * STEPS_PER_EPOCH
    lrs = steps["lr"].to_list()
    # Recorded after Lightning stepped the scheduler (every step, x0.9 every 10).
    assert lrs[8] == pytest.approx(0.05) and lrs[9] == pytest.approx(0.045)
    evals = frame.filter(frame["kind"] == "eval")
    assert evals["step"].to_list() == [15, 30] and evals["val_loss"].null_count() == 0
    names = [info.path.name for info in callback.store.checkpoints()]
    assert names[0] == "step-000000030" and "step-000000005" in names
    assert callback.monitor is not None and callback.monitor.last_checkpoint is not None


@pytest.mark.parametrize("policy", ["stop", "rollback"])
def test_a_nan_is_reported_at_its_step_and_its_policy_applied(
    digits: Data, tmp_path: Path, policy: str
) -> None:
    run = tmp_path / "run"
    config = _settings(nonfinite={"policy": policy})
    trainer, callback, _ = _fit(run, digits, config, epochs=2, module=Digits(nan_at=12))
    events = read_events(run)
    nonfinite = [e for e in events if e.kind == "nonfinite"]
    assert len(nonfinite) == 1 and nonfinite[0].step == 12 and nonfinite[0].policy == policy
    assert callback.decisions[11].action == policy
    if policy == "stop":
        assert trainer.global_step == 12 and callback.monitor is not None
        assert callback.monitor.stopped
        assert callback.store.checkpoints()[0].step == 10  # no checkpoint of the NaN state
        return
    rollback = next(e for e in events if e.kind == "rollback")
    assert rollback.figures["from_step"] == 12 and rollback.figures["to_step"] == 10
    assert trainer.global_step == 2 * STEPS_PER_EPOCH  # Lightning's loop went on
    frame = read_metrics(run)
    steps = frame.filter(frame["kind"] == "step")
    # Steps 11 and 12 belong to the abandoned branch; the count follows Lightning's.
    assert steps["step"].to_list() == [*range(1, 11), *range(13, 31)]
    assert steps["loss"].is_nan().sum() == 0
    lr = dict(zip(steps["step"].to_list(), steps["lr"].to_list(), strict=True))
    assert lr[13] == pytest.approx(lr[10] * 0.5)
    module = trainer.lightning_module
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_a_resumed_fit_continues_at_the_checkpoints_step(digits: Data, tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(Crash):  # dies at step 12, after the step-10 checkpoint
        _fit(run, digits, _settings(), epochs=2, module=Digits(crash_at=12))
    assert MonitorCallback(run).store.checkpoints()[0].step == 10
    # Lightning's own caveat: a plain DataLoader does not resume mid-epoch, so the rest
    # of epoch 0 is drawn afresh (the step count and everything else resume exactly).
    with pytest.warns(PossibleUserWarning, match="ended before the epoch ended"):
        trainer, callback, _ = _fit(run, digits, _settings(), epochs=2, resume=True)
    monitor = callback.monitor
    assert monitor is not None and monitor.resumed_from is not None
    assert monitor.resumed_from.step == 10
    assert trainer.global_step == 2 * STEPS_PER_EPOCH
    frame = read_metrics(run)
    steps = frame.filter(frame["kind"] == "step")
    assert steps["step"].to_list() == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert [e.kind for e in read_events(run)][-1] == "resume"


def test_fitting_a_run_folder_that_has_checkpoints_without_resuming_is_refused(
    digits: Data, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    _fit(run, digits, _settings(), epochs=1)
    with pytest.raises(MonitorInputError, match=r"pass ckpt_path=callback\.resume_path\(\)"):
        _fit(run, digits, _settings(), epochs=2)
