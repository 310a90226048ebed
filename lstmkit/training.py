"""Training stage: fit the LSTM with early stopping, checkpoints and a learning-rate schedule."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from lstmkit import progress
from lstmkit.atomic import atomic_path, atomic_write_json, read_json
from lstmkit.config import Config
from lstmkit.models import LSTMSpec, build_lstm
from lstmkit.preprocessing import Prepared
from lstmkit.runfolder import RunFolder


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow so that a rerun repeats exactly."""
    keras.utils.set_random_seed(seed)


def spec_for_run(run: RunFolder, cfg: Config) -> tuple[LSTMSpec, str]:
    """Hyperparameters to train with, and where they came from (tuning or the config)."""
    if cfg.training.use_tuned and cfg.tuning.strategy != "none" and run.best_hyperparameters_file.exists():
        spec = LSTMSpec.from_dict(read_json(run.best_hyperparameters_file))
        return LSTMSpec.from_dict({**spec.to_dict(), "lookback": spec.lookback or cfg.window.lookback}), "tuning"
    return LSTMSpec.from_dict({**vars(cfg.model), "lookback": cfg.window.lookback}), "config"


def callbacks(patience: int, reduce_lr_patience: int, checkpoint: Path | None = None) -> list:
    """Early stopping with best weights restored, LR reduction on plateau, and an optional best checkpoint."""
    cbs = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=reduce_lr_patience, min_lr=1e-6),
        keras.callbacks.TerminateOnNaN(),
    ]
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        cbs.append(keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_loss", save_best_only=True))
    return cbs


class ProgressCallback(keras.callbacks.Callback):
    """Reports each finished epoch and its losses to the command line's live progress (lstmkit.progress; else a no-op).

    Within an epoch, the batch reached is reported too, at most every `every` seconds (long epochs of long series).
    """

    def __init__(self, epochs: int, phase: str = "training", every: float = 0.5):
        super().__init__()
        self.epochs, self.phase, self.every = epochs, phase, every
        self.epoch, self.last = 0, 0.0
        self.async_safe = True  # a batch hook would otherwise make Keras wait for every batch's logs

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Remember the epoch under way."""
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Report the batch reached and the epoch's running loss, throttled."""
        now = time.monotonic()
        if progress.enabled() and now - self.last >= self.every:
            self.last = now
            loss = (logs or {}).get("loss")
            progress.report("training", phase=self.phase, epoch=self.epoch + 1, epochs=self.epochs, batch=batch + 1,
                            batches=self.params.get("steps"), **({} if loss is None else {"loss": float(loss)}))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Report epoch (1-based) of the planned epochs, with loss and val_loss when Keras has them."""
        losses = {k: float(v) for k, v in (logs or {}).items() if k in ("loss", "val_loss")}
        progress.report("training", phase=self.phase, epoch=epoch + 1, epochs=self.epochs, **losses)


def steps_per_epoch(prepared: Prepared, batch_size: int, cfg: Config) -> int | None:
    """Batches per training epoch: `training.steps_per_epoch` when set and below a full pass, else None (every window)."""
    cap = cfg.training.steps_per_epoch
    full = -(-prepared.n_windows("train") // batch_size)
    return cap if 0 < cap < full else None


def fit(prepared: Prepared, spec: LSTMSpec, cfg: Config, checkpoint: Path | None = None) -> tuple[keras.Model, pd.DataFrame]:
    """Build and train one LSTM; returns the model (best weights) and its per-epoch history."""
    prepared = prepared.with_lookback(spec.lookback)
    set_seed(cfg.seed)
    model = build_lstm(prepared.lookback, len(prepared.columns), prepared.horizon, spec)
    steps = steps_per_epoch(prepared, spec.batch_size, cfg)
    train = prepared.dataset("train", spec.batch_size, shuffle=True, seed=cfg.seed, repeat=steps is not None)
    val = prepared.dataset("val", 1024)
    hist = model.fit(train, validation_data=val, epochs=cfg.training.epochs, verbose=cfg.training.verbose, shuffle=False,
                     steps_per_epoch=steps,
                     callbacks=callbacks(cfg.training.patience, cfg.training.reduce_lr_patience, checkpoint)
                     + [ProgressCallback(cfg.training.epochs)])
    history = pd.DataFrame(hist.history)
    history.index = pd.RangeIndex(1, len(history) + 1, name="epoch")
    if "learning_rate" in history:
        history["learning_rate"] = history["learning_rate"].astype(float)
    return model, history


def refit_train_val(prepared: Prepared, spec: LSTMSpec, cfg: Config, epochs: int) -> keras.Model:
    """Train the configuration from scratch on training+validation windows for a fixed number of epochs.

    Nothing is held out, so there is no early stopping and no learning-rate schedule: the epoch count comes
    from the validated fit. The scaler stays fitted on the training rows.
    """
    merged = prepared.with_lookback(spec.lookback).train_val()
    set_seed(cfg.seed)
    model = build_lstm(merged.lookback, len(merged.columns), merged.horizon, spec)
    steps = steps_per_epoch(merged, spec.batch_size, cfg)
    model.fit(merged.dataset("train", spec.batch_size, shuffle=True, seed=cfg.seed, repeat=steps is not None),
              epochs=epochs, steps_per_epoch=steps,
              verbose=cfg.training.verbose, shuffle=False,
              callbacks=[keras.callbacks.TerminateOnNaN(), ProgressCallback(epochs, "refit on training+validation")])
    return model


def save_model(model: keras.Model, path: Path) -> None:
    """Save a Keras model atomically (a crash never leaves a half-written file)."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def load_model(path: Path) -> keras.Model:
    """Load a saved forecaster."""
    return keras.models.load_model(path)


def train_run(run: RunFolder, cfg: Config, prepared: Prepared) -> tuple[keras.Model, pd.DataFrame, LSTMSpec, str]:
    """The training stage: fit with the chosen hyperparameters and save model, history and hyperparameters."""
    spec, source = spec_for_run(run, cfg)
    model, history = fit(prepared, spec, cfg, checkpoint=run.checkpoint_file)
    best_epoch = int(np.argmin(history["val_loss"].to_numpy())) + 1
    if cfg.training.fit_on == "train+val":
        model = refit_train_val(prepared, spec, cfg, best_epoch)
    save_model(model, run.model_file)
    atomic_write_json(run.history_file, {"epochs": history.reset_index().to_dict(orient="list"), "best_epoch": best_epoch,
                                         "fit_on": cfg.training.fit_on})
    atomic_write_json(run.hyperparameters_file, {**spec.to_dict(), "source": source, "fit_on": cfg.training.fit_on})
    return model, history, spec, source


def load_trained(run: RunFolder) -> tuple[keras.Model, Prepared]:
    """The run's trained model and its prepared series, cut at the look-back the model was trained with."""
    from lstmkit.preprocessing import load_prepared

    model = load_model(run.require(run.model_file, "training (04_training)"))
    return model, load_prepared(run).with_lookback(int(model.input_shape[1]))


def read_history(run: RunFolder) -> pd.DataFrame:
    """Per-epoch training history saved by the training stage."""
    h = read_json(run.require(run.history_file, "training (04_training)"))["epochs"]
    return pd.DataFrame(h).set_index("epoch")
