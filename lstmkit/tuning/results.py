"""Tuning stage: search the network's architecture and hyperparameters, scored on the validation split or on
walk-forward folds.

The strategies (Keras Tuner's random, grid, bayesian and hyperband; Optuna's TPE with a median pruner) live in
`lstmkit.tuning.backends.keras_tuner`; chief/worker processes in `lstmkit.tuning.backends.distributed`. This module is what they share: the objective
(one trial trained and scored), the run folder's results, and the stage's entry point `tune`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from lstmkit.config import Config
from lstmkit.core.atomic import atomic_write_json, atomic_write_text, read_json
from lstmkit.core.errors import TuningError
from lstmkit.models.neural.spec import ModelSpec
from lstmkit.runs.folder import RunFolder
from lstmkit.tuning.objective import project_name, spec_from_values
from lstmkit.tuning.space import MUTABLE, SearchSpace, owner, search_space

# ---------------------------------------------------------------- results in the run folder


def save_results(run: RunFolder, cfg: Config, table: pd.DataFrame) -> ModelSpec:
    """Write the trials table and the best configuration (for the training stage) atomically.

    `best_hyperparameters.json` holds the best trial's ModelSpec in its flat form (`architecture`, the common
    hyperparameters, `lookback` and its architecture's `<arch>.<option>` settings), then score and provenance.
    """
    done = table[(table["status"] == "COMPLETED") & np.isfinite(table["val_loss"].astype(float))]
    if done.empty:
        messages = table.get("message", pd.Series(dtype=str)).dropna()
        detail = f": {messages.iloc[-1].strip().splitlines()[-1]}" if len(messages) else ""
        if not detail and len(table) and np.isposinf(table["val_loss"].astype(float)).all():
            detail = ": every trial's validation loss diverged (not finite); lower tuning.space.learning_rate or check the data for NaN"
        raise TuningError(f"no trial of the {cfg.tuning.strategy} search in {run.tuning_dir} completed{detail}")
    best = done["val_loss"].astype(float).idxmin()
    spec = spec_from_values(row_values(done.loc[best], search_space(cfg)), cfg)
    schedule = {}
    if "schedule" in table:  # pbt: the winner's hyperparameter schedule, for the training stage to replay

        schedule = best_schedule(table, best)
        final = {k: v for k, v in schedule["schedule"][-1].items() if k != "epochs"}  # in force at the best epoch
        spec = spec_from_values(row_values(done.loc[best], search_space(cfg)) | final, cfg)
    atomic_write_json(run.best_hyperparameters_file, {
        **spec.to_dict(), "val_loss": float(done.loc[best, "val_loss"]), "trial": int(best),
        "best_epoch": int(done.loc[best, "best_epoch"]), "strategy": cfg.tuning.strategy,
        "cv_folds": cfg.tuning.cv_folds, "trials": int(len(done)), "search": project_name(cfg), **schedule})
    atomic_write_text(run.trials_file, table.drop(columns=["message", "schedule"], errors="ignore").to_csv())
    return spec


def row_values(row: pd.Series, space: SearchSpace) -> dict:
    """A trial's values from its row of the trials table, in their declared types (a column holding another
    architecture's NaN makes its integers floats, and a CSV makes choices text): the active ones only."""
    values = {"architecture": str(row["architecture"])} if pd.notna(row.get("architecture")) else {}
    for p in space.params:
        v = row.get(p.name)
        if v is not None and pd.notna(v):
            values[p.name] = _choice(p, v) if not p.is_range else p.type(v.item() if hasattr(v, "item") else v)
    return values


def read_trials(run: RunFolder) -> pd.DataFrame:
    """The trials table saved by the tuning stage, in the order the trials started."""
    return pd.read_csv(run.require(run.trials_file, "tuning (03_tuning)"), index_col="trial")


def read_best(run: RunFolder) -> dict:
    """The best configuration saved by the tuning stage, with its score and provenance."""
    return read_json(run.require(run.best_hyperparameters_file, "tuning (03_tuning)"))


def param_importance(table: pd.DataFrame, space: SearchSpace) -> pd.Series | None:
    """Share of the objective's variance explained by each tuned hyperparameter (Optuna's fANOVA), for any strategy.

    None when fewer than three completed trials or no tuned hyperparameter varies. An architecture's own settings
    (NaN in the trials of other architectures) count only when every completed trial has them, i.e. when the
    completed trials all trained that architecture (fANOVA needs one value of each parameter per trial).
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    done = table[(table["status"] == "COMPLETED") & np.isfinite(table["val_loss"].astype(float))]
    varying = [p for p in space.params if p.name in done and done[p.name].nunique() > 1
               and (owner(p.name) is None or done[p.name].notna().all())]
    if len(done) < 3 or not varying:
        return None
    dists = {}
    for p in varying:
        if not p.is_range:
            dists[p.name] = CategoricalDistribution(list(p.choices))
        elif p.type is int:
            dists[p.name] = IntDistribution(int(p.min), int(p.max), log=p.log, step=1 if p.log else int(p.step or 1))
        else:
            dists[p.name] = FloatDistribution(p.min, p.max, log=p.log, step=p.step)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _, row in done.iterrows():
        params = {p.name: (p.type(row[p.name]) if p.is_range else _choice(p, row[p.name]))
                  for p in varying if pd.notna(row[p.name])}
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params},
                                                  value=float(row["val_loss"])))
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return pd.Series(optuna.importance.get_param_importances(study, evaluator=evaluator), name="importance")


def _choice(param, value):
    """A choice read back from CSV (e.g. '64') or a column with NaN (64.0) as the declared choice (64)."""
    for c in param.choices:
        if str(c) == str(value):
            return c
        try:
            if not isinstance(c, str) and float(c) == float(value):
                return c
        except (TypeError, ValueError):
            pass
    raise ValueError(f"{param.name}: {value!r} is not one of the declared choices {list(param.choices)}")


def best_schedule(table: pd.DataFrame, best: int) -> dict:
    """The pbt winner's schedule (segments of epochs with their learning rate, dropout and batch size) and the trials
    its weights descend from, for best_hyperparameters.json; empty for other strategies."""
    if "schedule" not in table or pd.isna(table.loc[best, "schedule"]):
        return {}
    segments = json.loads(table.loc[best, "schedule"])
    lineage = []
    for s in segments:
        if not lineage or lineage[-1] != s["trial"]:
            lineage.append(int(s["trial"]))
    if not lineage or lineage[-1] != int(best):  # it copied without a change of values: no segment of its own
        lineage.append(int(best))
    return {"schedule": [{k: s[k] for k in ("epochs", *MUTABLE)} for s in segments], "lineage": lineage}
