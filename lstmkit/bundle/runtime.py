"""The inference bundle at run time: `load_bundle` verifies a bundle folder and loads it as a `Bundle`, whose
`predict(frame)` forecasts the next `horizon` steps after the frame's last row from its last `lookback` rows, in the
series' units with the calibrated intervals, validating the frame with errors as clear as the CSV loader's;
`forecast_arrays` is the batched core the service calls."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lstmkit.bundle.format import CALIBRATION_FILE, CONFIG_FILE, ERRORS_FILE, METRICS_FILE, MODEL_DIR, PREPROCESSING_FILE, verify
from lstmkit.config import ConfigError, load_config
from lstmkit.core.errors import BundleError, ForecastInputError
from lstmkit.core.labels import level_label
from lstmkit.core.timeindex import grid_text, offset
from lstmkit.models.neural import heads
from lstmkit.models.registry import load

if TYPE_CHECKING:
    from lstmkit.config import Config
    from lstmkit.models.base import Forecaster


MAX_BUCKET = 256  # most windows per model call; smaller batches are padded to a power of two (few compiled shapes)


class Affine:
    """A fitted scaler applied as numbers: standard `(x - mean) / scale`, minmax `x * scale + min` (sklearn's formulas)."""

    def __init__(self, params: dict):
        """From `scaler_params`' dict."""
        self.kind = params["kind"]
        if self.kind not in ("standard", "minmax"):
            raise BundleError(f"{PREPROCESSING_FILE}: unknown scaler kind {self.kind!r}")
        self.scale = np.asarray(params["scale"], dtype=float)
        self.shift = np.asarray(params["mean" if self.kind == "standard" else "min"], dtype=float)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Original units -> scaled (last axis: channels), float64."""
        x = np.asarray(x, dtype=float)
        return (x - self.shift) / self.scale if self.kind == "standard" else x * self.scale + self.shift

    def inverse(self, s: np.ndarray) -> np.ndarray:
        """Scaled -> original units (last axis: channels, or a single channel broadcast), float64."""
        s = np.asarray(s, dtype=float)
        return s * self.scale + self.shift if self.kind == "standard" else (s - self.shift) / self.scale

    def unit(self) -> np.ndarray:
        """Original units per scaled unit of each channel (multiplies a scaled distance)."""
        return self.scale if self.kind == "standard" else 1.0 / self.scale


# ------------------------------------------------------------------ helpers


def bucket(n: int) -> int:
    """The padded batch size of n windows: the next power of two, at most MAX_BUCKET."""
    return min(MAX_BUCKET, 1 << max(0, int(n) - 1).bit_length())


def _load_forecaster(folder: Path) -> Forecaster:
    """The bundle's forecaster; a refusal of Keras safe mode becomes a BundleError saying so."""
    try:
        return load(folder)
    except Exception as e:  # Keras raises ValueError/TypeError with a deep trace; name the file and the reason
        text = str(e)
        where = folder / "model.keras" if (folder / "model.keras").exists() else folder
        if "safe_mode" in text or "safe mode" in text.lower() or "Lambda" in text:
            raise BundleError(f"{where}: Keras safe mode refused to load the model: it holds code that safe mode does "
                              "not deserialise (e.g. a Lambda layer); only bundles written by lstmkit load") from None
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise BundleError(f"{where}: the model cannot be loaded ({first})") from None


def load_bundle(path: str | Path) -> Bundle:
    """Open a bundle: every file is checked against manifest.json (BundleError), the model loads under Keras safe mode."""
    return Bundle(Path(path))


class Bundle:
    """A verified inference bundle, ready to forecast (see the module docstring)."""

    def __init__(self, path: Path):
        """Verify and load the bundle at `path` (BundleError when it cannot be used)."""
        self.path = Path(path).resolve()
        self.manifest = verify(self.path)
        self.version: str = self.manifest["version"]
        try:
            pre = json.loads((self.path / PREPROCESSING_FILE).read_text())
            self.calibration: dict = json.loads((self.path / CALIBRATION_FILE).read_text())
            self.metrics: dict = json.loads((self.path / METRICS_FILE).read_text())
        except (OSError, ValueError) as e:
            raise BundleError(f"{self.path}: a bundle file cannot be read ({e})") from None
        try:
            self.config: Config = load_config(self.path / CONFIG_FILE)
        except (ConfigError, OSError, ValueError) as e:
            raise BundleError(f"{self.path / CONFIG_FILE}: {e}") from None
        try:
            with np.load(self.path / ERRORS_FILE) as data:
                self.abs_errors: np.ndarray = np.asarray(data["abs_errors"], dtype=float)
        except (OSError, ValueError, KeyError) as e:
            raise BundleError(f"{self.path / ERRORS_FILE}: cannot be read as calibration errors ({e})") from None
        try:
            self._describe(pre)
        except (KeyError, TypeError, ValueError) as e:
            raise BundleError(f"{self.path}: {PREPROCESSING_FILE} or {CALIBRATION_FILE} is malformed ({type(e).__name__}: {e})") from None
        self.forecaster: Forecaster = _load_forecaster(self.path / MODEL_DIR)
        if int(self.forecaster.lookback_) != self.lookback or int(self.forecaster.horizon_) != self.horizon:
            raise BundleError(f"{self.path / MODEL_DIR}: the model's look-back/horizon "
                              f"({self.forecaster.lookback_}, {self.forecaster.horizon_}) differ from "
                              f"{PREPROCESSING_FILE} ({self.lookback}, {self.horizon})")
        self._call = None
        self._candidates: list | None = None
        self._lock = threading.Lock()

    def _describe(self, pre: dict) -> None:
        """Set the series description, scalers and interval radii from preprocessing.json and calibration.json."""
        self.preprocessing = pre
        self.columns: list[str] = list(pre["columns"])
        self.target: str = pre["target"]
        self.target_index: int = self.columns.index(self.target)
        self.lookback: int = int(pre["lookback"])
        self.horizon: int = int(pre["horizon"])
        self.freq: str = pre["freq"]
        self.offset = offset(self.freq)
        fixed = isinstance(self.offset, pd.offsets.Tick) or type(self.offset) is pd.offsets.Day
        self._step_ns: int | None = pd.Timedelta(self.offset).value if fixed and self.offset.n > 0 else None
        self.cutoff = pd.Timestamp(pre["cutoff"])
        seasonal = pre.get("seasonal_period")
        self.seasonal_period: int = int(seasonal) if seasonal else 1
        self.units: str = pre.get("units", "a.u.")
        self.scaler = Affine(pre["scaler"])
        self.target_scaler = Affine(pre["target_scaler"])
        self.levels: list[float] = [float(v) for v in self.calibration["levels"]]
        self.labels: list[str] = [level_label(v) for v in self.levels]
        self.radii = np.array([self.calibration["radii"][k] for k in self.labels], dtype=float).T  # (horizon, L) scaled

    def __repr__(self) -> str:
        return (f"Bundle({str(self.path)!r}, version={self.version!r}, lookback={self.lookback}, horizon={self.horizon}, "
                f"freq={self.freq!r})")

    # ------------------------------------------------------------ the model call

    def _network_calls(self) -> list:
        """Compiled functions scaled (n, lookback, channels) float32 -> scaled (n, horizon), fastest first: the network
        under XLA (`jit_compile`, one compile per batch shape), then a plain tf.function; none without a network."""
        network = getattr(self.forecaster, "network", None)
        if network is None:
            return []
        import tensorflow as tf


        spec = self.forecaster.spec
        median = heads.median_index(spec.quantiles) if spec.quantiles else None
        horizon = self.horizon
        signature = [tf.TensorSpec([None, self.lookback, len(self.columns)], tf.float32)]

        def call(x):
            y = network(x, training=False)
            if median is not None:
                y = tf.reshape(y, [tf.shape(x)[0], horizon, -1])[..., median]
            return tf.reshape(y, [tf.shape(x)[0], horizon])

        return [tf.function(call, input_signature=signature, jit_compile=True, reduce_retracing=True),
                tf.function(call, input_signature=signature, reduce_retracing=True)]

    def _run(self, scaled: np.ndarray) -> np.ndarray:
        """One model call on scaled float32 windows (b, lookback, channels) -> (b, horizon), with the first compiled
        function that works (an architecture XLA cannot compile falls back to the plain one, then to `predict`)."""
        if self._call is None:
            with self._lock:
                while self._call is None:
                    candidates = self._candidates if self._candidates is not None else self._network_calls()
                    self._candidates = candidates
                    if not candidates:
                        self._call = lambda x: self.forecaster.predict(np.asarray(x))
                        break
                    try:
                        out = np.asarray(candidates[0](scaled), dtype=float)
                    except Exception:  # noqa: BLE001 - e.g. an op XLA cannot compile: try the next, slower call
                        candidates.pop(0)
                        continue
                    self._call = candidates[0]
                    return out
        return np.asarray(self._call(scaled), dtype=float)

    def _scaled_forecast(self, scaled: np.ndarray) -> np.ndarray:
        """Forecasts (n, horizon) scaled from scaled float32 windows (n, lookback, channels).

        Batches are padded to the next power of two up to MAX_BUCKET windows (longer inputs go MAX_BUCKET at a time),
        so the compiled model sees a few shapes only, each compiled once (see `warm_up`).
        """
        n = len(scaled)
        if n == 0:
            return np.empty((0, self.horizon))
        out = np.empty((n, self.horizon))
        for a in range(0, n, MAX_BUCKET):
            chunk = scaled[a:a + MAX_BUCKET]
            size = bucket(len(chunk))
            if size > len(chunk):
                chunk = np.concatenate([chunk, np.zeros((size - len(chunk), *chunk.shape[1:]), dtype=np.float32)])
            out[a:a + MAX_BUCKET] = self._run(np.ascontiguousarray(chunk, dtype=np.float32))[:min(MAX_BUCKET, n - a)]
        return out

    def warm_up(self, batch_sizes: tuple[int, ...] | None = None) -> None:
        """Compile and run the model once for each batch shape used: the power-of-two buckets up to the largest of
        `batch_sizes` (default: the bundle configuration's `serve.batch_max`), so no request pays a compile."""
        largest = max(batch_sizes) if batch_sizes else max(1, int(self.config.serve.batch_max))
        size = 1
        while True:
            self._scaled_forecast(np.zeros((size, self.lookback, len(self.columns)), dtype=np.float32))
            if size >= min(bucket(largest), MAX_BUCKET):
                break
            size *= 2

    # ------------------------------------------------------------ forecasting

    def _horizon(self, horizon: int | None) -> int:
        """The requested horizon, checked to lie in 1..the bundle's horizon."""
        if horizon is None:
            return self.horizon
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)):
            raise ForecastInputError(f"horizon must be a whole number between 1 and {self.horizon}, got {horizon!r}")
        if not 1 <= int(horizon) <= self.horizon:
            raise ForecastInputError(f"horizon {horizon} is out of range: the model forecasts 1 to {self.horizon} "
                                     "steps ahead")
        return int(horizon)

    def forecast_arrays(self, values: np.ndarray, horizon: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forecast n windows in one model call.

        values: (n, lookback, channels) in ORIGINAL units, channels in `columns` order. Returns mean (n, h), lower
        (n, h, L) and upper (n, h, L) in original units, L = len(levels) ascending, h = horizon (default: the bundle's).
        """
        h = self._horizon(horizon)
        values = np.asarray(values)
        shape = (self.lookback, len(self.columns))
        if values.ndim != 3 or values.shape[1:] != shape:
            raise ForecastInputError(f"windows must have shape (n, {shape[0]}, {shape[1]}) (windows, look-back steps, "
                                     f"columns {', '.join(self.columns)}), got {values.shape}")
        try:
            values = values.astype(float, copy=False)
        except (TypeError, ValueError):
            raise ForecastInputError("windows must hold numbers") from None
        if not np.isfinite(values).all():
            w, t, c = np.argwhere(~np.isfinite(values))[0]
            raise ForecastInputError(f"window {w} holds a missing or infinite value in column {self.columns[c]!r} at "
                                     f"step {t}")
        scaled = self.scaler.transform(values).astype(np.float32)
        mean_scaled = self._scaled_forecast(scaled)[:, :h]
        mean = self.target_scaler.inverse(mean_scaled)
        radius = self.radii[:h] * self.target_scaler.unit()[0]  # (h, L) original units
        return mean, mean[..., None] - radius[None], mean[..., None] + radius[None]

    def future_index(self, last: pd.Timestamp, horizon: int) -> pd.DatetimeIndex:
        """The `horizon` timestamps following `last` on the bundle's time step."""
        last = pd.Timestamp(last)
        if self._step_ns is not None:
            return pd.DatetimeIndex(last + pd.to_timedelta(np.arange(1, int(horizon) + 1) * self._step_ns))
        return pd.DatetimeIndex([last + self.offset * k for k in range(1, int(horizon) + 1)])

    def check_window(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame's last `lookback` rows of the model's columns, validated (ForecastInputError naming the problem):
        a DatetimeIndex, every model column (extra columns are ignored), numeric finite values, increasing timestamps
        one time step apart (the bundle's), and at least `lookback` rows."""
        if not isinstance(frame, pd.DataFrame):
            raise ForecastInputError(f"expected a pandas DataFrame, got {type(frame).__name__}")
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise ForecastInputError(f"the frame needs a DatetimeIndex (timestamps as its index), got a "
                                     f"{type(frame.index).__name__}; e.g. frame.set_index('date')")
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ForecastInputError(f"missing column(s) {', '.join(map(repr, missing))}: the model reads "
                                     f"{', '.join(self.columns)}")
        if len(frame) < self.lookback:
            raise ForecastInputError(f"too few rows: the model needs the last {self.lookback} rows (its look-back), "
                                     f"the frame has {len(frame)}")
        window = frame.iloc[-self.lookback:][self.columns]
        self._check_steps(window.index)
        try:
            values = window.to_numpy(dtype=float)
        except (TypeError, ValueError):
            values = None
        if values is None or not np.isfinite(values).all():  # find and name the first fault, column by column
            for c in self.columns:
                try:
                    v = window[c].to_numpy(dtype=float)
                except (TypeError, ValueError):
                    raise ForecastInputError(f"column {c!r} is not numeric (e.g. {window[c].iloc[-1]!r})") from None
                bad = ~np.isfinite(v)
                if bad.any():
                    i = int(np.argmax(bad))
                    what = "a missing value (NaN)" if np.isnan(v[i]) else "an infinite value"
                    raise ForecastInputError(f"column {c!r} holds {what} at {window.index[i]}; fill or drop it first")
        return window

    def _check_steps(self, index: pd.DatetimeIndex) -> None:
        """ForecastInputError unless the timestamps increase by exactly the bundle's step (naming the first fault)."""
        stamps = index
        if len(stamps) < 2:
            return
        if self._step_ns is not None and (np.diff(stamps.asi8) == self._step_ns).all():
            return  # the common case, checked in integer nanoseconds
        back = np.flatnonzero(np.asarray(stamps[1:] <= stamps[:-1]))
        if len(back):
            i = int(back[0])
            raise ForecastInputError(f"timestamps must increase: {stamps[i + 1]} comes after {stamps[i]} "
                                     "(sort the frame by time and drop duplicate timestamps)")
        expected = stamps[:-1] + self.offset
        bad = np.flatnonzero(np.asarray(stamps[1:] != expected))
        if not len(bad):
            return
        i = int(bad[0])
        prev, got = stamps[i], stamps[i + 1]
        inferred = pd.infer_freq(stamps) if len(stamps) >= 3 else None
        if inferred and offset(inferred) != self.offset:
            raise ForecastInputError(f"the time step is {_step_name(inferred)} but the model was trained on "
                                     f"{_step_name(self.freq)} data (freq {self.freq!r}): resample the frame to it")
        grid = pd.date_range(prev, got, freq=self.offset)
        if grid[-1] == got and len(grid) > 2:
            missing = len(grid) - 2
            raise ForecastInputError(f"gap in the timestamps: {missing} row(s) missing between {prev} and {got} "
                                     f"(first missing: {grid[1]}; time step {_step_name(self.freq)}); fill the gap first")
        raise ForecastInputError(f"timestamp {got} is off the time grid: expected {expected[i]} after {prev} "
                                 f"(time step {_step_name(self.freq)}, freq {self.freq!r})")

    def predict(self, frame: pd.DataFrame, horizon: int | None = None) -> pd.DataFrame:
        """Forecast table from the frame's last `lookback` rows: index the next `horizon` timestamps (named like the
        frame's), columns `mean`, `lower_<L>`, `upper_<L>` per level (e.g. lower_80, upper_95), original units."""
        h = self._horizon(horizon)
        window = self.check_window(frame)
        mean, lower, upper = self.forecast_arrays(window.to_numpy(dtype=float)[None], h)
        index = self.future_index(window.index[-1], h)
        index.name = frame.index.name
        out = {"mean": mean[0]}
        for j, label in enumerate(self.labels):
            out[f"lower_{label}"] = lower[0, :, j]
            out[f"upper_{label}"] = upper[0, :, j]
        return pd.DataFrame(out, index=index)

    def drift_band(self, window: int, level: float) -> float:
        """The `level` quantile of the rolling mean absolute step-1 error over `window` consecutive calibration windows,
        in original units: the band a service's rolling error is expected to stay under.

        With fewer calibration windows than `window`, the mean over all of them is the one rolling value (the band is
        then that mean, whatever the level).
        """
        if int(window) < 1:
            raise ValueError(f"drift_band: window must be at least 1, got {window}")
        if not 0 < float(level) <= 1:
            raise ValueError(f"drift_band: level must be in (0, 1], got {level}")
        errors = self.abs_errors[:, 0] * self.target_scaler.unit()[0]
        w = min(int(window), len(errors))
        rolling = np.convolve(errors, np.ones(w) / w, mode="valid")
        return float(np.quantile(rolling, float(level)))


def _step_name(freq: str) -> str:
    """A time step in words (e.g. `1-hour`, `15-minute`) from a pandas offset alias; a calendar step as its alias."""
    return grid_text(offset(freq))
