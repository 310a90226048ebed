"""Data stage: the synthetic series with known ground truth, and loading a series from CSV."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lstmkit.config import Config, DataConfig


class DataError(ValueError):
    """Input data that cannot be used, with the file, column or row at fault."""


@dataclass
class Driver:
    """One lagged input that drives the target: target[t] gets coef * f(feature[t - lag])."""

    feature: str
    lag: int
    coef: float
    form: str  # "linear", "tanh" or "interaction with <feature>@<lag>"


@dataclass
class GroundTruth:
    """What generated the synthetic target: the driving feature/lag pairs and the noise floor."""

    drivers: list[Driver]
    noise_std: float
    distractors: list[str] = field(default_factory=list)
    daily_period: int = 24
    weekly_period: int = 168

    def driving_pairs(self) -> list[tuple[str, int]]:
        """Distinct (feature, lag) pairs the target depends on."""
        seen: list[tuple[str, int]] = []
        for d in self.drivers:
            if (d.feature, d.lag) not in seen:
                seen.append((d.feature, d.lag))
        return seen

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GroundTruth":
        """Inverse of to_dict."""
        return cls(**{**d, "drivers": [Driver(**x) for x in d["drivers"]]})


LAG_X1 = 6
LAG_X2 = 12


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    """Stationary AR(1) noise."""
    e = rng.normal(0.0, sigma, n)
    out = np.empty(n)
    out[0] = e[0] / np.sqrt(1 - phi**2)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + e[i]
    return out


def _lagged(x: np.ndarray, lag: int) -> np.ndarray:
    """x shifted forward by lag steps; the first lag values repeat x[0]."""
    return np.concatenate([np.full(lag, x[0]), x[:-lag]])


def make_synthetic(length: int = 5040, noise_std: float = 0.3, seed: int = 42,
                   start: str = "2023-01-02") -> tuple[pd.DataFrame, GroundTruth]:
    """Hourly series with two driving inputs, one distractor and a target with known lagged dependencies.

    target[t] = level + trend + daily + weekly (modulated) seasonality
                + 1.2 x1[t-6] + 1.0 tanh(1.5 x2[t-12]) + 0.8 x1[t-6] x2[t-12] + noise
    """
    if length < 200:
        raise DataError(f"data.length: the synthetic series needs at least 200 rows, got {length}")
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=float)
    daily = 2 * np.pi * t / 24
    weekly = 2 * np.pi * t / 168
    x1 = np.sin(daily - 1.0) + _ar1(rng, length, 0.8, 0.5)
    x2 = 0.7 * np.sin(weekly) + 0.5 * np.cos(daily) + _ar1(rng, length, 0.9, 0.35)
    x3 = 0.6 * np.sin(daily + 2.0) + _ar1(rng, length, 0.7, 0.6)  # correlated with the cycle, no effect
    x1_l, x2_l = _lagged(x1, LAG_X1), _lagged(x2, LAG_X2)
    signal = (
        50.0 + 0.0003 * t
        + (1.5 + 0.5 * np.sin(weekly)) * np.sin(daily)  # daily cycle whose amplitude varies over the week
        + 0.8 * np.sin(weekly + 0.5)
        + 1.2 * x1_l + 1.0 * np.tanh(1.5 * x2_l) + 0.8 * x1_l * x2_l
    )
    target = signal + rng.normal(0.0, noise_std, length)
    index = pd.date_range(start, periods=length, freq="h", name="date")
    frame = pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "target": target}, index=index)
    truth = GroundTruth(
        drivers=[
            Driver("x1", LAG_X1, 1.2, "linear"),
            Driver("x2", LAG_X2, 1.0, "tanh"),
            Driver("x1", LAG_X1, 0.8, f"interaction with x2@{LAG_X2}"),
        ],
        noise_std=noise_std,
        distractors=["x3"],
    )
    return frame, truth


def load_csv(cfg: DataConfig) -> pd.DataFrame:
    """Read a series from CSV with a timestamp index and the configured numeric columns."""
    path = Path(cfg.path or "")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        raw = pd.read_csv(path)
    except Exception as e:  # parser errors of every kind become one clear line
        raise DataError(f"{path}: cannot be read as CSV ({e})") from None
    wanted = [cfg.date_column, *cfg.features, cfg.target]
    for col in wanted:
        if col not in raw.columns:
            raise DataError(f"{path}: no column '{col}'; available columns: {', '.join(map(str, raw.columns))}")
    try:
        index = pd.DatetimeIndex(pd.to_datetime(raw[cfg.date_column]), name=cfg.date_column)
    except (ValueError, TypeError) as e:
        raise DataError(f"{path}: column '{cfg.date_column}' has values that are not timestamps ({e})") from None
    frame = raw[[*cfg.features, cfg.target]].set_axis(index)
    for col in frame.columns:
        numeric = pd.to_numeric(frame[col], errors="coerce")
        bad = numeric.isna() & frame[col].notna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise DataError(f"{path}: column '{col}' row {row + 2} has non-numeric value {frame[col].iloc[row]!r}")
        if not np.isfinite(numeric.to_numpy(dtype=float)).all():
            row = int(np.argmax(~np.isfinite(numeric.to_numpy(dtype=float))))
            raise DataError(f"{path}: column '{col}' row {row + 2} is missing or not finite")
        frame[col] = numeric.astype(float)
    if not frame.index.is_monotonic_increasing:
        raise DataError(f"{path}: timestamps in '{cfg.date_column}' are not sorted")
    if frame.index.has_duplicates:
        raise DataError(f"{path}: duplicate timestamp {frame.index[frame.index.duplicated()][0]}")
    return frame


def load_series(cfg: Config) -> tuple[pd.DataFrame, GroundTruth | None]:
    """The configured series and, for synthetic data, its ground truth."""
    if cfg.data.source == "synthetic":
        frame, truth = make_synthetic(cfg.data.length, cfg.data.noise_std, cfg.seed)
        missing = [c for c in [*cfg.data.features, cfg.data.target] if c not in frame.columns]
        if missing:
            raise DataError(f"synthetic data has no column '{missing[0]}'; available columns: {', '.join(frame.columns)}")
        return frame[[*cfg.data.features, cfg.data.target]], truth
    return load_csv(cfg.data), None


def decompose(series: pd.Series, periods: tuple[int, ...] = (24, 168)):
    """MSTL decomposition (trend, one seasonal component per period that fits twice, remainder)."""
    from statsmodels.tsa.seasonal import MSTL

    usable = tuple(p for p in periods if len(series) >= 2 * p)
    if not usable:
        raise DataError(f"series of {len(series)} rows is too short for a seasonal decomposition with periods {periods}")
    return MSTL(series, periods=usable).fit()


def input_columns(cfg: Config) -> list[str]:
    """Model input channels: the exogenous features followed by the target's own history."""
    return [c for c in cfg.data.features if c != cfg.data.target] + [cfg.data.target]


def save_series(frame: pd.DataFrame, path: Path) -> None:
    """Write the series as CSV atomically (the data stage's output)."""
    from lstmkit.runfolder import atomic_write_text

    atomic_write_text(path, frame.to_csv(index_label="date"))


def read_series(path: Path) -> pd.DataFrame:
    """Read the series the data stage wrote."""
    frame = pd.read_csv(path, index_col=0, parse_dates=True)
    frame.index.freq = pd.infer_freq(frame.index) if len(frame) > 2 else None
    return frame
