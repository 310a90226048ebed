"""A retrain job, in its own process: trains a challenger on a series' stored history and scores it against the
champion (`python -m lstmkit.service.job --state DIR --db URL --job ID --series ID`, started by the service's
`Retrainer`).

1. reads the series' stored history and holds out its most recent `serve.holdout` rows (0: the bundle config's
   validation share of the history, at least look-back + horizon rows); neither model trains on them;
2. splits the remaining rows into training and validation rows in the bundle config's train/val proportion and
   prepares them with the pipeline's own code (`lstmkit.data.windows.prepare`: scalers fitted on the new training
   rows only; window targets never cross a split);
3. fits the challenger with `lstmkit.models.neural.forecaster.fit_forecaster`, the champion's architecture,
   hyperparameters, training settings and seed;
4. scores champion (through its bundle, its own scaler) and challenger on the same held-out windows: MSE and MAE in
   original units, MSE in the challenger's scaled units, and the seasonal-naive baseline on the same windows;
5. recalibrates the challenger's intervals and drift band on the held-out windows' absolute errors (split conformal:
   it was not fitted on them) and writes its bundle with `write_bundle` into `<state>/models/.tmp-<job>/`;
6. promoted (held-out MSE lower than the champion's): the bundle is renamed to `<state>/models/<version>/` and
   recorded in the models table; rejected: recorded (status `rejected`, with its metrics) and not kept;
7. writes the result into the job's detail and exits 0; the service's monitor then swaps a promoted version in and
   marks the job succeeded (a job run by hand, without a service, marks itself succeeded; its winner stays a
   `candidate`). Exit codes: 0 done, 2 bad arguments, 3 the job cannot run (too little history, unknown
   job, champion bundle unusable), 1 an unexpected error; the log is `<state>/jobs/<id>.log`."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lstmkit.bundle.format import write_bundle
from lstmkit.bundle.runtime import load_bundle
from lstmkit.config import ConfigError, from_dict, replace
from lstmkit.core.errors import BundleError, JobFailed
from lstmkit.data.windows import prepare
from lstmkit.models.neural.forecaster import fit_forecaster
from lstmkit.models.neural.spec import ModelSpec
from lstmkit.service.registry import models_dir
from lstmkit.service.retrain import EXIT_ERROR, EXIT_JOB, EXIT_OK, PARENT_ENV, TRAINING_STARTED, now, work_dir
from lstmkit.service.storage import Storage

if TYPE_CHECKING:
    from lstmkit.bundle.runtime import Bundle
    from lstmkit.config import Config


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
    parser = argparse.ArgumentParser(prog="python -m lstmkit.service.job", description=__doc__.split("\n\n")[0])
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


if __name__ == "__main__":
    sys.exit(main())
