"""Bad CSV input: one clear line naming the file, column or row, a non-zero exit, and nothing in the run folder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstmkit.cli import main
from lstmkit.config import from_dict
from lstmkit.core.errors import DataError
from lstmkit.data.loading import load_csv
from lstmkit.data.series import load_series
from lstmkit.runs.notebooks import project_root

HOURS = pd.date_range("2024-01-01", periods=400, freq="h")


def write_csv(path, rows: int = 400, edit=None, text: str | None = None):
    """A valid hourly CSV (date, load, temp, OT), optionally edited as a frame or replaced by raw text."""
    if text is not None:
        path.write_text(text)
        return path
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"date": HOURS[:rows].strftime("%Y-%m-%d %H:%M:%S"), "load": rng.normal(size=rows).round(4),
                          "temp": rng.normal(size=rows).round(4), "OT": rng.normal(size=rows).round(4)})
    if edit is not None:
        frame = edit(frame)
    frame.to_csv(path, index=False)
    return path


def csv_cfg(path, **data):
    """Config reading `path` in MS mode (load, temp -> OT) with small windows; the date column named (the CLI tests
    leave it empty, so they go through detection)."""
    data = {"date_column": "date", **data}
    return from_dict({"data": {"source": "csv", "path": str(path), "target": "OT", "features": ["load", "temp"], **data},
                      "window": {"lookback": 24, "horizon": 6}})


def set_cell(row: int, column: str, value):
    """An edit that puts `value` into one cell (row counted from 0 in the data)."""
    def edit(frame):
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame
    return edit


def assert_cli_rejects(tmp_path, path, message: str, *extra: str):
    """`lstmkit run` on this file exits 2 with the message on one line and creates no run folder."""
    run_dir = tmp_path / "run"
    code = main(["run", "--config", "configs/quick.yaml", "--run-dir", str(run_dir), "--set", "data.source=csv",
                 "--set", f"data.path={path}", "--set", "data.target=OT", "--set", "data.features=[load, temp]",
                 *[a for s in extra for a in ("--set", s)]])
    assert code == 2
    assert not run_dir.exists(), "a rejected input must not leave anything behind"
    return message


@pytest.fixture
def cli_error(tmp_path, capsys, monkeypatch):
    """Run the CLI on a bad file from the repository root; returns its one-line error."""
    monkeypatch.chdir(project_root())

    def run(path, *extra: str) -> str:
        assert_cli_rejects(tmp_path, path, "", *extra)
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
        return err
    return run


def test_missing_file(tmp_path, cli_error):
    err = cli_error(tmp_path / "nope.csv")
    assert f"{tmp_path / 'nope.csv'}: file not found" in err


def test_unreadable_file(tmp_path, cli_error):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"date,OT\n\xff\xfe\x00\x81 garbage\n")
    assert "cannot be read as CSV" in cli_error(path)
    assert "not a file" in cli_error(tmp_path)  # a folder given as data.path


def test_unknown_column_lists_the_available_ones(tmp_path, cli_error):
    path = write_csv(tmp_path / "s.csv", edit=lambda f: f.rename(columns={"temp": "temperature"}))
    assert f"{path}: no column 'temp'; available columns: date, load, temperature, OT" in cli_error(path)


def test_non_numeric_value_names_the_first_offending_row(tmp_path, cli_error):
    path = write_csv(tmp_path / "s.csv", edit=set_cell(41, "load", "12,5kW"))
    assert f"{path}: column 'load' row 43 has non-numeric value '12,5kW'" in cli_error(path)


@pytest.mark.parametrize("value", ["", "nan", "inf", "-inf"])
def test_missing_or_infinite_values_are_an_error_by_default(tmp_path, cli_error, value):
    path = write_csv(tmp_path / "s.csv", edit=set_cell(9, "OT", value))
    err = cli_error(path)
    assert f"{path}: column 'OT' row 11 is missing or not finite" in err and "data.fill_missing" in err


def test_missing_values_can_be_interpolated_or_forward_filled_and_are_reported(tmp_path):
    path = write_csv(tmp_path / "s.csv", edit=lambda f: set_cell(11, "OT", "inf")(set_cell(10, "OT", "")(f)))
    original = pd.read_csv(write_csv(tmp_path / "ok.csv"))["OT"]
    frame, notes = load_csv(csv_cfg(path, fill_missing="interpolate").data)
    step = (original[12] - original[9]) / 3
    assert frame["OT"].iloc[10] == pytest.approx(original[9] + step) and frame["OT"].iloc[11] == pytest.approx(original[9] + 2 * step)
    assert notes == ["2 missing or infinite value(s) in 'OT' filled by interpolate"]
    frame, notes = load_csv(csv_cfg(path, fill_missing="ffill").data)
    assert frame["OT"].iloc[10] == frame["OT"].iloc[11] == pytest.approx(original[9])
    assert "filled by ffill" in notes[0]


def test_duplicate_timestamps(tmp_path, cli_error):
    path = write_csv(tmp_path / "s.csv", edit=set_cell(5, "date", "2024-01-01 04:00:00"))
    assert f"{path}: duplicate timestamp 2024-01-01 04:00:00 in 'date' at rows 6 and 7" in cli_error(path)


def test_unsorted_timestamps(tmp_path, cli_error):
    path = write_csv(tmp_path / "s.csv", edit=lambda f: f.iloc[[0, 1, 3, 2, *range(4, len(f))]])
    assert f"{path}: timestamps in 'date' are not sorted: row 5 (2024-01-01 02:00:00) comes before row 4" in cli_error(path)


def test_unparseable_timestamp(tmp_path, cli_error):
    path = write_csv(tmp_path / "s.csv", edit=set_cell(3, "date", "yesterday"))
    assert f"{path}: row 5 of column 'date' is not a timestamp: 'yesterday'" in cli_error(path)


def test_gaps_are_detected_and_can_be_resampled(tmp_path, cli_error):
    path = write_csv(tmp_path / "s.csv", edit=lambda f: f.drop(index=[100, 101, 250]).reset_index(drop=True))
    err = cli_error(path)
    assert f"{path}: 2 gap(s) in the 1-hour timestamps, 3 missing row(s); the first after row 101" in err
    assert "data.on_gaps: resample" in err
    with pytest.raises(DataError, match="missing or not finite"):  # inserted rows still need a fill method
        load_csv(csv_cfg(path, on_gaps="resample").data)
    frame, notes = load_csv(csv_cfg(path, on_gaps="resample", fill_missing="interpolate").data)
    assert len(frame) == 400 and frame.index.equals(pd.DatetimeIndex(HOURS, freq="h", name="date"))
    assert any("3 missing row(s) inserted" in n for n in notes) and not frame.isna().any().any()


def test_timestamps_off_the_grid(tmp_path, cli_error):
    path = write_csv(tmp_path / "s.csv", edit=set_cell(7, "date", "2024-01-01 07:30:00"))
    assert "is off the regular 1-hour grid" in cli_error(path)


def test_series_too_short_for_the_windows(tmp_path, cli_error):
    path = write_csv(tmp_path / "s.csv", rows=60)
    err = cli_error(path, "window.lookback=48", "window.horizon=12")
    assert "is shorter than window.lookback + window.horizon = 60" in err
    path = write_csv(tmp_path / "s2.csv", rows=400)
    err = cli_error(path, "split.train=340", "split.val=50", "split.test=10", "window.lookback=24", "window.horizon=12")
    assert "the test split (rows 390-399, 10 rows) is too short for one window of horizon 12" in err


def test_constant_column(tmp_path, cli_error):
    path = write_csv(tmp_path / "s.csv", edit=lambda f: f.assign(temp=3.5))
    assert f"{path}: column 'temp' is constant (3.5 in every row)" in cli_error(path)


def test_a_valid_file_loads_with_a_regular_index(tmp_path):
    path = write_csv(tmp_path / "s.csv")
    series = load_series(csv_cfg(path))
    assert list(series.frame.columns) == ["load", "temp", "OT"] and series.notes == []
    assert series.frame.index.freqstr == "h" and str(path) in series.origin


def test_bundled_etth2_loads_offline():
    cfg = from_dict({"data": {"source": "etth2", "target": "OT", "features": []}})
    series = load_series(cfg)
    assert series.frame.shape == (17420, 1) and series.frame.index.freqstr == "h"
    assert series.frame["OT"].iloc[0] == pytest.approx(38.662)  # first row of ETTh2.csv: 2016-07-01 00:00, OT 38.662


# ------------------------------------------------------------------ which rows hold filled values (SeriesData.filled)

def test_the_filled_mask_marks_exactly_the_rows_a_repair_touched(tmp_path):
    """Missing cells (one column is enough) and rows inserted into gaps are filled; every other row is observed."""
    def edit(frame):
        frame = set_cell(12, "temp", "")(set_cell(10, "OT", "nan")(frame))
        return frame.drop(index=[100, 101, 250]).reset_index(drop=True)

    path = write_csv(tmp_path / "s.csv", edit=edit)
    series = load_series(csv_cfg(path, on_gaps="resample", fill_missing="interpolate"))
    assert len(series.frame) == 400 and series.filled.dtype == bool and len(series.filled) == 400
    assert np.flatnonzero(series.filled).tolist() == [10, 12, 100, 101, 250]
    clean = load_series(csv_cfg(write_csv(tmp_path / "ok.csv")))
    assert clean.filled is not None and not clean.filled.any()
    assert load_series(from_dict({"data": {"source": "synthetic", "length": 300}})).filled is None


def test_a_resampled_cell_holding_a_filled_value_is_filled(tmp_path):
    """Off-grid timestamps: each grid cell averages its rows; a cell is filled when one of its rows held a filled value."""
    path = write_csv(tmp_path / "s.csv", edit=lambda f: set_cell(7, "date", "2024-01-01 07:30:00")(
        set_cell(20, "OT", "")(f)).drop(index=[30]).reset_index(drop=True))
    series = load_series(csv_cfg(path, on_gaps="resample", fill_missing="ffill"))
    assert len(series.frame) == 400
    assert np.flatnonzero(series.filled).tolist() == [20, 30]  # row 7 (07:30) is observed, in the 07:00 cell


def test_the_filled_file_round_trips_and_is_removed_when_nothing_was_filled(tmp_path):
    from lstmkit.data.series import read_filled, save_filled
    from lstmkit.runs.folder import RunFolder

    run = RunFolder(tmp_path)
    run.filled_file.parent.mkdir(parents=True)
    mask = np.zeros(400, dtype=bool)
    mask[[3, 50, 51]] = True
    index = pd.DatetimeIndex(HOURS, name="date")
    save_filled(index, mask, run.filled_file)
    assert run.filled_file.exists() and np.array_equal(read_filled(run.filled_file, index), mask)
    assert np.array_equal(read_filled(run.filled_file, index[40:]), mask[40:])  # aligned by timestamp
    save_filled(index, np.zeros(400, dtype=bool), run.filled_file)  # a rerun with nothing filled: no stale file
    assert not run.filled_file.exists() and not read_filled(run.filled_file, index).any()  # older runs: all observed
