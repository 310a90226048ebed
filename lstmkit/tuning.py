"""Tuning stage: Keras Tuner search over the LSTM's hyperparameters, trials kept in the run folder."""

from __future__ import annotations

import hashlib
import json

import keras
import keras_tuner as kt
import pandas as pd

from lstmkit.config import Config
from lstmkit.models import LSTMSpec, build_lstm
from lstmkit.preprocessing import Prepared
from lstmkit.runfolder import RunFolder, atomic_write_json, atomic_write_text
from lstmkit.training import set_seed

HYPERPARAMETERS = ("layers", "units", "dropout", "learning_rate", "optimizer", "batch_size", "normalization")


def spec_from_hp(hp: kt.HyperParameters, cfg: Config) -> LSTMSpec:
    """Declare the search space on `hp` and return the sampled architecture."""
    t = cfg.tuning
    return LSTMSpec(
        layers=hp.Int("layers", t.min_layers, t.max_layers),
        units=hp.Int("units", t.min_units, t.max_units, step=t.units_step),
        dropout=round(hp.Float("dropout", t.min_dropout, t.max_dropout, step=0.05), 4),
        learning_rate=hp.Float("learning_rate", t.min_learning_rate, t.max_learning_rate, sampling="log"),
        optimizer=hp.Choice("optimizer", list(t.optimizers)),
        batch_size=hp.Choice("batch_size", [int(b) for b in t.batch_sizes]),
        normalization=hp.Choice("normalization", list(t.normalizations)) if len(t.normalizations) > 1 else t.normalizations[0],
    )


class LSTMHyperModel(kt.HyperModel):
    """Builds an LSTM per trial and trains it on the run's windows with the trial's batch size."""

    def __init__(self, prepared: Prepared, cfg: Config):
        super().__init__(name="lstm")
        self.prepared, self.cfg = prepared, cfg

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        """Compiled model for one trial, initialised from the run's seed."""
        set_seed(self.cfg.seed)
        return build_lstm(self.prepared.lookback, len(self.prepared.columns), self.prepared.horizon, spec_from_hp(hp, self.cfg))

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args, **kwargs):
        """Train on the training windows, validate on the validation windows."""
        batch = hp.get("batch_size")
        train = self.prepared.dataset("train", batch, shuffle=True, seed=self.cfg.seed)
        val = self.prepared.dataset("val", 1024)
        kwargs["verbose"] = 0
        return model.fit(train, validation_data=val, shuffle=False, **kwargs)


def search_fingerprint(cfg: Config) -> str:
    """Short hash of everything that makes one search comparable with another."""
    relevant = {k: cfg.to_dict()[k] for k in ("seed", "data", "split", "scaling", "window", "tuning")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:10]


def make_tuner(prepared: Prepared, cfg: Config, run: RunFolder) -> kt.Tuner:
    """The configured Keras Tuner; the same configuration resumes its earlier trials."""
    t = cfg.tuning
    common = dict(objective="val_loss", seed=cfg.seed, directory=str(run.tuning_dir),
                  project_name=f"search-{t.strategy}-{search_fingerprint(cfg)}", overwrite=False)
    hypermodel = LSTMHyperModel(prepared, cfg)
    if t.strategy == "random":
        return kt.RandomSearch(hypermodel, max_trials=t.max_trials, **common)
    if t.strategy == "bayesian":
        return kt.BayesianOptimization(hypermodel, max_trials=t.max_trials, num_initial_points=max(2, t.max_trials // 3), **common)
    if t.strategy == "hyperband":
        return kt.Hyperband(hypermodel, max_epochs=t.epochs, factor=3, **common)
    raise ValueError(f"tuning.strategy {t.strategy!r} has no tuner")


def trials_table(tuner: kt.Tuner) -> pd.DataFrame:
    """Every trial with its hyperparameters, validation loss and status, in the order they ran."""
    rows = []
    for trial in tuner.oracle.trials.values():
        values = {k: v for k, v in trial.hyperparameters.values.items() if k in HYPERPARAMETERS}
        if "dropout" in values:
            values["dropout"] = round(values["dropout"], 4)  # grid values like 0.30000000000000004
        epochs = trial.hyperparameters.values.get("tuner/epochs")
        best_epoch = None if trial.best_step is None or trial.score is None else int(trial.best_step) + 1
        rows.append({"trial": int(trial.trial_id), **values, "val_loss": trial.score, "best_epoch": best_epoch,
                     "budget_epochs": epochs, "status": trial.status})
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.set_index("trial").sort_index()
        if table["budget_epochs"].isna().all():
            table = table.drop(columns="budget_epochs")
    return table


def tune(prepared: Prepared, cfg: Config, run: RunFolder) -> tuple[LSTMSpec, pd.DataFrame]:
    """Run (or resume) the search; save the best hyperparameters as JSON and the trials as CSV."""
    tuner = make_tuner(prepared, cfg, run)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.tuning.patience, restore_best_weights=True)
    tuner.search(epochs=cfg.tuning.epochs, callbacks=[stop], verbose=1 if cfg.training.verbose else 0)
    best_hp = tuner.get_best_hyperparameters(1)[0]
    spec = spec_from_hp(best_hp, cfg)
    table = trials_table(tuner)
    best = table["val_loss"].idxmin()
    atomic_write_json(run.best_hyperparameters_file, {**spec.to_dict(), "val_loss": float(table.loc[best, "val_loss"]),
                                                      "trial": int(best), "strategy": cfg.tuning.strategy})
    atomic_write_text(run.trials_file, table.to_csv())
    return spec, table


def read_trials(run: RunFolder) -> pd.DataFrame:
    """The trials table saved by the tuning stage."""
    return pd.read_csv(run.require(run.trials_file, "tuning (03_tuning)"), index_col="trial")
