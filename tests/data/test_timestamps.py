"""Timestamps of a CSV: detecting the column, repairing duplicates and steps back in time on request, calendar grids,
errors found past the first block, and the three NAB files with their real faults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmkit.config import from_dict
from lstmkit.core.errors import DataError
from lstmkit.data.loading import load_csv
from lstmkit.data.series import load_series
from tests.paths import SHARED_DATA

NAB = SHARED_DATA / "nab"


def cfg(path, target="y", features=(), **data):
    """DataConfig reading `path` (target `y`, no features unless given); other data.* keys as keywords."""
    return from_dict({"data": {"source": "csv", "path": str(path), "target": target, "features": list(features),
                               **data}}).data


def write(path, frame: pd.DataFrame) -> Path:
    """Write a frame as CSV without its index."""
    frame.to_csv(path, index=False)
    return path


def hourly(rows: int = 10, start: str = "2024-01-01") -> pd.DataFrame:
    """A small hourly table: `when` (text timestamps) and `y` = 0, 1, 2, ..."""
    return pd.DataFrame({"when": pd.date_range(start, periods=rows, freq="h").strftime("%Y-%m-%d %H:%M:%S"),
                         "y": np.arange(rows, dtype=float)})


# ------------------------------------------------------------------ detecting the timestamp column

def test_the_one_timestamp_column_is_detected_and_said(tmp_path):
    frame = hourly().assign(site="north", code=np.arange(10) * 7)  # a text and a numeric column beside it
    frame, notes = load_csv(cfg(write(tmp_path / "s.csv", frame)))
    assert frame.index.name == "when" and frame.index.freqstr == "h"
    assert notes == ["timestamp column 'when' detected"]


def test_numeric_columns_never_count_as_timestamps(tmp_path):
    frame = hourly().assign(day=20240101 + np.arange(10))  # integers that pandas could read as dates
    _, notes = load_csv(cfg(write(tmp_path / "s.csv", frame)))
    assert notes == ["timestamp column 'when' detected"]


def test_several_timestamp_columns_are_an_error_listing_them(tmp_path):
    frame = hourly().assign(recorded=pd.date_range("2024-02-01", periods=10, freq="D").strftime("%d %b %Y"))
    path = write(tmp_path / "s.csv", frame)
    with pytest.raises(DataError, match=r"several columns parse as timestamps: 'when', 'recorded'; name one in "
                                        r"data.date_column"):
        load_csv(cfg(path))
    frame, notes = load_csv(cfg(path, date_column="recorded"))  # an explicit name wins
    assert frame.index.name == "recorded" and frame.index.freqstr == "D" and notes == []


def test_no_timestamp_column_is_an_error_listing_the_columns(tmp_path):
    path = write(tmp_path / "s.csv", pd.DataFrame({"step": np.arange(10), "label": list("abcdefghij"),
                                                   "y": np.arange(10.0)}))
    with pytest.raises(DataError, match=r"no column parses as timestamps in the first 10 rows \(columns: 'step', "
                                        r"'label'\); name the timestamp column in data.date_column"):
        load_csv(cfg(path))


def test_a_stray_bad_timestamp_still_detects_the_column_and_names_the_row(tmp_path):
    frame = hourly(40)
    frame.loc[6, "when"] = "yesterday"
    with pytest.raises(DataError, match="row 8 of column 'when' is not a timestamp: 'yesterday'"):
        load_csv(cfg(write(tmp_path / "s.csv", frame)))


def test_named_dataset_uses_its_registered_date_column_without_detection():
    series = load_series(from_dict({"data": {"source": "etth2", "target": "OT", "features": []}}))
    assert series.frame.index.name == "date" and series.notes == []  # no "detected" note: the registry names it


# ------------------------------------------------------------------ steps back in time

def test_unsorted_rows_are_an_error_by_default_and_sorted_on_request(tmp_path):
    frame = hourly(8).iloc[[0, 1, 2, 5, 3, 4, 6, 7]]  # the 05:00 row moved up: one step back (at file line 6)
    path = write(tmp_path / "s.csv", frame)
    with pytest.raises(DataError, match=r"not sorted: row 6 \(2024-01-01 03:00:00\) comes before row 5 "
                                        r"\(2024-01-01 05:00:00\); set data.on_unsorted: sort"):
        load_csv(cfg(path))
    repaired, notes = load_csv(cfg(path, on_unsorted="sort"))
    assert repaired["y"].tolist() == list(range(8)) and repaired.index.freqstr == "h"
    assert notes[1] == ("1 step(s) back in time, the first at row 6 (2024-01-01 03:00:00 after 2024-01-01 05:00:00): "
                        "rows sorted by timestamp")


def test_sorting_happens_before_duplicates_and_keeps_file_order_within_a_timestamp(tmp_path):
    frame = pd.concat([hourly(6), hourly(6).iloc[[2]].assign(y=100.0)])  # a late second row for 02:00
    path = write(tmp_path / "s.csv", frame)
    with pytest.raises(DataError, match="not sorted"):  # unsorted is named first
        load_csv(cfg(path, on_duplicates="last"))
    with pytest.raises(DataError, match=r"duplicate timestamp 2024-01-01 02:00:00 in 'when' at rows 4 and 8"):
        load_csv(cfg(path, on_unsorted="sort"))  # after sorting, the pair is named by its file lines
    first, _ = load_csv(cfg(path, on_unsorted="sort", on_duplicates="first"))
    last, notes = load_csv(cfg(path, on_unsorted="sort", on_duplicates="last"))
    assert first["y"].tolist() == [0, 1, 2, 3, 4, 5] and last["y"].tolist() == [0, 1, 100, 3, 4, 5]
    assert [n.split(":")[0] for n in notes[1:]] == ["1 step(s) back in time, the first at row 8 (2024-01-01 02",
                                                    "1 duplicate timestamp(s) in 1 group(s), the first 2024-01-01 02"]


# ------------------------------------------------------------------ duplicate timestamps

@pytest.fixture
def duplicated(tmp_path) -> Path:
    """Hourly rows 0..7 where 03:00 appears three times (y 3, 10, 20) and 06:00 twice (y 6, missing)."""
    rows = hourly(8)
    extra = pd.DataFrame({"when": ["2024-01-01 03:00:00"] * 2 + ["2024-01-01 06:00:00"], "y": [10.0, 20.0, np.nan]})
    frame = pd.concat([rows.iloc[:4], extra.iloc[:2], rows.iloc[4:7], extra.iloc[2:], rows.iloc[7:]])
    return write(tmp_path / "s.csv", frame)


def test_duplicates_are_an_error_by_default(duplicated):
    with pytest.raises(DataError, match=r"duplicate timestamp 2024-01-01 03:00:00 in 'when' at rows 5 and 6; set "
                                        r"data.on_duplicates to first, last or mean"):
        load_csv(cfg(duplicated))


@pytest.mark.parametrize("how,at3,at6,kept", [("first", 3.0, 6.0, "the first row"), ("last", 20.0, None, "the last row"),
                                              ("mean", 11.0, 6.0, "the mean")])
def test_duplicates_keep_first_last_or_mean(duplicated, how, at3, at6, kept):
    frame, notes = load_csv(cfg(duplicated, on_duplicates=how, fill_missing="ffill"))
    assert len(frame) == 8 and frame.index.freqstr == "h" and frame["y"].dtype == np.float32
    assert frame["y"].iloc[3] == pytest.approx(at3)  # mean: (3 + 10 + 20) / 3
    assert frame["y"].iloc[6] == pytest.approx(at6 if at6 is not None else 5.0)  # last = missing, then ffill from 5
    assert notes[1] == (f"3 duplicate timestamp(s) in 2 group(s), the first 2024-01-01 03:00:00 at rows 5 and 6: "
                        f"kept {kept} of each group (3 rows removed)")


# ------------------------------------------------------------------ calendar and fixed grids

FREQS = ["MS", "ME", "QS", "QE", "YS", "YE", "W-SUN", "W-WED", "D", "h", "15min", "10min", "5min"]


@pytest.mark.parametrize("freq", FREQS)
def test_grids_of_every_frequency_load_with_their_freq(tmp_path, freq):
    index = pd.date_range("2001-01-01", periods=30, freq=freq)
    path = write(tmp_path / "s.csv", pd.DataFrame({"when": index.strftime("%Y-%m-%d %H:%M"), "y": np.arange(30.0) ** 2}))
    frame, _ = load_csv(cfg(path))
    assert frame.index.equals(index) and frame.index.freqstr == index.freqstr


@pytest.mark.parametrize("freq", FREQS)
def test_gaps_in_every_frequency_are_named_and_resampled(tmp_path, freq):
    index = pd.date_range("2001-01-01", periods=30, freq=freq)
    table = pd.DataFrame({"when": index.strftime("%Y-%m-%d %H:%M"), "y": np.arange(30.0) ** 2}).drop(index=[7, 8, 20])
    path = write(tmp_path / "s.csv", table)
    with pytest.raises(DataError, match=r"2 gap\(s\) in the .* timestamps, 3 missing row\(s\); the first after row 8 "):
        load_csv(cfg(path))
    frame, notes = load_csv(cfg(path, on_gaps="resample", fill_missing="interpolate"))
    assert frame.index.equals(index) and frame.index.freqstr == index.freqstr
    assert "3 missing row(s) inserted" in notes[1] and "3 value(s) in inserted rows in 'y' filled by interpolate" in notes


def test_monthly_steps_of_28_to_31_days_are_one_regular_grid(tmp_path):
    index = pd.date_range("2020-01-01", periods=14, freq="MS")  # includes a 29-day February
    path = write(tmp_path / "s.csv", pd.DataFrame({"when": index.strftime("%Y-%m-%d"), "y": np.arange(14.0)}))
    assert load_csv(cfg(path))[0].index.freqstr == "MS"
    assert load_csv(cfg(path, frequency="MS"))[0].index.freqstr == "MS"
    with pytest.raises(DataError, match="off the regular 30-day grid"):  # a fixed step is wrong for months
        load_csv(cfg(path, frequency="30D"))


def test_off_grid_rows_are_an_error_or_averaged_into_their_cell(tmp_path):
    table = hourly(6)
    table.loc[3, "when"] = "2024-01-01 02:30:00"  # between 02:00 and 04:00, no 03:00 row
    path = write(tmp_path / "s.csv", table)
    with pytest.raises(DataError, match=r"timestamp 2024-01-01 02:30:00 \(row 5\) is off the regular 1-hour grid"):
        load_csv(cfg(path))
    frame, notes = load_csv(cfg(path, on_gaps="resample", fill_missing="interpolate"))
    assert frame.index.equals(pd.date_range("2024-01-01", periods=6, freq="h"))
    assert frame["y"].tolist() == [0.0, 1.0, 2.5, 3.25, 4.0, 5.0]  # 02:00 cell = mean(2, 3); 03:00 interpolated
    assert notes[1].startswith("1 timestamp(s) off the 1-hour grid, the first 2024-01-01 02:30:00 at row 5")


# ------------------------------------------------------------------ streaming in blocks

def big(rows: int = 3000) -> pd.DataFrame:
    """An hourly table with two value columns, long enough for many small blocks."""
    rng = np.random.default_rng(1)
    return pd.DataFrame({"date": pd.date_range("2020-01-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M:%S"),
                         "a": rng.normal(size=rows).round(5), "y": rng.normal(size=rows).round(5)})


def test_small_blocks_give_the_same_series_as_one_block(tmp_path):
    path = write(tmp_path / "s.csv", big())
    one, _ = load_csv(cfg(path, features=["a"], date_column="date"))
    many, _ = load_csv(cfg(path, features=["a"], date_column="date"), _block_size=1024)
    pd.testing.assert_frame_equal(one, many)
    assert one.shape == (3000, 2) and (one.dtypes == np.float32).all()
    np.testing.assert_array_equal(one["y"].to_numpy(), big()["y"].to_numpy(dtype=np.float32))


@pytest.mark.parametrize("column,value,message", [
    ("a", "12,5kW", "column 'a' row 2502 has non-numeric value '12,5kW'"),
    ("date", "soon", "row 2502 of column 'date' is not a timestamp: 'soon'"),
    ("y", "NA", "column 'y' row 2502 is missing or not finite (1 such cells in all)"),
])
def test_an_error_past_the_first_block_names_its_file_line(tmp_path, column, value, message):
    table = big()
    table[column] = table[column].astype(object)
    table.loc[2500, column] = value  # data row 2500 = file line 2502, about 50 blocks of 1 KiB in
    path = write(tmp_path / "s.csv", table)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_csv(cfg(path, features=["a"], date_column="date"), _block_size=1024)


def test_unused_columns_are_not_parsed(tmp_path):
    path = write(tmp_path / "s.csv", big(50).assign(junk="not a number"))
    frame, _ = load_csv(cfg(path, features=["a"], date_column="date"))
    assert list(frame.columns) == ["a", "y"]


# ------------------------------------------------------------------ the NAB files and their real faults

needs_nab = pytest.mark.skipif(not NAB.is_dir(), reason=f"NAB files not found at {NAB}")


def nab(name: str, **data):
    """DataConfig of one NAB file (timestamp, value), the timestamp column detected."""
    return cfg(NAB / f"{name}_system_failure.csv", target="value", **data)


def raw(name: str) -> pd.DataFrame:
    """A NAB file as pandas reads it."""
    return pd.read_csv(NAB / f"{name}_system_failure.csv", parse_dates=["timestamp"])


@needs_nab
def test_nab_ambient_temperature_has_gaps_that_resampling_fills():
    with pytest.raises(DataError, match=r"10 gap\(s\) in the 1-hour timestamps, 621 missing row\(s\); the first after "
                                        r"row 579 \(2013-07-28 01:00:00 -> 2013-07-28 03:00:00\)"):
        load_csv(nab("ambient_temperature"))
    frame, notes = load_csv(nab("ambient_temperature", on_gaps="resample", fill_missing="interpolate"))
    assert len(frame) == 7267 + 621 and frame.index.freqstr == "h" and not frame.isna().any().any()
    assert notes[1:] == ["10 gap(s) in the 1-hour grid: 621 missing row(s) inserted, first after 2013-07-28 01:00:00",
                         "621 value(s) in inserted rows in 'value' filled by interpolate"]


@needs_nab
def test_nab_machine_temperature_steps_back_once_and_loads_sorted_with_duplicates_merged():
    with pytest.raises(DataError, match=r"not sorted: row 10151 \(2014-01-07 02:00:00\) comes before row 10150 "
                                        r"\(2014-01-07 02:55:00\)"):
        load_csv(nab("machine_temperature"))
    with pytest.raises(DataError, match=r"duplicate timestamp 2014-01-07 02:00:00 in 'timestamp' at rows 10139 and "
                                        r"10151"):
        load_csv(nab("machine_temperature", on_unsorted="sort"))
    frame, notes = load_csv(nab("machine_temperature", on_unsorted="sort", on_duplicates="mean"))
    assert len(frame) == 22695 - 12 and frame.index.freqstr == "5min"
    original = raw("machine_temperature")
    pair = original.loc[original["timestamp"] == pd.Timestamp("2014-01-07 02:30:00"), "value"]
    assert len(pair) == 2 and frame.loc["2014-01-07 02:30:00", "value"] == pytest.approx(pair.mean(), rel=1e-6)
    assert "1 step(s) back in time, the first at row 10151" in notes[1]
    assert "12 duplicate timestamp(s) in 12 group(s)" in notes[2] and "(12 rows removed)" in notes[2]


@needs_nab
def test_nab_ec2_latency_duplicates_and_off_grid_hour_load_on_a_regular_grid():
    with pytest.raises(DataError, match=r"duplicate timestamp 2014-03-09 03:00:00 in 'timestamp' at rows 558 and 559"):
        load_csv(nab("ec2_request_latency"))
    with pytest.raises(DataError, match=r"timestamp 2014-03-09 03:00:00 \(row 558\) is off the regular 5-minute grid"):
        load_csv(nab("ec2_request_latency", on_duplicates="first"))
    frame, notes = load_csv(nab("ec2_request_latency", on_duplicates="mean", on_gaps="resample",
                                fill_missing="interpolate"))
    assert frame.index.freqstr == "5min" and not frame.isna().any().any()
    assert frame.index[0] == pd.Timestamp("2014-03-07 03:41:00") and len(frame) == 4033
    original = raw("ec2_request_latency")
    group = original.loc[original["timestamp"] == pd.Timestamp("2014-03-09 03:00:00"), "value"]
    assert len(group) == 12  # averaged, then put in the 02:56 cell (the grid cell holding 03:00)
    assert frame.loc["2014-03-09 02:56:00", "value"] == pytest.approx(group.mean(), rel=1e-6)
    assert "11 duplicate timestamp(s) in 1 group(s)" in notes[1] and "(11 rows removed)" in notes[1]
    assert notes[2].startswith("1 timestamp(s) off the 5-minute grid, the first 2014-03-09 03:00:00 at row 558")
    assert notes[3] == "12 value(s) in inserted rows in 'value' filled by interpolate"
