"""NeuralForecaster: any architecture of `lstmkit.models` as a Keras network behind the forecaster contract.

Training: early stopping on the validation windows with the best weights restored, learning-rate reduction on
plateau, an optional best checkpoint, and live progress; `refit` retrains from scratch on training+validation windows
for the best epoch count. With a `schedule` (a population-based-training winner's segments) training instead replays
the schedule segment by segment, with neither early stopping nor learning-rate reduction. Saving writes the network as
`model.keras` (loads under Keras safe mode)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from lstmkit.config import Config, TrainingConfig
from lstmkit.core import progress
from lstmkit.core.atomic import atomic_path
from lstmkit.core.errors import ForecasterError
from lstmkit.data.windows import Prepared
from lstmkit.models.base import TAGS, Forecaster
from lstmkit.models.neural import architectures, heads, mc_dropout
from lstmkit.models.neural.layers import compile_network
from lstmkit.models.neural.spec import ModelSpec

NETWORK_FILE = "model.keras"
SCHEDULE_KEYS = ("epochs", "learning_rate", "dropout", "batch_size")  # the keys of one schedule segment


def build_network(spec: ModelSpec, lookback: int, channels: int, horizon: int, target_index: int = -1) -> keras.Model:
    """Compiled network of the spec's architecture: (batch, lookback, channels) -> (batch, horizon), or with a quantile
    head (`spec.quantiles`, K levels) -> quantiles (batch, horizon, K) trained with the pinball loss.

    An architecture module with its own `compile_network(model, spec)` (e.g. DeepAR's likelihood) compiles its network
    itself; the others get `layers.compile_network`. A quantile head's body is built with horizon * K outputs.
    """
    module = architectures.module(spec.architecture)
    heads.check_architecture(spec, module_has_own_loss=hasattr(module, "compile_network"))
    compiler = getattr(module, "compile_network", compile_network)
    return compiler(module.build(spec, lookback, channels, heads.body_width(spec, horizon), target_index), spec)


def carry_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy every weight of `source` into `target`, a network of the same architecture and shapes (e.g. another dropout
    rate, learning rate or batch size: population-based training's exploit step and its replay)."""
    old, new = source.get_weights(), target.get_weights()
    if len(old) != len(new) or any(a.shape != b.shape for a, b in zip(old, new, strict=True)):
        raise ForecasterError(f"cannot carry the weights of {source.name} into {target.name}: their shapes differ")
    target.set_weights(old)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow so that a rerun repeats exactly."""
    keras.utils.set_random_seed(seed)


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


def check_schedule(schedule: list) -> list[dict]:
    """A hyperparameter schedule checked and normalised: a non-empty list of segments, each a dict of `epochs` (int >= 1,
    required) and optionally `learning_rate` (> 0), `dropout` (in [0, 1)) and `batch_size` (int >= 1); ForecasterError
    naming the segment (1-based) and key otherwise. A segment's missing value is the spec's (see NeuralForecaster)."""
    if not isinstance(schedule, (list, tuple)) or not schedule:
        raise ForecasterError(f"schedule: expected a non-empty list of segments {{{', '.join(SCHEDULE_KEYS)}}}, "
                              f"got {schedule!r}")
    out = []
    for i, segment in enumerate(schedule, start=1):
        where = f"schedule segment {i}"
        if not isinstance(segment, dict):
            raise ForecasterError(f"{where}: expected a mapping of {', '.join(SCHEDULE_KEYS)}, got {segment!r}")
        unknown = [k for k in segment if k not in SCHEDULE_KEYS]
        if unknown:
            raise ForecasterError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a segment's keys are "
                                  f"{', '.join(SCHEDULE_KEYS)}")
        if "epochs" not in segment:
            raise ForecasterError(f"{where}: `epochs` is missing (how many epochs the segment trains)")
        checks = {"epochs": (int, lambda v: v >= 1, "an integer >= 1"),
                  "batch_size": (int, lambda v: v >= 1, "an integer >= 1"),
                  "learning_rate": (float, lambda v: np.isfinite(v) and v > 0, "a positive number"),
                  "dropout": (float, lambda v: 0 <= v < 1, "a number in [0, 1)")}
        clean = {}
        for key, value in segment.items():
            kind, ok, what = checks[key]
            integral = isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer())
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or (
                    kind is int and not integral) or not ok(kind(value)):
                raise ForecasterError(f"{where}: `{key}` must be {what}, got {value!r}")
            clean[key] = kind(value)
        out.append(clean)
    return out


class LearningRateLog(keras.callbacks.Callback):
    """Writes the optimizer's learning rate in force during each epoch into the epoch's logs (`learning_rate`)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Record the learning rate the epoch trained with."""
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class BestWeights(keras.callbacks.Callback):
    """Keeps a copy of the weights of the epoch with the lowest validation loss so far, across every `fit` call it is
    passed to (a replayed schedule's segments: networks of one architecture and the same weight shapes)."""

    def __init__(self):
        super().__init__()
        self.best, self.weights = np.inf, None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Copy the weights when this epoch's val_loss is the lowest yet."""
        loss = (logs or {}).get("val_loss")
        if loss is not None and float(loss) < self.best:
            self.best, self.weights = float(loss), self.model.get_weights()


class ProgressCallback(keras.callbacks.Callback):
    """Reports each finished epoch and its losses to the command line's live progress (lstmkit.core.progress; else a no-op).

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


def steps_per_epoch(prepared: Prepared, batch_size: int, training: TrainingConfig) -> int | None:
    """Batches per training epoch: `training.steps_per_epoch` when set and below a full pass, else None (every window)."""
    cap = training.steps_per_epoch
    full = -(-prepared.n_windows("train") // batch_size)
    return cap if 0 < cap < full else None


class NeuralForecaster(Forecaster):
    """A network of one architecture (ModelSpec), trained with the training settings and seed it is given.

    `schedule`: optional list of segments {epochs, learning_rate, dropout, batch_size} (see `check_schedule`) that
    training replays instead of `training.epochs` with early stopping: segment 1 trains a fresh seeded network of the
    spec with the segment's values; each later segment builds a new network with its values, carries the previous
    network's weights into it (`carry_weights`), compiles a fresh optimizer and trains its epochs with its batch size.
    The fitted network keeps the weights of the epoch with the lowest validation loss. The spec holds the final values
    (those of the last segment).
    """

    tags = {"neural": True}

    def __init__(self, spec: ModelSpec | dict, training: TrainingConfig | dict | None = None, seed: int = 42,
                 name: str | None = None, checkpoint: str | None = None, schedule: list | None = None):
        self.spec = spec if isinstance(spec, ModelSpec) else ModelSpec.from_dict(spec)
        training = training or TrainingConfig()
        self.training = training if isinstance(training, TrainingConfig) else TrainingConfig.model_validate(training)
        self.seed, self.checkpoint = int(seed), checkpoint
        self.schedule = None if schedule is None else check_schedule(schedule)
        self.name = name or self.spec.architecture
        self.network: keras.Model | None = None
        self.history_: pd.DataFrame | None = None

    @classmethod
    def examples(cls) -> list[Forecaster]:
        """Every architecture at 8 units with dropout (so MC-dropout samples exist) and its own default settings,
        trained 2 epochs; an LSTM with a quantile head; an LSTM replaying a two-segment schedule."""
        training = TrainingConfig(epochs=2, patience=2, verbose=0)
        spec = {"units": 8, "dropout": 0.1, "batch_size": 32, "normalization": "last"}
        out = [cls(ModelSpec(arch, **spec, options=architectures.options(arch)), training, seed=7)
               for arch in architectures.names()]
        out.append(cls(ModelSpec("lstm", **spec, quantiles=[0.1, 0.5, 0.9]), training, seed=7, name="lstm_quantiles"))
        schedule = [{"epochs": 1, "learning_rate": 1e-3, "dropout": 0.1, "batch_size": 32},
                    {"epochs": 1, "learning_rate": 3e-4, "dropout": 0.2, "batch_size": 64}]
        out.append(cls(ModelSpec("lstm", **spec), training, seed=7, name="lstm_schedule", schedule=schedule))
        return out

    # ------------------------------------------------------------ capabilities

    def get_tag(self, tag: str) -> bool:
        """A capability of this network (see forecasters.base.TAGS): the class's and its architecture's; `quantiles`
        with a quantile head; `samples` when the architecture says so (DeepAR) or the network has a Dropout with a
        positive rate (MC dropout; before the network exists: `spec.dropout > 0`)."""
        if tag not in TAGS:
            raise KeyError(f"unknown forecaster tag {tag!r}; tags are: {', '.join(TAGS)}")
        declared = {**TAGS, **self.tags, **getattr(architectures.module(self.spec.architecture), "TAGS", {})}
        if tag == "quantiles":
            return bool(self.spec.quantiles) or bool(declared[tag])
        if tag == "samples" and not declared[tag]:
            if self.network is None:
                return self.spec.dropout > 0
            return bool(mc_dropout.dropout_layers(self.network))
        return bool(declared[tag])

    def attention(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Attention weights for windows (n, lookback, channels): `time` (n, lookback) over the look-back steps and,
        with the `variable_selection` tag, `variables` (n, channels); each row sums to 1."""
        if not self.get_tag("attention"):
            raise ForecasterError(f"{self.name}: the {self.spec.architecture} architecture has no attention weights")
        self._check_fitted()
        windows = np.asarray(windows, dtype=np.float32)
        self.predict(windows)  # validates the windows
        return architectures.module(self.spec.architecture).attention(self.network, windows)

    # ------------------------------------------------------------ the contract

    def _lookback(self, prepared: Prepared) -> int:
        return self.spec.lookback or prepared.lookback

    def _build(self, prepared: Prepared) -> keras.Model:
        """A fresh compiled network for prepared's shapes, seeded."""
        keras.backend.clear_session()
        set_seed(self.seed)
        return build_network(self.spec, prepared.lookback, len(prepared.columns), prepared.horizon,
                             prepared.target_index)

    def _fit(self, prepared: Prepared) -> None:
        """Train on the training windows with early stopping on the validation windows (best weights restored); with a
        schedule, replay it instead (`_replay`)."""
        prepared = prepared.with_lookback(self._lookback(prepared))
        if self.schedule is not None:
            self._replay(prepared, validate=True)
            return
        self.network = self._build(prepared)
        t = self.training
        steps = steps_per_epoch(prepared, self.spec.batch_size, t)
        train = prepared.dataset("train", self.spec.batch_size, shuffle=True, seed=self.seed, repeat=steps is not None)
        checkpoint = Path(self.checkpoint) if self.checkpoint else None
        hist = self.network.fit(train, validation_data=prepared.dataset("val", 1024), epochs=t.epochs, verbose=t.verbose,
                                shuffle=False, steps_per_epoch=steps,
                                callbacks=callbacks(t.patience, t.reduce_lr_patience, checkpoint)
                                + [ProgressCallback(t.epochs, f"training {self.name} (seed {self.seed})")])
        history = pd.DataFrame(hist.history)
        history.index = pd.RangeIndex(1, len(history) + 1, name="epoch")
        if "learning_rate" in history:
            history["learning_rate"] = history["learning_rate"].astype(float)
        self.history_ = history
        self.best_epoch_ = int(np.nanargmin(history["val_loss"].to_numpy())) + 1
        self.val_loss_ = float(np.nanmin(history["val_loss"].to_numpy()))

    def _refit(self, prepared: Prepared) -> None:
        """Retrain from scratch on prepared's training windows (e.g. training+validation) for the best epoch count.

        Nothing is held out, so there is no early stopping and no learning-rate schedule.
        """
        prepared = prepared.with_lookback(self.lookback_)
        if self.schedule is not None:  # the schedule is the plan: replayed as it was, on these windows
            self._replay(prepared, validate=False)
            return
        self.network = self._build(prepared)
        steps = steps_per_epoch(prepared, self.spec.batch_size, self.training)
        self.network.fit(prepared.dataset("train", self.spec.batch_size, shuffle=True, seed=self.seed,
                                          repeat=steps is not None),
                         epochs=self.best_epoch_, steps_per_epoch=steps, verbose=self.training.verbose, shuffle=False,
                         callbacks=[keras.callbacks.TerminateOnNaN(),
                                    ProgressCallback(self.best_epoch_, f"refit {self.name} on training+validation")])

    def segment_specs(self) -> list[tuple[ModelSpec, int]]:
        """(spec with the segment's learning rate, dropout and batch size, epochs) of each schedule segment in order."""
        fields = [k for k in SCHEDULE_KEYS if k != "epochs"]
        return [(dataclasses.replace(self.spec, **{k: segment[k] for k in fields if k in segment}), segment["epochs"])
                for segment in self.schedule]

    def _replay(self, prepared: Prepared, validate: bool) -> None:
        """Train through the schedule's segments on prepared's training windows (see the class docstring).

        With `validate` (fit): the validation windows are evaluated after every epoch, the best checkpoint kept, and
        `history_` (one row per epoch: loss, val_loss, learning_rate, ...), `best_epoch_` (argmin of val_loss, 1-based)
        and `val_loss_` (its minimum) set; no early stopping and no learning-rate reduction. Without (refit on
        training+validation): the same segments, nothing held out. After a fit the network holds the weights of the epoch
        with the lowest validation loss (as early stopping's restored best weights would: `val_loss_` is theirs); after
        a refit, those after the last epoch.
        """
        t = self.training
        total = sum(epochs for _, epochs in self.segment_specs())
        phase = (f"training {self.name} (seed {self.seed}, schedule replayed)" if validate
                 else f"refit {self.name} on training+validation (schedule replayed)")
        best = BestWeights()
        cbs = [keras.callbacks.TerminateOnNaN(), LearningRateLog(), ProgressCallback(total, phase)] + (
            [best] if validate else [])
        if validate and self.checkpoint:
            Path(self.checkpoint).parent.mkdir(parents=True, exist_ok=True)
            cbs.append(keras.callbacks.ModelCheckpoint(self.checkpoint, monitor="val_loss", save_best_only=True))
        keras.backend.clear_session()
        network, done, histories = None, 0, []
        for i, (spec, epochs) in enumerate(self.segment_specs()):
            set_seed(self.seed + i)
            new = build_network(spec, prepared.lookback, len(prepared.columns), prepared.horizon,
                                prepared.target_index)
            if network is not None:
                carry_weights(network, new)
            network = new
            steps = steps_per_epoch(prepared, spec.batch_size, t)
            train = prepared.dataset("train", spec.batch_size, shuffle=True, seed=self.seed + i,
                                     repeat=steps is not None)
            hist = network.fit(train, validation_data=prepared.dataset("val", 1024) if validate else None,
                               initial_epoch=done, epochs=done + epochs, steps_per_epoch=steps, verbose=t.verbose,
                               shuffle=False, callbacks=cbs)
            frame = pd.DataFrame(hist.history)
            frame["segment"] = i + 1
            histories.append(frame)
            done += epochs
            if len(frame) < epochs:  # TerminateOnNaN stopped it: the rest of the plan cannot follow
                break
        self.network = network
        if not validate:
            return
        if best.weights is not None:
            network.set_weights(best.weights)
        history = pd.concat(histories, ignore_index=True)
        history.index = pd.RangeIndex(1, len(history) + 1, name="epoch")
        history["learning_rate"] = history["learning_rate"].astype(float)
        self.history_ = history
        self.best_epoch_ = int(np.nanargmin(history["val_loss"].to_numpy())) + 1
        self.val_loss_ = float(np.nanmin(history["val_loss"].to_numpy()))

    def _predict(self, windows: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Forecasts batch by batch (predict_on_batch: no tf.data pipeline per call); a quantile head's median."""
        if self.spec.quantiles:
            return self._network_quantiles(windows, batch_size)[..., heads.median_index(self.spec.quantiles)]
        out = np.empty((len(windows), self.horizon_))
        for a in range(0, len(windows), batch_size):
            out[a:a + batch_size] = np.asarray(self.network.predict_on_batch(windows[a:a + batch_size])).reshape(-1, self.horizon_)
        return out

    def _network_quantiles(self, windows: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Every level of the quantile head (windows, horizon, K), batch by batch."""
        k = len(self.spec.quantiles)
        out = np.empty((len(windows), self.horizon_, k))
        for a in range(0, len(windows), batch_size):
            out[a:a + batch_size] = np.asarray(self.network.predict_on_batch(windows[a:a + batch_size])).reshape(
                -1, self.horizon_, k)
        return out

    def _predict_quantiles(self, windows: np.ndarray, levels: list[float]) -> np.ndarray:
        """The head's quantiles (windows, horizon, len(levels)) at `levels`, each one of the head's own levels."""
        trained = np.asarray(self.spec.quantiles, dtype=float)
        hits = [np.flatnonzero(np.isclose(trained, level, rtol=0, atol=1e-9)) for level in levels]
        missing = [str(float(level)) for level, hit in zip(levels, hits, strict=True) if not len(hit)]
        if missing:
            raise ForecasterError(f"{self.name}: quantile level(s) {', '.join(missing)} not among the levels its head "
                                  f"was trained on ({', '.join(str(float(q)) for q in trained)})")
        return self._network_quantiles(windows)[..., [int(hit[0]) for hit in hits]]

    def _predict_samples(self, windows: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
        """Sample paths (windows, n_samples, horizon): the architecture's own `sample` (DeepAR's likelihood) when its
        module has one, else MC dropout (`mc_dropout.sample`; a quantile head's median is sampled)."""
        module = architectures.module(self.spec.architecture)
        if hasattr(module, "sample"):
            return module.sample(self.network, windows, n_samples, seed)
        median = heads.median_index(self.spec.quantiles) if self.spec.quantiles else None
        return mc_dropout.sample(self.network, windows, n_samples, seed, output_index=median)

    def hyperparameters(self) -> dict:
        """The spec, seed and look-back the network was built with (and the replayed schedule, when it had one)."""
        return self.spec.to_dict() | {"seed": self.seed, "lookback": self.lookback_ if hasattr(self, "lookback_")
                                      else self.spec.lookback} | ({} if self.schedule is None
                                                                  else {"schedule": self.schedule})

    def parameter_count(self) -> int:
        return int(self.network.count_params())

    def _init_args(self) -> dict:
        """Constructor arguments (JSON-ready); `schedule` only when there is one (older manifests load unchanged)."""
        return {"spec": self.spec.to_dict(), "training": self.training.model_dump(), "seed": self.seed,
                "name": self.name} | ({} if self.schedule is None else {"schedule": self.schedule})

    def _save(self, path: Path) -> None:
        with atomic_path(path / NETWORK_FILE) as tmp:
            self.network.save(tmp)
        if self.history_ is not None:
            with atomic_path(path / "history.csv") as tmp:
                self.history_.to_csv(tmp)

    def _load(self, path: Path) -> None:
        architectures.module(self.spec.architecture)  # registers the architecture's own layers before deserialising them
        self.network = keras.models.load_model(path / NETWORK_FILE)  # safe_mode: no arbitrary code is deserialised
        if (path / "history.csv").exists():
            self.history_ = pd.read_csv(path / "history.csv", index_col="epoch")


def fit_forecaster(prepared: Prepared, spec: ModelSpec, cfg: Config, seed: int | None = None, name: str | None = None,
                   checkpoint=None, schedule: list[dict] | None = None) -> NeuralForecaster:
    """Train one forecaster (early stopping on validation, or replaying `schedule` when given; refitted on
    training+validation when training.fit_on says, with the same schedule)."""
    forecaster = NeuralForecaster(spec, cfg.training, cfg.seed if seed is None else seed, name=name,
                                  checkpoint=None if checkpoint is None else str(checkpoint), schedule=schedule)
    forecaster.fit(prepared)
    if cfg.training.fit_on == "train+val":
        forecaster.refit(prepared.train_val())
    return forecaster
