"""Tuning stage: search the network's architecture and hyperparameters, scored on the validation split or on
walk-forward folds.

The strategies (Keras Tuner's random, grid, bayesian and hyperband; Optuna's TPE with a median pruner) live in
`lstmkit.tuning.backends.keras_tuner`; chief/worker processes in `lstmkit.tuning.backends.distributed`. This module is what they share: the objective
(one trial trained and scored), the run folder's results, and the stage's entry point `tune`."""

from __future__ import annotations

import pandas as pd

from lstmkit.data.windows import Prepared, cv_folds


def fold_table(prepared: Prepared, k: int) -> pd.DataFrame:
    """Rows and dates of each walk-forward fold's training and validation parts (for the report)."""
    rows = []
    for i, fold in enumerate(cv_folds(prepared, k)):
        (a, b), (c, d) = fold.bounds.train, fold.bounds.val
        rows.append({"fold": i + 1, "training rows": f"{a}-{b - 1}", "validation rows": f"{c}-{d - 1}",
                     "validation from": fold.index[c], "validation to": fold.index[d - 1],
                     "training windows": fold.n_windows("train"), "validation windows": fold.n_windows("val")})
    return pd.DataFrame(rows).set_index("fold")
