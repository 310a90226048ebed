"""Detection metrics: point precision, recall and F1, AUC-ROC and AUC-PR (also at the labels' resolution, scores
pooled over blocks), event precision, recall and F1 (an event is found when an alarm falls inside it), the achieved
false-alarm rate, and the same for random flags of the same count (`random_baseline`), so that every figure stands
beside what chance gives."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstmkit.anomalies.scores import aggregate_alarms

RANDOM_REPS = 100   # draws of the random-score baseline averaged


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
