"""``as-optimize worker``: three workers on one PostgreSQL study, one killed mid-trial.

The fixture starts a real PostgreSQL server (Debian's package: ``initdb`` and ``pg_ctl``,
on PATH or in /usr/lib/postgresql/*/bin) in a temporary folder on a free port, as an
unprivileged user when the tests run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from as_optimize.compress import (
    QualityGate,
    SearchOptions,
    StudyOptions,
    create_study,
    run_study,
)

pytest.importorskip("optuna", reason="needs as-optimize[search]")
pytest.importorskip("psycopg", reason="needs as-optimize[search]")

pytestmark = [pytest.mark.xdist_group("compress-optuna"), pytest.mark.slow]

#: Trials the study must hold: three workers start one each, one is killed.
TRIALS = 4


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return Path(installed[-1]).parent if installed else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server for this module: its URL (user ``postgres``, trust auth)."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL's initdb is not installed (Debian: apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="as-optimize-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        name = "postgres"
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            name, account = "nobody", pwd.getpwnam("nobody")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", name, "--"]
    data = root / "data"
    port = _free_port()
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    settings = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    started = subprocess.run(
        [*pg_ctl, "-l", str(root / "log"), "-o", settings, "-w", "-t", "60", "start"],
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {started.stderr}{log}")
    try:
        # trust auth accepts any password: this one shows that the report hides it.
        yield f"postgresql://postgres:hunter2@127.0.0.1:{port}/postgres"
    finally:
        for storage in _storages.values():
            storage.engine.dispose()
        _storages.clear()
        subprocess.run(
            [*pg_ctl, "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


def cli(*argv: str) -> list[str]:
    """``as-optimize ARGV`` run by this interpreter (its pid is the command's own)."""
    code = "import sys; from as_optimize.cli import main; main(sys.argv[1:])"
    return [sys.executable, "-c", code, *argv]


_storages: dict[str, Any] = {}


def trials_of(url: str, name: str) -> list[Any]:
    """The study's trials as they are now (one storage, one connection pool, per URL)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if url not in _storages:
        _storages[url] = optuna.storages.RDBStorage(
            url.replace("postgresql://", "postgresql+psycopg://")
        )
    study = optuna.load_study(study_name=name, storage=_storages[url])
    return list(study.get_trials(deepcopy=False))


def test_three_workers_finish_a_study_when_one_is_killed_mid_trial(
    postgres: str, tmp_path: Path
) -> None:
    import optuna

    states = optuna.trial.TrialState
    gate = QualityGate(max_accuracy_drop=1.0)
    options = SearchOptions(threads=1, max_time_s=0.05, stages=[])  # techniques' knobs only
    study = StudyOptions(
        storage=postgres,
        study_name="workers",
        trials=TRIALS,
        heartbeat_interval_s=1,
        grace_period_s=3,
        poll_s=0.2,
    )
    create_study("digits-cnn", tmp_path / "create", gate, options, study)

    workers = [
        subprocess.Popen(
            cli("worker", "--storage", postgres, "--study", "workers", "-o", str(tmp_path / "w")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        pids = {f"{socket.gethostname()}:{w.pid}": w for w in workers}
        deadline = time.monotonic() + 600
        victim: Any = None
        while victim is None and time.monotonic() < deadline:
            for trial in trials_of(postgres, "workers"):
                owner = trial.user_attrs.get("worker")
                if trial.state == states.RUNNING and trial.params and owner in pids:
                    victim = trial
                    break
            else:
                assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
                time.sleep(0.1)
        assert victim is not None, "no worker took a trial within 600 s"
        killed = pids[victim.user_attrs["worker"]]
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=30)
        complete_at_kill = {
            t.number: t.values for t in trials_of(postgres, "workers") if t.state == states.COMPLETE
        }
        survivors = [w for w in workers if w is not killed]
        for worker in survivors:
            out, err = worker.communicate(timeout=600)
            assert worker.returncode == 0, err
            assert "trial(s) evaluated by this worker" in out
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()

    trials = trials_of(postgres, "workers")
    complete = {t.number: t for t in trials if t.state == states.COMPLETE}

    def evaluated(trial: Any) -> bool:
        """Measured, or rejected with its reason (a setting that cannot be built)."""
        rejected = trial.state == states.FAIL and "rejected" in trial.user_attrs
        return trial.state == states.COMPLETE or rejected

    # Repeats of a setting reuse its figures and are not counted.
    counted = [t for t in trials if evaluated(t) and "same_knobs_as_trial" not in t.user_attrs]
    shown = [(t.number, t.state.name, t.params) for t in trials]
    assert len(counted) == TRIALS, shown
    distinct = {t.number for t in counted}
    for number, values in complete_at_kill.items():
        assert complete[number].values == values  # no completed trial is lost
    failed = next(t for t in trials if t.number == victim.number)
    assert failed.state == states.FAIL and not evaluated(failed)
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and evaluated(retries[0]), shown
    assert retries[0].params == victim.params
    assert retries[0].user_attrs["worker"] != victim.user_attrs["worker"]
    assert not [t for t in trials if t.state in (states.RUNNING, states.WAITING)]

    # The report comes from the study: every worker's trials, the retry noted.
    lines: list[str] = []
    report = run_study(
        "digits-cnn", tmp_path / "report", gate, options, study, progress=lines.append
    )
    assert f"study 'workers' resumed: {TRIALS} of {TRIALS} trials evaluated" in lines
    assert len(trials_of(postgres, "workers")) == len(trials)  # reporting adds no trial
    text = (tmp_path / "report" / "report.json").read_text()
    assert "hunter2" not in text
    assert report.study is not None
    assert (
        report.study["storage"]
        == "postgresql+psycopg://postgres:***@127.0.0.1:" + (postgres.rsplit(":", 1)[1])
    )
    assert report.study["trials_evaluated"] == TRIALS
    assert report.study["states"]["COMPLETE"] == len(complete)
    assert report.study["retries"] == [{"trial": retries[0].number, "retry_of": victim.number}]
    assert {r["trial"] for r in report.study["repeats"]} == set(complete) - distinct
    listed = {int(c.id.split("-")[1]): c for c in report.candidates if c.id.startswith("trial-")}
    assert set(listed) == distinct
    if retries[0].number in listed:  # unless its knobs were measured already (a repeat)
        notes = listed[retries[0].number].notes
        assert any(f"retry of trial {victim.number}" in note for note in notes)
    assert (tmp_path / "report" / report.winner_path).is_file()
