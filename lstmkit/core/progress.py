"""Live progress of long stages on the command line: tuning trials, training epochs, explained windows.

Stages run inside papermill kernels, so progress travels through a small JSON file: code in a stage calls
`report(stage, **fields)`, which writes the latest state to the file named by LSTMKIT_PROGRESS_FILE and does
nothing when the variable is unset (in JupyterLab, in the report, in tests). The command line sets the variable
around each stage (`Live`), and a background thread reads the file and renders it: one line rewritten in place on
a terminal, plain lines (at most about one a second) when the output goes to a file or a pipe. Nothing of it
reaches the notebooks. Importable without TensorFlow."""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from pathlib import Path
from typing import TextIO

from lstmkit.core.atomic import atomic_write_text
from lstmkit.core.jsonable import dumps

ENV = "LSTMKIT_PROGRESS_FILE"


# ---------------------------------------------------------------- writing (in the stage's process)


def enabled() -> bool:
    """Whether someone is showing progress, i.e. LSTMKIT_PROGRESS_FILE is set."""
    return bool(os.environ.get(ENV))


def report(stage: str, **fields) -> None:
    """Record the latest progress of a stage (`tuning`, `training`, `explain`, ...); a no-op unless LSTMKIT_PROGRESS_FILE is set.

    The file is replaced atomically (readers see the old state or the new one, never half of it). Progress is best
    effort: a write that fails is ignored rather than failing the stage.
    """
    path = os.environ.get(ENV)
    if not path:
        return
    state = {"stage": stage, "time": time.time(), **fields}
    try:
        atomic_write_text(Path(path), dumps(state), durable=False)  # ephemeral: no fsync
    except OSError:
        pass


def read(path: Path) -> dict | None:
    """The latest state in a progress file, or None when there is none (yet)."""
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


class SearchProgress:
    """Progress of a tuning search: trial i of N, best objective so far, elapsed and estimated remaining time.

    `update` is called whenever a trial starts or ends, with the search's own counts (which include trials finished
    by an earlier, resumed run). The remaining time is the mean time per trial finished here times the trials left,
    capped by what is left of `max_minutes` when that budget is set.
    """

    def __init__(self, total: int | None, max_minutes: float | None = None, objective: str = "val_loss"):
        self.total, self.max_minutes, self.objective = total, max_minutes, objective
        self.started = time.time()
        self.done_before: int | None = None

    def update(self, done: int, running: int, best: float | None) -> None:
        """Report `done` finished trials, `running` under way and the best objective so far (None before the first)."""
        if not enabled():
            return
        if self.done_before is None:
            self.done_before = done
        elapsed = time.time() - self.started
        here = done - self.done_before
        eta = elapsed / here * max(0, self.total - done) if self.total and here > 0 else None
        if self.max_minutes:
            left = max(0.0, 60 * self.max_minutes - elapsed)
            eta = left if eta is None else min(eta, left)
        trial = done + max(running, 1)
        best = None if best is None or not math.isfinite(best) else float(best)
        report("tuning", trial=min(trial, self.total) if self.total else trial, trials=self.total, done=done,
               running=running, best=best, objective=self.objective, started=self.started, eta=eta)


# ---------------------------------------------------------------- rendering (in the command line's process)


def duration(seconds: float) -> str:
    """Seconds as `42s`, `3m05s` or `1h02m`."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def describe(state: dict, now: float | None = None) -> str:
    """One line of text for a progress state, e.g. `trial 3/10, best val_loss 0.0123, 1m05s elapsed, ~2m10s left`."""
    now = time.time() if now is None else now
    stage = state.get("stage", "")
    if stage == "tuning":
        n, done, running = state.get("trials"), state.get("done", 0), state.get("running", 1)
        finished = bool(n) and done >= n
        if running > 1 or finished:
            parts = [f"{done}/{n} trials done" if n else f"{done} trials done"]
            parts[0] += f", {running} running" if running else ""
        else:
            parts = [f"trial {state.get('trial')}/{n}" if n else f"trial {state.get('trial')}"]
        if state.get("best") is not None:
            parts.append(f"best {state.get('objective', 'val_loss')} {state['best']:.4g}")
        if state.get("started"):  # the clock stops with the search
            parts.append(f"{duration((state.get('time', now) if finished else now) - state['started'])} elapsed")
        if state.get("eta") is not None and not finished:
            parts.append(f"~{duration(state['eta'] - (now - state.get('time', now)))} left")
        return ", ".join(parts)
    if stage == "training":
        parts = [f"epoch {state.get('epoch')}/{state.get('epochs')}"]
        if state.get("batch") is not None:  # within an epoch
            parts.append(f"batch {state['batch']}" + (f"/{state['batches']}" if state.get("batches") else ""))
        parts += [f"{k} {state[k]:.4g}" for k in ("loss", "val_loss") if state.get(k) is not None]
        phase = state.get("phase")
        return (f"{phase}: " if phase and phase != "training" else "") + ", ".join(parts)
    if stage == "explain":
        return f"windows explained {state.get('windows')}/{state.get('total')}" + (
            f" ({state['what']})" if state.get("what") else "")
    fields = {k: v for k, v in state.items() if k not in ("stage", "time")}
    return f"{stage}: " + ", ".join(f"{k} {v}" for k, v in fields.items())


def milestone(state: dict) -> tuple:
    """What must change for a new plain line: a new trial or finished trial, a new epoch, another 10% of windows."""
    stage = state.get("stage")
    if stage == "tuning":
        return stage, state.get("trial"), state.get("done"), (state.get("running") or 0) > 1  # not each end + start
    if stage == "training":  # within an epoch: no new line after the first (the line comes when the epoch ends)
        epoch = state.get("epoch") or 0
        return stage, state.get("phase"), epoch - 1 if state.get("batch") is not None else epoch
    if stage == "explain":
        total = max(1, int(state.get("total") or 1))
        return stage, state.get("what"), int(10 * int(state.get("windows") or 0) / total)
    return tuple(sorted((k, str(v)) for k, v in state.items() if k != "time"))


class Renderer:
    """Shows the progress file on a stream: a line rewritten with `\\r` on a terminal, plain lines otherwise.

    On a terminal the line starts with `header` (the stage's own line, e.g. `[4/9] training ...`) and `clear` puts
    the bare header back; elsewhere each line is indented under the header and printed only at a new milestone,
    at most one every `min_gap` seconds.
    """

    def __init__(self, path: Path, stream: TextIO, header: str = "", min_gap: float = 1.0, clock=time.monotonic):
        self.path, self.stream, self.header, self.min_gap, self.clock = Path(path), stream, header, min_gap, clock
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.lines = 0  # plain lines printed
        self._shown = ""  # text on the terminal line
        self._last_key: tuple | None = None
        self._last_at = -math.inf

    def poll(self, force: bool = False) -> None:
        """Read the file and show its state if it should be shown now (`force`: ignore the time between lines)."""
        state = read(self.path)
        if state is None:
            return
        text = describe(state)
        if self.tty:
            line = f"{self.header} {text}" if self.header else text
            width = shutil.get_terminal_size((100, 20)).columns - 1
            line = line[:width]
            if line != self._shown:
                self.stream.write("\r" + line + "\x1b[K")
                self.stream.flush()
                self._shown = line
            return
        key, now = milestone(state), self.clock()
        if key == self._last_key or (not force and now - self._last_at < self.min_gap):
            return
        self.stream.write(("\n" if self.lines == 0 and self.header else "") + f"    {text}\n")
        self.stream.flush()
        self.lines += 1
        self._last_key, self._last_at = key, now

    def clear(self) -> None:
        """On a terminal, put the header back where the progress was."""
        if self.tty and self._shown:
            self.stream.write("\r" + self.header + "\x1b[K")
            self.stream.flush()
            self._shown = ""


class Live:
    """Context manager: point LSTMKIT_PROGRESS_FILE at `path` and render it on `stream` from a background thread.

    On exit the variable is restored, the last state shown (plain output), the terminal line cleared and the file
    removed. `lines` tells how many plain lines were printed (the caller then starts its next line afresh).
    """

    def __init__(self, path: Path, stream: TextIO, header: str = "", interval: float = 0.5):
        self.path, self.interval = Path(path), interval
        self.renderer = Renderer(self.path, stream, header)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lstmkit-progress", daemon=True)
        self._saved: str | None = None

    @property
    def lines(self) -> int:
        """Plain lines printed so far."""
        return self.renderer.lines

    def _loop(self) -> None:
        """Poll the file until stopped."""
        while not self._stop.wait(self.interval):
            try:
                self.renderer.poll()
            except Exception:  # a display problem must never stop the run
                pass

    def __enter__(self) -> Live:
        self.path.unlink(missing_ok=True)  # a stale state from an earlier stage or run
        self._saved = os.environ.get(ENV)
        os.environ[ENV] = str(self.path)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self._saved is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = self._saved
        try:
            if not self.renderer.tty and exc[0] is None:
                self.renderer.poll(force=True)
            self.renderer.clear()
        except Exception:  # a display problem must never fail the run
            pass
        self.path.unlink(missing_ok=True)
