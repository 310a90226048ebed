"""Training: seeded reproducibility, model persistence, the training stage's artifacts, and atomic run-folder writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from lstmkit.atomic import atomic_write_json, atomic_write_text, read_json
from lstmkit.config import ConfigError, from_dict
from lstmkit.data import make_synthetic, save_series
from lstmkit.models import LSTMSpec, build_lstm
from lstmkit.preprocessing import prepare, save_prepared
from lstmkit.runfolder import RunFolder, open_run, start_run
from lstmkit.training import (
    callbacks,
    fit,
    load_model,
    load_trained,
    read_history,
    refit_train_val,
    save_model,
    spec_for_run,
    train_run,
)

TINY = {"seed": 5, "data": {"features": ["x1", "x2"], "length": 400},
        "window": {"lookback": 8, "horizon": 2},
        "model": {"units": 8, "batch_size": 32, "dropout": 0.1},
        "training": {"epochs": 2, "patience": 5, "verbose": 0},
        "tuning": {"strategy": "none"}}


def tiny_config(**changes):
    values = json.loads(json.dumps(TINY))
    for section, value in changes.items():
        values[section] = {**values[section], **value} if isinstance(value, dict) else value
    return from_dict(values)


@pytest.fixture(scope="module")
def prepared():
    frame, _ = make_synthetic(400, 0.3, seed=5)
    return prepare(frame[["x1", "x2", "target"]], tiny_config())


@pytest.fixture(scope="module")
def spec():
    return LSTMSpec.from_dict(vars(tiny_config().model))


@pytest.fixture(scope="module")
def two_fits(prepared, spec):
    cfg = tiny_config()
    return fit(prepared, spec, cfg), fit(prepared, spec, cfg)


def weights_equal(a, b) -> bool:
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


# ------------------------------------------------------------------ reproducibility


def test_same_seed_gives_identical_weights(two_fits):
    (m1, _), (m2, _) = two_fits
    assert weights_equal(m1, m2)


def test_same_seed_gives_identical_history(two_fits):
    (_, h1), (_, h2) = two_fits
    assert h1.equals(h2)


def test_different_seed_gives_different_weights(two_fits, prepared, spec):
    (m1, h1), _ = two_fits
    m3, h3 = fit(prepared, spec, tiny_config(seed=6))
    assert not weights_equal(m1, m3)
    assert not np.allclose(h1["loss"], h3["loss"])


def test_history_has_one_row_per_epoch(two_fits):
    (_, history), _ = two_fits
    assert list(history.index) == [1, 2] and history.index.name == "epoch"
    assert {"loss", "val_loss", "mae", "val_mae", "learning_rate"} <= set(history.columns)
    assert history["learning_rate"].dtype == float
    assert np.isfinite(history.to_numpy()).all()


def test_model_maps_windows_to_horizon(two_fits, prepared):
    (model, _), _ = two_fits
    x, _ = prepared.arrays("val")
    assert model.predict(x[:4], verbose=0).shape == (4, 2)


# ------------------------------------------------------------------ persistence


def test_save_and_load_model_round_trip(two_fits, prepared, tmp_path):
    (model, _), _ = two_fits
    path = tmp_path / "training" / "model.keras"
    save_model(model, path)
    loaded = load_model(path)
    x, _ = prepared.arrays("test")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert weights_equal(loaded, model)
    assert [p.name for p in path.parent.iterdir()] == ["model.keras"]


def test_save_model_replaces_an_existing_file(two_fits, tmp_path):
    (model, _), _ = two_fits
    path = tmp_path / "model.keras"
    path.write_text("stale")
    save_model(model, path)
    assert weights_equal(load_model(path), model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


# ------------------------------------------------------------------ the training stage


def test_train_run_writes_artifacts_and_repeats_fit(two_fits, prepared, tmp_path):
    (m1, h1), _ = two_fits
    run = RunFolder(tmp_path / "run")
    model, history, spec, source = train_run(run, tiny_config(), prepared)
    assert source == "config" and spec == LSTMSpec(layers=1, units=8, dropout=0.1, batch_size=32, lookback=8,
                                                   normalization=tiny_config().model.normalization)
    assert weights_equal(model, m1)  # same seed and spec as the plain fits: the same model
    assert weights_equal(load_model(run.model_file), model)
    assert run.checkpoint_file.exists()
    saved = read_json(run.history_file)
    assert saved["best_epoch"] == int(np.argmin(h1["val_loss"])) + 1
    pd.testing.assert_frame_equal(read_history(run), history, check_index_type=False)
    assert read_json(run.hyperparameters_file) == {**spec.to_dict(), "source": "config", "fit_on": "train"}


def test_train_val_refit_trains_on_validation_windows_for_the_best_epoch_count(two_fits, prepared, tmp_path):
    (m1, h1), _ = two_fits
    cfg = tiny_config(training={"fit_on": "train+val"})
    merged = prepared.train_val()
    # every training and validation window, plus those whose targets straddle the train/val boundary
    assert merged.n_windows("train") == prepared.n_windows("train") + prepared.n_windows("val") + prepared.horizon - 1
    assert merged.bounds.test == prepared.bounds.test and merged.scaler is prepared.scaler
    run = RunFolder(tmp_path)
    model, history, spec, _ = train_run(run, cfg, prepared)
    best_epoch = int(np.argmin(h1["val_loss"])) + 1
    assert read_json(run.history_file)["best_epoch"] == best_epoch and read_json(run.history_file)["fit_on"] == "train+val"
    pd.testing.assert_frame_equal(history, h1)  # the validated fit that chose the epoch count is kept as the history
    assert not weights_equal(model, m1)
    assert weights_equal(model, refit_train_val(prepared, spec, cfg, best_epoch))
    assert weights_equal(load_model(run.model_file), model)


def test_load_trained_cuts_windows_at_the_models_lookback(tmp_path):
    frame, _ = make_synthetic(400, 0.3, seed=5)
    frame = frame[["x1", "x2", "target"]]
    cfg = tiny_config(tuning={"strategy": "random"})
    run = start_run(tmp_path, cfg)
    save_series(frame, run.series_file)
    prepared = prepare(frame, cfg)
    save_prepared(prepared, run)
    atomic_write_json(run.best_hyperparameters_file, {**vars(cfg.model), "lookback": 12})
    model, _, spec, source = train_run(run, cfg, prepared)
    assert (source, spec.lookback, model.input_shape[1]) == ("tuning", 12, 12)
    loaded, windows = load_trained(run)
    assert windows.lookback == 12 and prepared.lookback == 8 and loaded.input_shape == model.input_shape
    assert windows.arrays("test")[0].shape[1:] == (12, 3)
    np.testing.assert_array_equal(windows.arrays("test")[1], prepared.arrays("test")[1])  # the same test targets


def test_spec_for_run_prefers_tuned_hyperparameters(tmp_path):
    run = RunFolder(tmp_path)
    tuned = {"layers": 2, "units": 16, "dropout": 0.3, "learning_rate": 0.01, "optimizer": "rmsprop",
             "batch_size": 64, "val_loss": 0.1, "trial": "3"}
    atomic_write_json(run.best_hyperparameters_file, tuned)
    spec, source = spec_for_run(run, tiny_config(tuning={"strategy": "random"}))
    assert source == "tuning" and spec == LSTMSpec(2, 16, 0.3, 0.01, "rmsprop", 64, lookback=8)  # the window's
    atomic_write_json(run.best_hyperparameters_file, {**tuned, "lookback": 12})
    assert spec_for_run(run, tiny_config(tuning={"strategy": "random"}))[0].lookback == 12
    spec, source = spec_for_run(run, tiny_config(tuning={"strategy": "random"}, training={"use_tuned": False}))
    assert source == "config" and spec.units == 8
    spec, source = spec_for_run(run, tiny_config())  # strategy none: tuning results are ignored
    assert source == "config"


def test_callbacks_monitor_validation_loss(tmp_path):
    cbs = callbacks(patience=3, reduce_lr_patience=2, checkpoint=tmp_path / "ck" / "best.keras")
    stop, reduce, _, checkpoint = cbs
    assert stop.monitor == "val_loss" and stop.patience == 3 and stop.restore_best_weights
    assert reduce.monitor == "val_loss" and reduce.patience == 2 and reduce.factor == 0.5
    assert checkpoint.save_best_only and (tmp_path / "ck").is_dir()
    assert len(callbacks(3, 2)) == 3


def test_build_lstm_stacks_layers():
    model = build_lstm(8, 3, 4, LSTMSpec(layers=2, units=4, dropout=0.0, optimizer="sgd"))
    assert [layer.name for layer in model.layers if "lstm" in layer.name] == ["lstm_1", "lstm_2"]
    assert model.output_shape == (None, 4)
    assert type(model.optimizer).__name__ == "SGD"


# ------------------------------------------------------------------ run folder: atomic writes


def test_atomic_write_json_round_trip_leaves_no_temp_files(tmp_path):
    path = tmp_path / "deep" / "metrics.json"
    data = {"rmse": np.float32(0.5), "per_step": np.array([1.0, 2.0]), "n": np.int64(3), "name": "lstm"}
    atomic_write_json(path, data)
    assert read_json(path) == {"rmse": 0.5, "per_step": [1.0, 2.0], "n": 3, "name": "lstm"}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_atomic_write_json_overwrites(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"v": 1})
    atomic_write_json(path, {"v": 2})
    assert read_json(path) == {"v": 2}
    assert os.listdir(tmp_path) == ["a.json"]


def test_atomic_write_json_rejects_unserialisable_and_keeps_old_file(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        atomic_write_json(path, {"v": object()})
    assert read_json(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_failed_replace_removes_the_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"v": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("lstmkit.runfolder.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    monkeypatch.undo()
    assert read_json(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_run_folder_require_names_the_stage(tmp_path):
    run = RunFolder(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"run the training \(04_training\) stage"):
        run.require(run.model_file, "training (04_training)")
    assert run.figure_file("loss") == tmp_path / "figures" / "loss.png"


def test_start_and_open_run_record_the_config(tmp_path):
    cfg = from_dict({}, {"seed": 9})
    run = start_run(tmp_path / "r", cfg)
    assert run.config_file.exists() and cfg.seed == 9
    reopened, cfg2 = open_run(tmp_path / "r", overrides={"window.horizon": 2})
    assert cfg2.seed == 9 and cfg2.window.horizon == 2
    assert reopened.config().window.horizon == 2  # the override is recorded in the run's config.yaml


def test_open_run_without_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not a run folder"):
        open_run(tmp_path)


@pytest.mark.parametrize("normalization", ["last", "revin", "none"])
def test_model_options_survive_save_and_load(tmp_path, normalization):
    model = build_lstm(8, 2, 3, LSTMSpec(units=4, dropout=0.0, normalization=normalization))
    x = np.random.default_rng(0).normal(size=(5, 8, 2)).astype("float32")
    save_model(model, tmp_path / "m.keras")
    np.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_last_value_normalisation_makes_the_forecast_follow_a_level_shift():
    model = build_lstm(8, 2, 3, LSTMSpec(units=4, dropout=0.0, normalization="last"))
    x = np.random.default_rng(1).normal(size=(4, 8, 2)).astype("float32")
    shifted = x + 100.0  # every channel moved by the same amount: the normalised window is unchanged
    np.testing.assert_allclose(model.predict(shifted, verbose=0), model.predict(x, verbose=0) + 100.0, rtol=1e-5)


def test_revin_makes_the_forecast_follow_scale_and_shift():
    model = build_lstm(8, 2, 3, LSTMSpec(units=4, dropout=0.0, normalization="revin"))
    x = np.random.default_rng(2).normal(size=(4, 8, 2)).astype("float32")
    np.testing.assert_allclose(model.predict(3.0 * x + 5.0, verbose=0), 3.0 * model.predict(x, verbose=0) + 5.0,
                               rtol=1e-3, atol=1e-3)
