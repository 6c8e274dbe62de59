"""The monitor on a real training loop (an MLP on the digits): metrics, failures, resume."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from as_bench.testing import FakeClock
from as_config import load_settings
from as_optimize import CheckpointWriteError, MonitorInputError
from as_optimize.training import (
    Decision,
    Monitor,
    MonitorSettings,
    OptimizeSettings,
    ResumableSampler,
    read_events,
    read_metrics,
)

if TYPE_CHECKING:
    from conftest import FullDisk

Data = tuple[torch.Tensor, torch.Tensor]
STEPS_PER_EPOCH = 15  # 1797 digits in batches of 128


class Crash(Exception):
    """Stands for the process dying: the monitor is left without a final checkpoint."""


def settings(**sections: dict[str, object]) -> MonitorSettings:
    base: dict[str, dict[str, object]] = {
        "checkpoint": {"every_steps": 5, "keep_last": 10},
        "progress": {"mode": "off"},
        "divergence": {"warmup": 10, "window": 10},
        "exploding_gradient": {"warmup": 10, "window": 10},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return MonitorSettings.model_validate(base)


@dataclass
class Run:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    monitor: Monitor
    decisions: list[Decision] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def train(
    run_dir: Path,
    data: Data,
    *,
    epochs: int = 3,
    config: MonitorSettings | None = None,
    seed: int = 0,
    lr: float = 0.05,
    crash_after: int | None = None,
    nan_at: int | None = None,
    lr_from: tuple[int, float] | None = None,
    clock: FakeClock | None = None,
    step_seconds: float = 0.01,
) -> Run:
    """Train a small MLP with dropout (so the random generators matter) under a monitor."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.9)
    images, labels = data
    dataset = TensorDataset(images, labels)
    sampler = ResumableSampler(len(dataset), seed=7)
    loader = DataLoader(dataset, batch_size=128, sampler=sampler)
    monitor = Monitor(
        run_dir,
        model=model,
        optimizer=opt,
        scheduler=sched,
        sampler=sampler,
        settings=config or settings(),
        clock=clock,
    )
    run = Run(model, opt, monitor)
    injected = False
    try:
        with monitor:
            for _ in monitor.epochs(epochs):
                last = Decision()
                for x, y in loader:
                    opt.zero_grad()
                    loss = F.cross_entropy(model(x), y)
                    upcoming = monitor.global_step + 1
                    if nan_at == upcoming and not injected:
                        loss = loss * math.nan
                        injected = True
                    if lr_from is not None and upcoming == lr_from[0]:
                        for group in opt.param_groups:
                            group["lr"] = lr_from[1]
                    loss.backward()  # type: ignore[no-untyped-call]
                    opt.step()
                    sched.step()
                    if clock is not None:
                        clock.advance(step_seconds)
                    last = monitor.step(loss=loss, batch_size=len(x))
                    run.decisions.append(last)
                    run.losses.append(loss.item())
                    if monitor.global_step == crash_after:
                        raise Crash
                    if last.interrupt:
                        break
                if not last.interrupt:
                    model.eval()
                    with torch.no_grad():
                        val = F.cross_entropy(model(images), labels)
                    model.train()
                    monitor.evaluate({"val_loss": val})
    except Crash:
        pass
    return run


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def test_a_crashed_run_resumes_to_bit_identical_weights(digits: Data, tmp_path: Path) -> None:
    reference = train(tmp_path / "ref", digits)
    crashed = train(tmp_path / "run", digits, crash_after=23)
    assert crashed.monitor.global_step == 23
    # A new model with another initialisation: everything comes from the checkpoint.
    resumed = train(tmp_path / "run", digits, seed=99)
    assert resumed.monitor.resumed_from is not None
    assert resumed.monitor.resumed_from.step == 20  # the last checkpoint before the crash
    assert_same(weights(resumed.model), weights(reference.model))
    frame = read_metrics(tmp_path / "run")
    steps = frame.filter(frame["kind"] == "step")
    assert steps["step"].to_list() == list(range(1, 3 * STEPS_PER_EPOCH + 1))
    ref = read_metrics(tmp_path / "ref")
    assert steps["loss"].to_list() == ref.filter(ref["kind"] == "step")["loss"].to_list()
    assert [e.kind for e in read_events(tmp_path / "run")] == ["resume"]


def test_a_finished_run_reopened_does_nothing_more(digits: Data, run_dir: Path) -> None:
    first = train(run_dir, digits, epochs=1)
    again = train(run_dir, digits, epochs=1, seed=5)
    assert again.decisions == []
    assert again.monitor.global_step == first.monitor.global_step == STEPS_PER_EPOCH
    assert_same(weights(again.model), weights(first.model))


def test_step_records_every_figure(digits: Data, run_dir: Path) -> None:
    clock = FakeClock()
    config = settings(metrics={"memory_every_steps": 5})
    train(run_dir, digits, epochs=1, config=config, clock=clock, step_seconds=0.01)
    frame = read_metrics(run_dir)
    steps = frame.filter(frame["kind"] == "step")
    assert steps.height == STEPS_PER_EPOCH
    row = steps.row(4, named=True)  # step 5
    assert row["step"] == 5 and row["epoch"] == 0
    assert row["step_time_s"] == pytest.approx(0.01)
    assert row["samples_per_s"] == pytest.approx(128 / 0.01)
    assert row["lr"] == pytest.approx(0.05)
    assert row["grad_norm"] > 0 and math.isfinite(row["loss"])
    assert row["host_rss_bytes"] > 10 * 2**20
    assert steps["host_rss_bytes"].null_count() == STEPS_PER_EPOCH - 4  # steps 1, 5, 10, 15
    assert "device_allocated_bytes" in steps.columns  # null on the CPU
    evals = frame.filter(frame["kind"] == "eval")
    assert evals["step"].to_list() == [STEPS_PER_EPOCH]
    assert evals["val_loss"][0] > 0


@pytest.mark.parametrize("policy", ["warn", "stop", "rollback"])
def test_a_nan_at_step_k_is_reported_at_k_and_handled_by_its_policy(
    digits: Data, run_dir: Path, policy: str
) -> None:
    run = train(run_dir, digits, nan_at=12, config=settings(nonfinite={"policy": policy}))
    nonfinite = [e for e in run.monitor.events if e.kind == "nonfinite"]
    first = nonfinite[0]
    assert first.step == 12 and first.policy == policy
    assert math.isnan(float(str(first.figures["loss"])))
    assert run.decisions[11].events[0] is first
    assert [e.to_json() for e in read_events(run_dir)] == [e.to_json() for e in run.monitor.events]
    if policy == "warn":
        assert run.decisions[11].action == "continue"
        assert run.monitor.global_step == 3 * STEPS_PER_EPOCH  # it went on, weights ruined
        assert math.isnan(run.losses[-1])
    elif policy == "stop":
        assert run.decisions[11].stop and run.monitor.stopped
        assert run.monitor.global_step == 12 and len(run.decisions) == 12
        assert run.monitor.last_checkpoint is not None
        assert run.monitor.last_checkpoint.step == 10  # no checkpoint of the broken state
    else:
        assert run.decisions[11].action == "rollback"
        rollback = next(e for e in run.monitor.events if e.kind == "rollback")
        assert rollback.figures["from_step"] == 12 and rollback.figures["to_step"] == 10
        assert run.monitor.global_step == 3 * STEPS_PER_EPOCH  # finished after rolling back
        assert all(math.isfinite(v) for v in run.losses[-10:])
        assert len(nonfinite) == 1
        frame = read_metrics(run_dir)
        steps = frame.filter(frame["kind"] == "step")
        assert steps["step"].to_list() == list(range(1, 3 * STEPS_PER_EPOCH + 1))
        assert steps["loss"].is_nan().sum() == 0  # step 12 was redone
        lr_after = steps.filter(steps["step"] == 11)["lr"][0]
        lr_before = read_lr_at(run_dir, 10)
        assert lr_after == pytest.approx(lr_before * 0.5)


def read_lr_at(run_dir: Path, step: int) -> float:
    # The abandoned branch is gone from the frame; the step before the rollback target
    # has the learning rate as it was.
    frame = read_metrics(run_dir)
    return float(frame.filter((frame["kind"] == "step") & (frame["step"] == step))["lr"][0])


def test_a_diverging_learning_rate_is_caught(digits: Data, run_dir: Path) -> None:
    config = settings(divergence={"policy": "stop"}, nonfinite={"policy": "stop"})
    run = train(run_dir, digits, lr_from=(20, 20.0), config=config)
    failures = [e for e in run.monitor.events if e.kind in {"divergence", "nonfinite"}]
    assert failures, "the blow-up went unnoticed"
    assert failures[0].kind == "divergence"
    assert 21 <= failures[0].step <= 30
    assert run.monitor.stopped
    figures = failures[0].figures
    assert float(str(figures["loss"])) > 3 * float(str(figures["median"]))


def test_a_stall_stops_the_run_when_configured_to(digits: Data, run_dir: Path) -> None:
    config = settings(stall={"policy": "stop", "patience": 2, "metric": "val_loss"})
    run = train(run_dir, digits, epochs=10, lr=0.0, config=config)
    stall = [e for e in run.monitor.events if e.kind == "stall"]
    assert len(stall) == 1 and stall[0].action == "stop"
    assert stall[0].step == 3 * STEPS_PER_EPOCH  # the third evaluation: two without progress
    assert run.monitor.stopped and run.monitor.global_step == 3 * STEPS_PER_EPOCH


def test_a_stall_only_warns_by_default(digits: Data, run_dir: Path) -> None:
    config = settings(stall={"patience": 2})
    run = train(run_dir, digits, epochs=5, lr=0.0, config=config)
    # Evaluations 2-3 and 4-5 did not improve on the first: reported each time.
    stalls = [e for e in run.monitor.events if e.kind == "stall"]
    assert [(e.step, e.action) for e in stalls] == [(45, "continue"), (75, "continue")]
    assert run.monitor.global_step == 5 * STEPS_PER_EPOCH


def test_exploding_gradients_and_slowdown_are_reported(digits: Data, run_dir: Path) -> None:
    clock = FakeClock()
    config = settings(
        exploding_gradient={"max_norm": 1e-6},
        slowdown={"warmup": 0, "window": 5, "factor": 1.5},
    )
    run = train(run_dir, digits, epochs=1, config=config, clock=clock, step_seconds=0.01)
    kinds = [e.kind for e in run.monitor.events]
    assert kinds[0] == "exploding_gradient" and run.monitor.events[0].step == 1
    assert "slowdown" not in kinds  # steady 10 ms steps
    # Steps that become twice as slow, from the 11th on:
    clock2 = FakeClock()
    monitor = Monitor(run_dir / "slow", model=nn.Linear(2, 2), settings=config, clock=clock2)
    with monitor:
        for step in range(20):
            clock2.advance(0.01 if step < 10 else 0.02)
            monitor.step(loss=1.0)
    slow = [e for e in monitor.events if e.kind == "slowdown"]
    assert len(slow) == 1 and slow[0].step == 13
    assert slow[0].figures["median_step_time_s"] == pytest.approx(0.02)


def test_a_host_memory_leak_is_reported(run_dir: Path) -> None:
    config = settings(
        metrics={"memory_every_steps": 1},
        leak={"window": 5, "min_growth_bytes": 16 * 2**20},
    )
    hoard: list[bytes] = []
    monitor = Monitor(run_dir, model=nn.Linear(2, 2), settings=config)
    with monitor:
        for step in range(12):
            hoard.append(bytes([step % 256]) * (8 * 2**20))  # 8 MiB kept every step
            monitor.step(loss=1.0)
    leaks = [e for e in monitor.events if e.kind == "leak"]
    assert leaks and leaks[0].figures["memory"] == "host RSS"
    assert int(str(leaks[0].figures["growth_bytes"])) > 16 * 2**20
    assert len(hoard) == 12


def test_bad_input_is_refused_with_what_and_where(digits: Data, run_dir: Path) -> None:
    model = nn.Linear(2, 2)
    sampler = ResumableSampler(10)
    monitor = Monitor(run_dir, model=model, sampler=sampler, settings=settings())
    with pytest.raises(MonitorInputError, match="not open"):
        monitor.step(loss=1.0, batch_size=2)
    with monitor:
        with pytest.raises(MonitorInputError, match=r"step 1: loss must be a number .* str"):
            monitor.step(loss="high", batch_size=2)  # type: ignore[arg-type]
        with pytest.raises(MonitorInputError, match=r"step 2: batch_size= is required"):
            monitor.step(loss=1.0)
        with pytest.raises(MonitorInputError, match=r"shape \(2,\)"):
            monitor.step(loss=torch.ones(2), batch_size=2)
        with pytest.raises(MonitorInputError, match=r"metric name 'step' is reserved"):
            monitor.evaluate({"step": 1.0})
        with pytest.raises(MonitorInputError, match=r"model= is not the model"):
            monitor.step(loss=1.0, batch_size=2, model=nn.Linear(2, 2))
    with pytest.raises(MonitorInputError, match=r"must be a torch\.nn\.Module"):
        Monitor(run_dir, model="model")  # type: ignore[arg-type]


def test_progress_lines_without_a_terminal(
    digits: Data, run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = settings(progress={"mode": "auto", "every_steps": 5})
    with caplog.at_level(logging.INFO, logger="as_optimize.training"):
        train(run_dir, digits, epochs=1, config=config)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert lines[0].startswith("step 5/15  loss ") and "ETA" in lines[0]
    assert [line.split()[1] for line in lines] == ["5/15", "10/15", "15/15"]


def test_settings_load_from_a_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "optimize.yaml"
    path.write_text(
        "monitor:\n  checkpoint:\n    every_steps: 500\n  stall:\n    policy: stop\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("AS_OPTIMIZE__MONITOR__DIVERGENCE__FACTOR", "5")
    loaded = load_settings(OptimizeSettings, path)
    assert loaded.monitor.checkpoint.every_steps == 500
    assert loaded.monitor.stall.policy == "stop"
    assert loaded.monitor.divergence.factor == 5.0
    path.write_text("monitor:\n  stall:\n    policy: panic\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"monitor\.stall\.policy"):
        load_settings(OptimizeSettings, path)


@pytest.mark.parametrize("background", [True, False])
def test_disk_full_during_training_says_what_happened_and_the_run_resumes(
    digits: Data,
    run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    background: bool,
    full_disk: FullDisk,
) -> None:
    config = settings(checkpoint={"every_steps": 5, "background": background})
    real_step = Monitor.step
    failed: list[int] = []

    # The disk is full when the checkpoint of step 10 is written (its temporary folder
    # is .step-000000010.<random>.tmp): its files cannot be written.
    full_disk(run_dir / "checkpoints" / ".step-000000010", 0)

    def step_with_a_full_disk(self: Monitor, **kwargs: object) -> Decision:
        try:
            return real_step(self, **kwargs)  # type: ignore[arg-type]
        except CheckpointWriteError:
            failed.append(self.global_step)
            raise

    monkeypatch.setattr(Monitor, "step", step_with_a_full_disk)
    with pytest.raises(CheckpointWriteError) as info:
        train(run_dir, digits, config=config)
    monkeypatch.undo()
    message = str(info.value)
    assert "could not write checkpoint step-000000010" in message
    assert "No space left on device" in message
    assert "the previous checkpoint step-000000005 is intact" in message
    # In the foreground the failure is raised by step 10 itself; in the background by the
    # first call after the write failed, at the latest the next due checkpoint (global_step
    # is the last step done).
    assert failed[0] == 10 if not background else 10 <= failed[0] <= 15
    events = read_events(run_dir)
    assert events[-1].kind == "checkpoint_failed" and "step-000000010" in events[-1].message
    resumed = train(run_dir, digits)
    assert resumed.monitor.resumed_from is not None
    assert resumed.monitor.resumed_from.step == 5
    assert resumed.monitor.global_step == 3 * STEPS_PER_EPOCH


def _cuda_run(run_dir: Path, *, crash_after: int | None = None) -> tuple[nn.Module, Monitor]:
    torch.manual_seed(0)
    device = torch.device("cuda")
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(512, 64, generator=generator)
    labels = torch.randint(0, 10, (512,), generator=generator)
    sampler = ResumableSampler(512, seed=2)
    loader = DataLoader(TensorDataset(images, labels), batch_size=64, sampler=sampler)
    config = settings(metrics={"memory_every_steps": 5})
    monitor = Monitor(run_dir, model=model, optimizer=opt, sampler=sampler, settings=config)
    try:
        with monitor:
            for _ in monitor.epochs(2):
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    opt.zero_grad()
                    loss = F.cross_entropy(model(x), y)
                    loss.backward()  # type: ignore[no-untyped-call]
                    opt.step()
                    monitor.step(loss=loss, batch_size=len(x))
                    if monitor.global_step == crash_after:
                        raise Crash
    except Crash:
        pass
    return model, monitor


@pytest.mark.gpu
def test_on_cuda_device_memory_is_recorded_and_a_run_resumes(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: torch.cuda.is_available() is false")
    reference, _ = _cuda_run(tmp_path / "ref")
    _cuda_run(tmp_path / "run", crash_after=8)
    resumed, monitor = _cuda_run(tmp_path / "run")
    assert monitor.resumed_from is not None and monitor.resumed_from.step == 5
    assert monitor.global_step == 16
    for key, value in reference.state_dict().items():
        # CUDA kernels may differ run to run; the same data order and generators keep
        # the two runs within rounding of each other.
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-5), key
    frame = read_metrics(tmp_path / "run")
    memory = frame.filter(frame["step"].is_in([1, 5, 10, 15]))["device_allocated_bytes"]
    assert memory.null_count() == 0 and memory.min() > 0  # type: ignore[operator]
