"""Loading a series from CSV: the file read in blocks by pyarrow (only the named columns, float32), validated, and
repaired where the configuration asks (sorting, duplicates, missing values, the time grid), every repair reported.

Every refusal is a DataError naming the file, the column and the row (or timestamp) at fault."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from pandas.tseries.api import guess_datetime_format
from pandas.tseries.frequencies import to_offset

from lstmkit.config import DataConfig
from lstmkit.core.errors import DataError
from lstmkit.core.timeindex import fixed_step, grid_text


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
    return pa.array(sorted(MISSING_TEXT))


def _parse_numbers(path: Path, column: str, text, first_line: int) -> np.ndarray:
    """One block's value text (a pyarrow string array) as float32; missing or infinite -> NaN, other text an error."""
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


def _infer(index: pd.DatetimeIndex) -> pd.DateOffset | None:
    """pandas' inferred step of a few regular timestamps, or None."""
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
    if head is not None and fixed_step(head) in (None, step):  # the first rows are regular: trust their step
        return head
    votes = [o for o in (_infer(index[i:i + 3]) for i in np.linspace(0, len(index) - 3, 25, dtype=int)) if o]
    if votes:  # calendar steps (months, business days) seen in short regular runs along the file
        offset = max(votes, key=lambda o: sum(v == o for v in votes))
        if fixed_step(offset) is None and 2 * sum(v == offset for v in votes) > len(votes):
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
    step = fixed_step(offset)
    text = grid_text(offset)
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
