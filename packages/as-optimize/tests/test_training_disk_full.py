"""A real filesystem refusing a checkpoint: a file size limit (EFBIG) and a full tmpfs (ENOSPC).

The conftest's ``full_disk`` fixture injects ENOSPC into ``os.write``; these tests let the
kernel refuse the write. Each runs the training in a child process, so that the limit (or
the mount) applies to it alone:

* ``RLIMIT_FSIZE``: the child lowers its own file size limit after its first checkpoint,
  with SIGXFSZ ignored, so the kernel fails the write that crosses it with EFBIG. Needs
  no privilege.
* a tmpfs of a few hundred KiB mounted in a private mount namespace (``unshare``, as an
  unprivileged user through a user namespace, or as root), filled with ballast until the
  next checkpoint cannot fit: the kernel fails the write with ENOSPC. Skipped, with the
  reason, where neither namespace can be created.

Both assert what the issue asks: a clear error naming the checkpoint that stays intact,
the previous checkpoint still loads and verifies, no temporary folder left behind, and
the run goes on once there is room again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a child process that imports torch: about 8 s each

CHILD = textwrap.dedent(
    """
    import errno, json, os, resource, signal, sys
    from pathlib import Path

    import torch
    from torch import nn

    from as_optimize import CheckpointWriteError
    from as_optimize.training import CheckpointStore, Monitor, MonitorSettings

    run, result, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = nn.Linear(128, 128)  # 66 KiB of weights, 132 KiB more of Adam state
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    settings = MonitorSettings.model_validate({
        "checkpoint": {"every_steps": 2, "background": how == "tmpfs", "keep_last": 5},
        "progress": {"mode": "off"},
    })
    out = {}

    def train_step():
        opt.zero_grad()
        model(torch.randn(8, 128)).pow(2).mean().backward()
        opt.step()
        return monitor.step(loss=1.0)

    monitor = Monitor(run, model=model, optimizer=opt, settings=settings)
    monitor.open()  # writes step-000000000 (weights only: about 66 KiB)
    ballast = run / "ballast"
    if how == "fsize":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, hard))
    else:
        stat = os.statvfs(run)
        free = stat.f_bavail * stat.f_frsize
        with ballast.open("wb") as handle:  # leave 48 KiB: the metrics lines fit, not a checkpoint
            handle.write(b"x" * max(free - 48 * 1024, 0))
    try:
        train_step()
        train_step()  # due: step-000000002 (about 200 KiB) cannot be written
        monitor._finish_pending()  # a background write's failure is raised here
        out["raised"] = None
    except CheckpointWriteError as exc:
        out["raised"] = str(exc)
        out["errno"] = exc.errno
        out["previous"] = exc.previous.name if exc.previous else None
    out["left"] = sorted(p.name for p in (run / "checkpoints").iterdir())
    store = CheckpointStore(run / "checkpoints")
    loaded = store.load_latest()  # verifies every file's size and sha256
    out["loaded_step"] = loaded.info.step
    # Room again: the limit lifted or the ballast removed, the run goes on.
    if how == "fsize":
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    else:
        ballast.unlink()
    train_step()
    train_step()
    monitor.close()
    out["after"] = [info.step for info in store.checkpoints()]
    out["events"] = [
        json.loads(line)["kind"] for line in (run / "events.jsonl").read_text().splitlines()
    ]
    result.write_text(json.dumps(out))
    """
)


def _run_child(command: list[str], tmp_path: Path, how: str, run: Path) -> dict[str, object]:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    result = tmp_path / "result.json"
    done = subprocess.run(
        [*command, sys.executable, str(script), str(run), str(result), how],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(result.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _check(out: dict[str, object], reason: str, errno_value: int) -> None:
    message = str(out["raised"])
    assert "could not write checkpoint step-000000002" in message
    assert reason in message
    assert "the previous checkpoint step-000000000 is intact" in message
    assert out["errno"] == errno_value and out["previous"] == "step-000000000"
    assert out["left"] == ["LATEST", "step-000000000"]  # no temporary folder left
    assert out["loaded_step"] == 0
    assert out["after"] == [4, 0]  # with room again the run checkpoints at step 4
    assert "checkpoint_failed" in list(out["events"])  # type: ignore[call-overload]


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_file_size_limit_fails_the_checkpoint_with_efbig_and_keeps_the_previous(
    tmp_path: Path,
) -> None:
    import errno

    out = _run_child([], tmp_path, "fsize", tmp_path / "run")
    _check(out, "File too large (errno 27)", errno.EFBIG)


def _namespace_command(mount_point: Path) -> list[str] | str:
    """A command prefix that runs the child with a small tmpfs at ``mount_point``, or why not."""
    if not sys.platform.startswith("linux"):
        return "tmpfs and mount namespaces are Linux's"
    unshare = shutil.which("unshare")
    if unshare is None:
        return "no unshare(1) on this machine"
    mount = f"mount -t tmpfs -o size=384k tmpfs {mount_point}"
    reasons = []
    for flags in (["--user", "--map-root-user", "--mount"], ["--mount"]):
        probe = subprocess.run(
            [unshare, *flags, "sh", "-c", mount],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if probe.returncode == 0:
            return [unshare, *flags, "sh", "-c", f'{mount} && exec "$@"', "sh"]
        reasons.append(f"unshare {' '.join(flags)}: {probe.stderr.strip() or probe.returncode}")
    return (
        "cannot mount a tmpfs in a private mount namespace (needs user namespaces, or root "
        f"with CAP_SYS_ADMIN): {'; '.join(reasons)}"
    )


def test_a_full_tmpfs_fails_the_checkpoint_with_enospc_and_keeps_the_previous(
    tmp_path: Path,
) -> None:
    import errno

    run = tmp_path / "run"
    run.mkdir()
    command = _namespace_command(run)
    if isinstance(command, str):
        pytest.skip(command)
    out = _run_child(command, tmp_path, "tmpfs", run)
    _check(out, "No space left on device (errno 28)", errno.ENOSPC)
    assert "free some disk space" in str(out["raised"])
    assert list(run.iterdir()) == []  # the tmpfs was the child's alone
