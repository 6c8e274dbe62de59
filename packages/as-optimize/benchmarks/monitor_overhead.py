"""What the training monitor costs per step, against the same loop without it, in one run.

The loop trains the digits CNN on scikit-learn's digits on the CPU: the architecture of
as-bench's ``digits-cnn`` workload (two 3x3 convolutions, a max-pool, two dense layers;
38,282 parameters) with its training settings (batches of 128, Adam, learning rate 3e-3,
weight decay 1e-4). Three variants of the same loop run interleaved, round after round, each with
its own model and optimizer that carry on from round to round:

* ``baseline``: the loop without the monitor (the same DataLoader and sampler);
* ``monitor``: the loop with a Monitor, default detectors, a checkpoint every 100 steps;
* ``monitor, no checkpoints``: the same with ``checkpoint.every_steps=0``.

The order of the variants rotates every round, so a drift of the machine's speed hits
all of them alike. A round's time per step is its wall time over its steps; the overhead
is the median over rounds of (variant / baseline - 1) of the same round, with the
interquartile range of those per-round ratios. Then a checkpoint of the monitored model
is written and read back a few times: time and size.

Usage (from the workspace root)::

    uv run python packages/as-optimize/benchmarks/monitor_overhead.py
    uv run python packages/as-optimize/benchmarks/monitor_overhead.py --rounds 20 --threads 1
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from sklearn.datasets import load_digits  # type: ignore[import-untyped]
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from as_optimize.training import Monitor, MonitorSettings, ResumableSampler


def cnn() -> nn.Module:
    """as-bench's digits-cnn architecture (its module is not public, so it is written out)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


class Variant:
    """One copy of the loop: its model, optimizer, data and (maybe) monitor."""

    def __init__(
        self, name: str, dataset: TensorDataset, batch: int, run_dir: Path | None, every: int
    ) -> None:
        torch.manual_seed(0)
        self.name = name
        self.model = cnn()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=3e-3, weight_decay=1e-4)
        self.sampler = ResumableSampler(len(dataset), seed=0)
        self.loader = DataLoader(dataset, batch_size=batch, sampler=self.sampler)
        self.per_step: list[float] = []
        self.cpu_per_step: list[float] = []  # the process's CPU time (all threads) per step
        self.inside: list[float] = []  # seconds per step spent inside Monitor.step
        self._inside_ns = 0
        self.monitor: Monitor | None = None
        if run_dir is not None:
            settings = MonitorSettings.model_validate(
                {"checkpoint": {"every_steps": every}, "progress": {"mode": "off"}}
            )
            self.monitor = Monitor(
                run_dir,
                model=self.model,
                optimizer=self.opt,
                sampler=self.sampler,
                settings=settings,
            )
            self.monitor.open()
        self.stream = self._plain() if self.monitor is None else self._monitored(self.monitor)

    def _plain(self) -> Iterator[None]:
        model, opt = self.model, self.opt
        for epoch in itertools.count():
            self.sampler.set_epoch(epoch)
            for x, y in self.loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                loss.item()  # what a loop that logs its loss does anyway
                yield

    def _monitored(self, monitor: Monitor) -> Iterator[None]:
        model, opt = self.model, self.opt
        for _ in monitor.epochs(10**9):
            for x, y in self.loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                start = time.perf_counter_ns()
                decision = monitor.step(loss=loss, batch_size=len(x))
                self._inside_ns += time.perf_counter_ns() - start
                if decision.interrupt:
                    break
                yield

    def run(self, steps: int) -> float:
        """Train ``steps`` steps; returns seconds per step."""
        self._inside_ns = 0
        if self.monitor is not None:
            self.monitor._finish_pending()  # nothing of the previous round's runs on
        cpu = time.process_time_ns()
        start = time.perf_counter_ns()
        for _ in itertools.islice(self.stream, steps):
            pass
        # The wall time ends with the last step: a real run goes on training while the
        # last write finishes. Its CPU time is this round's (waited for, not the next's).
        wall = time.perf_counter_ns() - start
        if self.monitor is not None:
            self.monitor._finish_pending()
        self.inside.append(self._inside_ns / 1e9 / steps)
        self.cpu_per_step.append((time.process_time_ns() - cpu) / 1e9 / steps)
        return wall / 1e9 / steps


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


def timed(fn: Callable[[], object], repeats: int, cpu: list[float] | None = None) -> list[float]:
    times = []
    for _ in range(repeats):
        cpu_start = time.process_time_ns()
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / 1e9)
        if cpu is not None:
            cpu.append((time.process_time_ns() - cpu_start) / 1e9)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=200, help="steps per variant per round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--every", type=int, default=100, help="checkpoint every N steps")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--checkpoint-repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # The detectors run as in any run; their warnings (a busy machine's slowdowns) are not
    # printed over the figures.
    logging.getLogger("as_optimize.training").setLevel(logging.ERROR)

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    dataset = TensorDataset(images, torch.tensor(digits.target, dtype=torch.long))
    with tempfile.TemporaryDirectory(prefix="monitor-overhead-") as tmp:
        root = Path(tmp)
        variants = [
            Variant("baseline (no monitor)", dataset, args.batch_size, None, args.every),
            Variant("monitor, checkpoint/100", dataset, args.batch_size, root / "a", args.every),
            Variant("monitor, no checkpoints", dataset, args.batch_size, root / "b", 0),
        ]
        for variant in variants:  # warm-up round, not counted
            variant.run(args.steps)
        for round_index in range(args.rounds):
            shift = round_index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                variant.per_step.append(variant.run(args.steps))
        report(variants, args)
        checkpoint_figures(variants[1], args.checkpoint_repeats)
        part_costs(variants[1], root)
        for variant in variants:
            if variant.monitor is not None:
                variant.monitor.close(final_checkpoint=False)


def report(variants: list[Variant], args: argparse.Namespace) -> None:
    base = variants[0]
    print(
        f"digits CNN, batch {args.batch_size}, Adam, CPU, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s); {args.rounds} rounds x {args.steps} steps per "
        "variant, interleaved (order rotates each round)"
    )
    print("baseline: the same loop without the monitor, measured in this run")
    for title, attr in (
        ("wall time", "per_step"),
        ("CPU time of the process (all threads, the checkpoint writer's included)", "cpu_per_step"),
    ):
        print(f"\n{title}:")
        print(
            f"{'variant':<26} {'ms/step (median)':>17} {'overhead median [IQR]':>28} {'us/step':>9}"
        )
        base_values = getattr(base, attr)
        base_median = statistics.median(base_values)
        print(f"{base.name:<26} {base_median * 1e3:>17.3f} {'-':>28} {'-':>9}")
        for variant in variants[1:]:
            values = getattr(variant, attr)
            ratios = [v / b - 1 for v, b in zip(values, base_values, strict=True)]
            low, mid, high = quartiles(ratios)
            median = statistics.median(values)
            extra_us = statistics.median(
                [(v - b) * 1e6 for v, b in zip(values, base_values, strict=True)]
            )
            spread = f"{mid:+.2%} [{low:+.2%}, {high:+.2%}]"
            print(f"{variant.name:<26} {median * 1e3:>17.3f} {spread:>28} {extra_us:>9.1f}")
    base_median = statistics.median(base.per_step)
    print("\ntime spent inside Monitor.step (measured around the call; median over rounds):")
    for variant in variants[1:]:
        inside = statistics.median(variant.inside)
        share = inside / base_median
        print(f"  {variant.name:<26} {inside * 1e6:>8.1f} us/step = {share:.2%} of a baseline step")


def checkpoint_figures(variant: Variant, repeats: int) -> None:
    monitor = variant.monitor
    assert monitor is not None
    write_cpu: list[float] = []
    writes = timed(monitor.save_checkpoint, repeats, write_cpu)
    info = monitor.last_checkpoint
    assert info is not None
    size = sum(int(f["bytes"]) for f in info.files.values())
    store = monitor.store

    def read() -> None:
        loaded = store.load(info)
        loaded.restore_model(variant.model)
        variant.opt.load_state_dict(loaded.state["optimizer"])

    reads = timed(read, repeats)
    params = sum(p.numel() for p in variant.model.parameters())
    print(
        f"\ncheckpoint of the CNN ({params:,} parameters, Adam state): {size / 1024:.1f} KiB "
        f"in {len(info.files) + 1} files"
    )
    print(
        f"write (tensors, JSON, sha256, fsync, rename, LATEST): median "
        f"{statistics.median(writes) * 1e3:.1f} ms of {repeats}, of which "
        f"{statistics.median(write_cpu) * 1e3:.1f} ms of CPU (the rest waits for the disk)"
    )
    print(
        f"read (sha256 check, decode, load into model and optimizer): median "
        f"{statistics.median(reads) * 1e3:.1f} ms of {repeats}"
    )


def per_call_us(fn: Callable[[], object], calls: int = 2000, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean time of ``calls`` calls, in microseconds."""
    fn()
    means = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        means.append((time.perf_counter_ns() - start) / calls / 1e3)
    return statistics.median(means)


def part_costs(variant: Variant, root: Path) -> None:
    """What the parts of one monitored step cost (warm, in a loop of their own)."""
    import json
    from logging.handlers import RotatingFileHandler

    import as_logging
    from as_bench.devices import current_rss_bytes
    from as_optimize.training._metrics import MetricsWriter, step_record
    from as_optimize.training._rss import RssReader

    monitor = variant.monitor
    assert monitor is not None
    grads = [p.grad for p in variant.model.parameters() if p.grad is not None]
    values = (1234, 3, 12.345678, 0.123456789, 1.23456789, (0.001,), 0.00123456, 51234.5, None)
    record = step_record(values)
    writer = MetricsWriter(root / "parts.jsonl", max_bytes=64 << 20, backup_count=2)
    handler = RotatingFileHandler(root / "parts-logging.jsonl", maxBytes=64 << 20, backupCount=2)
    handler.setFormatter(as_logging.JsonFormatter())
    logger = logging.getLogger("monitor_overhead.parts")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    rss = RssReader()
    written = [0]

    def write_and_flush() -> None:
        writer.write_step(values)
        written[0] += 1
        if written[0] % 100 == 0:
            writer.flush()

    rows: list[tuple[str, Callable[[], object]]] = [
        ("gradient norm: the monitor's (_foreach_norm, .item() each, fsum)", monitor._grad_norm),
        (
            "gradient norm: _foreach_norm, stack, norm, .item()",
            lambda: torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).item(),
        ),
        (
            "gradient norm: torch.nn.utils.get_total_norm, .item()",
            lambda: torch.nn.utils.get_total_norm(grads, 2.0).item(),
        ),
        ("host RSS: the monitor's (pread of /proc/self/statm)", rss),
        ("host RSS: as_bench.devices.current_rss_bytes (psutil)", current_rss_bytes),
        ("one record: the monitor's writer (a tuple; formatted at flush)", write_and_flush),
        (
            "one record: as-logging JsonFormatter + RotatingFileHandler",
            lambda: logger.info("step", extra=record),
        ),
        ("one record: json.dumps alone", lambda: json.dumps(record)),
    ]
    print("\nparts of a monitored step, warm (median of 5 x N calls):")
    for label, fn in rows:
        print(f"  {label:<66} {per_call_us(fn, 500):>8.1f} us")
    writer.close()
    handler.close()
    rss.close()


if __name__ == "__main__":
    main()
