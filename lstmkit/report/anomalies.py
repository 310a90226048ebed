"""The anomaly chapter's table of detection metrics beside the random-score baseline."""

from __future__ import annotations

import pandas as pd


def metrics_table(metrics: dict) -> pd.DataFrame:
    """Detector beside the random baseline, one row per metric (for the chapter)."""
    keys = ["auc_roc", "auc_pr", "auc_roc_pooled", "auc_pr_pooled", "precision", "recall", "f1", "event_precision", "event_recall", "event_f1",
            "false_alarm_rate", "alarm_false_alarm_rate", "flag_rate"]
    rnd = metrics.get("random_baseline", {})
    return pd.DataFrame({"detector": [metrics.get(k) for k in keys], "random scores": [rnd.get(k) for k in keys]},
                        index=pd.Index(keys, name="metric")).astype(float)
