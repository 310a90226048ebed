"""Preprocessing stage: chronological splits, a scaler fitted on training rows, and leak-free windows."""

from __future__ import annotations

import joblib
import pandas as pd
from sklearn.preprocessing import StandardScaler

from lstmkit.core.atomic import atomic_path, atomic_write_json
from lstmkit.data.series import read_series
from lstmkit.data.splits import SPLITS
from lstmkit.data.windows import Prepared, prepare


def save_prepared(prepared: Prepared, run) -> None:
    """Persist the fitted scalers and the split boundaries atomically (the preprocessing stage's outputs)."""
    with atomic_path(run.scaler_file) as tmp:
        joblib.dump({"scaler": prepared.scaler, "target_scaler": prepared.target_scaler, "columns": prepared.columns}, tmp)
    atomic_write_json(run.splits_file, {"rows": prepared.bounds.to_dict(), "columns": prepared.columns,
                                        "target": prepared.target, "lookback": prepared.lookback,
                                        "horizon": prepared.horizon,
                                        "windows": {s: prepared.n_windows(s) for s in SPLITS}})


def scaler_table(prepared: Prepared) -> pd.DataFrame:
    """Statistics the scaler learned from the training rows, one row per channel."""
    s = prepared.scaler
    if isinstance(s, StandardScaler):
        return pd.DataFrame({"training mean": s.mean_, "training std": s.scale_}, index=pd.Index(prepared.columns, name="channel"))
    return pd.DataFrame({"training min": s.data_min_, "training max": s.data_max_}, index=pd.Index(prepared.columns, name="channel"))


def load_prepared(run) -> Prepared:
    """Rebuild the prepared series of a run from its data and saved scaler (no refitting)."""
    cfg = run.config()
    frame = read_series(run.require(run.series_file, "data (01_data)"))
    saved = joblib.load(run.require(run.scaler_file, "preprocessing (02_preprocessing)"))
    return prepare(frame, cfg, scalers=(saved["scaler"], saved["target_scaler"]))


def split_table(prepared: Prepared) -> pd.DataFrame:
    """One row per split: its rows, dates and number of windows."""
    rows = []
    for s in SPLITS:
        a, b = prepared.bounds[s]
        rows.append({"split": s, "first row": a, "last row": b - 1, "rows": b - a,
                     "from": prepared.index[a], "to": prepared.index[b - 1], "windows": prepared.n_windows(s)})
    return pd.DataFrame(rows).set_index("split")
