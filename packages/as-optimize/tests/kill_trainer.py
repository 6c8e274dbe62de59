"""The training program the kill test runs and kills: an MLP on the digits under a monitor.

It imports torch once and then, for each ``train <run_dir>`` line on stdin, forks a child
process that trains (resuming from ``run_dir``'s newest complete checkpoint) and answers
``pid <pid>`` at once and ``exit <code>`` when the child ends, killed or finished. The
test kills the children with SIGKILL; forking keeps each restart to milliseconds instead
of the seconds an import of torch takes. Each child appends ``{"pid", "resumed_from"}`` to
``run_dir/starts.jsonl`` once it has resumed, and a finished one writes ``final.json``
with the sha256 of its final weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
from pathlib import Path

import torch

torch.set_num_threads(1)

from sklearn.datasets import load_digits  # type: ignore[import-untyped]  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from as_optimize.training import Monitor, MonitorSettings, ResumableSampler  # noqa: E402

EPOCHS = 3
BATCH = 64
EVERY_STEPS = 4


def _data() -> TensorDataset:
    digits = load_digits()
    images = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    return TensorDataset(images, torch.tensor(digits.target, dtype=torch.long))


DATA = _data()


def weights_sha256(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train(run_dir: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = ResumableSampler(len(DATA), seed=3)
    loader = DataLoader(DATA, batch_size=BATCH, sampler=sampler)
    settings = MonitorSettings.model_validate(
        {"checkpoint": {"every_steps": EVERY_STEPS, "keep_last": 2}, "progress": {"mode": "off"}}
    )
    with Monitor(
        run_dir, model=model, optimizer=opt, sampler=sampler, settings=settings
    ) as monitor:
        start = monitor.resumed_from.step if monitor.resumed_from is not None else None
        with (run_dir / "starts.jsonl").open("a", encoding="utf-8") as log:
            log.write(json.dumps({"pid": os.getpid(), "resumed_from": start}) + "\n")
        for _ in monitor.epochs(EPOCHS):
            for x, y in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                monitor.step(loss=loss, batch_size=len(x))
    final = {"sha256": weights_sha256(model), "step": monitor.global_step}
    (run_dir / "final.json").write_text(json.dumps(final), encoding="utf-8")


def main() -> None:
    # Warm up what the first optimizer imports (torch._dynamo), so children start at once.
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command != "train":
            print(f"error unknown command {command!r}", flush=True)
            continue
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                train(Path(argument))
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    main()
