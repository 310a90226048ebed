"""Splits, scalers and windows.

Window tests use a toy series whose target value is its row number and whose feature is 1000 + row, with
identity scalers: every number in a window tells which row it came from. Layout used throughout:
100 rows, train rows 0-59, val rows 60-79, test rows 80-99, lookback 8, horizon 3.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstmkit.config import ConfigError, from_dict
from lstmkit.core.atomic import read_json
from lstmkit.data.series import save_series
from lstmkit.data.splits import SPLITS, split_bounds
from lstmkit.data.windows import prepare
from lstmkit.runs.folder import RunFolder
from lstmkit.stages.preprocessing import load_prepared, save_prepared, scaler_table

FEATURE_OFFSET = 1000.0  # conftest's toy feature channel holds 1000 + row
LOOKBACK, HORIZON = 8, 3

# Hand-computed expectations: (split, number of windows, first origin, last origin)
EXPECTED_WINDOWS = [
    ("train", 50, 7, 56),   # first window: inputs 0..7, targets 8..10; last: inputs 49..56, targets 57..59
    ("val", 18, 59, 76),    # first: inputs 52..59 (all train rows), targets 60..62; last: targets 77..79
    ("test", 18, 79, 96),   # first: inputs 72..79 (all val rows), targets 80..82; last: targets 97..99
]
SPLIT_ROWS = {"train": (0, 60), "val": (60, 80), "test": (80, 100)}


def dataset_windows(ds) -> tuple[np.ndarray, np.ndarray]:
    """All (inputs, targets) of a batched tf.data pipeline, concatenated in iteration order."""
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


# ------------------------------------------------------------------ split_bounds


def test_split_bounds_from_fractions():
    b = split_bounds(1000, 0.7, 0.15, 0.15)
    assert (b.train, b.val, b.test) == ((0, 700), (700, 850), (850, 1000))


def test_split_bounds_from_row_counts():
    b = split_bounds(100, 60, 20, 20)
    assert (b.train, b.val, b.test) == ((0, 60), (60, 80), (80, 100))


def test_split_bounds_row_counts_may_leave_trailing_rows_unused():
    b = split_bounds(100, 50, 10, 10)
    assert (b.train, b.val, b.test) == ((0, 50), (50, 60), (60, 70))


def test_split_bounds_mixes_fractions_and_counts():
    b = split_bounds(200, 0.5, 30, 0.1)
    assert (b.train, b.val, b.test) == ((0, 100), (100, 130), (130, 150))


def test_split_bounds_lookup_by_name_and_dict():
    b = split_bounds(100, 60, 20, 20)
    assert b["val"] == (60, 80)
    assert b.to_dict() == {"train": [0, 60], "val": [60, 80], "test": [80, 100]}
    with pytest.raises(KeyError, match="unknown split"):
        b["validation"]


def test_split_bounds_rejects_row_counts_exceeding_the_series():
    with pytest.raises(ConfigError, match=r"add up to 110 rows but the series has only 100"):
        split_bounds(100, 60, 30, 20)


def test_split_bounds_rejects_fractions_exceeding_the_series():
    with pytest.raises(ConfigError, match=r"add up to 120 rows but the series has only 100"):
        split_bounds(100, 0.8, 0.2, 0.2)


@pytest.mark.parametrize("bad", [0, 10.5, -3])
def test_split_bounds_rejects_non_fraction_non_count(bad):
    with pytest.raises(ConfigError, match="split.val"):
        split_bounds(100, 50, bad, 10)


def test_split_bounds_default_fractions_partition_every_length():
    b = split_bounds(1010, 0.7, 0.15, 0.15)
    assert b.train == (0, 707) and b.test[1] == 1010


# ------------------------------------------------------------------ windows: counts and alignment


@pytest.mark.parametrize("split,count,_first,_last", EXPECTED_WINDOWS)
def test_window_count_matches_hand_count(row_prepared, split, count, _first, _last):
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    x, y = p.arrays(split)
    assert p.n_windows(split) == count
    assert x.shape == (count, LOOKBACK, 2)
    assert y.shape == (count, HORIZON)


@pytest.mark.parametrize("split,_count,first,last", EXPECTED_WINDOWS)
def test_first_and_last_window_rows(row_prepared, split, _count, first, last):
    """Inputs are rows origin-lookback+1..origin and targets rows origin+1..origin+horizon."""
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    x, y = p.arrays(split)
    for i, origin in ((0, first), (-1, last)):
        np.testing.assert_array_equal(x[i, :, 1], np.arange(origin - LOOKBACK + 1, origin + 1))
        np.testing.assert_array_equal(x[i, :, 0], FEATURE_OFFSET + np.arange(origin - LOOKBACK + 1, origin + 1))
        np.testing.assert_array_equal(y[i], np.arange(origin + 1, origin + HORIZON + 1))


@pytest.mark.parametrize("split,_count,first,last", EXPECTED_WINDOWS)
def test_origins_and_target_rows_match_window_contents(row_prepared, split, _count, first, last):
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    x, y = p.arrays(split)
    origins = p.origins(split)
    assert (origins[0], origins[-1]) == (first, last)
    np.testing.assert_array_equal(x[:, -1, 1], origins)   # the last input row is the origin
    np.testing.assert_array_equal(y, p.target_rows(split))


@pytest.mark.parametrize("split", SPLITS)
def test_windows_are_consecutive_rows_with_stride_one(row_prepared, split):
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    x, y = p.arrays(split)
    full = np.concatenate([x[:, :, 1], y], axis=1)
    np.testing.assert_array_equal(np.diff(full, axis=1), 1)
    np.testing.assert_array_equal(np.diff(full[:, 0]), 1)


@pytest.mark.parametrize("split", SPLITS)
def test_no_target_row_leaves_its_split(row_prepared, split):
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    _, y = p.arrays(split)
    start, stop = SPLIT_ROWS[split]
    first_target = LOOKBACK if split == "train" else start  # training targets start after the first look-back
    assert y.min() == first_target
    assert y.max() == stop - 1
    assert ((y >= start) & (y < stop)).all()


@pytest.mark.parametrize("split,previous", [("val", "train"), ("test", "val")])
def test_val_and_test_inputs_reach_back_into_previous_split(row_prepared, split, previous):
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    x, _ = p.arrays(split)
    first_inputs = x[0, :, 1]
    prev_start, prev_stop = SPLIT_ROWS[previous]
    assert ((first_inputs >= prev_start) & (first_inputs < prev_stop)).all()
    assert x[:, :, 1].min() == SPLIT_ROWS[split][0] - LOOKBACK


def test_train_inputs_start_at_row_zero(row_prepared):
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    x, _ = p.arrays("train")
    assert x[:, :, 1].min() == 0


def test_window_counts_sum_to_every_possible_target_origin(row_prepared):
    """Stride-1 windows of all splits together cover every origin whose targets stay inside one split."""
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    assert sum(p.n_windows(s) for s in SPLITS) == (60 - LOOKBACK - HORIZON + 1) + 2 * (20 - HORIZON + 1)


def test_split_too_short_for_one_window_raises(row_prepared):
    p = row_prepared(n=100, train=60, val=2, test=38, lookback=LOOKBACK, horizon=HORIZON)
    assert p.n_windows("val") == 0
    with pytest.raises(ValueError, match="val split .* too short"):
        p.arrays("val")
    with pytest.raises(ValueError, match="val split .* too short"):
        p.dataset("val")


# ------------------------------------------------------------------ windows: tf.data vs numpy


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("batch_size", [7, 256])
def test_dataset_and_arrays_give_identical_windows(row_prepared, split, batch_size):
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    x_ds, y_ds = dataset_windows(p.dataset(split, batch_size=batch_size))
    x_np, y_np = p.arrays(split)
    assert x_ds.dtype == x_np.dtype == np.float32
    np.testing.assert_array_equal(x_ds, x_np)
    np.testing.assert_array_equal(y_ds, y_np)


def test_shuffled_dataset_has_the_same_multiset_of_windows(row_prepared):
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    x_sh, y_sh = dataset_windows(p.dataset("train", batch_size=16, shuffle=True, seed=5))
    x_np, y_np = p.arrays("train")
    assert not np.array_equal(x_sh[:, -1, 1], x_np[:, -1, 1])  # actually shuffled
    order = np.argsort(x_sh[:, -1, 1])  # origins are unique, so sorting by origin restores the order
    np.testing.assert_array_equal(x_sh[order], x_np)
    np.testing.assert_array_equal(y_sh[order], y_np)


def test_shuffled_dataset_keeps_inputs_and_targets_paired(row_prepared):
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    x, y = dataset_windows(p.dataset("train", batch_size=16, shuffle=True, seed=5))
    np.testing.assert_array_equal(y[:, 0], x[:, -1, 1] + 1)


def test_shuffle_is_reproducible_for_a_seed(row_prepared):
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    first = dataset_windows(p.dataset("train", batch_size=16, shuffle=True, seed=11))[0][:, -1, 1]
    again = dataset_windows(p.dataset("train", batch_size=16, shuffle=True, seed=11))[0][:, -1, 1]
    other = dataset_windows(p.dataset("train", batch_size=16, shuffle=True, seed=12))[0][:, -1, 1]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_shuffle_reshuffles_each_epoch(row_prepared):
    p = row_prepared(lookback=LOOKBACK, horizon=HORIZON)
    ds = p.dataset("train", batch_size=16, shuffle=True, seed=11)
    epoch1 = dataset_windows(ds)[0][:, -1, 1]
    epoch2 = dataset_windows(ds)[0][:, -1, 1]
    assert not np.array_equal(epoch1, epoch2)
    np.testing.assert_array_equal(np.sort(epoch1), np.sort(epoch2))


# ------------------------------------------------------------------ prepare(): scalers fitted on training rows


def toy_frame(n: int = 120) -> pd.DataFrame:
    """Trending feature and target, so training-slice statistics differ clearly from whole-series ones."""
    rows = np.arange(n, dtype=float)
    return pd.DataFrame({"x1": 3.0 * rows - 7.0, "target": 0.5 * rows + 10.0 + np.sin(rows)},
                        index=pd.date_range("2024-01-01", periods=n, freq="h"))


def toy_config(method: str = "standard"):
    return from_dict({"data": {"features": ["x1"], "target": "target"},
                      "split": {"train": 80, "val": 20, "test": 20},
                      "scaling": {"method": method},
                      "window": {"lookback": 6, "horizon": 2}})


def test_prepare_uses_features_then_target_as_channels():
    p = prepare(toy_frame(), toy_config())
    assert p.columns == ["x1", "target"] and p.target_index == 1
    assert p.bounds.to_dict() == {"train": [0, 80], "val": [80, 100], "test": [100, 120]}
    assert p.scaled.dtype == np.float32


def test_standard_scaler_statistics_come_from_training_rows_only():
    frame = toy_frame()
    p = prepare(frame, toy_config("standard"))
    train = frame.iloc[:80][["x1", "target"]].to_numpy()
    np.testing.assert_allclose(p.scaler.mean_, train.mean(axis=0))
    np.testing.assert_allclose(p.scaler.scale_, train.std(axis=0, ddof=0))
    np.testing.assert_allclose(p.target_scaler.mean_, [train[:, 1].mean()])
    np.testing.assert_allclose(p.target_scaler.scale_, [train[:, 1].std(ddof=0)])
    whole = frame[["x1", "target"]].to_numpy()
    assert not np.allclose(p.scaler.mean_, whole.mean(axis=0))


def test_standard_scaled_training_rows_have_zero_mean_unit_std():
    p = prepare(toy_frame(), toy_config("standard"))
    train = p.scaled[:80].astype(float)
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-5)
    assert p.scaled[80:, 0].mean() > 1.5  # later rows of a rising series lie above the training range


def test_minmax_scaler_statistics_come_from_training_rows_only():
    frame = toy_frame()
    p = prepare(frame, toy_config("minmax"))
    train = frame.iloc[:80][["x1", "target"]].to_numpy()
    np.testing.assert_allclose(p.scaler.data_min_, train.min(axis=0))
    np.testing.assert_allclose(p.scaler.data_max_, train.max(axis=0))
    np.testing.assert_allclose(p.target_scaler.data_min_, [train[:, 1].min()])
    np.testing.assert_allclose(p.target_scaler.data_max_, [train[:, 1].max()])
    assert p.scaled[:80].min() == pytest.approx(0.0, abs=1e-6)
    assert p.scaled[:80].max() == pytest.approx(1.0, abs=1e-6)
    assert p.scaled[80:].max() > 1.0


@pytest.mark.parametrize("method", ["standard", "minmax"])
def test_to_original_inverts_target_scaling_exactly(method):
    frame = toy_frame()
    p = prepare(frame, toy_config(method))
    y = frame["target"].to_numpy()
    y_scaled = p.target_scaler.transform(y.reshape(-1, 1)).ravel()
    np.testing.assert_allclose(p.to_original(y_scaled), y, rtol=0, atol=1e-12)
    grid = y_scaled[:60].reshape(20, 3)
    back = p.to_original(grid)
    assert back.shape == (20, 3)
    np.testing.assert_allclose(back, y[:60].reshape(20, 3), rtol=0, atol=1e-12)


@pytest.mark.parametrize("split", SPLITS)
def test_prepared_window_targets_are_the_original_target_rows(split):
    frame = toy_frame()
    p = prepare(frame, toy_config())
    _, y = p.arrays(split)
    expected = frame["target"].to_numpy()[p.target_rows(split)]
    np.testing.assert_allclose(p.to_original(y), expected, rtol=1e-5)


def test_prepare_with_given_scaler_does_not_refit():
    frame = toy_frame()
    first = prepare(frame, toy_config())
    fitted = first.scaler
    shifted = frame + 100.0
    p = prepare(shifted, toy_config(), scalers=(first.scaler, first.target_scaler))
    assert p.scaler is fitted and p.target_scaler is first.target_scaler
    np.testing.assert_allclose(p.scaled[:, 0], fitted.transform(shifted[["x1", "target"]].to_numpy())[:, 0], rtol=1e-6)


def test_prepare_rejects_training_split_shorter_than_one_window():
    cfg = from_dict({"data": {"features": ["x1"]}, "split": {"train": 7, "val": 20, "test": 20},
                     "window": {"lookback": 6, "horizon": 2}})
    with pytest.raises(ConfigError, match=r"training split \(rows 0-6, 7 rows\) is shorter than window.lookback \+ window.horizon = 8"):
        prepare(toy_frame(), cfg)


def test_scaler_table_shows_training_statistics():
    frame = toy_frame()
    train = frame.iloc[:80]
    standard = scaler_table(prepare(frame, toy_config("standard")))
    assert list(standard.index) == ["x1", "target"] and standard.index.name == "channel"
    np.testing.assert_allclose(standard["training mean"], train.mean())
    np.testing.assert_allclose(standard["training std"], train.std(ddof=0))
    minmax = scaler_table(prepare(frame, toy_config("minmax")))
    np.testing.assert_allclose(minmax["training min"], train.min())
    np.testing.assert_allclose(minmax["training max"], train.max())


def test_save_and_load_prepared_round_trip(tmp_path):
    frame, cfg = toy_frame(), toy_config()
    run = RunFolder(tmp_path)
    cfg.save(run.config_file)
    save_series(frame, run.series_file)
    p = prepare(frame, cfg)
    save_prepared(p, run)
    back = load_prepared(run)
    np.testing.assert_array_equal(back.scaled, p.scaled)
    np.testing.assert_allclose(back.scaler.mean_, p.scaler.mean_, rtol=0)
    np.testing.assert_allclose(back.target_scaler.scale_, p.target_scaler.scale_, rtol=0)
    assert back.bounds == p.bounds and back.columns == p.columns
    splits = read_json(run.splits_file)
    assert splits["rows"] == {"train": [0, 80], "val": [80, 100], "test": [100, 120]}
    assert splits["windows"] == {"train": 80 - 6 - 2 + 1, "val": 20 - 2 + 1, "test": 20 - 2 + 1}
    assert (splits["lookback"], splits["horizon"], splits["target"]) == (6, 2, "target")
    assert sorted(f.name for f in run.scaler_file.parent.iterdir()) == ["scaler.joblib", "splits.json"]


def test_load_prepared_does_not_refit_on_changed_data(tmp_path):
    frame, cfg = toy_frame(), toy_config()
    run = RunFolder(tmp_path)
    cfg.save(run.config_file)
    save_prepared(prepare(frame, cfg), run)
    save_series(frame * 2.0, run.series_file)   # the stored scalers, not the new rows, define the scaling
    back = load_prepared(run)
    np.testing.assert_allclose(back.target_scaler.mean_, [frame["target"].iloc[:80].mean()])
    np.testing.assert_allclose(back.to_original(back.scaled[:, 1]), 2.0 * frame["target"], rtol=1e-5)
