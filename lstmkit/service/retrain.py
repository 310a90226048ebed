"""Retraining, the service's side: the `Retrainer` starts retrain jobs (on request, every N observations, on drift)
as `python -m lstmkit.service.job` processes, one at a time, watches them, and swaps a promoted challenger in.

One job at a time: `Retrainer.submit` refuses a second one while a job runs (RetrainBusy, status 409) rather than
queueing it, so triggers never pile up jobs; the every-N trigger simply fires at the next observation after the
running job ended. The service process never trains: the job process does (`lstmkit.service.job`)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lstmkit.core.errors import RetrainBusy, RetrainError
from lstmkit.service.registry import TMP_PREFIX, models_dir
from lstmkit.service.storage import Storage

if TYPE_CHECKING:

    from lstmkit.config import ServeConfig
    from lstmkit.service.registry import Registry
    from lstmkit.service.storage import Storage


log = logging.getLogger("lstmkit.service")

PARENT_ENV = "LSTMKIT_JOB_PARENT"  # the service's pid: the job dies with it (Linux PR_SET_PDEATHSIG)
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_JOB = 0, 1, 2, 3
TRAINING_STARTED = "training started"  # the log line written just before the challenger's fit


def now() -> datetime:
    """The current time, UTC, timezone-aware."""
    return datetime.now(UTC)


def jobs_dir(state: Path) -> Path:
    """The folder of the retrain jobs' logs: `<state>/jobs`."""
    return Path(state) / "jobs"


def log_path(state: Path, job_id: str) -> Path:
    """The log file of a job: `<state>/jobs/<id>.log`."""
    return jobs_dir(state) / f"{job_id}.log"


def work_dir(state: Path, job_id: str) -> Path:
    """A job's work folder `<state>/models/.tmp-<job>` (its training checkpoint and the bundle it writes)."""
    return models_dir(state) / f"{TMP_PREFIX}{job_id}"


# ------------------------------------------------------------------------------------------------ the job process


# ------------------------------------------------------------------------------------------------ the service side


def _exit_reason(code: int) -> str:
    """Why a job process ended, from its exit status (a negative status is the signal that killed it)."""
    if code < 0:
        try:
            return f"the job process was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"the job process was killed by signal {-code}"
    return f"the job process exited with code {code}"


def _last_line(path: Path) -> str:
    """The last non-empty line of a log file ('' when none)."""
    try:
        lines = [s for s in path.read_text(errors="replace").splitlines() if s.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


class Retrainer:
    """Starts retrain jobs (one at a time) as `python -m lstmkit.service.job` processes and swaps winners in."""

    def __init__(self, registry: Registry, storage: Storage, settings: ServeConfig, db_url: str):
        """Retrain jobs of the registry's state folder; nothing starts until `submit` or a trigger fires."""
        self.registry, self.storage, self.settings, self.db_url = registry, storage, settings, db_url
        self.state = Path(registry.state)
        self._lock = threading.Lock()
        self._running: dict | None = None  # {"id", "series", "reason", "process", "thread"}
        self._drift_after: dict[str, int] = {}  # series -> stored rows before which the drift trigger rests
        self._closed = False
        self.overrides: dict = {}  # config overrides laid over the champion's config in every job (tests, tuning)

    # ------------------------------------------------------------ jobs

    def running(self) -> str | None:
        """The id of the job in flight, or None."""
        with self._lock:
            return self._running["id"] if self._running else None

    def submit(self, series_id: str, reason: str, overrides: dict | None = None) -> str:
        """Start a retrain job for a series; returns its id. RetrainBusy while another job runs (one at a time)."""
        with self._lock:
            if self._closed:
                raise RetrainError("the service is shutting down; no new retrain job starts")
            if self._running is not None:
                r = self._running
                raise RetrainBusy(f"retrain job {r['id']} (series {r['series']}, {r['reason']}) is running; one "
                                  f"retrain runs at a time, submit again when it has finished")
            champion = self.registry.current().version
            rows = self.storage.count(series_id)
            detail = {"series": series_id, "reason": reason, "champion": champion, "rows": int(rows),
                      "holdout": int(self.settings.holdout), "min_history": int(self.settings.min_history),
                      "overrides": {**self.overrides, **(overrides or {})}}
            job_id = self.storage.create_job("retrain", detail)
            detail["log"] = str(log_path(self.state, job_id))
            self.storage.update_job(job_id, detail=detail)
            self.storage.reset_counter(series_id)
            self._drift_after[series_id] = rows + int(self.settings.metrics_window)
            ready = threading.Event()
            self._running = {"id": job_id, "series": series_id, "reason": reason, "process": None, "ready": ready}
            thread = threading.Thread(target=self._run, args=(job_id, series_id), name=f"retrain-{job_id}", daemon=True)
            self._running["thread"] = thread
            thread.start()
        ready.wait(30)  # the process has started (or failed to): its pid is known to `process()`
        log.info("retrain job %s started for series %s (%s)", job_id, series_id, reason)
        return job_id

    def process(self) -> subprocess.Popen | None:
        """The running job's process (None when no job runs)."""
        with self._lock:
            return self._running["process"] if self._running else None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running job (and its swap) to finish; False on timeout."""
        with self._lock:
            thread = self._running["thread"] if self._running else None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def job_command(self, job_id: str, series_id: str) -> list[str]:
        """The job process's command line: this Python running `lstmkit.service.job`."""
        return [sys.executable, "-m", "lstmkit.service.job", "--state", str(self.state), "--db", self.db_url,
                "--job", job_id, "--series", series_id]

    def _run(self, job_id: str, series_id: str) -> None:
        """Monitor thread: start the job process (this long-lived thread is its parent), wait, then finish the job."""
        logfile = log_path(self.state, job_id)
        try:
            proc = None
            try:
                logfile.parent.mkdir(parents=True, exist_ok=True)
                cmd = self.job_command(job_id, series_id)
                env = {"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ, PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
                self.storage.update_job(job_id, status="running", started=now())
                with open(logfile, "ab") as out:
                    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=env)
            except Exception as e:  # noqa: BLE001
                self._finish(job_id, "failed", f"the job process could not start: {e}")
                return
            finally:
                with self._lock:
                    if self._running and self._running["id"] == job_id:
                        self._running["process"] = proc
                        self._running["ready"].set()
            code = proc.wait()
            try:
                self._after(job_id, code, logfile)
            except Exception as e:  # noqa: BLE001 - e.g. the database went away: the champion stays, say why
                log.exception("finishing retrain job %s failed", job_id)
                try:
                    self._finish(job_id, "failed", f"finishing the job failed: {type(e).__name__}: {e}")
                except Exception:  # noqa: BLE001
                    pass
        finally:
            with self._lock:
                if self._running and self._running["id"] == job_id:
                    self._running = None

    def _after(self, job_id: str, code: int, logfile: Path) -> None:
        """Finish a job whose process ended: swap a promoted challenger in, or record why it failed."""
        shutil.rmtree(work_dir(self.state, job_id), ignore_errors=True)
        job = self.storage.job(job_id) or {}
        result = (job.get("detail") or {}).get("result")
        if code != 0 or not result:
            if job.get("status") == "failed" and job.get("error"):
                return  # the job recorded its own reason
            last = _last_line(logfile)
            reason = _exit_reason(code) if code != 0 else "the job process exited without a result"
            self._finish(job_id, "failed", reason + (f"; last log line: {last}" if last else ""))
            return
        if result["decision"] != "promoted":
            self._finish(job_id, "succeeded")
            return
        serving = self.registry.current().version
        if serving != result["parent"]:
            self._finish(job_id, "failed", f"the serving version changed from {result['parent']} to {serving} while "
                                           f"the job ran; challenger {result['version']} was not promoted")
            return
        try:
            self.registry.promote(result["version"])
        except Exception as e:  # noqa: BLE001 - the champion stays; the job records why
            self._finish(job_id, "failed", f"promoting {result['version']} failed: {e}")
            return
        self._finish(job_id, "succeeded")

    def _finish(self, job_id: str, status: str, error: str | None = None) -> None:
        """Record a job's end."""
        fields = {"status": status, "finished": now()}
        if error:
            fields["error"] = error
            log.warning("retrain job %s failed: %s", job_id, error)
        self.storage.update_job(job_id, **fields)

    # ------------------------------------------------------------ triggers

    def observed(self, series_id: str, new: int) -> str | None:
        """Every-N trigger after an append of `new` observations: a job id when `serve.retrain_every` new observations
        have arrived since the last retrain of the series (and no job runs), else None."""
        every = int(self.settings.retrain_every)
        if every <= 0 or new <= 0 or self.running() is not None:
            return None
        if self.storage.counter(series_id) < every:
            return None
        return self._try_submit(series_id, f"every {every} observations")

    def check_drift(self, series_id: str) -> str | None:
        """Drift trigger after forecasts are scored: a job id when the rolling mean absolute step-1 error of the serving
        model over the last `serve.metrics_window` scored forecasts exceeds its calibrated band, else None.

        Rests while a job runs and, after a retrain of the series, until `serve.metrics_window` new observations
        have arrived (so one drift starts one job, not a storm)."""
        if not self.settings.drift or self.running() is not None:
            return None
        window = int(self.settings.metrics_window)
        rest = self._drift_after.get(series_id)
        if rest is None:
            rest = self._drift_after.setdefault(series_id, self._last_retrain_rows(series_id) + window)
        if self.storage.count(series_id) < rest:
            return None
        error = self.rolling_error(series_id)
        if error is None:
            return None
        band = float(self.registry.current().drift_band(window, float(self.settings.drift_level)))
        if not error > band:
            return None
        return self._try_submit(series_id, f"drift: rolling step-1 MAE {error:.4g} above the band {band:.4g}")

    def rolling_error(self, series_id: str) -> float | None:
        """Mean absolute step-1 error (original units) of the serving model's last `serve.metrics_window` scored
        forecasts of a series; None until that many have been scored."""
        bundle = self.registry.current()
        window = int(self.settings.metrics_window)
        scored = self.storage.scored(series_id, bundle.target, last=window, step=1)
        if len(scored) < window or (scored["model_version"] != bundle.version).any():
            return None
        return float(np.mean(np.abs(scored["actual"].to_numpy(float) - scored["mean"].to_numpy(float))))

    def _last_retrain_rows(self, series_id: str) -> int:
        """Stored rows of a series when its last retrain job was submitted (0 when none)."""
        rows = [int((j.get("detail") or {}).get("rows", 0)) for j in self.storage.jobs()
                if j.get("kind") == "retrain" and (j.get("detail") or {}).get("series") == series_id]
        return max(rows, default=-10**12)

    def _try_submit(self, series_id: str, reason: str) -> str | None:
        """Submit from a trigger: None (instead of an error) when another job got there first."""
        try:
            return self.submit(series_id, reason)
        except RetrainBusy:
            return None

    # ------------------------------------------------------------ start and stop

    def recover(self) -> None:
        """On start: jobs left queued or running by a killed service are marked failed ("interrupted")."""
        for status in ("queued", "running"):
            for job in self.storage.jobs(status):
                if job.get("kind") == "retrain" and job["id"] != self.running():
                    shutil.rmtree(work_dir(self.state, job["id"]), ignore_errors=True)
                    self._finish(job["id"], "failed", "interrupted: the service stopped while the job was "
                                 + ("queued" if status == "queued" else "running"))

    def close(self, timeout: float = 10.0) -> None:
        """Stop: no new jobs; a running job is terminated (then killed) and recorded as failed."""
        with self._lock:
            self._closed = True
            running = self._running
        if running is None:
            return
        proc = running.get("process")
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        thread = running.get("thread")
        if thread is not None:
            thread.join(timeout)


def job_summary(job: dict) -> dict:
    """A job's JSON-ready summary for the service's /v1/jobs/{id}: status, reason, series, times, result, error."""
    detail = job.get("detail") or {}
    return json.loads(json.dumps({**{k: job.get(k) for k in ("id", "kind", "status", "created", "started", "finished",
                                                            "error")},
                                  "series": detail.get("series"), "reason": detail.get("reason"),
                                  "champion": detail.get("champion"), "log": detail.get("log"),
                                  "result": detail.get("result")}, default=str))
