"""Tuning stage: search the network's architecture and hyperparameters, scored on the validation split or on
walk-forward folds.

The strategies (Keras Tuner's random, grid, bayesian and hyperband; Optuna's TPE with a median pruner) live in
`lstmkit.tuners`; chief/worker processes in `lstmkit.distributed`. This module is what they share: the objective
(one trial trained and scored), the run folder's results, and the stage's entry point `tune`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd
from sklearn.model_selection import TimeSeriesSplit

from lstmkit.atomic import atomic_write_json, atomic_write_text, read_json
from lstmkit.config import RAY_STRATEGIES, Config, ConfigError
from lstmkit.forecasters.neural import build_network, set_seed
from lstmkit.forecasters.spec import COMMON, ModelSpec
from lstmkit.preprocessing import Prepared, SplitBounds
from lstmkit.runfolder import RunFolder
from lstmkit.search_space import SearchSpace, check_space_fits, owner, search_space

KERAS_STRATEGIES = ("random", "grid", "bayesian", "hyperband")


class TuningError(RuntimeError):
    """A search that could not produce a best configuration (every trial failed, a worker kept dying, ...)."""


# ---------------------------------------------------------------- the objective


def cv_folds(prepared: Prepared, k: int) -> list[Prepared]:
    """Walk-forward folds over the training+validation rows, each validated on the next block of validation size.

    Training rows expand from fold to fold; each fold's scaler is refitted on its own training rows only.
    With k = 1 the run's own split is the only fold; the last of k folds always validates on the run's
    validation split. Validation windows may look back into their fold's training rows, never forward.
    """
    if k == 1:
        return [prepared]
    end = prepared.bounds.val[1]
    val_rows = prepared.bounds.val[1] - prepared.bounds.val[0]
    first_train = end - k * val_rows
    if first_train < prepared.lookback + prepared.horizon:
        raise ConfigError(f"tuning.cv_folds: {k} folds of {val_rows} validation rows leave the first fold "
                          f"{max(first_train, 0)} training rows, fewer than window.lookback + window.horizon = "
                          f"{prepared.lookback + prepared.horizon}; use fewer folds")
    folds = []
    for train_idx, val_idx in TimeSeriesSplit(n_splits=k, test_size=val_rows).split(np.arange(end)):
        bounds = SplitBounds(train=(0, int(train_idx[-1]) + 1), val=(int(val_idx[0]), int(val_idx[-1]) + 1), test=(end, end))
        folds.append(prepared.with_bounds(bounds, refit_scaler=True))
    return folds


@dataclass
class TrialResult:
    """The score of one configuration: mean best validation loss over the folds, with the per-fold detail."""

    fold_losses: list[float]
    best_epochs: list[int]
    seconds: float
    val_loss: float = field(init=False)

    def __post_init__(self):
        self.val_loss = float(np.mean(self.fold_losses)) if self.fold_losses else float("nan")

    def metrics(self) -> dict[str, float]:
        """The values reported to the tuner; `best_epoch` is the last fold's (the one trained on most data)."""
        out = {"val_loss": self.val_loss, "best_epoch": float(self.best_epochs[-1]), "seconds": self.seconds}
        if len(self.fold_losses) > 1:
            out |= {f"fold_{i + 1}": loss for i, loss in enumerate(self.fold_losses)}
        return out


def spec_from_values(values: dict, cfg: Config) -> ModelSpec:
    """The network of one trial: sampled values over the fixed ones of the search space, over the configuration
    (the architecture's `model.<arch>` settings that the search leaves alone)."""
    return ModelSpec.from_config(cfg, values=search_space(cfg).values(values))


def train_trial(values: dict, prepared: Prepared, cfg: Config, epochs: int,
                report: Callable[[int, float], None] | None = None) -> TrialResult:
    """Train one configuration on each fold (early stopping on the fold's validation windows) and score it.

    `report(step, val_loss)` is called after every epoch (step = fold * epochs + epoch), e.g. for pruning.
    A fold whose loss never became finite (divergence) makes the whole result NaN, i.e. a failed trial.
    """
    spec = spec_from_values(values, cfg)
    losses, best_epochs, t0 = [], [], time.perf_counter()
    for i, fold in enumerate(cv_folds(prepared.with_lookback(spec.lookback), cfg.tuning.cv_folds)):
        keras.backend.clear_session()
        set_seed(cfg.seed)
        model = build_network(spec, fold.lookback, len(fold.columns), fold.horizon, fold.target_index)
        cbs = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.tuning.patience),
               keras.callbacks.TerminateOnNaN()]
        if report is not None:
            cbs.append(keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs, i=i: report(i * epochs + epoch, float(logs["val_loss"]))))
        hist = model.fit(fold.dataset("train", spec.batch_size, shuffle=True, seed=cfg.seed),
                         validation_data=fold.dataset("val", 1024), epochs=epochs, verbose=0, shuffle=False,
                         callbacks=cbs)
        val = np.asarray(hist.history["val_loss"], dtype=float)
        if not np.isfinite(val).any():
            return TrialResult([float("nan")], [len(val)], time.perf_counter() - t0)
        losses.append(float(np.nanmin(val)))
        best_epochs.append(int(np.nanargmin(val)) + 1)
    return TrialResult(losses, best_epochs, time.perf_counter() - t0)


# ---------------------------------------------------------------- where a search lives


def search_fingerprint(cfg: Config) -> str:
    """Short hash of everything that makes one search's trials comparable with another's.

    The budget (`max_trials`, `max_minutes`) and the number of workers are left out: raising the budget
    resumes and extends a search, and the same search can be spread over more or fewer processes. Of the model
    settings, only those a trial can use count: the common ones, and the architecture(s) searched with their
    `model.<arch>` sections (an LSTM-only search hashes as it did before architectures could be searched, so
    its run folders resume; the settings of architectures it does not train, and `compare.*`, never restart it).
    """
    values = cfg.to_dict()
    relevant = {k: values[k] for k in ("seed", "data", "split", "scaling", "window")}
    architectures = search_space(cfg).architectures
    relevant["model"] = {k: values["model"][k] for k in COMMON}
    if architectures != ("lstm",):
        relevant["model"]["architecture"] = list(architectures)
        relevant["model"] |= {a: values["model"][a] for a in architectures if a in values["model"]}
    ignored = ("max_trials", "max_minutes", "workers", "ray_address", "gpus_per_trial")  # where and how long, not what
    if cfg.tuning.strategy != "pbt":
        ignored += ("perturbation_interval",)  # so that searches from before it existed still resume
    relevant["tuning"] = {k: v for k, v in values["tuning"].items() if k not in ignored}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:10]


def project_name(cfg: Config) -> str:
    """Folder name of the search under the run's tuning/ folder."""
    return f"search-{cfg.tuning.strategy}-{search_fingerprint(cfg)}"


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
        from lstmkit.tuners_ray import best_schedule

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


def fold_table(prepared: Prepared, k: int) -> pd.DataFrame:
    """Rows and dates of each walk-forward fold's training and validation parts (for the report)."""
    rows = []
    for i, fold in enumerate(cv_folds(prepared, k)):
        (a, b), (c, d) = fold.bounds.train, fold.bounds.val
        rows.append({"fold": i + 1, "training rows": f"{a}-{b - 1}", "validation rows": f"{c}-{d - 1}",
                     "validation from": fold.index[c], "validation to": fold.index[d - 1],
                     "training windows": fold.n_windows("train"), "validation windows": fold.n_windows("val")})
    return pd.DataFrame(rows).set_index("fold")


# ---------------------------------------------------------------- the stage


def tune(prepared: Prepared, cfg: Config, run: RunFolder, workers: int | None = None,
         verbose: bool = False) -> tuple[ModelSpec, pd.DataFrame]:
    """Run or resume the configured search; save and return the best configuration and every trial.

    With workers > 0 (default: `tuning.workers`) a Keras Tuner chief and that many worker processes on this
    machine do the search; otherwise it runs here. Re-running the same configuration resumes its search.
    `verbose` prints Keras Tuner's per-trial progress (the CLI and worker logs use it).
    """
    from lstmkit import distributed, tuners

    if cfg.tuning.strategy == "none":
        raise ConfigError("tuning.strategy is none: there is nothing to tune")
    space = search_space(cfg)
    check_space_fits(prepared.bounds, prepared.horizon, cfg)
    cv_folds(prepared, cfg.tuning.cv_folds)  # fails early when the folds do not fit
    workers = cfg.tuning.workers if workers is None else workers
    if cfg.tuning.strategy in RAY_STRATEGIES:  # Ray schedules its own workers (tuning.workers: trials at once)
        workers = 0
    if workers and distributed.role() is None:
        distributed.run_local(run, cfg, workers)
        return spec_from_values(read_best(run), cfg), read_trials(run)
    table = tuners.search(prepared, cfg, run, space, verbose)
    if table is None:  # a worker: the chief keeps the results
        return None, None
    return save_results(run, cfg, table), table


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
