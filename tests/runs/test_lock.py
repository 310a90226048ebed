"""One command at a time per run folder: a second run, search or report is refused, a dead holder's lock taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lstmkit.config import from_dict
from lstmkit.core.errors import RunFolderLocked
from lstmkit.runs.folder import RunFolder, start_run
from lstmkit.runs.lock import LOCK_ENV, pid_running
from tests.paths import REPO

HOLD = ("import sys, time\nfrom pathlib import Path\nfrom lstmkit.runs.folder import RunFolder\n"
        "lock = RunFolder(Path(sys.argv[1])).lock(sys.argv[2], create=True).acquire()\n"
        "print('locked', flush=True)\ntime.sleep(120)\n")


@pytest.fixture(autouse=True)
def no_inherited_lock(monkeypatch):
    """Tests start as if no ancestor process held a lock."""
    monkeypatch.delenv(LOCK_ENV, raising=False)


def hold(run_dir: Path, command: str = "lstmkit run") -> subprocess.Popen:
    """A real second process that takes the run folder's lock and keeps it; returns once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), command], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "locked", proc.stderr.read()
    return proc


def kill(proc: subprocess.Popen) -> None:
    """kill -9, and reap it (a zombie would still look alive)."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def cli(*args: str) -> subprocess.CompletedProcess:
    """`lstmkit ARGS` as its own process."""
    env = {k: v for k, v in os.environ.items() if k != LOCK_ENV}
    return subprocess.run([sys.executable, "-m", "lstmkit.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file in a folder."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run folder with a recorded config, as a run leaves it after its first stage."""
    start_run(tmp_path / "run", from_dict({"data": {"length": 300}}))
    return tmp_path / "run"


@pytest.mark.parametrize("command", [
    ["run", "--config", "configs/quick.yaml", "--set", "training.epochs=1"],
    ["tune"],
    ["report"],
])
def test_a_second_command_is_refused_naming_the_holder_and_changes_nothing(command, run_dir):
    holder = hold(run_dir)
    try:
        before = snapshot(run_dir)
        result = cli(*command, "--run-dir", str(run_dir))
        assert result.returncode != 0
        assert "lock" in result.stderr and f"PID {holder.pid}" in result.stderr
        assert "(lstmkit run, since " in result.stderr, result.stderr
        assert snapshot(run_dir) == before  # config.yaml and the lock file untouched
        assert holder.poll() is None  # the holder kept running
    finally:
        kill(holder)


def test_a_lock_left_by_a_killed_process_is_taken_over_and_said(run_dir):
    holder = hold(run_dir, "lstmkit tune")
    kill(holder)
    assert not pid_running(holder.pid)
    result = cli("report", "--run-dir", str(run_dir))  # takes the lock over, says so, then fails on its own (no notebooks)
    assert f"took over the lock of {run_dir} left by PID {holder.pid} (lstmkit tune), which is no longer running" \
        in result.stderr
    assert "locked by" not in result.stderr and "no executed 01_data.ipynb" in result.stderr
    holder = hold(run_dir)
    kill(holder)
    notices: list[str] = []
    lock = RunFolder(run_dir).lock("lstmkit run")
    lock.notice = notices.append
    with lock:
        assert lock.took_over == holder.pid
        assert (run_dir / ".lock").read_text().startswith(f'{{"pid": {os.getpid()}, "command": "lstmkit run"')
    assert notices == [f"took over the lock of {run_dir} left by PID {holder.pid} (lstmkit run), which is no longer running"]


def test_a_clean_release_leaves_nothing_to_take_over_and_the_next_command_runs(run_dir):
    notices: list[str] = []
    for _ in range(2):
        lock = RunFolder(run_dir).lock("lstmkit report")
        lock.notice = notices.append
        with lock:
            assert (run_dir / ".lock").read_text().startswith(f'{{"pid": {os.getpid()}, "command": "lstmkit report"')
        assert lock.took_over is None
    assert notices == [] and (run_dir / ".lock").read_text() == ""
    holder = hold(run_dir)  # another process gets it after our release
    kill(holder)


def test_a_child_of_the_holder_passes_and_others_are_refused(run_dir, monkeypatch):
    holder = hold(run_dir)
    try:
        with pytest.raises(RunFolderLocked, match=rf"locked by PID {holder.pid} \(lstmkit run, since "):
            RunFolder(run_dir).lock("lstmkit tune").acquire()
        monkeypatch.setenv(LOCK_ENV, str(run_dir.resolve() / ".lock"))  # what a tuning worker inherits
        with RunFolder(run_dir.resolve()).lock("lstmkit tune") as lock:
            assert lock.fd is None
    finally:
        kill(holder)


def test_the_holder_tells_its_children_and_forgets_after(run_dir):
    run = RunFolder(run_dir.resolve())
    with run.lock("lstmkit run"):
        assert os.environ[LOCK_ENV] == str(run.lock_file)
        child = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", ""), str(run.root), "lstmkit tune"],
                               cwd=REPO, capture_output=True, text=True, timeout=60)
        assert child.returncode == 0 and child.stdout.strip() == "locked"  # e.g. a tuning worker of this run
    assert LOCK_ENV not in os.environ


def test_a_missing_folder_is_not_created_unless_asked_and_removed_if_left_empty(tmp_path):
    with RunFolder(tmp_path / "nothing").lock("lstmkit report"):
        pass
    assert not (tmp_path / "nothing").exists()
    with RunFolder(tmp_path / "runs" / "new").lock("lstmkit run", create=True):  # e.g. refused input: nothing written
        assert (tmp_path / "runs" / "new" / ".lock").is_file()
    assert list(tmp_path.iterdir()) == []
    with RunFolder(tmp_path / "runs" / "new").lock("lstmkit run", create=True):
        (tmp_path / "runs" / "new" / "config.yaml").write_text("seed: 1\n")
    assert sorted(p.name for p in (tmp_path / "runs" / "new").iterdir()) == [".lock", "config.yaml"]
