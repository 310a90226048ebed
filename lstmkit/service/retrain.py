"""Retraining: a job process that trains a challenger on a series' stored history and scores it against the champion,
and the service-side `Retrainer` that starts jobs (on request, every N observations, on drift) and swaps winners in.

The job (`python -m lstmkit.service.retrain --state DIR --db URL --job ID --series ID`):

1. reads the series' stored history and holds out its most recent `serve.holdout` rows (0: the bundle config's
   validation share of the history, at least look-back + horizon rows); neither model trains on them;
2. splits the remaining rows into training and validation rows in the bundle config's train/val proportion and
   prepares them with the pipeline's own code (`lstmkit.data.windows.prepare`: scalers fitted on the new training
   rows only; window targets never cross a split);
3. fits the challenger with `lstmkit.models.neural.forecaster.fit_forecaster`, the champion's architecture, hyperparameters, training
   settings and seed;
4. scores champion (through its bundle, its own scaler) and challenger on the same held-out windows: MSE and MAE in
   original units, MSE in the challenger's scaled units, and the seasonal-naive baseline on the same windows;
5. recalibrates the challenger's intervals and drift band on the held-out windows' absolute errors (split conformal:
   it was not fitted on them) and writes its bundle with `write_bundle` into `<state>/models/.tmp-<job>/`;
6. promoted (held-out MSE lower than the champion's): the bundle is renamed to `<state>/models/<version>/` and
   recorded in the models table; rejected: recorded (status `rejected`, with its metrics) and not kept;
7. writes the result into the job's detail and exits 0; the service's monitor then swaps a promoted version in and
   marks the job succeeded (a job run by hand, without a service, marks itself succeeded; its winner stays a
   `candidate`). Exit codes: 0 done, 2 bad arguments, 3 the job cannot run (too little history, unknown
   job, champion bundle unusable), 1 an unexpected error; the log is `<state>/jobs/<id>.log`.

One job at a time: `Retrainer.submit` refuses a second one while a job runs (RetrainBusy, status 409) rather than
queueing it, so triggers never pile up jobs; the every-N trigger simply fires at the next observation after the
running job ended."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lstmkit.bundle.format import write_bundle
from lstmkit.bundle.runtime import load_bundle
from lstmkit.config import ConfigError, from_dict, replace
from lstmkit.core.errors import BundleError, JobFailed, RetrainBusy, RetrainError
from lstmkit.data.windows import prepare
from lstmkit.models.neural.forecaster import fit_forecaster
from lstmkit.models.neural.spec import ModelSpec
from lstmkit.service.registry import TMP_PREFIX, models_dir
from lstmkit.service.storage import Storage

if TYPE_CHECKING:

    from lstmkit.bundle.runtime import Bundle
    from lstmkit.config import Config, ServeConfig
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


def holdout_rows(setting: int, cfg: Config, n_rows: int, lookback: int, horizon: int) -> int:
    """Rows held out for scoring: `serve.holdout`, or (0) the config's validation share of the history, at least
    lookback + horizon and enough windows for the conformal quantile of every interval level."""
    if setting > 0:
        return int(setting)
    val = float(cfg.split.val)
    share = val if val < 1 else val / max(n_rows, 1)
    windows = max([math.ceil(level / (1 - level) - 1e-9) for level in cfg.uncertainty.levels], default=1)
    return max(int(round(share * n_rows)), lookback + horizon, windows + horizon - 1)


def retrain_splits(cfg: Config, n_rows: int, holdout: int, lookback: int, horizon: int,
                   min_history: int = 0) -> tuple[int, int]:
    """Training and validation rows before the held-out span, in the config's train/val proportion; JobFailed when
    the history is too short, saying how many rows are needed."""
    base = holdout + lookback + 2 * horizon
    need = max(base, int(min_history))
    if n_rows < need:
        why = (f"serve.min_history {need}" if need > base else
               f"held-out {holdout} + one training window {lookback + horizon} + one validation window {horizon}")
        raise JobFailed(f"the series holds {n_rows} stored rows; a retrain needs at least {need} ({why})")
    rest = n_rows - holdout
    train, val = float(cfg.split.train), float(cfg.split.val)
    val_rows = max(int(round(rest * val / (train + val))), horizon)
    if rest - val_rows < lookback + horizon:
        val_rows = rest - lookback - horizon
    return rest - val_rows, val_rows


def _say(*parts: object) -> None:
    """One timestamped log line on stdout (the service sends it to the job's log file)."""
    print(now().strftime("%Y-%m-%dT%H:%M:%SZ"), *parts, flush=True)


def _mse_mae(y: np.ndarray, yhat: np.ndarray) -> dict:
    """MSE and MAE of (n, horizon) forecasts (any units); NaN when a forecast is not finite."""
    e = np.asarray(yhat, float) - np.asarray(y, float)
    if not np.isfinite(e).all():
        return {"mse": math.nan, "mae": math.nan}
    return {"mse": float(np.mean(e ** 2)), "mae": float(np.mean(np.abs(e)))}


def challenger_spec(champion: Bundle, overrides: dict):
    """The champion's ModelSpec (architecture and hyperparameters) and seed; `model.*` overrides laid over the spec."""
    f = champion.forecaster
    spec = getattr(f, "spec", None)
    if spec is None:
        spec = ModelSpec.from_dict(f.summary()["hyperparameters"])
    fields = {x.name for x in dataclasses.fields(spec)}
    changes = {k.split(".", 1)[1]: v for k, v in overrides.items()
               if k.startswith("model.") and k.split(".", 1)[1] in fields}
    spec = dataclasses.replace(spec, lookback=champion.lookback, **changes)
    seed = int(getattr(f, "seed", champion.config.seed))
    return spec, seed


def run_job(state: Path, storage: Storage, job_id: str, series_id: str) -> dict:
    """Train, score and (maybe) keep a challenger for one job; returns the job's result (also written to storage)."""
    job = storage.job(job_id)
    if job is None:
        raise JobFailed(f"no job {job_id} in the database")
    detail = dict(job.get("detail") or {})
    champion_version = detail.get("champion")
    try:
        champion = load_bundle(models_dir(state) / str(champion_version))
    except BundleError as e:
        raise JobFailed(f"the champion {champion_version} cannot be loaded: {e}") from None
    overrides = dict(detail.get("overrides") or {})
    try:
        cfg = from_dict(champion.config.to_dict(), overrides)
    except ConfigError as e:
        raise JobFailed(f"overrides {overrides}: {e}") from None

    history = storage.history(series_id)
    missing = [c for c in champion.columns if c not in history.columns]
    if len(history) and missing:
        raise JobFailed(f"series {series_id} lacks the model's columns {missing} (it holds {list(history.columns)})")
    n, lookback, horizon = len(history), champion.lookback, champion.horizon
    holdout = holdout_rows(int(detail.get("holdout", 0)), cfg, n, lookback, horizon)
    train_rows, val_rows = retrain_splits(cfg, n, holdout, lookback, horizon, int(detail.get("min_history", 0)))
    _say(f"job {job_id}: series {series_id}, {n} rows: training {train_rows}, validation {val_rows}, held out {holdout};"
         f" champion {champion.version}")
    cfg = replace(cfg, {"split.train": train_rows, "split.val": val_rows, "split.test": holdout,
                        "window.lookback": lookback, "window.horizon": horizon})
    frame = history[champion.columns].astype(float)
    prepared = prepare(frame, cfg)
    spec, seed = challenger_spec(champion, overrides)
    work = work_dir(state, job_id)
    work.mkdir(parents=True, exist_ok=True)
    _say(f"{TRAINING_STARTED}: {spec.architecture}, seed {seed}, up to {cfg.training.epochs} epochs")
    challenger = fit_forecaster(prepared, spec, cfg, seed, spec.architecture, checkpoint=work / "checkpoint.keras")
    _say(f"training finished: best epoch {challenger.best_epoch_}, validation loss {challenger.val_loss_:.4g}")

    # the held-out windows, the same for both models (inputs may reach back before the held-out rows)
    origins = prepared.origins("test")
    values = frame.to_numpy(dtype=np.float32)
    target = values[:, champion.columns.index(champion.target)].astype(float)
    windows = values[(origins - lookback + 1)[:, None] + np.arange(lookback)[None, :]]
    y = target[prepared.target_rows("test")]
    champion_mean = np.asarray(champion.forecast_arrays(windows)[0], float)
    inputs, y_scaled = prepared.windows("test", slice(None))
    challenger_scaled = challenger.predict(inputs)
    challenger_mean = prepared.to_original(challenger_scaled)
    to_scaled = prepared.target_scaler

    def scaled(a: np.ndarray) -> np.ndarray:
        return to_scaled.transform(np.asarray(a, float).reshape(-1, 1)).reshape(np.shape(a))

    scores = {}
    for name, pred in (("champion", champion_mean), ("challenger", challenger_mean)):
        scores[name] = {"original": _mse_mae(y, pred), "scaled": _mse_mae(y_scaled, scaled(pred))}
    period = int(champion.seasonal_period)
    steps = np.arange(1, horizon + 1)
    source = origins[:, None] + (steps - period * np.ceil(steps / period).astype(int))[None, :]
    if period >= 1 and source.min() >= 0:
        naive = target[source]
        scores["seasonal_naive"] = {"original": _mse_mae(y, naive), "scaled": _mse_mae(y_scaled, scaled(naive))}
    champ_mse, chal_mse = scores["champion"]["original"]["mse"], scores["challenger"]["original"]["mse"]
    promoted = bool(np.isfinite(chal_mse) and (not np.isfinite(champ_mse) or chal_mse < champ_mse))
    _say(f"held-out MSE (original units): champion {champ_mse:.6g}, challenger {chal_mse:.6g} over {len(y)} windows"
         f" -> {'promoted' if promoted else 'rejected'}")

    abs_errors = np.abs(np.asarray(y_scaled, float) - challenger_scaled)  # (n_cal, horizon), scaled: split conformal
    calibration = {"source": "retrain-holdout", "windows": int(len(abs_errors)), "job": job_id,
                   "rows": [int(n - holdout), int(n)]}
    metrics = {"source": f"retrain job {job_id}: held-out rows {n - holdout}..{n - 1} of series {series_id}",
               "holdout": {"rows": int(holdout), "windows": int(len(y)), "scores": scores}, "model": scores["challenger"],
               "model_name": spec.architecture,
               "baselines": {k: v for k, v in scores.items() if k == "seasonal_naive"}}
    fitted_rows = train_rows + val_rows if cfg.training.fit_on == "train+val" else train_rows
    cutoff = frame.index[fitted_rows - 1]  # the last row it was fitted on (as export_bundle records it)
    base = {"parent": champion.version, "holdout_rows": int(holdout), "holdout_windows": int(len(y)),
            "training_rows": int(train_rows), "validation_rows": int(val_rows), "cutoff": str(cutoff),
            "scores": scores, "champion_mse": champ_mse, "challenger_mse": chal_mse,
            "champion_mse_scaled": scores["champion"]["scaled"]["mse"],
            "challenger_mse_scaled": scores["challenger"]["scaled"]["mse"],
            "best_epoch": int(challenger.best_epoch_), "val_loss": float(challenger.val_loss_)}
    if not np.isfinite(abs_errors).all():  # a diverged challenger: rejected, nothing to write
        result = {"decision": "rejected", "version": None, **base, "note": "the challenger's forecasts are not finite"}
        shutil.rmtree(work, ignore_errors=True)
        storage.update_job(job_id, detail={**detail, "result": result})
        _say(f"job {job_id}: rejected (the challenger's forecasts are not finite)")
        return result
    out = write_bundle(work / "bundle", challenger, prepared.scaler, prepared.target_scaler, list(champion.columns),
                       champion.target, champion.freq, cutoff, cfg, calibration, abs_errors, metrics,
                       extra={"retrain": {"job": job_id, "series": series_id, "parent": champion.version}})
    version = load_bundle(out).version
    result = {"decision": "promoted" if promoted else "rejected", "version": version, **base}
    known = {m["version"] for m in storage.models()}
    if promoted:
        final = models_dir(state) / version
        if not final.is_dir():
            Path(out).rename(final)
        if version not in known:
            storage.add_model(version, str(final), champion.version, metrics, "candidate")
    elif version not in known:
        storage.add_model(version, "", champion.version, metrics, "rejected")
    shutil.rmtree(work, ignore_errors=True)
    storage.update_job(job_id, detail={**detail, "result": result})
    _say(f"job {job_id}: {result['decision']} {version}")
    return result


def _die_with_parent() -> None:
    """When started by a service (PARENT_ENV set): die with it (Linux), and stop at once if it is already gone."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != int(parent):
        sys.exit(EXIT_JOB)


def main(argv: list[str] | None = None) -> int:
    """The job process: run one retrain job; exit 0 done, 2 usage, 3 job cannot run, 1 unexpected error."""
    parser = argparse.ArgumentParser(prog="python -m lstmkit.service.retrain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", required=True, help="the service's state folder")
    parser.add_argument("--db", required=True, help="SQLAlchemy URL of the service's database")
    parser.add_argument("--job", required=True, help="job id (created by the service)")
    parser.add_argument("--series", required=True, help="series id whose stored history the challenger trains on")
    args = parser.parse_args(argv)
    _die_with_parent()

    storage = Storage(args.db)
    try:
        result = run_job(Path(args.state), storage, args.job, args.series)
        if not os.environ.get(PARENT_ENV):  # run by hand: no service will finish the job (nor swap a winner in)
            storage.update_job(args.job, status="succeeded", finished=now())
            if result["decision"] == "promoted":
                _say(f"version {result['version']} is recorded as a candidate; a service serves it after "
                     "Registry.promote")
        return EXIT_OK
    except JobFailed as e:
        _say(f"job {args.job} failed: {e}")
        _fail(storage, args.job, str(e))
        return EXIT_JOB
    except Exception as e:  # noqa: BLE001 - the job's one place to record any failure
        traceback.print_exc()
        _fail(storage, args.job, f"{type(e).__name__}: {e}")
        return EXIT_ERROR


def _fail(storage: Storage, job_id: str, error: str) -> None:
    """Mark a job failed with its reason (best effort: the database may be what failed)."""
    try:
        storage.update_job(job_id, status="failed", error=error, finished=now())
    except Exception:  # noqa: BLE001
        traceback.print_exc()


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
    """Starts retrain jobs (one at a time) as `python -m lstmkit.service.retrain` processes and swaps winners in."""

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
        """The job process's command line: this Python running `lstmkit.service.retrain`."""
        return [sys.executable, "-m", "lstmkit.service.retrain", "--state", str(self.state), "--db", self.db_url,
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


if __name__ == "__main__":
    sys.exit(main())
