"""Data stage: the synthetic series with known ground truth, and loading a series from CSV."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lstmkit.atomic import atomic_path
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
    anomalies: list[dict] = field(default_factory=list)  # injected anomalies (synthetic): kind, start, end, size
    filled: np.ndarray | None = None  # (rows,) bool: a value of the row was filled or the row inserted (None: none)


ANOMALY_KINDS = ("spike", "level_shift", "variance")  # injected in turn by inject_anomalies
ANOMALY_STEPS = {"spike": 1, "level_shift": 6, "variance": 16}  # rows each kind lasts
ANOMALY_SIZE = {"spike": 12.0, "level_shift": 8.0, "variance": 4.0}  # in noise standard deviations (variance: the
# noise's standard deviation is multiplied by this)
ANOMALY_LABELS_KEY = "synthetic"  # the name the injected anomalies are filed under in the labels file


def inject_anomalies(frame: pd.DataFrame, column: str, count: int, rows: tuple[int, int], noise_std: float,
                     seed: int) -> tuple[pd.DataFrame, list[dict]]:
    """Add `count` anomalies to one column inside rows [start, stop): spikes, level shifts and variance changes in
    turn, evenly spaced, each of a random sign; returns a copy of the frame and one record per anomaly (kind, first
    and last timestamp, first and last row, size in the column's units).

    Sizes are multiples of `noise_std` (ANOMALY_SIZE; at least 0.1 of the column's standard deviation is used as the
    unit when the noise is smaller): a spike of 10 noise sd on one row, a level shift of 5 noise sd for 8 rows, and
    the noise's standard deviation multiplied by 4 for 16 rows.
    """
    start, stop = rows
    frame = frame.copy()
    if count <= 0:
        return frame, []
    longest = max(ANOMALY_STEPS.values())
    if stop - start < count * (longest + 1):
        raise DataError(f"data.anomalies: {count} anomalies need at least {count * (longest + 1)} rows of the test "
                        f"span, which has {stop - start}; inject fewer or lengthen data.length")
    rng = np.random.default_rng(seed + 7919)  # its own stream: the series itself does not change
    values = frame[column].to_numpy(dtype=float).copy()
    unit = max(float(noise_std), 0.1 * float(np.std(values)))
    slot = (stop - start) / count
    events = []
    for i in range(count):
        kind = ANOMALY_KINDS[i % len(ANOMALY_KINDS)]
        steps = ANOMALY_STEPS[kind]
        a = start + int(slot * i + (slot - steps) / 2)
        sign = rng.choice([-1.0, 1.0])
        if kind == "spike":
            size = sign * ANOMALY_SIZE[kind] * unit
            values[a] += size
        elif kind == "level_shift":
            size = sign * ANOMALY_SIZE[kind] * unit
            values[a:a + steps] += size
        else:
            size = ANOMALY_SIZE[kind] * unit  # the noise sd inside the span (extra noise of sd unit * sqrt(k^2 - 1))
            values[a:a + steps] += rng.normal(0.0, unit * np.sqrt(ANOMALY_SIZE[kind] ** 2 - 1), steps)
        events.append({"kind": kind, "start": str(frame.index[a]), "end": str(frame.index[a + steps - 1]),
                       "first_row": a, "last_row": a + steps - 1, "size": float(size)})
    frame[column] = values.astype(frame[column].dtype)
    return frame, events


def anomaly_labels(events: list[dict], name: str = ANOMALY_LABELS_KEY) -> dict:
    """Injected anomalies in the labels format of `anomalies.labels`: {name: [[start, end], ...]}."""
    return {name: [[e["start"], e["end"]] for e in events]}


def _first(mask: np.ndarray) -> int:
    """Position of the first True."""
    return int(np.argmax(mask))


MISSING_TEXT = {"", "nan", "NaN", "NA", "N/A", "null", "NULL", "None", "inf", "-inf", "Inf", "-Inf", "infinity", "-infinity"}
BLOCK_BYTES = 1 << 20  # CSV bytes parsed at a time (pyarrow holds many blocks in flight: 16 MiB blocks cost 700 MB)
SAMPLE_ROWS = 100  # rows looked at to detect the timestamp column


def _cannot_read(path: Path, error: BaseException) -> DataError:
    """The error for a file that is not readable CSV, with the first line of the reader's reason."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return DataError(f"{path}: cannot be read as CSV ({reason})")


def _head(path: Path, rows: int = SAMPLE_ROWS) -> tuple[list[str], list[list[str]]]:
    """The header and the first `rows` data rows as text, or a DataError naming the file."""
    import csv

    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            sample = [row for _, row in zip(range(rows), reader)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise _cannot_read(path, e) from None
    if not header:
        raise DataError(f"{path}: cannot be read as CSV (empty file: no header line)")
    if not any(sample):
        raise DataError(f"{path}: has a header but no data rows")
    return header, sample


TIMESTAMP_SHARE = 0.9  # share of a column's sampled values that must parse as timestamps for it to count as one


def _looks_like_timestamps(values: list[str]) -> bool:
    """Whether sampled text is timestamps: nearly all (TIMESTAMP_SHARE) non-missing values parse as one and they are
    not plain numbers (a stray bad value is then named by row when the whole column is parsed)."""
    text = pd.Series([v.strip() for v in values if v.strip() not in MISSING_TEXT], dtype=object)
    if text.empty or pd.to_numeric(text, errors="coerce").notna().mean() >= TIMESTAMP_SHARE:
        return False
    return bool(pd.to_datetime(text, errors="coerce", format="mixed").notna().mean() >= TIMESTAMP_SHARE)


def _detect_date_column(path: Path, header: list[str], sample: list[list[str]], values: list[str],
                        notes: list[str]) -> str:
    """The one column whose sampled values parse as timestamps (value columns excluded), or a DataError listing them."""
    others = [c for c in header if c not in values]
    found = [c for c in others if _looks_like_timestamps([row[header.index(c)] for row in sample
                                                          if len(row) > header.index(c)])]
    if len(found) == 1:
        notes.append(f"timestamp column '{found[0]}' detected")
        return found[0]
    if found:
        raise DataError(f"{path}: several columns parse as timestamps: {', '.join(repr(c) for c in found)}; "
                        f"name one in data.date_column")
    listed = ", ".join(repr(c) for c in others) or "none besides the value columns"
    raise DataError(f"{path}: no column parses as timestamps in the first {len(sample)} rows (columns: {listed}); "
                    f"name the timestamp column in data.date_column")


def _parse_timestamps(path: Path, column: str, text, first_line: int, fmt: str | None) -> np.ndarray:
    """One block's timestamp text (a pyarrow string array) as datetime64[ns]: ISO 8601 by pyarrow, else pandas with
    the file's format, then any format; a DataError names the first row that is no timestamp."""
    import pyarrow as pa
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(text)
    try:  # the common case, ISO 8601 without a UTC offset: parsed in C
        return pc.cast(trimmed, pa.timestamp("ns")).to_numpy(zero_copy_only=False).astype("datetime64[ns]", copy=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    stripped = pd.Series(trimmed.to_numpy(zero_copy_only=False), dtype=object)
    try:
        parsed = pd.to_datetime(stripped, errors="coerce", format=fmt or "mixed")
        bad = parsed.isna().to_numpy()
        if bad.any() and fmt:  # rows in another format than the one guessed from the first value
            parsed[bad] = pd.to_datetime(stripped[bad], errors="coerce", format="mixed")
            bad = parsed.isna().to_numpy()
    except (ValueError, TypeError, OverflowError) as e:  # e.g. mixed time zones in one column
        raise DataError(f"{path}: column '{column}' near row {first_line} cannot be read as timestamps "
                        f"({str(e).strip().splitlines()[0]})") from None
    if bad.any():
        row = _first(bad)
        raise DataError(f"{path}: row {first_line + row} of column '{column}' is not a timestamp: "
                        f"{text[row].as_py()!r}")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.to_numpy(dtype="datetime64[ns]")


@functools.cache
def _missing_array():
    """MISSING_TEXT as a pyarrow array (for pyarrow.compute.is_in)."""
    import pyarrow as pa

    return pa.array(sorted(MISSING_TEXT))


def _parse_numbers(path: Path, column: str, text, first_line: int) -> np.ndarray:
    """One block's value text (a pyarrow string array) as float32; missing or infinite -> NaN, other text an error."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:  # the common case: clean numbers throughout the block
        values = pc.cast(text, pa.float32()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        trimmed = pc.utf8_trim_whitespace(text)
        missing = pc.or_kleene(pc.is_null(trimmed), pc.is_in(trimmed, value_set=_missing_array()))
        kept = pc.if_else(missing, pa.scalar(None, pa.string()), trimmed)
        try:
            values = pc.cast(kept, pa.float32()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            numbers = pd.to_numeric(pd.Series(kept.to_numpy(zero_copy_only=False), dtype=object), errors="coerce")
            bad = (numbers.isna() & ~missing.to_numpy(zero_copy_only=False)).to_numpy()
            row = _first(bad)
            raise DataError(f"{path}: column '{column}' row {first_line + row} has non-numeric value "
                            f"{text[row].as_py()!r}") from None
        values = np.asarray(values, dtype=np.float32)
    values = np.array(values, dtype=np.float32, copy=True)
    values[~np.isfinite(values)] = np.nan
    return values


def _read_table(path: Path, date_column: str, columns: list[str],
                block_size: int = BLOCK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Stream the CSV block by block: timestamps (n,) datetime64[ns] and values (columns, n) float32, rows validated.

    Only the named columns are parsed; each block's text is converted and checked before the next is read, so
    memory holds the parsed series plus one block. Error rows are 1-based file lines counting the header.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    wanted = [date_column, *columns]
    types = {c: pa.string() for c in wanted}
    try:
        reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=block_size),
                               convert_options=pcsv.ConvertOptions(include_columns=wanted, column_types=types,
                                                                   strings_can_be_null=False,
                                                                   quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError) as e:
        raise _cannot_read(path, e) from None
    size = path.stat().st_size
    stamps = np.empty(0, dtype="datetime64[ns]")
    values = np.empty((len(columns), 0), dtype=np.float32)
    fmt: str | None = None
    n = 0  # rows read so far; the block's first data row is file line n + 2
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
            raise _cannot_read(path, e) from None
        rows = batch.num_rows
        if rows == 0:
            continue
        dates = batch.column(date_column)
        if n == 0:
            from pandas.tseries.api import guess_datetime_format

            fmt = guess_datetime_format(str(dates[0].as_py()).strip())
        if n + rows > len(stamps):  # room for the rows the file size suggests (a block is about block_size
            # bytes), with a margin: pages never written cost no memory; a longer file doubles the room
            capacity = max(int(size / min(block_size, size) * rows * 1.25) + rows, 2 * len(stamps), n + rows)
            grown_stamps = np.empty(capacity, dtype="datetime64[ns]")
            grown_stamps[:n] = stamps[:n]
            grown = np.empty((len(columns), capacity), dtype=np.float32)
            grown[:, :n] = values[:, :n]
            stamps, values = grown_stamps, grown
        stamps[n:n + rows] = _parse_timestamps(path, date_column, dates, n + 2, fmt)
        for j, c in enumerate(columns):
            values[j, n:n + rows] = _parse_numbers(path, c, batch.column(c), n + 2)
        n += rows
    if n == 0:
        raise DataError(f"{path}: has a header but no data rows")
    return stamps[:n], values[:, :n]


def _lines_at(lines: np.ndarray | None, rows) -> np.ndarray:
    """File lines of row positions: the rows' own lines after a repair, else position + 2 (header, 1-based)."""
    rows = np.asarray(rows)
    return lines[rows] if lines is not None else rows + 2


def _sort_rows(path: Path, column: str, index: np.ndarray, values: np.ndarray, lines: np.ndarray | None, how: str,
               notes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Rows whose timestamp steps back in time: an error naming the first, or a stable sort by timestamp (reported)."""
    back = index[1:] < index[:-1]
    if not back.any():
        return index, values, lines
    row = _first(back) + 1
    at, before = _lines_at(lines, [row, row - 1])
    if how == "error":
        raise DataError(f"{path}: timestamps in '{column}' are not sorted: row {at} ({pd.Timestamp(index[row])}) comes "
                        f"before row {before} ({pd.Timestamp(index[row - 1])}); set data.on_unsorted: sort to sort "
                        f"the rows by timestamp")
    order = np.argsort(index, kind="stable")
    count = int(back.sum())
    notes.append(f"{count} step(s) back in time, the first at row {at} ({pd.Timestamp(index[row])} after "
                 f"{pd.Timestamp(index[row - 1])}): rows sorted by timestamp")
    return index[order], values[:, order], _lines_at(lines, order)


def _merge_duplicates(path: Path, column: str, index: np.ndarray, values: np.ndarray, lines: np.ndarray | None,
                      how: str, notes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Rows sharing a timestamp: an error naming the first pair, or one row per timestamp (first, last or mean)."""
    same = index[1:] == index[:-1]
    if not same.any():
        return index, values, lines
    row = _first(same) + 1
    a, b = _lines_at(lines, [row - 1, row])
    if how == "error":
        raise DataError(f"{path}: duplicate timestamp {pd.Timestamp(index[row])} in '{column}' at rows {a} and {b}; "
                        f"set data.on_duplicates to first, last or mean to keep one row per timestamp")
    starts = np.flatnonzero(np.concatenate([[True], ~same]))
    if how == "mean":
        finite = ~np.isnan(values)
        sums = np.add.reduceat(np.where(finite, values, 0).astype(np.float64), starts, axis=1)
        counts = np.add.reduceat(finite, starts, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            merged = (sums / counts).astype(np.float32)  # NaN where a group has no value: left to data.fill_missing
        keep = starts
    else:
        keep = starts if how == "first" else np.append(starts[1:] - 1, len(index) - 1)
        merged = values[:, keep]
    removed = len(index) - len(starts)
    groups = int(np.count_nonzero(np.diff(np.append(starts, len(index))) > 1))
    what = {"first": "the first row", "last": "the last row", "mean": "the mean"}[how]
    notes.append(f"{removed} duplicate timestamp(s) in {groups} group(s), the first {pd.Timestamp(index[row])} at rows "
                 f"{a} and {b}: kept {what} of each group ({removed} rows removed)")
    return index[keep], merged, _lines_at(lines, keep)


def _fill_missing(path: Path, frame: pd.DataFrame, how: str, notes: list[str], lines: np.ndarray | None,
                  inserted: bool = False) -> pd.DataFrame:
    """Apply the configured treatment of missing values: an error naming the first one, or a fill that is reported.

    The error names the file row (`lines`: rows' file lines after a repair, None = position + 2), or the timestamp
    when the missing values are rows inserted on the grid (`inserted`).
    """
    columns = np.array([np.isnan(frame[c].to_numpy()).any() for c in frame.columns])
    if not columns.any():
        return frame
    missing = np.isnan(frame.to_numpy())
    if how == "error":
        j = _first(columns)
        col = frame.columns[j]
        pos = _first(missing[:, j])
        where = f"at {frame.index[pos]}" if inserted else f"row {_lines_at(lines, pos)}"
        raise DataError(f"{path}: column '{col}' {where} is missing or not finite "
                        f"({int(missing.sum())} such cells in all); set data.fill_missing to interpolate or ffill")
    filled = frame.interpolate(method="time", limit_direction="both") if how == "interpolate" else frame.ffill().bfill()
    what = "value(s) in inserted rows" if inserted else "missing or infinite value(s)"
    for j in np.flatnonzero(columns):
        notes.append(f"{int(missing[:, j].sum())} {what} in '{frame.columns[j]}' filled by {how}")
    return filled.astype(np.float32)


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


def _fixed_step(offset: pd.DateOffset) -> pd.Timedelta | None:
    """The step of a fixed-length offset (`h`, `15min`, `D`), or None for a calendar one (`MS`, `W-SUN`, `QE`)."""
    if not isinstance(offset, (pd.offsets.Tick, pd.offsets.Day)) or getattr(offset, "n", 1) <= 0:
        return None
    return pd.Timedelta(offset)


def _grid_text(offset: pd.DateOffset) -> str:
    """A grid's step in words: `1-hour`, `15-minute`, or the calendar alias such as `'MS'`."""
    step = _fixed_step(offset)
    return _step_text(step) if step is not None else f"'{offset.freqstr}'"


def _infer(index: pd.DatetimeIndex) -> pd.DateOffset | None:
    """pandas' inferred step of a few regular timestamps, or None."""
    from pandas.tseries.frequencies import to_offset

    try:
        name = pd.infer_freq(index) if len(index) >= 3 else None
    except (ValueError, TypeError):
        return None
    return to_offset(name) if name else None


def _steps_equal(stamps: np.ndarray, size: int, chunk: int = 1 << 20) -> bool:
    """Whether every step between consecutive int64 timestamps equals `size`, checked in chunks (no full diff copy)."""
    return all((np.diff(stamps[a:a + chunk + 1]) == size).all() for a in range(0, len(stamps) - 1, chunk))


def _grid_offset(path: Path, index: pd.DatetimeIndex, frequency: str | None) -> pd.DateOffset:
    """The time step: `data.frequency`, else what pandas infers from the first rows, else the most common step."""
    from pandas.tseries.frequencies import to_offset

    if frequency:
        try:
            return to_offset(frequency)
        except ValueError:
            raise DataError(f"data.frequency: {frequency!r} is not a pandas offset alias (e.g. h, 15min, D, W-SUN, "
                            f"MS)") from None
    stamps = index.as_unit("ns").asi8
    first = int(stamps[1] - stamps[0])
    step = pd.Timedelta(first if _steps_equal(stamps, first) else int(pd.Series(np.diff(stamps)).mode().iloc[0]), "ns")
    head = _infer(index[:SAMPLE_ROWS])
    if head is not None and _fixed_step(head) in (None, step):  # the first rows are regular: trust their step
        return head
    votes = [o for o in (_infer(index[i:i + 3]) for i in np.linspace(0, len(index) - 3, 25, dtype=int)) if o]
    if votes:  # calendar steps (months, business days) seen in short regular runs along the file
        offset = max(votes, key=lambda o: sum(v == o for v in votes))
        if _fixed_step(offset) is None and 2 * sum(v == offset for v in votes) > len(votes):
            return offset
    day = pd.Timedelta(days=1)
    return to_offset(f"{step // day}D") if step % day == pd.Timedelta(0) else to_offset(step)


def _regular_grid(path: Path, frame: pd.DataFrame, frequency: str | None, on_gaps: str, notes: list[str],
                  lines: np.ndarray | None = None) -> pd.DataFrame:
    """Check the timestamps lie on a regular grid (fixed or calendar step); gaps and off-grid rows are an error
    or, with `on_gaps: resample`, the series is put on the grid (reported); the index gets its freq."""
    if len(frame) < 3:
        return frame
    index = frame.index
    offset = _grid_offset(path, index, frequency)
    step = _fixed_step(offset)
    text = _grid_text(offset)
    if step is not None:
        stamps = index.as_unit("ns").asi8
        size = int(step / pd.Timedelta(1, "ns"))
        if _steps_equal(stamps, size):  # the common case: regular throughout
            frame.index.freq = offset
            return frame
        pos = stamps - stamps[0]
        off = pos % size != 0
        np.floor_divide(pos, size, out=pos)
    else:
        grid = pd.date_range(index[0], index[-1], freq=offset)
        pos = grid.get_indexer(index)
        off = pos < 0
    if off.any():
        row = _first(off)
        line = _lines_at(lines, row)
        count = int(off.sum())
        if on_gaps == "error":
            raise DataError(f"{path}: timestamp {index[row]} (row {line}) is off the regular {text} grid that starts "
                            f"at {index[0]} ({count} such row(s)); set data.frequency, or data.on_gaps: resample to "
                            f"average each grid cell's rows")
        if step is not None:
            regular = frame.resample(step, origin=index[0], closed="left", label="left").mean()
        else:
            regular = frame.resample(offset).mean()
        regular = regular.astype(np.float32)
        empty = int(regular.isna().all(axis=1).sum())
        notes.append(f"{count} timestamp(s) off the {text} grid, the first {index[row]} at row {line}: the series "
                     f"resampled onto the grid, each grid cell the mean of the rows it holds; {empty} empty cell(s) "
                     f"inserted as missing rows")
        regular.index.freq = offset
        regular.index.name = index.name
        return regular
    jumps = np.diff(pos)
    gaps = jumps > 1
    if not gaps.any():
        frame.index.freq = offset
        return frame
    row = _first(gaps)
    missing_rows = int((jumps[gaps] - 1).sum())
    if on_gaps == "error":
        raise DataError(f"{path}: {int(gaps.sum())} gap(s) in the {text} timestamps, {missing_rows} missing row(s); the "
                        f"first after row {_lines_at(lines, row)} ({index[row]} -> {index[row + 1]}); set "
                        f"data.on_gaps: resample to insert the missing rows (filled by data.fill_missing)")
    notes.append(f"{int(gaps.sum())} gap(s) in the {text} grid: {missing_rows} missing row(s) inserted, first after "
                 f"{index[row]}")
    regular = frame.asfreq(offset)
    regular.index.freq = offset
    return regular


def load_csv(cfg: DataConfig, path: str | Path | None = None, *,
             _block_size: int = BLOCK_BYTES) -> tuple[pd.DataFrame, list[str]]:
    """Read and validate a series from CSV; returns the frame (DatetimeIndex, float32 columns) and notes on repairs.

    Order: parse (streamed in blocks) -> sort (data.on_unsorted) -> duplicates (data.on_duplicates) -> missing
    values (data.fill_missing) -> regular grid and gaps (data.on_gaps) -> constant columns.
    """
    frame, notes, _ = load_csv_filled(cfg, path, _block_size=_block_size)
    return frame, notes


def _filled_on_grid(missing: np.ndarray, before: pd.DatetimeIndex, frame: pd.DataFrame,
                    gridded: pd.DataFrame) -> np.ndarray:
    """(rows of `gridded`,) bool: rows inserted by the grid repair (all values missing) or holding a value filled
    before it; a grid cell that averages several rows counts as filled when any of them held a filled value."""
    if gridded is frame:
        return missing
    filled = gridded.isna().any(axis=1).to_numpy().copy()
    if missing.any():
        stamps = before[missing]
        exact = gridded.index.get_indexer(stamps)
        cells = np.where(exact >= 0, exact, gridded.index.searchsorted(stamps, side="right") - 1)
        filled[cells[(cells >= 0) & (cells < len(filled))]] = True
    return filled


def load_csv_filled(cfg: DataConfig, path: str | Path | None = None, *,
                    _block_size: int = BLOCK_BYTES) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """load_csv, also returning (rows,) bool: whether a value of the row was filled (data.fill_missing) or the row
    was inserted on the grid (data.on_gaps: resample), i.e. the row holds a value that was not observed."""
    path = Path(path or cfg.path or "")
    header, sample = _head(path)
    columns = list(dict.fromkeys([c for c in cfg.features if c != cfg.target] + [cfg.target]))
    notes: list[str] = []
    for col in dict.fromkeys([*([cfg.date_column] if cfg.date_column else []), *cfg.features, cfg.target]):
        if col not in header:
            raise DataError(f"{path}: no column '{col}'; available columns: {', '.join(map(str, header))}")
        if header.count(col) > 1:
            raise DataError(f"{path}: column '{col}' appears {header.count(col)} times in the header")
    date_column = cfg.date_column or _detect_date_column(path, header, sample, columns, notes)
    index, values = _read_table(path, date_column, columns, _block_size)
    index, values, lines = _sort_rows(path, date_column, index, values, None, cfg.on_unsorted, notes)
    index, values, lines = _merge_duplicates(path, date_column, index, values, lines, cfg.on_duplicates, notes)
    frame = pd.DataFrame(values.T, index=pd.DatetimeIndex(index, name=date_column, copy=False), columns=columns,
                         copy=False)
    del values
    missing = np.zeros(len(frame), dtype=bool)  # rows with a value filled next (an error with fill_missing: error)
    for col in frame.columns:
        missing |= np.isnan(frame[col].to_numpy())
    frame = _fill_missing(path, frame, cfg.fill_missing, notes, lines)
    before, ungridded = frame.index, frame
    frame = _regular_grid(path, frame, cfg.frequency, cfg.on_gaps, notes, lines)
    filled = _filled_on_grid(missing, before, ungridded, frame)
    del ungridded
    freq = frame.index.freq
    frame = _fill_missing(path, frame, cfg.fill_missing, notes, None, inserted=True)  # rows inserted on the grid
    frame.index.freq = freq
    for col in frame.columns:
        column = frame[col].to_numpy()
        if np.nanmin(column) == np.nanmax(column):
            raise DataError(f"{path}: column '{col}' is constant ({column[0]:g} in every row): it carries "
                            f"no information and cannot be scaled")
    return frame, notes, filled


def load_series(cfg: Config) -> SeriesData:
    """The configured series: synthetic (with its ground truth), a CSV file, or a named dataset."""
    if cfg.data.source == "synthetic":
        frame, truth = make_synthetic(cfg.data.length, cfg.data.noise_std, cfg.seed)
        missing = [c for c in [*cfg.data.features, cfg.data.target] if c not in frame.columns]
        if missing:
            raise DataError(f"synthetic data has no column '{missing[0]}'; available columns: {', '.join(frame.columns)}")
        events: list[dict] = []
        if cfg.data.anomalies:
            from lstmkit.preprocessing import split_bounds

            test = split_bounds(len(frame), cfg.split.train, cfg.split.val, cfg.split.test).test
            frame, events = inject_anomalies(frame, cfg.data.target, cfg.data.anomalies, test, cfg.data.noise_std,
                                             cfg.seed)
        return SeriesData(frame[input_columns(cfg)], truth, [], f"synthetic generator (seed {cfg.seed})", events)
    if cfg.data.source == "csv":
        frame, notes, filled = load_csv_filled(cfg.data)
        return SeriesData(frame, None, notes, f"CSV file {cfg.data.path}", filled=filled)
    import dataclasses

    from lstmkit.datasets import dataset_path, get_dataset

    path = dataset_path(cfg.data.source)
    data = cfg.data if cfg.data.date_column else dataclasses.replace(
        cfg.data, date_column=get_dataset(cfg.data.source).date_column)  # the registry names the timestamp column
    frame, notes, filled = load_csv_filled(data, path)
    return SeriesData(frame, None, notes, f"named dataset {cfg.data.source} ({path.name})", filled=filled)


def decompose(series: pd.Series, periods: tuple[int, ...], max_rows: int | None = None, max_period: int | None = None):
    """MSTL decomposition of the most recent `max_rows` rows (all when None), with a sentence saying what was done.

    Returns (result, sentence): result is statsmodels' DecomposeResult (trend, one seasonal component per period that
    fits more than twice into the span and is at most `max_period` steps, remainder) or None when no period fits (or
    there is none); the sentence names the span and periods decomposed, or why nothing was, for the data chapter.
    """
    import warnings

    from statsmodels.tsa.seasonal import MSTL

    n = len(series)
    part = series if max_rows is None or n <= max_rows else series.iloc[-max_rows:]
    unit = step_words(series.index) if isinstance(series.index, pd.DatetimeIndex) else "steps"
    span = (f"all {n:,} rows" if len(part) == n else
            f"the most recent {len(part):,} of {n:,} rows ({part.index[0]} to {part.index[-1]})")
    if not periods:
        return None, ("No seasonal decomposition: the series' time step holds no seasonal period, so there is no "
                      "cycle to separate from the trend.")
    too_long = [p for p in periods if max_period is not None and p > max_period]
    if too_long and len(too_long) == len(periods):
        return None, ("No seasonal decomposition: the seasonal period(s) of " + " and ".join(f"{p} {unit}" for p in too_long)
                      + f" exceed {max_period} steps, and MSTL's smoothing windows grow with the period (a day of "
                      f"1-minute steps takes minutes).")
    periods = tuple(p for p in periods if p not in too_long)
    usable = tuple(p for p in periods if len(part) > 2 * p)  # MSTL drops periods of half the span or more
    left_out = [p for p in periods if p not in usable]
    if not usable:
        return None, (f"No seasonal decomposition: {span} hold {len(part) / min(periods):.3g} cycles of the shortest "
                      f"seasonal period ({min(periods)} {unit}), and MSTL needs more than two to tell a seasonal "
                      f"component from the trend.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns about short spans that the sentence already explains
        result = MSTL(part, periods=usable).fit()
    text = f"MSTL decomposed {span} with seasonal period(s) of " + " and ".join(f"{p} {unit}" for p in usable)
    if left_out:
        text += ("; left out: " + ", ".join(f"{p} {unit}" for p in left_out)
                 + " (not more than two full cycles in the span)")
    if too_long:
        text += "; left out: " + ", ".join(f"{p} {unit}" for p in too_long) + f" (longer than {max_period} steps)"
    return result, text + "."


def input_columns(cfg: Config) -> list[str]:
    """Model input channels: the exogenous features followed by the target's own history."""
    return [c for c in cfg.data.features if c != cfg.data.target] + [cfg.data.target]


def save_series(frame: pd.DataFrame, path: Path) -> None:
    """Write the series as Parquet atomically (the data stage's output): float32 values, the timestamps as a column.

    The timestamp column is named after the frame's index (or `date`); the index's frequency is kept in the file's
    metadata. The file is written to a temporary name in the same folder and renamed into place.
    """

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
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=1 << 20)


def save_filled(index: pd.DatetimeIndex, filled: np.ndarray | None, path: Path) -> None:
    """Write the timestamps of the rows holding filled values (a one-column Parquet file, atomically); with none
    filled (or `filled` None) remove the file instead, so that a rerun leaves no stale mask."""
    path = Path(path)
    if filled is None or not np.asarray(filled, dtype=bool).any():
        path.unlink(missing_ok=True)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    stamps = np.asarray(index)[np.asarray(filled, dtype=bool)]
    table = pa.Table.from_arrays([pa.array(stamps)], names=[str(index.name or "date")])
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_filled(path: Path, index: pd.DatetimeIndex) -> np.ndarray:
    """(len(index),) bool: which timestamps of `index` hold filled values, from the file save_filled wrote (all False
    when there is no file: nothing was filled, or the run predates the file)."""
    path = Path(path)
    if not path.exists():
        return np.zeros(len(index), dtype=bool)
    import pyarrow.parquet as pq

    try:
        stamps = pq.read_table(path).column(0).to_numpy()
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot be read as the filled rows' timestamps "
                        f"({str(e).strip().splitlines()[0]})") from None
    return np.asarray(index.isin(pd.DatetimeIndex(stamps)), dtype=bool)


def read_series(path: Path) -> pd.DataFrame:
    """Read the series the data stage wrote: float32 columns in one (rows, columns) block, a DatetimeIndex with its freq.

    Columns are read one at a time into a preallocated array, so reading takes the series' size plus one column.
    """
    import pyarrow as pa
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
    pa.default_memory_pool().release_unused()  # hand back the decoding buffers: ~130 MB per 10^7 rows x 7 columns
    return pd.DataFrame(values, index=index, columns=columns, copy=False)
