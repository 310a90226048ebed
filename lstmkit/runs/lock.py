"""The run folder's lock: one command at a time writes a run folder (an exclusive `flock` on RUN/.lock)."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lstmkit.core.errors import RunFolderLocked

if TYPE_CHECKING:
    from lstmkit.runs.folder import RunFolder

LOCK_ENV = "LSTMKIT_RUN_LOCK"  # the lock file held by an ancestor process: its children (tuning workers) pass


class RunLock:
    """One command at a time per run folder: an exclusive `flock` on RUN/.lock for as long as the command runs.

    The holder writes its PID, command and start time into the file; a second command is refused at once with a
    message naming them. The kernel releases a flock when its holder dies, so a lock left by a killed process is
    simply taken over (with a line saying so). Child processes of the holder (papermill kernels, tuning workers)
    inherit LSTMKIT_RUN_LOCK naming the file and do not lock again. With `create`, the run folder is created.
    """

    def __init__(self, run: RunFolder, command: str, create: bool = False, notice=None):
        self.run, self.command, self.create = run, command, create
        self.notice = notice or (lambda line: print(line, file=sys.stderr, flush=True))
        self.fd: int | None = None
        self.took_over: int | None = None  # PID of the dead process whose lock was taken over
        self._saved_env: str | None = None
        self._created: list[Path] = []  # folders made for the lock, removed again if nothing else was written

    def acquire(self) -> RunLock:
        """Take the lock, or raise RunFolderLocked naming the process that holds it."""
        import fcntl

        path = self.run.lock_file
        if os.environ.get(LOCK_ENV) == str(path):
            return self  # a child of the holder (e.g. a tuning worker started for this run)
        if self.create:
            self._created = [p for p in (self.run.root, *self.run.root.parents) if not p.exists()]
            self.run.root.mkdir(parents=True, exist_ok=True)
        elif not self.run.root.is_dir():
            return self  # nothing to protect; the command itself says the folder is missing
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderLocked(self._refusal()) from None
        previous = _lock_holder(os.pread(fd, 4096, 0))
        info = {"pid": os.getpid(), "command": self.command, "since": datetime.now().isoformat(timespec="seconds"),
                "host": socket.gethostname()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self.fd = fd
        self._saved_env = os.environ.get(LOCK_ENV)
        os.environ[LOCK_ENV] = str(path)
        pid = previous.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and not pid_running(pid):
            self.took_over = pid
            self.notice(f"took over the lock of {_display(self.run.root)} left by PID {pid} "
                        f"({previous.get('command', 'unknown command')}), which is no longer running")
        return self

    def release(self) -> None:
        """Empty the lock file and release it (the file stays: removing it would race with a newcomer)."""
        import fcntl

        if self.fd is None:
            return
        if self._saved_env is None:
            os.environ.pop(LOCK_ENV, None)
        else:
            os.environ[LOCK_ENV] = self._saved_env
        try:
            os.ftruncate(self.fd, 0)
            if self._created and os.listdir(self.run.root) == [self.run.lock_file.name]:
                self.run.lock_file.unlink()  # a command refused before writing anything leaves no folder behind
                for folder in self._created:
                    folder.rmdir()
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def _refusal(self, attempts: int = 20) -> str:
        """The message for a refused command, naming the holder (waits briefly for a new holder to write its PID)."""
        info: dict = {}
        for _ in range(attempts):
            info = _lock_holder(self.run.lock_file.read_bytes() if self.run.lock_file.exists() else b"")
            if isinstance(info.get("pid"), int) and pid_running(info["pid"]):
                break
            time.sleep(0.05)
        pid = info.get("pid")
        since = info.get("since", "")
        try:
            started = datetime.fromisoformat(since)
            since = started.strftime("%H:%M:%S" if started.date() == datetime.now().date() else "%Y-%m-%d %H:%M:%S")
        except ValueError:
            pass
        who = f"PID {pid}" if pid else "another process (PID not recorded)"
        detail = ", ".join(x for x in (info.get("command"), f"since {since}" if since else "",
                                       f"on {info['host']}" if info.get("host") not in (None, socket.gethostname()) else "") if x)
        return (f"run folder {_display(self.run.root)} is locked by {who}" + (f" ({detail})" if detail else "")
                + "; wait for it or stop it")

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_holder(raw: bytes) -> dict:
    """The holder recorded in a lock file ({} when empty or unreadable)."""
    try:
        info = json.loads(raw.decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def pid_running(pid: int) -> bool:
    """Whether a process with this PID runs on this machine (a zombie, killed but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _display(path: Path) -> str:
    """A path relative to the working directory when it lies below it, else absolute."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)
