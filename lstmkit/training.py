"""Training stage: fit the run's neural forecaster(s) through the forecaster contract and save them in the run folder.

Each trained model is a saved forecaster folder `training/models/<name>/seed-<seed>/`; `training/selected.json`
names the run's selected model (the one later chapters explain and the service serves).
"""

from __future__ import annotations

import pandas as pd

from lstmkit.atomic import atomic_write_json, read_json
from lstmkit.config import Config
from lstmkit.forecasters import ModelSpec, load
from lstmkit.forecasters.neural import NeuralForecaster
from lstmkit.preprocessing import Prepared
from lstmkit.runfolder import RunFolder

STAGE = "training (04_training)"


def spec_for_run(run: RunFolder, cfg: Config, architecture: str | None = None) -> tuple[ModelSpec, str]:
    """Hyperparameters to train `architecture` (default model.architecture) with, and where they came from.

    The tuning stage's best configuration is used when it is of this architecture; otherwise the config's.
    """
    arch = architecture or cfg.model.architecture
    if cfg.training.use_tuned and cfg.tuning.strategy != "none" and run.best_hyperparameters_file.exists():
        tuned = read_json(run.best_hyperparameters_file)
        if tuned.get("architecture", "lstm") == arch:
            tuned = {k: v for k, v in tuned.items() if v is not None}
            return ModelSpec.from_config(cfg, arch, tuned), "tuning"
    return ModelSpec.from_config(cfg, arch), "config"


def fit_forecaster(prepared: Prepared, spec: ModelSpec, cfg: Config, seed: int | None = None, name: str | None = None,
                   checkpoint=None) -> NeuralForecaster:
    """Train one forecaster (early stopping on validation; refitted on training+validation when training.fit_on says)."""
    forecaster = NeuralForecaster(spec, cfg.training, cfg.seed if seed is None else seed, name=name,
                                  checkpoint=None if checkpoint is None else str(checkpoint))
    forecaster.fit(prepared)
    if cfg.training.fit_on == "train+val":
        forecaster.refit(prepared.train_val())
    return forecaster


def train_run(run: RunFolder, cfg: Config, prepared: Prepared) -> tuple[NeuralForecaster, pd.DataFrame, ModelSpec, str]:
    """The training stage: fit the configured forecaster and save it, its history and hyperparameters."""
    spec, source = spec_for_run(run, cfg)
    forecaster = fit_forecaster(prepared, spec, cfg, checkpoint=run.checkpoint_file)
    path = forecaster.save(run.model_dir(forecaster.name, forecaster.seed))
    atomic_write_json(run.selected_file, {"model": forecaster.name, "seed": forecaster.seed,
                                          "path": str(path.relative_to(run.root)), "source": source,
                                          "fit_on": cfg.training.fit_on, "best_epoch": forecaster.best_epoch_,
                                          "val_loss": forecaster.val_loss_})
    return forecaster, forecaster.history_, spec, source


def load_selected(run: RunFolder) -> NeuralForecaster:
    """The run's selected forecaster, as saved by the training stage."""
    selected = read_json(run.require(run.selected_file, STAGE))
    return load(run.root / selected["path"])


def load_trained(run: RunFolder) -> tuple[NeuralForecaster, Prepared]:
    """The run's selected forecaster and its prepared series, cut at the look-back the model was trained with."""
    from lstmkit.preprocessing import load_prepared

    forecaster = load_selected(run)
    return forecaster, load_prepared(run).with_lookback(forecaster.lookback_)


def read_history(run: RunFolder) -> pd.DataFrame:
    """Per-epoch training history of the selected model."""
    return load_selected(run).history_
