"""The forecaster contract that every model honours, neural or baseline (after sktime's BaseForecaster and Darts'
ForecastingModel): public methods validate and delegate to private `_fit`, `_refit`, `_predict`, `_save`, `_load`;
capabilities are declared as tags.

A forecaster maps look-back windows (windows, lookback, channels), in scaled units, to forecasts of the target
(windows, horizon), in scaled units."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from lstmkit.core.atomic import atomic_path, atomic_write_json
from lstmkit.core.errors import ForecasterError
from lstmkit.data.windows import Prepared

MANIFEST = "forecaster.json"
TAGS: dict[str, bool] = {
    "neural": False,             # a trained network (gradients exist: Integrated Gradients applies)
    "attention": False,          # attention(windows) gives weights over the look-back steps
    "variable_selection": False,  # attention(windows) also gives weights over the input channels
    "quantiles": False,          # predict_quantiles(windows, levels): a trained quantile head (pinball loss)
    "samples": False,            # predict_samples(windows, n, seed): sample paths (MC dropout, DeepAR's likelihood)
}
KINDS: dict[str, type[Forecaster]] = {}  # class name -> class, for load()


class Forecaster:
    """One model behind the common contract: fit on prepared data, predict (windows, horizon), save and load."""

    name: str = "forecaster"
    tags: ClassVar[dict[str, bool]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        KINDS[cls.__name__] = cls

    @classmethod
    def examples(cls) -> list[Forecaster]:
        """Small unfitted instances that the contract test fits and checks (like sktime's `get_test_params`): one per
        distinct way the forecaster works; a forecaster whose constructor needs arguments overrides this."""
        return [cls()]

    @classmethod
    def get_tag(cls, tag: str) -> bool:
        """A capability of this forecaster (see TAGS)."""
        if tag not in TAGS:
            raise KeyError(f"unknown forecaster tag {tag!r}; tags are: {', '.join(TAGS)}")
        return bool({**TAGS, **cls.tags}[tag])

    # ------------------------------------------------------------ public: validate, then delegate

    def fit(self, prepared: Prepared) -> Forecaster:
        """Learn from the training windows of `prepared` (validation windows for model selection); returns self."""
        if prepared.n_windows("train") < 1:
            raise ForecasterError(f"{self.name}: the training split holds no window of look-back {prepared.lookback} "
                                  f"and horizon {prepared.horizon}")
        t0 = time.perf_counter()
        self._fit(prepared)
        self.fit_seconds_ = time.perf_counter() - t0
        self.lookback_ = int(self._lookback(prepared))
        self.horizon_, self.channels_ = int(prepared.horizon), len(prepared.columns)
        self.target_index_ = int(prepared.target_index)
        return self

    def refit(self, prepared: Prepared) -> Forecaster:
        """Refit what `fit` chose (hyperparameters, epochs, penalties) on the training windows of `prepared`."""
        self._check_fitted()
        self._refit(prepared)
        return self

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Forecasts (windows, horizon) in scaled units from look-back windows (windows, lookback, channels), scaled."""
        windows = self._validated(windows)
        if len(windows) == 0:
            return np.empty((0, self.horizon_))
        out = np.asarray(self._predict(windows), dtype=float)
        return out.reshape(len(windows), self.horizon_)

    def predict_quantiles(self, windows: np.ndarray, levels: list[float]) -> np.ndarray:
        """Quantiles (windows, horizon, len(levels)), scaled, non-decreasing along the levels (ascending, in (0, 1)),
        from look-back windows (windows, lookback, channels); needs the `quantiles` tag."""
        self._require("quantiles", "predict_quantiles")
        levels = [float(q) for q in levels]
        if not levels or any(not 0 < q < 1 for q in levels) or sorted(levels) != levels:
            raise ForecasterError(f"{self.name}: quantile levels must be ascending and strictly between 0 and 1, got {levels}")
        windows = self._validated(windows)
        if len(windows) == 0:
            return np.empty((0, self.horizon_, len(levels)))
        return np.asarray(self._predict_quantiles(windows, levels), dtype=float).reshape(len(windows), self.horizon_,
                                                                                        len(levels))

    def predict_samples(self, windows: np.ndarray, n_samples: int, seed: int = 0) -> np.ndarray:
        """Sample paths (windows, n_samples, horizon), scaled, from look-back windows (windows, lookback, channels);
        the same seed gives the same samples; needs the `samples` tag."""
        self._require("samples", "predict_samples")
        if int(n_samples) < 1:
            raise ForecasterError(f"{self.name}: n_samples must be at least 1, got {n_samples}")
        windows = self._validated(windows)
        if len(windows) == 0:
            return np.empty((0, int(n_samples), self.horizon_))
        return np.asarray(self._predict_samples(windows, int(n_samples), int(seed)), dtype=float).reshape(
            len(windows), int(n_samples), self.horizon_)

    def _require(self, tag: str, what: str) -> None:
        """ForecasterError naming the missing capability."""
        if not self.get_tag(tag):
            raise ForecasterError(f"{self.name}: {what} needs the {tag!r} capability, which this forecaster lacks")

    def _validated(self, windows: np.ndarray) -> np.ndarray:
        """Look-back windows checked for shape and finiteness, as float32 (windows, lookback, channels)."""
        self._check_fitted()
        windows = np.asarray(windows)
        if windows.ndim != 3 or windows.shape[2] != self.channels_ or windows.shape[1] != self.lookback_:
            raise ForecasterError(f"{self.name}: expected windows of shape (n, {self.lookback_}, {self.channels_}) "
                                  f"(windows, look-back steps, channels), got {windows.shape}")
        if not np.isfinite(windows).all():
            bad = np.argwhere(~np.isfinite(windows))[0]
            raise ForecasterError(f"{self.name}: window {bad[0]} holds a missing or infinite value at step {bad[1]}, "
                                  f"channel {bad[2]}")
        return windows.astype(np.float32, copy=False)

    def predict_split(self, prepared: Prepared, split: str, batch_size: int = 4096) -> np.ndarray:
        """Forecasts (windows, horizon), scaled, of every window of a split, batch by batch into one array."""
        self._check_fitted()
        prepared = prepared.with_lookback(self.lookback_)
        n = prepared.n_windows(split)
        out = np.empty((n, prepared.horizon))
        for a in range(0, n, batch_size):
            inputs, _ = prepared.windows(split, slice(a, a + batch_size))
            out[a:a + len(inputs)] = self.predict(inputs)
        return out

    def summary(self) -> dict:
        """What the fit chose: hyperparameters, parameter count, fit time (s), look-back, and the capability tags."""
        self._check_fitted()
        return {"name": self.name, "kind": type(self).__name__, "hyperparameters": self.hyperparameters(),
                "parameters": int(self.parameter_count()), "fit_seconds": float(self.fit_seconds_),
                "lookback": self.lookback_, "horizon": self.horizon_,
                "tags": {t: self.get_tag(t) for t in TAGS}}

    def save(self, path: Path) -> Path:
        """Save into the folder `path` (a manifest plus the model's own files); loaded back by `load(path)`."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save(path)
        atomic_write_json(path / MANIFEST, {"kind": type(self).__name__, "init": self._init_args(),
                                            "state": self._fitted_scalars(), "summary": self.summary()})
        return path

    # ------------------------------------------------------------ private: what each model does

    def _fit(self, prepared: Prepared) -> None:
        """Learn from prepared's training (and validation) windows. Default: nothing to learn."""

    def _refit(self, prepared: Prepared) -> None:
        """Refit on prepared's training windows. Default: nothing to refit."""

    def _predict(self, windows: np.ndarray) -> np.ndarray:
        """Forecasts (windows, horizon) from validated float32 windows (windows, lookback, channels)."""
        raise NotImplementedError

    def _predict_quantiles(self, windows: np.ndarray, levels: list[float]) -> np.ndarray:
        """Quantiles (windows, horizon, levels) from validated float32 windows (forecasters with the quantiles tag)."""
        raise NotImplementedError

    def _predict_samples(self, windows: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
        """Sample paths (windows, n_samples, horizon) from validated float32 windows (with the samples tag)."""
        raise NotImplementedError

    def _lookback(self, prepared: Prepared) -> int:
        """The look-back this forecaster predicts from once fitted on `prepared`."""
        return prepared.lookback

    def hyperparameters(self) -> dict:
        """The settings the model was built with (dataclass fields not ending in `_` by default)."""
        return {k: v for k, v in self._init_args().items() if k != "name"}

    def parameter_count(self) -> int:
        """Number of fitted parameters."""
        return int(sum(np.size(v) for k, v in vars(self).items() if k.endswith("_") and isinstance(v, np.ndarray)))

    def _init_args(self) -> dict:
        """Constructor arguments (JSON-ready) that rebuild this forecaster before its fitted state is restored."""
        if dataclasses.is_dataclass(self):
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init and not f.name.endswith("_")}
        return {"name": self.name}

    def _fitted_scalars(self) -> dict:
        """Fitted attributes (ending in `_`) that are plain numbers: saved in the manifest."""
        return {k: v.item() if hasattr(v, "item") else v for k, v in vars(self).items()
                if k.endswith("_") and (v is None or isinstance(v, (int, float, str, np.integer, np.floating)))}

    def _save(self, path: Path) -> None:
        """Write fitted arrays (attributes ending in `_`) as state.npz; neural forecasters save their network."""
        arrays = {k: v for k, v in vars(self).items() if k.endswith("_") and isinstance(v, np.ndarray)}
        with atomic_path(path / "state.npz") as tmp:
            np.savez(tmp, **arrays)

    def _load(self, path: Path) -> None:
        """Restore what `_save` wrote."""
        if (path / "state.npz").exists():
            with np.load(path / "state.npz") as data:
                for k in data.files:
                    setattr(self, k, data[k])

    def _check_fitted(self) -> None:
        """ForecasterError unless fit (or load) has run."""
        if not hasattr(self, "lookback_"):
            raise ForecasterError(f"{self.name}: not fitted yet; call fit(prepared) first (or load a saved one)")
