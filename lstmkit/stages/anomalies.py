"""Anomalies stage: scores from step-1 forecast residuals, conformal p-values, flags, alarms and their evaluation.

Each scored observation (row r of the `anomalies.span`) gets the residuals of the selected model's forecasts of it made
1..k steps earlier (k = `anomalies.steps`, at most the horizon: the window with origin r - j forecasts r at step j),
each step standardised by the median and MAD of its own calibration residuals and smoothed over `anomalies.smooth`
trailing observations (root mean square); the score is the largest of the k, and its conformal p-value is: (1 + #{calibration scores >= score}) / (n + 1), where the
calibration scores come from forecasts of data the model did not fit on (validation windows when it was fitted on
training rows; otherwise out-of-fold residuals of walk-forward refits). Under exchangeability P(p <= a) <= a, so
flagging p <= `anomalies.false_alarm_rate` keeps that rate on normal data. Flags become alarms as Merlion's post-rule
does: a run of at least `min_run` consecutive flags raises an alarm at each of its observations from the min_run-th on,
and after an alarm no new one is raised for `suppress` observations.

Values the data stage filled or inserted (data/filled.parquet) are not observations: they get no score, p-value or
flag, and are left out of the calibration scores and of every metric; forecasts from look-backs holding them stand."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lstmkit.anomalies.labels import label_resolution, point_labels, read_labels
from lstmkit.anomalies.metrics import detection_metrics, events, random_baseline
from lstmkit.anomalies.scores import (
    aggregate_alarms,
    conformal_pvalues,
    multistep_scores,
    rolling_pvalues,
    step_forecasts,
    step_scales,
)
from lstmkit.config import Config, replace
from lstmkit.core.atomic import atomic_path, atomic_write_json
from lstmkit.data.series import read_filled
from lstmkit.data.splits import SplitBounds
from lstmkit.data.synthetic import ANOMALY_LABELS_KEY
from lstmkit.explain.integrated_gradients import integrated_gradients, network_of
from lstmkit.models.neural.forecaster import fit_forecaster


def label_source(run, cfg: Config) -> tuple[Path, str] | None:
    """Which labels the run is evaluated against: (file, series name), or None when there are none.

    `anomalies.labels` is looked up under the file name of `data.path`; without it a synthetic run uses the anomalies
    the data stage injected (`run.anomaly_labels_file`).
    """
    if cfg.anomalies.labels:
        name = Path(cfg.data.path).name if cfg.data.path else cfg.data.source
        return Path(cfg.anomalies.labels), name
    if run is not None and run.anomaly_labels_file.exists():
        return run.anomaly_labels_file, ANOMALY_LABELS_KEY
    return None


# ------------------------------------------------------------------ calibration


def scored_rows(prepared, span: str) -> np.ndarray:
    """Rows whose observations are scored: the test rows, or the validation and test rows (`val+test`)."""
    b = prepared.bounds
    start = b.val[0] if span == "val+test" else b.test[0]
    return np.arange(max(start, prepared.lookback), b.test[1])


def calibration_source(cfg: Config) -> str:
    """`val` (validation residuals) when the model never fitted on the rows before the scored span; else `oof`."""
    return "val" if cfg.anomalies.span == "test" and cfg.training.fit_on == "train" else "oof"


def _fold_residuals(forecaster, prepared, cfg: Config, folds: int, end: int, smooth: int,
                    echo=None, steps: int = 1, filled: np.ndarray | None = None) -> tuple[list[np.ndarray], str]:
    """Out-of-fold residuals (n, steps) of the step-1..steps forecasts (in the run's scaled units) of walk-forward refits on rows [0, end): fold i fits
    the forecaster's spec on an expanding prefix (its last 15% for early stopping, the scaler refitted on the rest) and
    forecasts the next block. Returns one residual array per block and a sentence naming the folds; the residuals of
    rows whose values were filled (`filled`, (rows,) bool) are NaN."""
    cfg_fold = replace(cfg, {"training.fit_on": "train", "training.verbose": 0})
    run_unit = float(prepared.to_original(1.0) - prepared.to_original(0.0))
    edges = np.linspace(0, end, folds + 2).round().astype(int)[1:]
    blocks = []
    for i in range(folds):
        prefix, stop = int(edges[i]), int(edges[i + 1])
        val_start = int(prefix * 0.85)
        bounds = SplitBounds(train=(0, val_start), val=(val_start, prefix), test=(prefix, stop))
        fold = prepared.with_bounds(bounds, refit_scaler=True)
        if echo:
            echo(f"fold {i + 1}/{folds}: fitting on rows 0-{prefix - 1}, forecasting rows {prefix}-{stop - 1}")
        if hasattr(forecaster, "spec"):  # a neural forecaster: its architecture and settings, trained afresh
            model = fit_forecaster(fold, forecaster.spec, cfg_fold, seed=forecaster.seed)
        else:  # any other forecaster of the contract (baselines): a copy fitted on the fold
            model = copy.deepcopy(forecaster).fit(fold)
        rows = np.arange(max(prefix, prepared.lookback + steps - 1), stop)
        unit = float(fold.to_original(1.0) - fold.to_original(0.0))
        r = (fold.scaled[rows, fold.target_index, None] - step_forecasts(model, fold, rows, steps)) * unit / run_unit
        if filled is not None:
            r[filled[rows]] = np.nan
        if len(r) >= smooth:
            blocks.append(r)
    text = (f"out-of-fold residuals of {folds} walk-forward refits of the selected model's architecture over rows "
            f"0-{end - 1}, each forecasting the block after its training prefix")
    return blocks, text


def filled_rows(run, index: pd.DatetimeIndex) -> np.ndarray:
    """(len(index),) bool: rows whose values the data stage filled or inserted (data/filled.parquet); all False
    without a run folder or the file (nothing was filled, or a run older than the file)."""
    if run is None:
        return np.zeros(len(index), dtype=bool)
    return read_filled(run.filled_file, index)


def _observed_scores(residuals: np.ndarray, centres: np.ndarray, scales: np.ndarray, smooth: int) -> np.ndarray:
    """The scores (multistep_scores) of a contiguous run of residuals (n, steps), without those of observations
    whose own residual is NaN (a filled value)."""
    score = multistep_scores(residuals, centres, scales, smooth)[0]
    own = np.isnan(np.asarray(residuals, dtype=float).reshape(len(residuals), -1)[smooth - 1:]).all(axis=1)
    return score[~own & ~np.isnan(score)]


@dataclass
class AnomalyResult:
    """Per-observation scores of the span, and what they were calibrated on and evaluated against."""

    frame: pd.DataFrame              # timestamp index; value, forecast, residual (step 1, original units), score,
    #                                  score_step (the step whose forecast gave the score), p_value, flag, alarm,
    #                                  label, split, filled (the value was filled by a repair: no score, p-value
    #                                  or flag, left out of the metrics)
    calibration_scores: np.ndarray   # (n_cal,) scores the p-values are computed against
    metrics: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def run_anomalies(run, cfg: Config, forecaster, prepared, echo=None) -> AnomalyResult:
    """Score, flag, aggregate and (when there are labels) evaluate the configured span with the selected model."""
    a = cfg.anomalies
    prepared = prepared.with_lookback(forecaster.lookback_)
    k = a.smooth
    steps = max(1, min(a.steps, prepared.horizon))  # forecasts of an observation made 1..steps steps before it
    rows = scored_rows(prepared, a.span)
    source = calibration_source(cfg)
    filled = filled_rows(run, prepared.index)  # values made up by a repair: forecast, never scored or calibrated on
    if source == "val":
        b = prepared.bounds.val
        cal_rows = np.arange(max(b[0], prepared.lookback + steps - 1), b[1])
        if len(cal_rows) < k:
            raise ValueError(f"the validation split has {len(cal_rows)} rows with a full look-back before them, fewer "
                             f"than anomalies.smooth ({k}): nothing to calibrate on")
        target = prepared.scaled[:, prepared.target_index]
        blocks = [target[cal_rows, None] - step_forecasts(forecaster, prepared, cal_rows, steps)]
        blocks[0][filled[cal_rows]] = np.nan
        text = (f"the {'step-1' if steps == 1 else f'step-1 to step-{steps}'} residuals of the {len(cal_rows):,} validation observations: the selected model was "
                f"fitted on the training rows only (validation served for early stopping, which chooses an epoch, "
                f"not weights fitted to those rows)")
    else:
        end = prepared.bounds.val[1] if cfg.training.fit_on == "train+val" and a.span == "test" else int(rows[0])
        blocks, text = _fold_residuals(forecaster, prepared, cfg, cfg.uncertainty.folds, end, k, echo, steps, filled)
        why = ("the selected model was refitted on training+validation rows" if cfg.training.fit_on == "train+val"
               else "the validation rows are scored (`anomalies.span: val+test`)")
        text += f", because {why}"
    centres, scales = step_scales(np.concatenate(blocks))
    centre, scale = float(centres[0]), float(scales[0])
    cal_scores = np.concatenate([_observed_scores(r, centres, scales, k) for r in blocks])
    cal_filled = int(sum(np.isnan(r).all(axis=1).sum() for r in blocks))
    if not len(cal_scores):
        raise ValueError(f"every one of the {cal_filled:,} calibration observations holds a filled value "
                         f"(data.fill_missing, data.on_gaps): nothing observed to calibrate the p-values on")
    if cal_filled:
        text += f" ({cal_filled:,} of those observations hold filled values, not observations, and are left out)"
    if a.calibration == "rolling":
        text += (f"; rolling (`anomalies.calibration: rolling`): each observation is compared with the "
                 f"{len(cal_scores):,} most recent scores before it, the "
                 f"calibration scores giving way to the scored observations as the span is walked in time order, so "
                 f"that a slow drift of the forecast errors does not turn into false alarms")
    history = np.arange(max(prepared.lookback + steps - 1, int(rows[0]) - k + 1), int(rows[-1]) + 1)  # k - 1 before
    target = prepared.scaled[:, prepared.target_index]
    forecasts = step_forecasts(forecaster, prepared, history, steps)
    residuals = target[history, None] - forecasts
    residuals[filled[history]] = np.nan
    score, score_step = multistep_scores(residuals, centres, scales, k)
    keep = len(history) - len(score)
    history, forecast = history[keep:], forecasts[keep:, 0]
    rows = history  # the first rows of the span lose their score when the look-back cannot reach back k - 1 rows
    own = filled[rows]  # observations whose own value was filled: no score, p-value or flag
    score[own], score_step[own] = np.nan, 0
    seen = ~np.isnan(score)
    pvalue = np.full(len(score), np.nan)  # online p-values compare with the most recent observed scores only
    pvalue[seen] = (rolling_pvalues(cal_scores, score[seen]) if a.calibration == "rolling"
                    else conformal_pvalues(cal_scores, score[seen]))
    flags = np.zeros(len(score), dtype=bool)
    flags[seen] = pvalue[seen] <= a.false_alarm_rate
    alarms = aggregate_alarms(flags, a.min_run, a.suppress)
    b = prepared.bounds
    split = np.where(rows >= b.test[0], "test", np.where(rows >= b.val[0], "val", "train"))
    frame = pd.DataFrame({"value": prepared.to_original(target[rows]), "forecast": prepared.to_original(forecast),
                          "residual": prepared.to_original(target[rows]) - prepared.to_original(forecast),
                          "score": score, "score_step": score_step, "p_value": pvalue, "flag": flags, "alarm": alarms, "split": split,
                          "filled": own},
                         index=prepared.index[rows])
    frame.index.name = "timestamp"
    labels = label_source(run, cfg)
    windows = read_labels(*labels) if labels else None
    frame["label"] = point_labels(frame.index, windows) if windows is not None else False
    observed = ~own
    meta = {"span": a.span, "rows": [int(rows[0]), int(rows[-1])], "observations": len(rows),
            "calibration": source, "calibration_text": text, "calibration_scores": len(cal_scores),
            "centre": centre, "scale": scale, "scale_original": scale * float(prepared.to_original(1.0)
                                                                              - prepared.to_original(0.0)),
            "smooth": k, "steps": steps, "steps_chosen": a.steps,
            "centres": centres.tolist(), "scales": scales.tolist(), "rolling": a.calibration == "rolling", "false_alarm_rate_chosen": a.false_alarm_rate, "min_run": a.min_run, "suppress": a.suppress,
            "smallest_pvalue": 1.0 / (len(cal_scores) + 1),
            "flags": int(flags.sum()), "alarms": int(alarms.sum()),
            "filled_left_out": int(own.sum()), "filled_left_out_labelled": int((own & frame["label"].to_numpy()).sum()),
            "filled_calibration_left_out": cal_filled,
            "labels": None if labels is None else {"file": str(labels[0]), "name": labels[1],
                                                   "windows": [[str(s), str(e)] for s, e in windows],
                                                   "windows_in_span": sum(bool(((frame.index >= s) & (frame.index <= e)).any())
                                                                          for s, e in windows)}}
    metrics: dict = {}
    if windows is not None:
        y = frame["label"].to_numpy()[observed]  # filled values are no observations: left out of every metric
        width = label_resolution(y)
        metrics = detection_metrics(y, score[observed], flags[observed], alarms[observed], width)
        metrics["random_baseline"] = random_baseline(y, int(flags.sum()), a.min_run, a.suppress, seed=cfg.seed,
                                                     resolution=width)
    return AnomalyResult(frame, cal_scores, metrics, meta)


def first_alarms(result: AnomalyResult, count: int) -> np.ndarray:
    """Positions (in result.frame) of the first observation of each of the first `count` alarm events."""
    return np.array([a for a, _ in events(result.frame["alarm"].to_numpy())][:count], dtype=np.int64)


def explain_alarms(forecaster, prepared, cfg: Config, result: AnomalyResult, positions: np.ndarray):
    """Integrated Gradients (explain.* settings) of the forecasts broken by the observations at `positions` of
    result.frame: for each, the forecast whose error gave its score (step j of the window ending j rows before; step 1
    when `anomalies.steps` is 1). Returns the attributions (windows, lookback, channels) and the forecast origins' rows."""
    prepared = prepared.with_lookback(forecaster.lookback_)
    rows = prepared.index.get_indexer(result.frame.index[positions])
    frame_steps = result.frame["score_step"] if "score_step" in result.frame else pd.Series(1, result.frame.index)
    steps = frame_steps.to_numpy()[positions].astype(np.int64)
    origins = rows - steps
    x = prepared.scaled[origins[:, None] + np.arange(-prepared.lookback + 1, 1)[None, :]]
    e = cfg.explain
    train = prepared.scaled[slice(*prepared.bounds.train)]
    parts = {}
    for j in np.unique(steps):  # one pass per horizon step explained
        parts[int(j)] = integrated_gradients(
            network_of(forecaster), x[steps == j], baseline=e.baseline, steps="auto" if e.auto_steps else e.steps,
            method=e.method, target=int(j) - 1, batch_size=e.batch_size, tolerance=e.tolerance, max_steps=e.steps,
            mean=train.mean(axis=0), samples=e.noise_samples, noise_std=e.noise_std, seed=cfg.seed,
            features=list(prepared.columns))
    if len(parts) == 1:
        return next(iter(parts.values())), origins
    order = np.concatenate([np.flatnonzero(steps == j) for j in parts])
    back = np.argsort(order)  # windows grouped by step -> the order of `positions`
    first = next(iter(parts.values()))
    joined = {f.name: (np.concatenate([getattr(a, f.name) for a in parts.values()])[back]
                       if isinstance(getattr(first, f.name), np.ndarray) else getattr(first, f.name))
              for f in dataclasses.fields(first)}
    return dataclasses.replace(first, **joined), origins


def save_anomalies(run, result: AnomalyResult) -> None:
    """Write anomalies/scores.parquet and anomalies/metrics.json (the metrics at top level when there are labels)."""
    run.anomalies_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run.anomaly_scores_file) as tmp:
        result.frame.reset_index().to_parquet(tmp, index=False)
    atomic_write_json(run.anomaly_metrics_file, {**result.metrics, "meta": result.meta})
