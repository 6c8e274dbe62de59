"""TensorBoard event files (the ``tensorboard`` extra), read back with TensorBoard's reader."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from as_optimize import MissingExtraError
from as_optimize.training import Monitor, MonitorSettings, ResumableSampler, read_metrics

EventAccumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="the tensorboard extra is not installed",
).EventAccumulator

Data = tuple[torch.Tensor, torch.Tensor]


def _settings(**sections: dict[str, object]) -> MonitorSettings:
    base: dict[str, dict[str, object]] = {
        "checkpoint": {"every_steps": 5, "keep_last": 10},
        "progress": {"mode": "off"},
        "tensorboard": {"enabled": True, "every_steps": 1},
    }
    base.update(sections)
    return MonitorSettings.model_validate(base)


def _train(run_dir: Path, data: Data, config: MonitorSettings, nan_at: int) -> Monitor:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    images, labels = data
    sampler = ResumableSampler(len(labels), seed=0)
    loader = DataLoader(TensorDataset(images, labels), batch_size=128, sampler=sampler)
    injected = False
    with Monitor(run_dir, model=model, optimizer=opt, sampler=sampler, settings=config) as mon:
        for _ in mon.epochs(2):
            for x, y in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                if mon.global_step + 1 == nan_at and not injected:
                    injected = True
                    loss = loss * math.nan
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                if mon.step(loss=loss, batch_size=len(x)).interrupt:
                    break
            else:  # evaluated at the end of each completed epoch
                with torch.no_grad():
                    val = F.cross_entropy(model(images[:256]), labels[:256])
                mon.evaluate({"val_loss": val, "val_accuracy": 0.5})
    return mon


def test_scalars_evaluations_and_events_read_back_with_tensorboards_reader(
    digits: Data, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    monitor = _train(run, digits, _settings(), nan_at=12)
    assert [e.kind for e in monitor.events][:2] == ["nonfinite", "rollback"]
    accumulator = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    for tag in (
        "train/loss",
        "train/grad_norm",
        "train/lr",
        "train/samples_per_s",
        "train/step_time_s",
        "memory/host_rss_bytes",
        "eval/val_loss",
        "eval/val_accuracy",
    ):
        assert tag in tags["scalars"], tag
    frame = read_metrics(run)
    steps = frame.filter(frame["kind"] == "step")
    losses = accumulator.Scalars("train/loss")
    # The rollback from step 12 to 10 purged the abandoned branch: each step once.
    assert [s.step for s in losses] == steps["step"].to_list() == list(range(1, 31))
    assert [s.value for s in losses] == pytest.approx(steps["loss"].to_list(), rel=1e-6)
    lrs = {s.step: s.value for s in accumulator.Scalars("train/lr")}
    assert lrs[11] == pytest.approx(lrs[10] * 0.5)  # the rollback halved it
    evals = accumulator.Scalars("eval/val_loss")
    assert [s.step for s in evals] == [15, 30]
    rss = accumulator.Scalars("memory/host_rss_bytes")
    assert [s.step for s in rss] == [1, 10, 20, 30] and rss[0].value > 2**20
    texts = accumulator.Tags()["tensors"]
    assert "events/nonfinite" in texts and "events/rollback" in texts
    (nonfinite,) = accumulator.Tensors("events/nonfinite")
    message = nonfinite.tensor_proto.string_val[0].decode()
    assert nonfinite.step == 12
    assert message.startswith("step 12: non-finite loss") and "[policy rollback" in message


def test_step_scalars_can_be_thinned_to_every_nth_step(digits: Data, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = _settings(tensorboard={"enabled": True, "every_steps": 4, "log_dir": "tb"})
    _train(run, digits, config, nan_at=-1)
    accumulator = EventAccumulator(str(run / "tb"))
    accumulator.Reload()
    assert [s.step for s in accumulator.Scalars("train/loss")] == list(range(4, 31, 4))
    assert [e.step for e in accumulator.Scalars("eval/val_loss")] == [15, 30]


def test_enabling_it_without_the_extra_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"as-optimize\[tensorboard\]") as info:
        Monitor(tmp_path, model=nn.Linear(2, 2), settings=_settings())
    assert "tensorboard.enabled" in str(info.value)
    # Off (the default), nothing needs it.
    Monitor(tmp_path, model=nn.Linear(2, 2), settings=MonitorSettings())
