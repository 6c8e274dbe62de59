"""SIGKILL at random moments, some in the middle of writing a checkpoint: resume stays exact.

A real training process (kill_trainer.py: an MLP on the digits, a checkpoint every 4 steps)
is killed 20 times; every restart must resume from the newest complete checkpoint, never
a damaged one, and the final weights must equal an uninterrupted run's bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from as_optimize import CorruptCheckpointError
from as_optimize.training import CheckpointStore

TRAINER = Path(__file__).with_name("kill_trainer.py")
KILLS = 20

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the trainer forks its processes"),
]


class Trainer:
    """The trainer process and its line protocol."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(TRAINER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._select = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._select.register(self.proc.stdout, selectors.EVENT_READ)
        assert self.read(120) == "ready"

    def read(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        if not self._select.select(timeout):
            raise TimeoutError(f"the trainer said nothing in {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the trainer ended (exit {self.proc.wait()})")
        return line.strip()

    def start(self, run_dir: Path) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"train {run_dir}\n")
        self.proc.stdin.flush()
        answer = self.read(30)
        assert answer.startswith("pid "), answer
        return int(answer.split()[1])

    def wait(self, timeout: float) -> int:
        answer = self.read(timeout)
        assert answer.startswith("exit "), answer
        return int(answer.split()[1])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)
        self._select.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def trainer() -> Iterator[Trainer]:
    process = Trainer()
    try:
        yield process
    finally:
        process.close()


def newest_complete(run_dir: Path) -> int | None:
    """The step of the newest checkpoint whose files match its manifest, or None."""
    store = CheckpointStore(run_dir / "checkpoints")
    for info in store.checkpoints():
        try:
            store.load(info)
        except CorruptCheckpointError:
            continue
        return info.step
    return None


def temporary_folders(run_dir: Path) -> list[str]:
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    return [
        e.name for e in os.scandir(folder) if e.name.startswith(".") and e.name.endswith(".tmp")
    ]


def wait_for_temporary(run_dir: Path, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if temporary_folders(run_dir):
            return True
        time.sleep(0.0002)
    return False


def corrupt_newest(run_dir: Path) -> None:
    infos = CheckpointStore(run_dir / "checkpoints").checkpoints()
    target = infos[0].path / "model.safetensors"
    data = bytearray(target.read_bytes())
    data[len(data) // 3] ^= 0x5A
    target.write_bytes(bytes(data))


def starts(run_dir: Path) -> dict[int, int | None]:
    path = run_dir / "starts.jsonl"
    if not path.exists():
        return {}
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {int(item["pid"]): item["resumed_from"] for item in lines}


def test_sigkill_at_random_moments_resumes_exactly(trainer: Trainer, tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    context = f"(random seed {seed})"

    reference = tmp_path / "reference"
    began = time.monotonic()
    trainer.start(reference)
    assert trainer.wait(120) == 0, f"the uninterrupted run failed {context}"
    duration = time.monotonic() - began
    expected_final = json.loads((reference / "final.json").read_text(encoding="utf-8"))

    runs: list[Path] = []
    kills = mid_write = 0
    checked_starts = 0
    corrupted_at: int | None = None
    run_dir = tmp_path / "run-0"
    while True:
        expected = newest_complete(run_dir)
        if kills == KILLS // 2 and corrupted_at is None and expected is not None:
            corrupt_newest(run_dir)  # a checkpoint damaged on disk after it was written
            corrupted_at = expected
            expected = newest_complete(run_dir)
        pid = trainer.start(run_dir)
        finishing = kills >= KILLS
        if not finishing:
            if kills % 3 == 2:
                wait_for_temporary(run_dir, timeout=2 * duration)
            else:
                time.sleep(rng.uniform(0.0, 0.6 * duration))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = trainer.wait(120)
        started = starts(run_dir)
        if pid in started:
            checked_starts += 1
            assert started[pid] == expected, (
                f"process {pid} resumed from step {started[pid]}, but the newest complete "
                f"checkpoint was step {expected} {context}"
            )
        if code == -signal.SIGKILL:
            kills += 1
            if temporary_folders(run_dir):
                mid_write += 1
            continue
        assert code == 0, f"training failed with exit code {code} {context}"
        final = json.loads((run_dir / "final.json").read_text(encoding="utf-8"))
        assert final == expected_final, f"{run_dir.name} ended with other weights {context}"
        runs.append(run_dir)
        if finishing:
            break
        run_dir = tmp_path / f"run-{len(runs)}"  # it finished before the kill: a new run

    print(
        f"{kills} kills, {mid_write} while a checkpoint folder was being written, "
        f"{checked_starts} restarts checked, {len(runs)} run(s) finished {context}"
    )
    assert kills == KILLS
    assert mid_write >= 1, f"no kill landed while a checkpoint was being written {context}"
    assert checked_starts >= KILLS // 2, f"too few restarts got as far as resuming {context}"
    if corrupted_at is not None:
        quarantined = list(tmp_path.glob(f"run-*/checkpoints/step-{corrupted_at:09d}.corrupt"))
        assert quarantined, f"the damaged checkpoint was not set aside {context}"
