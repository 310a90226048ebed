"""Tuning stage: search the network's architecture and hyperparameters, scored on the validation split or on
walk-forward folds.

The strategies (Keras Tuner's random, grid, bayesian and hyperband; Optuna's TPE with a median pruner) live in
`lstmkit.tuning.backends.keras_tuner`; chief/worker processes in `lstmkit.tuning.backends.distributed`. This module is what they share: the objective
(one trial trained and scored), the run folder's results, and the stage's entry point `tune`."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from lstmkit.config import Config
from lstmkit.data.windows import Prepared, cv_folds
from lstmkit.models.neural import architectures
from lstmkit.models.neural.forecaster import build_network, set_seed
from lstmkit.models.neural.spec import COMMON, ModelSpec
from lstmkit.tuning.space import merge_space, search_space

KERAS_STRATEGIES = ("random", "grid", "bayesian", "hyperband")


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
    searched = search_space(cfg).architectures
    relevant["model"] = {k: values["model"][k] for k in COMMON}
    if searched != ("lstm",):
        relevant["model"]["architecture"] = list(searched)
        relevant["model"] |= {a: architectures.config_options(cfg, a) for a in searched
                              if architectures.options_class(a) is not None}
    ignored = ("max_trials", "max_minutes", "workers", "ray_address", "gpus_per_trial")  # where and how long, not what
    if cfg.tuning.strategy != "pbt":
        ignored += ("perturbation_interval",)  # so that searches from before it existed still resume
    relevant["tuning"] = {k: v for k, v in values["tuning"].items() if k not in ignored}
    relevant["tuning"]["space"] = merge_space(cfg.tuning.space, cfg.tuning.strategy)  # as the run's config records it
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:10]


def project_name(cfg: Config) -> str:
    """Folder name of the search under the run's tuning/ folder."""
    return f"search-{cfg.tuning.strategy}-{search_fingerprint(cfg)}"
