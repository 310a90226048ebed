"""The trials table every backend returns: one row per trial in start order with its architecture and sampled
hyperparameters (an architecture's own settings left empty in the trials of other architectures), `val_loss` (the
objective), `best_epoch`, `seconds`, per-fold losses and `status` (COMPLETED, PRUNED, FAILED, RUNNING)."""

from __future__ import annotations

import math

import pandas as pd

from lstmkit.tuning.space import SearchSpace


def _hyperparameters(number: int, sampled: dict, space: SearchSpace) -> dict:
    """The start of a trial's row: its number, architecture and the value of every tuned hyperparameter (NaN where
    inactive: another architecture's setting)."""
    values = space.values(sampled)
    return {"trial": int(number), "architecture": values.get("architecture"),
            **{k: values.get(k, math.nan) for k in space.names}}


def _table(rows: list[dict]) -> pd.DataFrame:
    """Trials table from one dict per trial, indexed by trial number."""
    table = pd.DataFrame(rows)
    return table.set_index("trial").sort_index() if not table.empty else table
