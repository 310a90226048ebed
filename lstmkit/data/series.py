"""The series of a run: loaded from its source (synthetic, CSV, named dataset), stored as Parquet in the run
folder and read back, with the mask of the rows whose values a repair filled."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lstmkit.config import Config
from lstmkit.core.atomic import atomic_path
from lstmkit.core.errors import DataError
from lstmkit.core.timeindex import infer_freq
from lstmkit.data.datasets import dataset_path, get_dataset
from lstmkit.data.loading import load_csv_filled
from lstmkit.data.splits import split_bounds
from lstmkit.data.synthetic import GroundTruth, inject_anomalies, make_synthetic


@dataclass
class SeriesData:
    """A loaded series with what is known about it."""

    frame: pd.DataFrame
    truth: GroundTruth | None = None
    notes: list[str] = field(default_factory=list)  # what loading did to the data: filled values, inserted rows
    origin: str = ""                                # where it came from, in words
    anomalies: list[dict] = field(default_factory=list)  # injected anomalies (synthetic): kind, start, end, size
    filled: np.ndarray | None = None  # (rows,) bool: a value of the row was filled or the row inserted (None: none)


def load_series(cfg: Config) -> SeriesData:
    """The configured series: synthetic (with its ground truth), a CSV file, or a named dataset."""
    if cfg.data.source == "synthetic":
        frame, truth = make_synthetic(cfg.data.length, cfg.data.noise_std, cfg.seed)
        missing = [c for c in [*cfg.data.features, cfg.data.target] if c not in frame.columns]
        if missing:
            raise DataError(f"synthetic data has no column '{missing[0]}'; available columns: {', '.join(frame.columns)}")
        events: list[dict] = []
        if cfg.data.anomalies:
            test = split_bounds(len(frame), cfg.split.train, cfg.split.val, cfg.split.test).test
            frame, events = inject_anomalies(frame, cfg.data.target, cfg.data.anomalies, test, cfg.data.noise_std,
                                             cfg.seed)
        return SeriesData(frame[cfg.data.columns()], truth, [], f"synthetic generator (seed {cfg.seed})", events)
    if cfg.data.source == "csv":
        frame, notes, filled = load_csv_filled(cfg.data)
        return SeriesData(frame, None, notes, f"CSV file {cfg.data.path}", filled=filled)
    path = dataset_path(cfg.data.source)
    data = cfg.data if cfg.data.date_column else cfg.data.model_copy(
        update={"date_column": get_dataset(cfg.data.source).date_column})  # the registry names the timestamp column
    frame, notes, filled = load_csv_filled(data, path)
    return SeriesData(frame, None, notes, f"named dataset {cfg.data.source} ({path.name})", filled=filled)


def save_series(frame: pd.DataFrame, path: Path) -> None:
    """Write the series as Parquet atomically (the data stage's output): float32 values, the timestamps as a column.

    The timestamp column is named after the frame's index (or `date`); the index's frequency is kept in the file's
    metadata. The file is written to a temporary name in the same folder and renamed into place.
    """

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
