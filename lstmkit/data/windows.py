"""Leak-free windows: the scaled series of a run, cut into (look-back, horizon) windows whose targets never cross a
split, with scalers fitted on the training rows only; walk-forward folds over training and validation rows.

`prepare(frame, cfg)` is the one way a series becomes a `Prepared`; every model trains and predicts from its windows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import TimeSeriesSplit
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from lstmkit.config import Config
from lstmkit.core.errors import ConfigError
from lstmkit.data.seasonality import resolve_config
from lstmkit.data.splits import SplitBounds, check_splits, first_window_start, window_count

SHUFFLE_WINDOWS = 1 << 18  # windows shuffled exactly by Prepared.dataset; more are shuffled by blocks (see there)
SHUFFLE_BLOCKS = 1 << 15   # blocks of consecutive windows of a longer split
BATCH_FLOATS = 1 << 23  # input values per batch of windows gathered by Prepared.batches (32 MB of float32)


def make_scaler(method: str) -> StandardScaler | MinMaxScaler:
    """An unfitted sklearn scaler by name."""
    return {"standard": StandardScaler, "minmax": MinMaxScaler}[method]()


@dataclass
class Prepared:
    """A scaled series with its split, ready to be cut into (lookback, horizon) windows."""

    index: pd.DatetimeIndex
    columns: list[str]          # model input channels; the target is the last one
    target: str
    bounds: SplitBounds
    scaler: StandardScaler | MinMaxScaler
    target_scaler: StandardScaler | MinMaxScaler
    scaled: np.ndarray          # (rows, channels) float32: the only copy of the series a Prepared holds
    lookback: int
    horizon: int

    def original_rows(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) in original units, (rows, channels) float32, recovered from the scaled series (the
        scaler's inverse): keeping the original values beside the scaled ones would double the memory of a long series."""
        return inverse_in_chunks(self.scaler, self.scaled[start:stop])

    @property
    def original(self) -> np.ndarray:
        """Every row in original units, (rows, channels) float32 (a new array: prefer original_rows for a slice)."""
        return self.original_rows()

    @property
    def target_index(self) -> int:
        """Column of the target among the input channels."""
        return self.columns.index(self.target)

    def n_windows(self, split: str) -> int:
        """Number of windows of a split (stride 1)."""
        return window_count(self.bounds[split], self.lookback, self.horizon)

    def origins(self, split: str) -> np.ndarray:
        """Row of the last observed input of each window of a split (the forecast origin)."""
        first = first_window_start(self.bounds[split], self.lookback) + self.lookback - 1
        return np.arange(first, first + self.n_windows(split))

    def dataset(self, split: str, batch_size: int = 256, shuffle: bool = False, seed: int | None = None,
                repeat: bool = False):
        """Batched tf.data pipeline of (inputs, targets) windows, gathered lazily from the split's rows of the series.

        Only window start positions are shuffled (reshuffled each epoch, deterministically for a seed); each batch's
        windows are sliced from the series when the batch is requested. Up to SHUFFLE_WINDOWS windows are shuffled
        exactly; beyond that (a shuffle buffer of every position would take about 300 bytes per window) blocks of
        consecutive positions are shuffled and their windows mixed in a buffer of SHUFFLE_WINDOWS, so each batch
        still draws from thousands of places along the split. With `repeat` the windows repeat without end (for
        `steps_per_epoch`), reshuffled at each pass.
        """
        import tensorflow as tf  # TensorFlow loads only when a model trains: the data layer stays light

        n = self.n_windows(split)
        if n == 0:
            raise ValueError(self._too_short(split))
        offset = first_window_start(self.bounds[split], self.lookback)
        rows = self.scaled[offset:offset + n + self.lookback + self.horizon - 1]  # the split's rows only
        series = tf.constant(rows)
        target = tf.constant(rows[:, self.target_index])
        in_offsets = tf.range(self.lookback)[None, :]
        out_offsets = tf.range(self.lookback, self.lookback + self.horizon)[None, :]

        def cut(positions):
            starts = tf.cast(positions, tf.int32)[:, None]
            return tf.gather(series, starts + in_offsets), tf.gather(target, starts + out_offsets)

        positions = tf.data.Dataset.range(n)
        if shuffle and n <= SHUFFLE_WINDOWS:
            positions = positions.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        elif shuffle:
            block = -(-n // SHUFFLE_BLOCKS)
            positions = (tf.data.Dataset.range(0, n, block).shuffle(SHUFFLE_BLOCKS, seed=seed, reshuffle_each_iteration=True)
                         .flat_map(lambda a: tf.data.Dataset.range(a, tf.minimum(a + block, n)))
                         .shuffle(SHUFFLE_WINDOWS, seed=seed, reshuffle_each_iteration=True))
        if repeat:
            positions = positions.repeat()
        return positions.batch(batch_size).map(cut, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """All windows of a split as arrays: inputs (n, lookback, channels), targets (n, horizon).

        This copies every window (n x lookback x channels floats): for long series use `batches`, `windows`
        or `targets`, which gather only what they return.
        """
        n = self.n_windows(split)
        if n == 0:
            raise ValueError(self._too_short(split))
        return self.windows(split, np.arange(n))

    def windows(self, split: str, positions: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """The windows at the given positions of a split (0 = its first window): inputs (k, lookback, channels),
        targets (k, horizon), float32, gathered from the scaled series."""
        n = self.n_windows(split)
        positions = np.arange(n)[positions] if isinstance(positions, slice) else np.asarray(positions, dtype=np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= n):
            raise IndexError(f"window positions must lie in 0..{n - 1} for the {split} split")
        starts = first_window_start(self.bounds[split], self.lookback) + positions
        inputs = self.scaled[starts[:, None] + np.arange(self.lookback)[None, :]]
        targets = self.scaled[starts[:, None] + np.arange(self.lookback, self.lookback + self.horizon)[None, :], self.target_index]
        return inputs, targets

    def batch_windows(self) -> int:
        """Default windows per batch of `batches`: about BATCH_FLOATS input values (32 MB of float32) per batch."""
        return max(1, BATCH_FLOATS // (self.lookback * len(self.columns)))

    def batches(self, split: str, batch_size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The windows of a split in order, batch_size (default `batch_windows()`) at a time:
        (inputs (b, lookback, channels), targets (b, horizon)), float32."""
        n = self.n_windows(split)
        if n == 0:
            raise ValueError(self._too_short(split))
        batch_size = batch_size or self.batch_windows()
        for a in range(0, n, batch_size):
            yield self.windows(split, slice(a, min(a + batch_size, n)))

    def targets(self, split: str) -> np.ndarray:
        """Targets of every window of a split, (n, horizon) float32, without gathering the inputs."""
        if self.n_windows(split) == 0:
            raise ValueError(self._too_short(split))
        return self.scaled[:, self.target_index][self.target_rows(split)]

    def target_rows(self, split: str) -> np.ndarray:
        """Row numbers of each window's targets: (n, horizon)."""
        return self.origins(split)[:, None] + np.arange(1, self.horizon + 1)[None, :]

    def to_original(self, y_scaled: np.ndarray) -> np.ndarray:
        """Target values from scaled back to original units (any shape)."""
        y = np.asarray(y_scaled, dtype=float)
        return self.target_scaler.inverse_transform(y.reshape(-1, 1)).reshape(y.shape)

    def with_lookback(self, lookback: int | None) -> Prepared:
        """The same split and scaling cut into windows of another look-back (None keeps this one)."""
        if lookback is None or lookback == self.lookback:
            return self
        return replace(self, lookback=int(lookback))

    def with_bounds(self, bounds: SplitBounds, refit_scaler: bool) -> Prepared:
        """The same series split at other rows; with refit_scaler the scalers are refitted on the new training rows."""
        if not refit_scaler:
            return replace(self, bounds=bounds)
        train = self.original_rows(*bounds.train)
        scaler = _fit_in_chunks(clone(self.scaler), train)
        target_scaler = _fit_in_chunks(clone(self.target_scaler), train[:, [self.target_index]])
        scaled = np.empty_like(self.scaled)
        for a in range(0, len(scaled), CHUNK_ROWS):  # original units chunk by chunk, scaled again by the new scaler
            scaled[a:a + CHUNK_ROWS] = scaler.transform(self.original_rows(a, a + CHUNK_ROWS))
        return replace(self, bounds=bounds, scaler=scaler, target_scaler=target_scaler, scaled=scaled)

    def train_val(self) -> Prepared:
        """Training windows extended over the validation rows (for a final refit); scaling stays as fitted."""
        b = self.bounds
        return self.with_bounds(SplitBounds(train=(b.train[0], b.val[1]), val=b.val, test=b.test), refit_scaler=False)

    def _too_short(self, split: str) -> str:
        a, b = self.bounds[split]
        return (f"the {split} split (rows {a}-{b - 1}, {b - a} rows) is too short for one window of "
                f"horizon {self.horizon}; enlarge it or shorten window.horizon")


CHUNK_ROWS = 1 << 20  # rows per chunk when fitting and applying scalers: bounds their float64 temporaries


def _fit_in_chunks(scaler: StandardScaler | MinMaxScaler, rows: np.ndarray) -> StandardScaler | MinMaxScaler:
    """Fit a scaler on (rows, channels) by partial_fit over chunks of CHUNK_ROWS rows (no copy of all rows)."""
    for a in range(0, len(rows), CHUNK_ROWS):
        scaler.partial_fit(rows[a:a + CHUNK_ROWS])
    return scaler


def transform_in_chunks(scaler: StandardScaler | MinMaxScaler, values: np.ndarray) -> np.ndarray:
    """Scaled copy of (rows, channels) values as one float32 array, transformed CHUNK_ROWS rows at a time."""
    out = np.empty(values.shape, dtype=np.float32)
    for a in range(0, len(values), CHUNK_ROWS):
        out[a:a + CHUNK_ROWS] = scaler.transform(values[a:a + CHUNK_ROWS])
    return out


def inverse_in_chunks(scaler: StandardScaler | MinMaxScaler, scaled: np.ndarray) -> np.ndarray:
    """Original-unit copy of (rows, channels) scaled values as one float32 array, CHUNK_ROWS rows at a time."""
    out = np.empty(scaled.shape, dtype=np.float32)
    for a in range(0, len(scaled), CHUNK_ROWS):
        out[a:a + CHUNK_ROWS] = scaler.inverse_transform(scaled[a:a + CHUNK_ROWS])
    return out


def series_values(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The frame's columns as one (rows, channels) float32 array: a view of the frame when it holds them so, else a copy."""
    return frame[columns].to_numpy(dtype=np.float32, copy=False)


def fit_scalers(frame: pd.DataFrame, columns: list[str], target: str, bounds: SplitBounds, method: str):
    """Scaler for all channels and one for the target alone, both fitted on the training rows only (in chunks)."""
    train = series_values(frame, columns)[bounds.train[0]:bounds.train[1]]
    scaler = _fit_in_chunks(make_scaler(method), train)
    target_scaler = _fit_in_chunks(make_scaler(method), train[:, [columns.index(target)]])
    return scaler, target_scaler


def prepare(frame: pd.DataFrame, cfg: Config, scalers: tuple | None = None) -> Prepared:
    """Split, scale (fitting on training rows unless fitted (scaler, target_scaler) are given) and describe the windows."""
    cfg, _ = resolve_config(cfg, frame.index)  # `auto` settings of a config not yet recorded by the data stage
    columns = cfg.data.columns()
    bounds = check_splits(len(frame), cfg)
    fitted = scalers or fit_scalers(frame, columns, cfg.data.target, bounds, cfg.scaling.method)
    return Prepared(index=frame.index, columns=columns, target=cfg.data.target, bounds=bounds,
                    scaler=fitted[0], target_scaler=fitted[1],
                    scaled=transform_in_chunks(fitted[0], series_values(frame, columns)),
                    lookback=cfg.window.lookback, horizon=cfg.window.horizon)


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
