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
    def from_dict(cls, d: dict) -> GroundTruth:
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


@dataclass
class SeriesData:
    """A loaded series with what is known about it."""

    frame: pd.DataFrame
    truth: GroundTruth | None = None
    notes: list[str] = field(default_factory=list)  # what loading did to the data: filled values, inserted rows
    origin: str = ""                                # where it came from, in words


def _first(mask: np.ndarray) -> int:
    """Position of the first True."""
    return int(np.argmax(mask))


def _read_table(path: Path) -> pd.DataFrame:
    """The raw CSV as text columns, or a DataError naming the file."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: cannot be read as CSV ({str(e).strip().splitlines()[0]})") from None
    if raw.empty:
        raise DataError(f"{path}: has a header but no data rows")
    return raw


def _timestamps(path: Path, raw: pd.DataFrame, column: str) -> pd.DatetimeIndex:
    """Parse the timestamp column, naming the first row that is not a timestamp."""
    text = raw[column].str.strip()
    parsed = pd.to_datetime(text, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = _first(bad)
        raise DataError(f"{path}: row {row + 2} of column '{column}' is not a timestamp: {raw[column].iloc[row]!r}")
    index = pd.DatetimeIndex(parsed, name=column)
    later = index[1:] < index[:-1]
    if later.any():
        row = _first(later) + 1
        raise DataError(f"{path}: timestamps in '{column}' are not sorted: row {row + 2} ({index[row]}) comes "
                        f"before row {row + 1} ({index[row - 1]})")
    dup = index.duplicated()
    if dup.any():
        row = _first(dup)
        raise DataError(f"{path}: duplicate timestamp {index[row]} in '{column}' at rows {row + 1} and {row + 2}")
    return index


MISSING_TEXT = {"", "nan", "NaN", "NA", "N/A", "null", "NULL", "None", "inf", "-inf", "Inf", "-Inf", "infinity", "-infinity"}


def _numeric(path: Path, raw: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats; non-numeric text is an error naming the row, missing and infinite values become NaN."""
    text = raw[column].str.strip()
    values = pd.to_numeric(text.where(~text.isin(MISSING_TEXT)), errors="coerce")
    bad = (values.isna() & ~text.isin(MISSING_TEXT)).to_numpy()
    if bad.any():
        row = _first(bad)
        raise DataError(f"{path}: column '{column}' row {row + 2} has non-numeric value {raw[column].iloc[row]!r}")
    return values.astype(float).replace([np.inf, -np.inf], np.nan)


def _fill_missing(path: Path, frame: pd.DataFrame, how: str, notes: list[str], rows_of: pd.Index) -> pd.DataFrame:
    """Apply the configured treatment of missing values: an error naming the first one, or a fill that is reported."""
    missing = frame.isna()
    if not missing.any().any():
        return frame
    if how == "error":
        col = missing.any().idxmax()
        pos = _first(missing[col].to_numpy())
        where = f"row {rows_of[pos]}" if rows_of is not None else f"at {frame.index[pos]}"
        raise DataError(f"{path}: column '{col}' {where} is missing or not finite "
                        f"({int(missing.to_numpy().sum())} such cells in all); set data.fill_missing to interpolate or ffill")
    filled = frame.interpolate(method="time", limit_direction="both") if how == "interpolate" else frame.ffill().bfill()
    for col in frame.columns[missing.any()]:
        notes.append(f"{int(missing[col].sum())} missing or infinite value(s) in '{col}' filled by {how}")
    return filled


def _step_text(step: pd.Timedelta) -> str:
    """A time step in words, e.g. `1-hour` or `15-minute`."""
    seconds = int(step.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            return f"{seconds // size}-{unit}"
    return f"{seconds}-second"


def step_words(index: pd.DatetimeIndex) -> str:
    """The series' time step as a plural unit for axis labels: `hours`, `days`, `15-minute steps`."""
    steps = pd.Series(index[1:] - index[:-1])
    if steps.empty:
        return "steps"
    text = _step_text(steps.mode().iloc[0])
    count, unit = text.split("-")
    return f"{unit}s" if count == "1" else f"{text} steps"


def _regular_grid(path: Path, frame: pd.DataFrame, frequency: str | None, on_gaps: str, notes: list[str]) -> pd.DataFrame:
    """Check the timestamps lie on a regular grid; gaps are an error or, on request, inserted as empty rows."""
    if len(frame) < 3:
        return frame
    steps = frame.index.to_series().diff().dropna()
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(frequency)) if frequency else steps.mode().iloc[0]
    off = ((frame.index - frame.index[0]) % step) != pd.Timedelta(0)
    if off.any():
        row = _first(np.asarray(off))
        raise DataError(f"{path}: timestamp {frame.index[row]} (row {row + 2}) is off the regular {_step_text(step)} grid "
                        f"that starts at {frame.index[0]}")
    gaps = steps[steps > step]
    if gaps.empty:
        frame.index.freq = pd.tseries.frequencies.to_offset(step)
        return frame
    first = gaps.index[0]
    row = frame.index.get_loc(first)
    missing_rows = int(sum(g // step - 1 for g in gaps))
    if on_gaps == "error":
        raise DataError(f"{path}: {len(gaps)} gap(s) in the {_step_text(step)} timestamps, {missing_rows} missing row(s); the first "
                        f"after row {row + 1} ({frame.index[row - 1]} -> {first}); set data.on_gaps: resample to insert "
                        f"the missing rows (filled by data.fill_missing)")
    notes.append(f"{len(gaps)} gap(s) in the {_step_text(step)} grid: {missing_rows} missing row(s) inserted, first after "
                 f"{frame.index[row - 1]}")
    return frame.asfreq(step)


def load_csv(cfg: DataConfig, path: str | Path | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Read and validate a series from CSV; returns the frame (DatetimeIndex) and notes on what was repaired."""
    path = Path(path or cfg.path or "")
    raw = _read_table(path)
    wanted = [cfg.date_column, *cfg.features, cfg.target]
    for col in dict.fromkeys(wanted):
        if col not in raw.columns:
            raise DataError(f"{path}: no column '{col}'; available columns: {', '.join(map(str, raw.columns))}")
    index = _timestamps(path, raw, cfg.date_column)
    columns = list(dict.fromkeys([c for c in cfg.features if c != cfg.target] + [cfg.target]))
    frame = pd.DataFrame({c: _numeric(path, raw, c).to_numpy() for c in columns}, index=index)
    notes: list[str] = []
    frame = _fill_missing(path, frame, cfg.fill_missing, notes, pd.RangeIndex(2, len(frame) + 2))
    frame = _regular_grid(path, frame, cfg.frequency, cfg.on_gaps, notes)
    if frame.isna().any().any():  # rows inserted for gaps
        frame = _fill_missing(path, frame, cfg.fill_missing, notes, None)
    for col in frame.columns:
        if frame[col].nunique() <= 1:
            raise DataError(f"{path}: column '{col}' is constant ({frame[col].iloc[0]:g} in every row): it carries "
                            f"no information and cannot be scaled")
    return frame, notes


def load_series(cfg: Config) -> SeriesData:
    """The configured series: synthetic (with its ground truth), a CSV file, or a named dataset."""
    if cfg.data.source == "synthetic":
        frame, truth = make_synthetic(cfg.data.length, cfg.data.noise_std, cfg.seed)
        missing = [c for c in [*cfg.data.features, cfg.data.target] if c not in frame.columns]
        if missing:
            raise DataError(f"synthetic data has no column '{missing[0]}'; available columns: {', '.join(frame.columns)}")
        return SeriesData(frame[input_columns(cfg)], truth, [], f"synthetic generator (seed {cfg.seed})")
    if cfg.data.source == "csv":
        frame, notes = load_csv(cfg.data)
        return SeriesData(frame, None, notes, f"CSV file {cfg.data.path}")
    from lstmkit.datasets import dataset_path

    path = dataset_path(cfg.data.source)
    frame, notes = load_csv(cfg.data, path)
    return SeriesData(frame, None, notes, f"named dataset {cfg.data.source} ({path.name})")


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
    """Write the series as Parquet atomically (the data stage's output): float32 values, the timestamps as a column.

    The timestamp column is named after the frame's index (or `date`); the index's frequency is kept in the file's
    metadata. The file is written to a temporary name in the same folder and renamed into place.
    """
    import os
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    index_name = str(frame.index.name or "date")
    if index_name in frame.columns:
        raise DataError(f"{path}: the timestamp column '{index_name}' has the name of a value column")
    freq = getattr(frame.index, "freqstr", None)
    arrays = [pa.array(np.asarray(frame.index))] + [pa.array(frame[c].to_numpy(dtype=np.float32)) for c in frame.columns]
    names = [index_name, *map(str, frame.columns)]
    table = pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(
        {"lstmkit.index": index_name, "lstmkit.freq": freq or ""})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, row_group_size=1 << 20)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_series(path: Path) -> pd.DataFrame:
    """Read the series the data stage wrote: float32 columns in one (rows, columns) block, a DatetimeIndex with its freq.

    Columns are read one at a time into a preallocated array, so reading takes the series' size plus one column.
    """
    import pyarrow.parquet as pq

    from lstmkit.seasonality import infer_freq

    try:
        file = pq.ParquetFile(path)
    except (OSError, ValueError) as e:  # pyarrow raises ArrowInvalid (a ValueError) for a file that is not Parquet
        raise DataError(f"{path}: cannot be read as the stored series ({str(e).strip().splitlines()[0]})") from None
    meta = {k.decode(): v.decode() for k, v in (file.schema_arrow.metadata or {}).items()}
    names = file.schema_arrow.names
    index_name = meta.get("lstmkit.index", names[0])
    columns = [n for n in names if n != index_name]
    values = np.empty((file.metadata.num_rows, len(columns)), dtype=np.float32)
    for j, c in enumerate(columns):
        values[:, j] = file.read(columns=[c]).column(0).to_numpy()
    index = pd.DatetimeIndex(file.read(columns=[index_name]).column(0).to_pandas(), name=index_name)
    freq = meta.get("lstmkit.freq") or (infer_freq(index) if len(index) > 2 else None)
    if freq:
        try:
            index.freq = freq
        except ValueError:  # irregular steps: no frequency
            index.freq = None
    return pd.DataFrame(values, index=index, columns=columns, copy=False)
