"""Training: seeded reproducibility, forecaster persistence, the training stage's comparison of models and seeds
(selection by validation loss, resume), and atomic run-folder writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from lstmkit.config import ConfigError, from_dict
from lstmkit.core.atomic import atomic_write_json, atomic_write_text, read_json
from lstmkit.data.series import save_series
from lstmkit.data.synthetic import make_synthetic
from lstmkit.data.windows import prepare
from lstmkit.models.neural.forecaster import build_network, callbacks, fit_forecaster
from lstmkit.models.neural.spec import ModelSpec
from lstmkit.models.registry import load
from lstmkit.runs.folder import RunFolder, open_run, start_run
from lstmkit.stages.preprocessing import save_prepared
from lstmkit.stages.training import (
    CHECKPOINT,
    load_models,
    load_selected,
    load_trained,
    model_names,
    model_seeds,
    read_history,
    read_selected,
    select_model,
    spec_for_run,
    train_run,
)

TINY = {"seed": 5, "data": {"features": ["x1", "x2"], "length": 400},
        "window": {"lookback": 8, "horizon": 2},
        "model": {"units": 4, "batch_size": 32, "dropout": 0.1},
        "training": {"epochs": 2, "patience": 5, "verbose": 0},
        "tuning": {"strategy": "none"}}


def tiny_config(**changes):
    values = json.loads(json.dumps(TINY))
    for section, value in changes.items():
        values[section] = {**values.get(section, {}), **value} if isinstance(value, dict) else value
    return from_dict(values)


@pytest.fixture(scope="module")
def prepared():
    frame, _ = make_synthetic(400, 0.3, seed=5)
    return prepare(frame[["x1", "x2", "target"]], tiny_config())


@pytest.fixture(scope="module")
def spec():
    return ModelSpec.from_config(tiny_config())


@pytest.fixture(scope="module")
def two_fits(prepared, spec):
    cfg = tiny_config()
    return fit_forecaster(prepared, spec, cfg), fit_forecaster(prepared, spec, cfg)


def weights_equal(a, b) -> bool:
    wa, wb = a.network.get_weights(), b.network.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


# ------------------------------------------------------------------ reproducibility


def test_same_seed_gives_identical_weights_and_history(two_fits):
    f1, f2 = two_fits
    assert weights_equal(f1, f2)
    assert f1.history_.equals(f2.history_)


def test_different_seed_gives_different_weights(two_fits, prepared, spec):
    f1, _ = two_fits
    f3 = fit_forecaster(prepared, spec, tiny_config(), seed=6)
    assert f3.seed == 6 and not weights_equal(f1, f3)
    assert not np.allclose(f1.history_["loss"], f3.history_["loss"])


def test_history_has_one_row_per_epoch(two_fits):
    history = two_fits[0].history_
    assert list(history.index) == [1, 2] and history.index.name == "epoch"
    assert {"loss", "val_loss", "mae", "val_mae", "learning_rate"} <= set(history.columns)
    assert history["learning_rate"].dtype == float
    assert np.isfinite(history.to_numpy()).all()
    assert two_fits[0].best_epoch_ == int(np.argmin(history["val_loss"])) + 1
    assert two_fits[0].val_loss_ == pytest.approx(history["val_loss"].min())


def test_forecaster_maps_windows_to_horizon(two_fits, prepared):
    x, _ = prepared.arrays("val")
    assert two_fits[0].predict(x[:4]).shape == (4, 2)


# ------------------------------------------------------------------ persistence


def test_save_and_load_forecaster_round_trip(two_fits, prepared, tmp_path):
    f1, _ = two_fits
    f1.save(tmp_path / "m")
    loaded = load(tmp_path / "m")
    x, _ = prepared.arrays("test")
    np.testing.assert_array_equal(loaded.predict(x), f1.predict(x))
    assert weights_equal(loaded, f1)
    assert (loaded.best_epoch_, loaded.val_loss_, loaded.seed) == (f1.best_epoch_, f1.val_loss_, f1.seed)
    pd.testing.assert_frame_equal(loaded.history_, f1.history_, check_index_type=False, check_dtype=False)


# ------------------------------------------------------------------ the training stage


def test_train_run_writes_artifacts_and_repeats_fit(two_fits, prepared, tmp_path):
    f1, _ = two_fits
    run = RunFolder(tmp_path / "run")
    result = train_run(run, tiny_config(), prepared)
    model = result.selected.forecaster
    assert result.selected.source == "config" and model.spec == ModelSpec(
        layers=1, units=4, dropout=0.1, batch_size=32, lookback=8, normalization=tiny_config().model.normalization)
    assert weights_equal(model, f1)  # same seed and spec as the plain fits: the same model
    assert weights_equal(load_selected(run), model)
    assert run.model_dir("lstm", 5).is_dir() and (run.model_dir("lstm", 5) / CHECKPOINT).exists()
    selected = read_selected(run)
    assert (selected["model"], selected["seed"], selected["best_epoch"]) == ("lstm", 5, f1.best_epoch_)
    assert selected["path"] == "training/models/lstm/seed-5" and selected["fit_on"] == "train"
    pd.testing.assert_frame_equal(read_history(run), result.history, check_index_type=False, check_dtype=False)
    table = result.table()
    assert list(table.index) == [("lstm", 5)]
    assert {"best epoch", "val loss", "parameters", "training seconds"} <= set(table.columns)
    assert table.loc[("lstm", 5), "parameters"] == model.network.count_params()


def test_compare_trains_every_architecture_and_seed_on_the_same_windows(prepared, tmp_path):
    cfg = tiny_config(compare={"architectures": ["lstm", "gru"], "seeds": 2})
    assert model_names(cfg) == ["lstm", "gru"] and model_seeds(cfg) == [5, 6]
    assert model_names(tiny_config()) == ["lstm"] and model_seeds(tiny_config()) == [5]
    run = RunFolder(tmp_path)
    result = train_run(run, cfg, prepared)
    assert [(m.name, m.seed) for m in result.models] == [("lstm", 5), ("lstm", 6), ("gru", 5), ("gru", 6)]
    assert [m.forecaster.spec.architecture for m in result.models] == ["lstm", "lstm", "gru", "gru"]
    for m in result.models:
        assert (run.root / m.path / "forecaster.json").is_file() and not m.resumed
    # selection by validation loss: the architecture with the lower mean over its seeds, then its best seed
    val = {(m.name, m.seed): m.forecaster.val_loss_ for m in result.models}
    means = {n: np.mean([v for (name, _), v in val.items() if name == n]) for n in ("lstm", "gru")}
    best = min(means, key=means.get)
    best_seed = min((5, 6), key=lambda s: val[best, s])
    assert (result.selected.name, result.selected.seed) == (best, best_seed)
    selected = read_selected(run)
    assert (selected["model"], selected["seed"]) == (best, best_seed)
    assert [(e["model"], e["seed"]) for e in selected["models"]] == list(val)
    loaded = load_models(run)
    assert list(loaded) == ["lstm", "gru"] and [f.seed for f in loaded["gru"]] == [5, 6]
    x, _ = prepared.arrays("test")
    np.testing.assert_array_equal(loaded["gru"][1].predict(x), result.models[3].forecaster.predict(x))


def test_select_model_uses_the_mean_validation_loss_over_seeds():
    # b has the single best seed, but a is better on average: a is selected, with its own best seed
    losses = {"a": {1: 0.30, 2: 0.31}, "b": {1: 0.20, 2: 0.50}}
    assert select_model(losses) == ("a", 1)
    assert select_model({"a": {1: 0.3}, "b": {1: float("nan")}}) == ("a", 1)  # a diverged model ranks last
    assert select_model({"a": {3: 0.2, 4: 0.1}}) == ("a", 4)
    with pytest.raises(ValueError, match="no trained model"):
        select_model({})


def test_a_second_run_resumes_from_complete_model_folders(prepared, tmp_path):
    cfg = tiny_config(compare={"seeds": 2})
    run = RunFolder(tmp_path)
    first = train_run(run, cfg, prepared)
    stamps = {m.seed: (run.root / m.path / "model.keras").stat().st_mtime_ns for m in first.models}
    (run.model_dir("lstm", 6) / "forecaster.json").unlink()  # an interrupted save: the folder is incomplete
    lines = []
    second = train_run(run, cfg, prepared, echo=lines.append)
    assert [m.resumed for m in second.models] == [True, False]
    assert "lstm seed 5: loaded" in lines[0] and "lstm seed 6: trained" in lines[1]
    assert (run.model_dir("lstm", 5) / "model.keras").stat().st_mtime_ns == stamps[5]
    x, _ = prepared.arrays("test")
    for a, b in zip(first.models, second.models):  # retrained with the same seed: the same model
        np.testing.assert_array_equal(a.forecaster.predict(x), b.forecaster.predict(x))
    # a reloaded model reports the time of its original fit
    assert second.table().loc[("lstm", 5), "training seconds"] == pytest.approx(first.table().loc[("lstm", 5), "training seconds"])
    # a changed setting (more epochs) makes every saved model stale: all are trained again
    third = train_run(run, tiny_config(compare={"seeds": 2}, training={"epochs": 3}), prepared)
    assert not any(m.resumed for m in third.models)
    assert all(len(m.forecaster.history_) == 3 for m in third.models)


def test_train_val_refit_trains_on_validation_windows_for_the_best_epoch_count(two_fits, prepared, tmp_path):
    f1, _ = two_fits
    cfg = tiny_config(training={"fit_on": "train+val"})
    merged = prepared.train_val()
    # every training and validation window, plus those whose targets straddle the train/val boundary
    assert merged.n_windows("train") == prepared.n_windows("train") + prepared.n_windows("val") + prepared.horizon - 1
    assert merged.bounds.test == prepared.bounds.test and merged.scaler is prepared.scaler
    run = RunFolder(tmp_path)
    model = train_run(run, cfg, prepared).selected.forecaster
    assert model.best_epoch_ == f1.best_epoch_ and read_selected(run)["fit_on"] == "train+val"
    pd.testing.assert_frame_equal(model.history_, f1.history_)  # the validated fit that chose the epoch count
    assert not weights_equal(model, f1)
    assert weights_equal(load_selected(run), model)


def test_load_trained_cuts_windows_at_the_models_lookback(tmp_path):
    frame, _ = make_synthetic(400, 0.3, seed=5)
    frame = frame[["x1", "x2", "target"]]
    cfg = tiny_config(tuning={"strategy": "random"})
    run = start_run(tmp_path, cfg)
    save_series(frame, run.series_file)
    prepared = prepare(frame, cfg)
    save_prepared(prepared, run)
    atomic_write_json(run.best_hyperparameters_file, {"architecture": "lstm", "units": 4, "lookback": 12})
    result = train_run(run, cfg, prepared)
    model = result.selected.forecaster
    assert (result.selected.source, model.spec.lookback, model.network.input_shape[1]) == ("tuning", 12, 12)
    loaded, windows = load_trained(run)
    assert windows.lookback == 12 and prepared.lookback == 8 and loaded.lookback_ == 12
    assert windows.arrays("test")[0].shape[1:] == (12, 3)
    np.testing.assert_array_equal(windows.arrays("test")[1], prepared.arrays("test")[1])  # the same test targets


def test_spec_for_run_prefers_tuned_hyperparameters_of_the_same_architecture(tmp_path):
    run = RunFolder(tmp_path)
    tuned = {"architecture": "lstm", "layers": 2, "units": 16, "dropout": 0.3, "learning_rate": 0.01,
             "optimizer": "rmsprop", "batch_size": 64, "val_loss": 0.1, "trial": "3"}
    atomic_write_json(run.best_hyperparameters_file, tuned)
    searched = tiny_config(tuning={"strategy": "random"})
    spec, source = spec_for_run(run, searched)
    assert source == "tuning" and (spec.layers, spec.units, spec.dropout, spec.learning_rate, spec.optimizer,
                                   spec.batch_size, spec.lookback) == (2, 16, 0.3, 0.01, "rmsprop", 64, 8)
    spec, source = spec_for_run(run, searched, "gru")  # the tuner's best is an LSTM: a GRU keeps its config
    assert (source, spec.architecture, spec.units) == ("config", "gru", 4)
    atomic_write_json(run.best_hyperparameters_file, {**tuned, "lookback": 12})
    assert spec_for_run(run, searched)[0].lookback == 12
    spec, source = spec_for_run(run, tiny_config(tuning={"strategy": "random"}, training={"use_tuned": False}))
    assert source == "config" and spec.units == 4
    spec, source = spec_for_run(run, tiny_config())  # strategy none: tuning results are ignored
    assert source == "config"


def test_a_tuned_architecture_is_the_one_trained_unless_a_comparison_names_them(tmp_path):
    run = RunFolder(tmp_path)
    atomic_write_json(run.best_hyperparameters_file, {"architecture": "gru", "units": 12, "val_loss": 0.1})
    searched = tiny_config(tuning={"strategy": "random"})
    assert model_names(searched, run) == ["gru"]  # the search chose gru over model.architecture (lstm)
    spec, source = spec_for_run(run, searched)
    assert (source, spec.architecture, spec.units) == ("tuning", "gru", 12)
    assert model_names(tiny_config(tuning={"strategy": "random"}, training={"use_tuned": False}), run) == ["lstm"]
    assert model_names(tiny_config(), run) == ["lstm"]  # no search in this configuration: its result is ignored
    compared = tiny_config(tuning={"strategy": "random"}, compare={"architectures": ["lstm", "tcn"]})
    assert model_names(compared, run) == ["lstm", "tcn"]


def test_callbacks_monitor_validation_loss(tmp_path):
    cbs = callbacks(patience=3, reduce_lr_patience=2, checkpoint=tmp_path / "ck" / "best.keras")
    stop, reduce, _, checkpoint = cbs
    assert stop.monitor == "val_loss" and stop.patience == 3 and stop.restore_best_weights
    assert reduce.monitor == "val_loss" and reduce.patience == 2 and reduce.factor == 0.5
    assert checkpoint.save_best_only and (tmp_path / "ck").is_dir()
    assert len(callbacks(3, 2)) == 3


def test_build_network_stacks_layers():
    model = build_network(ModelSpec(layers=2, units=4, dropout=0.0, optimizer="sgd"), 8, 3, 4)
    assert [layer.name for layer in model.layers if "lstm" in layer.name] == ["lstm_1", "lstm_2"]
    assert model.output_shape == (None, 4)
    assert type(model.optimizer).__name__ == "SGD"


# ------------------------------------------------------------------ run folder: atomic writes


def test_atomic_write_json_round_trip_leaves_no_temp_files(tmp_path):
    path = tmp_path / "deep" / "metrics.json"
    data = {"rmse": np.float32(0.5), "per_step": np.array([1.0, 2.0]), "n": np.int64(3), "name": "gru"}
    atomic_write_json(path, data)
    assert read_json(path) == {"rmse": 0.5, "per_step": [1.0, 2.0], "n": 3, "name": "gru"}
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
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        atomic_write_json(path, {"v": object()})
    assert read_json(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_failed_replace_removes_the_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"v": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("lstmkit.core.atomic.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    monkeypatch.undo()
    assert read_json(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_run_folder_require_names_the_stage(tmp_path):
    run = RunFolder(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"run the training \(04_training\) stage"):
        run.require(run.selected_file, "training (04_training)")
    with pytest.raises(FileNotFoundError, match=r"selected.json is missing: run the training"):
        load_selected(run)
    assert run.figure_file("loss") == tmp_path / "figures" / "loss.png"
    assert run.model_dir("gru", 43) == tmp_path / "training" / "models" / "gru" / "seed-43"


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
    import keras

    model = build_network(ModelSpec(units=4, dropout=0.0, normalization=normalization), 8, 2, 3)
    x = np.random.default_rng(0).normal(size=(5, 8, 2)).astype("float32")
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)


def test_last_value_normalisation_makes_the_forecast_follow_a_level_shift():
    model = build_network(ModelSpec(units=4, dropout=0.0, normalization="last"), 8, 2, 3)
    x = np.random.default_rng(1).normal(size=(4, 8, 2)).astype("float32")
    shifted = x + 100.0  # every channel moved by the same amount: the normalised window is unchanged
    np.testing.assert_allclose(model.predict(shifted, verbose=0), model.predict(x, verbose=0) + 100.0, rtol=1e-5)


def test_revin_makes_the_forecast_follow_scale_and_shift():
    model = build_network(ModelSpec(units=4, dropout=0.0, normalization="revin"), 8, 2, 3)
    x = np.random.default_rng(2).normal(size=(4, 8, 2)).astype("float32")
    np.testing.assert_allclose(model.predict(3.0 * x + 5.0, verbose=0), 3.0 * model.predict(x, verbose=0) + 5.0,
                               rtol=1e-3, atol=1e-3)
