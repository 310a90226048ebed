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
flag, and are left out of the calibration scores and of every metric; forecasts from look-backs holding them stand.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lstmkit.config import Config


class LabelsError(ValueError):
    """A labels file that cannot be used, naming the file, the series and the entry at fault."""


MAD_TO_SD = 1.4826  # median absolute deviation of a normal sample x this = its standard deviation
RANDOM_REPS = 100   # draws of the random-score baseline averaged


# ------------------------------------------------------------------ labels

def read_labels(path: str | Path, name: str) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The label windows of series `name` in a `{name: [[start, end], ...]}` JSON file, as (start, end) timestamps."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"{path}: labels file not found (anomalies.labels)")
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LabelsError(f"{path}: cannot be read as JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(content, dict):
        raise LabelsError(f"{path}: expected an object {{file name: [[start, end], ...]}}, got a "
                          f"{type(content).__name__}")
    if name not in content:
        raise LabelsError(f"{path}: no labels for '{name}'; the file labels: "
                          f"{', '.join(map(repr, content)) or 'nothing'}")
    entries = content[name]
    if not isinstance(entries, list):
        raise LabelsError(f"{path}: the labels of '{name}' must be a list of [start, end] pairs")
    windows = []
    for i, entry in enumerate(entries):
        if not (isinstance(entry, list) and len(entry) == 2):
            raise LabelsError(f"{path}: '{name}' entry {i} is {entry!r}, not a [start, end] pair")
        try:
            start, end = (pd.Timestamp(v) for v in entry)
        except (ValueError, TypeError):
            raise LabelsError(f"{path}: '{name}' entry {i} {entry!r} does not hold two timestamps") from None
        if pd.isna(start) or pd.isna(end):
            raise LabelsError(f"{path}: '{name}' entry {i} {entry!r} does not hold two timestamps")
        if end < start:
            raise LabelsError(f"{path}: '{name}' entry {i} ends ({end}) before it starts ({start})")
        windows.append((start, end))
    return windows


def label_source(run, cfg: Config) -> tuple[Path, str] | None:
    """Which labels the run is evaluated against: (file, series name), or None when there are none.

    `anomalies.labels` is looked up under the file name of `data.path`; without it a synthetic run uses the anomalies
    the data stage injected (`run.anomaly_labels_file`).
    """
    from lstmkit.data import ANOMALY_LABELS_KEY

    if cfg.anomalies.labels:
        name = Path(cfg.data.path).name if cfg.data.path else cfg.data.source
        return Path(cfg.anomalies.labels), name
    if run is not None and run.anomaly_labels_file.exists():
        return run.anomaly_labels_file, ANOMALY_LABELS_KEY
    return None


def point_labels(index: pd.DatetimeIndex, windows: list[tuple[pd.Timestamp, pd.Timestamp]]) -> np.ndarray:
    """(n,) bool: whether each timestamp lies inside a label window (both ends included)."""
    out = np.zeros(len(index), dtype=bool)
    for a, b in windows:
        out |= (index >= a) & (index <= b)
    return out


# ------------------------------------------------------------------ residuals, scores, p-values

def step_forecasts(forecaster, prepared, rows: np.ndarray, steps: int = 1, batch_size: int = 4096) -> np.ndarray:
    """(len(rows), steps) forecasts, scaled, of the target at each row: column j - 1 is the step-j forecast made from the
    look-back ending at row - j (every forecast was issued before the row it forecasts)."""
    rows = np.asarray(rows, dtype=np.int64)
    lookback = prepared.lookback
    if rows.size and rows.min() < lookback + steps - 1:
        raise ValueError(f"row {rows.min()} has fewer than {lookback + steps - 1} rows before it for a look-back window "
                         f"{steps} step(s) earlier")
    out = np.empty((len(rows), steps))
    if not rows.size:
        return out
    first = int(rows.min()) - steps  # origins first..last (the last row of each look-back window)
    origins = np.arange(first, int(rows.max()))
    offsets = np.arange(-lookback + 1, 1)[None, :]
    predicted = np.empty((len(origins), steps))
    for a in range(0, len(origins), batch_size):
        windows = prepared.scaled[origins[a:a + batch_size, None] + offsets]
        predicted[a:a + batch_size] = forecaster.predict(windows)[:, :steps]
    for j in range(1, steps + 1):
        out[:, j - 1] = predicted[rows - j - first, j - 1]
    return out


def step1_forecasts(forecaster, prepared, rows: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """(len(rows),) step-1 forecasts, scaled, of the target at each row, made from the look-back ending at row - 1."""
    return step_forecasts(forecaster, prepared, rows, 1, batch_size)[:, 0]


def robust_scale(residuals: np.ndarray) -> tuple[float, float]:
    """Centre (median) and scale (MAD x 1.4826, the standard deviation when the MAD is 0) of residuals."""
    r = np.asarray(residuals, dtype=float)
    centre = float(np.median(r))
    scale = MAD_TO_SD * float(np.median(np.abs(r - centre)))
    if not scale > 0:
        scale = float(np.std(r)) or 1.0
    return centre, scale


def scores_from(residuals: np.ndarray, centre: float, scale: float, smooth: int = 1) -> np.ndarray:
    """(n - smooth + 1,) scores of a contiguous run of residuals: root mean square of the standardised residuals over
    `smooth` trailing observations; score i belongs to residual i + smooth - 1. NaN residuals (filled values, not
    observations) are left out of the mean; a score whose window holds none but NaN is NaN."""
    z2 = ((np.asarray(residuals, dtype=float) - centre) / scale) ** 2
    if smooth <= 1:
        return np.sqrt(z2)
    seen = ~np.isnan(z2)
    c = np.concatenate([[0.0], np.cumsum(np.where(seen, z2, 0.0))])
    n = np.concatenate([[0], np.cumsum(seen)])
    count = n[smooth:] - n[:-smooth]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.sqrt(np.maximum(c[smooth:] - c[:-smooth], 0.0) / count), np.nan)


def step_scales(residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-step centres and scales (robust_scale of each column) of residuals (n, steps): two (steps,) arrays."""
    r = np.asarray(residuals, dtype=float).reshape(len(residuals), -1)
    pairs = [robust_scale(r[~np.isnan(r[:, j]), j]) for j in range(r.shape[1])]  # NaN: filled values, left out
    return np.array([c for c, _ in pairs]), np.array([s for _, s in pairs])


def multistep_scores(residuals: np.ndarray, centres: np.ndarray, scales: np.ndarray,
                     smooth: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Scores (n - smooth + 1,) of a contiguous run of multi-step residuals (n, steps): the largest over the steps of
    each step's scores_from (standardised by its own centre and scale); also the step (1-based) that gave it."""
    r = np.asarray(residuals, dtype=float).reshape(len(residuals), -1)
    per_step = np.stack([scores_from(r[:, j], centres[j], scales[j], smooth) for j in range(r.shape[1])], axis=1)
    none = np.isnan(per_step).all(axis=1)  # no observed residual in the window (filled values): no score, step 0
    per_step = np.where(np.isnan(per_step), -np.inf, per_step)
    return np.where(none, np.nan, per_step.max(axis=1)), np.where(none, 0, per_step.argmax(axis=1) + 1)


def conformal_pvalues(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values (1 + #{calibration >= s}) / (n + 1) of scores s against n calibration scores."""
    cal = np.sort(np.asarray(calibration, dtype=float))
    at_least = len(cal) - np.searchsorted(cal, np.asarray(scores, dtype=float), side="left")
    return (1.0 + at_least) / (len(cal) + 1.0)


def rolling_pvalues(calibration: np.ndarray, scores: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Online conformal p-values: score t against the n most recent scores before it, drawn from the calibration
    scores (n of them) followed by the scores 0..t-1; (1 + #{those >= s_t}) / (n + 1)."""
    from numpy.lib.stride_tricks import sliding_window_view

    cal, scores = np.asarray(calibration, dtype=float), np.asarray(scores, dtype=float)
    n = len(cal)
    windows = sliding_window_view(np.concatenate([cal, scores]), n)[:len(scores)]  # row t: the n scores before t
    out = np.empty(len(scores))
    for a in range(0, len(scores), chunk):
        out[a:a + chunk] = (1.0 + (windows[a:a + chunk] >= scores[a:a + chunk, None]).sum(axis=1)) / (n + 1.0)
    return out


def aggregate_alarms(flags: np.ndarray, min_run: int = 1, suppress: int = 0) -> np.ndarray:
    """Alarms from flags (Merlion-style post-rule): an observation alarms when it ends a run of at least `min_run`
    consecutive flags and no alarm was raised in the `suppress` observations before it."""
    flags = np.asarray(flags, dtype=bool)
    alarms = np.zeros(len(flags), dtype=bool)
    run, last = 0, -(suppress + 1)
    for i, f in enumerate(flags):
        run = run + 1 if f else 0
        if run >= min_run and i - last > suppress:
            alarms[i] = True
            last = i
    return alarms


def events(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as (first, last) positions, both included."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(int))
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))


# ------------------------------------------------------------------ evaluation

def event_f1(labels: np.ndarray, alarms: np.ndarray) -> dict:
    """Event-wise precision, recall and F1: a label window counts as found when an alarm lies in it; an alarm event (a
    run of consecutive alarms) counts as true when it overlaps a label window. No point adjustment."""
    truth, found = events(labels), events(alarms)
    recall = float(np.mean([alarms[a:b + 1].any() for a, b in truth])) if truth else float("nan")
    precision = float(np.mean([labels[a:b + 1].any() for a, b in found])) if found else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"event_precision": precision, "event_recall": recall, "event_f1": f1,
            "label_events": len(truth), "alarm_events": len(found)}


def label_resolution(labels: np.ndarray) -> int:
    """The labels' resolution in observations: the median length of the label windows (1 without any)."""
    found = events(labels)
    return int(np.median([b - a + 1 for a, b in found])) if found else 1


def pooled(scores: np.ndarray, width: int) -> np.ndarray:
    """(n,) the largest score within a centred window of `width` observations around each (cut at the span's ends):
    the evidence for "an anomaly near here", the question a label window of that width answers."""
    if width <= 1:
        return np.asarray(scores, dtype=float)
    return pd.Series(np.asarray(scores, dtype=float)).rolling(width, center=True, min_periods=1).max().to_numpy()


def detection_metrics(labels: np.ndarray, scores: np.ndarray, flags: np.ndarray, alarms: np.ndarray,
                      resolution: int = 1) -> dict:
    """Point-wise precision/recall/F1 of the alarms, event-wise F1, AUC-ROC and AUC-PR (average precision) of the
    scores, and the false-alarm rate achieved (flagged share of unlabelled observations). With `resolution` > 1 also
    the AUCs of the scores pooled (centred maximum) over that many observations: `auc_roc_pooled`, `auc_pr_pooled`."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    labels = np.asarray(labels, dtype=bool)
    both = labels.any() and not labels.all()
    p, r, f, _ = precision_recall_fscore_support(labels, alarms, average="binary", zero_division=0.0)
    normal = ~labels
    wide = pooled(scores, resolution)
    return {"auc_roc": float(roc_auc_score(labels, scores)) if both else None,
            "auc_pr": float(average_precision_score(labels, scores)) if both else None,
            "auc_roc_pooled": float(roc_auc_score(labels, wide)) if both else None,
            "auc_pr_pooled": float(average_precision_score(labels, wide)) if both else None,
            "resolution": int(resolution),
            "precision": float(p), "recall": float(r), "f1": float(f), **event_f1(labels, alarms),
            "false_alarm_rate": float(flags[normal].mean()) if normal.any() else None,
            "alarm_false_alarm_rate": float(alarms[normal].mean()) if normal.any() else None,
            "flag_rate": float(np.mean(flags)), "labelled_share": float(labels.mean())}


def random_baseline(labels: np.ndarray, n_flags: int, min_run: int, suppress: int, reps: int = RANDOM_REPS,
                    seed: int = 0, resolution: int = 1) -> dict:
    """The metrics of random scores (uniform, independent) flagging as many observations as the detector, aggregated
    alike, averaged over `reps` draws: what each metric gives for free."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    rows = []
    for _ in range(reps):
        scores = rng.random(n)
        flags = np.zeros(n, dtype=bool)
        if n_flags:
            flags[np.argsort(-scores)[:n_flags]] = True
        rows.append(detection_metrics(labels, scores, flags, aggregate_alarms(flags, min_run, suppress), resolution))
    return {k: (float(np.mean([r[k] for r in rows])) if rows[0][k] is not None else None) for k in rows[0]}


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
    from lstmkit.preprocessing import SplitBounds
    from lstmkit.training import fit_forecaster

    cfg_fold = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, fit_on="train", verbose=0))
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
    from lstmkit.data import read_filled

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
    from lstmkit.explain import integrated_gradients, network_of

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
    from lstmkit.atomic import atomic_path, atomic_write_json

    run.anomalies_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run.anomaly_scores_file) as tmp:
        result.frame.reset_index().to_parquet(tmp, index=False)
    atomic_write_json(run.anomaly_metrics_file, {**result.metrics, "meta": result.meta})


def metrics_table(metrics: dict) -> pd.DataFrame:
    """Detector beside the random baseline, one row per metric (for the chapter)."""
    keys = ["auc_roc", "auc_pr", "auc_roc_pooled", "auc_pr_pooled", "precision", "recall", "f1", "event_precision", "event_recall", "event_f1",
            "false_alarm_rate", "alarm_false_alarm_rate", "flag_rate"]
    rnd = metrics.get("random_baseline", {})
    return pd.DataFrame({"detector": [metrics.get(k) for k in keys], "random scores": [rnd.get(k) for k in keys]},
                        index=pd.Index(keys, name="metric")).astype(float)


def flag_threshold(calibration: np.ndarray, rate: float) -> float:
    """The score above which an observation is flagged at `rate`: p <= rate exactly when fewer than
    floor(rate (n + 1)) calibration scores reach the score, i.e. when it exceeds the floor(rate (n + 1))-th largest
    (+inf when rate (n + 1) < 1: with so few calibration scores nothing can be flagged)."""
    cal = np.sort(np.asarray(calibration, dtype=float))[::-1]
    k = int(np.floor(rate * (len(cal) + 1)))
    return float(cal[k - 1]) if k >= 1 else float("inf")
