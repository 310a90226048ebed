"""Replaying a population-based-training winner's hyperparameter schedule: NeuralForecaster(schedule=...) trains
segment by segment (fresh optimizer, weights carried), and the training stage replays a tuned `schedule`."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from lstmkit.config import ConfigError, from_dict
from lstmkit.core.atomic import atomic_write_json, read_json
from lstmkit.core.errors import ForecasterError
from lstmkit.data.synthetic import make_synthetic
from lstmkit.data.windows import prepare
from lstmkit.models.neural import forecaster as neural
from lstmkit.models.neural.forecaster import NeuralForecaster, check_schedule, fit_forecaster
from lstmkit.models.neural.spec import ModelSpec
from lstmkit.models.registry import load
from lstmkit.runs.folder import RunFolder
from lstmkit.stages.training import FIT_FILE, REPLAYED, fit_record, read_selected, schedule_for_run, spec_for_run, train_run

TINY = {"seed": 5, "data": {"features": ["x1", "x2"], "length": 400},
        "window": {"lookback": 8, "horizon": 2},
        "model": {"units": 4, "batch_size": 32, "dropout": 0.1},
        "training": {"epochs": 1, "patience": 1, "reduce_lr_patience": 1, "verbose": 0},
        "tuning": {"strategy": "none"}}
# three segments: learning rate, dropout and batch size all change; 2 + 1 + 2 = 5 epochs (training.epochs is 1)
SCHEDULE = [{"epochs": 2, "learning_rate": 0.02, "dropout": 0.0, "batch_size": 16},
            {"epochs": 1, "learning_rate": 0.005, "dropout": 0.3, "batch_size": 32},
            {"epochs": 2, "learning_rate": 0.001, "dropout": 0.1, "batch_size": 64}]
FINAL = {k: SCHEDULE[-1][k] for k in ("learning_rate", "dropout", "batch_size")}


def tiny_config(**changes):
    values = json.loads(json.dumps(TINY))
    for section, value in changes.items():
        values[section] = {**values.get(section, {}), **value}
    return from_dict(values)


class Recorder(neural.LearningRateLog):
    """LearningRateLog that also records, for every `fit` call (one per segment), what the network trains with."""

    segments: list[dict] = []

    def on_train_begin(self, logs=None):
        self.segments.append({
            "dropout": [layer.rate for layer in self.model.layers if isinstance(layer, keras.layers.Dropout)],
            "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            "steps": self.params["steps"], "epochs": 0, "start": self.model.get_weights(), "after_epoch": [],
            "optimizer_iterations": int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))})

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.segments[-1]["epochs"] += 1
        self.segments[-1]["after_epoch"].append(self.model.get_weights())

    def on_train_end(self, logs=None):
        self.segments[-1]["end"] = self.model.get_weights()


def recorded_fit(fit):
    """Run `fit()` with the Recorder in place of LearningRateLog; returns (its result, the segments it recorded)."""
    Recorder.segments = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(neural, "LearningRateLog", Recorder)
        result = fit()
    return result, list(Recorder.segments)


@pytest.fixture(scope="module")
def prepared():
    frame, _ = make_synthetic(400, 0.3, seed=5)
    return prepare(frame[["x1", "x2", "target"]], tiny_config())


@pytest.fixture(scope="module")
def spec():
    return ModelSpec.from_config(tiny_config(), values=FINAL)


@pytest.fixture(scope="module")
def replay(prepared, spec):
    """A scheduled forecaster fitted with the Recorder, and the segments recorded."""
    return recorded_fit(lambda: NeuralForecaster(spec, tiny_config().training, 5, schedule=SCHEDULE).fit(prepared))


def weights_equal(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------ the forecaster


def test_a_schedule_trains_exactly_the_sum_of_its_epochs(replay):
    forecaster, segments = replay
    history = forecaster.history_
    assert list(history.index) == [1, 2, 3, 4, 5] and history.index.name == "epoch"  # not training.epochs (1)
    assert list(history["segment"]) == [1, 1, 2, 3, 3]
    assert [s["epochs"] for s in segments] == [2, 1, 2]
    assert {"loss", "val_loss", "learning_rate"} <= set(history.columns) and np.isfinite(history["val_loss"]).all()
    assert forecaster.best_epoch_ == int(np.argmin(history["val_loss"])) + 1
    assert forecaster.val_loss_ == pytest.approx(history["val_loss"].min())


def test_each_segment_trains_with_its_learning_rate_dropout_and_batch_size(replay, prepared):
    forecaster, segments = replay
    n_train = prepared.n_windows("train")
    for segment, planned in zip(segments, SCHEDULE, strict=True):
        assert segment["learning_rate"] == pytest.approx(planned["learning_rate"], rel=1e-6)
        assert segment["dropout"] == ([planned["dropout"]] if planned["dropout"] > 0 else [])
        assert segment["steps"] == math.ceil(n_train / planned["batch_size"])
        assert segment["optimizer_iterations"] == 0  # a fresh optimizer at every segment
    # the history's learning rate is the optimizer's during each epoch: no reduction on plateau in a replay
    expected = [SCHEDULE[s - 1]["learning_rate"] for s in forecaster.history_["segment"]]
    np.testing.assert_allclose(forecaster.history_["learning_rate"], expected, rtol=1e-6)
    # the final network is the last segment's
    assert [layer.rate for layer in forecaster.network.layers if isinstance(layer, keras.layers.Dropout)] == [0.1]
    assert float(keras.ops.convert_to_numpy(forecaster.network.optimizer.learning_rate)) == pytest.approx(0.001)
    assert forecaster.spec.dropout == 0.1 and forecaster.get_tag("samples")


def test_weights_are_carried_across_segment_boundaries(replay, prepared, spec):
    forecaster, segments = replay
    for before, after in zip(segments, segments[1:]):
        assert weights_equal(after["start"], before["end"])  # segment k + 1 starts where segment k ended
        assert not weights_equal(after["start"], after["end"])  # and trains on
    # the network keeps the weights of the epoch with the lowest validation loss, whose loss val_loss_ reports
    after_epoch = [w for s in segments for w in s["after_epoch"]]
    assert len(after_epoch) == 5
    assert weights_equal(after_epoch[forecaster.best_epoch_ - 1], forecaster.network.get_weights())
    if forecaster.best_epoch_ < 5:
        assert not weights_equal(after_epoch[-1], forecaster.network.get_weights())
    kept = forecaster.network.evaluate(prepared.dataset("val", 1024), verbose=0, return_dict=True)["loss"]
    assert kept == pytest.approx(forecaster.val_loss_, rel=1e-5)
    # a fresh network (any seed) is far from where segment 2 starts: its first epoch continues segment 1's descent
    history = forecaster.history_
    fresh = NeuralForecaster(spec, tiny_config().training, 5)._build(prepared.with_lookback(8)).get_weights()
    assert not weights_equal(fresh, segments[1]["start"])
    assert history.loc[3, "loss"] < history.loc[1, "loss"]


def test_a_seeded_replay_repeats_exactly(replay, prepared, spec):
    forecaster, _ = replay
    again = NeuralForecaster(spec, tiny_config().training, 5, schedule=SCHEDULE).fit(prepared)
    assert weights_equal(again.network.get_weights(), forecaster.network.get_weights())
    assert again.history_.equals(forecaster.history_)


def test_a_scheduled_forecaster_saves_and_loads_its_schedule(replay, prepared, tmp_path):
    forecaster, _ = replay
    forecaster.save(tmp_path / "m")
    manifest = read_json(tmp_path / "m" / "forecaster.json")
    assert manifest["init"]["schedule"] == SCHEDULE and manifest["summary"]["hyperparameters"]["schedule"] == SCHEDULE
    loaded = load(tmp_path / "m")
    assert loaded.schedule == SCHEDULE
    x, _ = prepared.arrays("test")
    np.testing.assert_array_equal(loaded.predict(x), forecaster.predict(x))
    assert list(loaded.history_["segment"]) == [1, 1, 2, 3, 3]
    # a forecaster without a schedule saves exactly what it saved before
    plain = NeuralForecaster(ModelSpec(units=4), tiny_config().training, 5)
    assert "schedule" not in plain._init_args() and plain.schedule is None


def test_train_val_refit_replays_the_schedule_on_training_and_validation_windows(prepared, spec):
    cfg = tiny_config(training={"fit_on": "train+val"})
    forecaster, segments = recorded_fit(lambda: fit_forecaster(prepared, spec, cfg, schedule=SCHEDULE))
    fit, refit = segments[:3], segments[3:]
    assert [s["epochs"] for s in refit] == [2, 1, 2]
    n_merged = prepared.train_val().n_windows("train")
    assert [s["steps"] for s in refit] == [math.ceil(n_merged / s["batch_size"]) for s in SCHEDULE]
    assert [s["learning_rate"] for s in refit] == pytest.approx([s["learning_rate"] for s in SCHEDULE], rel=1e-6)
    assert weights_equal(refit[-1]["end"], forecaster.network.get_weights())  # a refit keeps its last epoch's
    assert not weights_equal(refit[-1]["end"], fit[-1]["end"])
    assert len(forecaster.history_) == 5  # the validated replay's history


@pytest.mark.parametrize(("schedule", "message"), [
    ([], "non-empty list"),
    ([{"epochs": 1, "learning_rate": 0.01}, {"epochs": 2, "momentum": 0.9}],
     r"schedule segment 2: unknown key\(s\) 'momentum'; a segment's keys are epochs, learning_rate"),
    ([{"learning_rate": 0.01}], "schedule segment 1: `epochs` is missing"),
    ([{"epochs": 0}], "schedule segment 1: `epochs` must be an integer >= 1, got 0"),
    ([{"epochs": 1.5}], "`epochs` must be an integer >= 1, got 1.5"),
    ([{"epochs": 1, "dropout": 1.2}], r"`dropout` must be a number in \[0, 1\), got 1.2"),
    ([{"epochs": 1, "batch_size": "64"}], "`batch_size` must be an integer >= 1, got '64'"),
    (["epochs"], "schedule segment 1: expected a mapping"),
])
def test_a_malformed_schedule_is_a_forecaster_error_naming_it(schedule, message):
    with pytest.raises(ForecasterError, match=message):
        NeuralForecaster(ModelSpec(units=4), schedule=schedule)


def test_check_schedule_fills_nothing_and_keeps_types():
    assert check_schedule([{"epochs": 2.0, "batch_size": 32, "learning_rate": 1}]) == [
        {"epochs": 2, "batch_size": 32, "learning_rate": 1.0}]


# ------------------------------------------------------------------ the training stage


def tuned_file(**changes) -> dict:
    return {"architecture": "lstm", "layers": 1, "units": 4, **FINAL, "val_loss": 0.1, "trial": 3, "best_epoch": 5,
            "strategy": "pbt", "schedule": SCHEDULE, "lineage": [1, 3]} | changes


def test_the_training_stage_replays_a_tuned_schedule_and_says_so(prepared, tmp_path):
    run = RunFolder(tmp_path)
    atomic_write_json(run.best_hyperparameters_file, tuned_file())
    cfg = tiny_config(tuning={"strategy": "random"}, compare={"architectures": ["lstm", "gru"]})
    assert spec_for_run(run, cfg, "lstm")[1] == "tuning" and schedule_for_run(run, cfg, "lstm") == SCHEDULE
    assert schedule_for_run(run, cfg, "gru") is None  # the schedule is the lstm winner's
    result = train_run(run, cfg, prepared)
    table = result.table()
    assert table.loc[("lstm", 5), "hyperparameters"] == REPLAYED == "tuning (PBT schedule replayed)"
    assert table.loc[("gru", 5), "hyperparameters"] == "config"
    assert table.loc[("lstm", 5), "epochs run"] == 5 and table.loc[("gru", 5), "epochs run"] == 1
    lstm = result.models[0].forecaster
    assert lstm.schedule == SCHEDULE and (lstm.spec.learning_rate, lstm.spec.dropout, lstm.spec.batch_size) == (
        0.001, 0.1, 64)
    selected = read_selected(run)
    entries = {e["model"]: e for e in selected["models"]}
    assert entries["lstm"]["schedule"] == SCHEDULE and entries["lstm"]["source"] == REPLAYED
    assert "schedule" not in entries["gru"]
    assert ("schedule" in selected) == (selected["model"] == "lstm")
    assert read_json(run.model_dir("lstm", 5) / FIT_FILE)["schedule"] == SCHEDULE
    assert "schedule" not in read_json(run.model_dir("gru", 5) / FIT_FILE)
    # a rerun resumes both; a changed schedule retrains the replayed model only
    assert all(m.resumed for m in train_run(run, cfg, prepared).models)
    changed = [{**SCHEDULE[0], "learning_rate": 0.01}, *SCHEDULE[1:]]
    atomic_write_json(run.best_hyperparameters_file, tuned_file(schedule=changed))
    again = train_run(run, cfg, prepared)
    assert [m.resumed for m in again.models] == [False, True] and again.models[0].forecaster.schedule == changed
    # training.use_tuned: false ignores the tuned result, schedule included
    plain = tiny_config(tuning={"strategy": "random"}, training={"use_tuned": False})
    assert schedule_for_run(run, plain) is None


def test_a_record_without_schedule_is_unchanged(prepared, spec):
    cfg = tiny_config()
    assert "schedule" not in fit_record(spec, cfg, 5, prepared)
    assert fit_record(spec, cfg, 5, prepared, SCHEDULE)["schedule"] == SCHEDULE


@pytest.mark.parametrize(("changes", "message"), [
    ({"best_epoch": 4}, r"best_hyperparameters.json: the schedule's epochs add up to 5 \(2 \+ 1 \+ 2\), but "
                        "best_epoch is 4"),
    ({"schedule": [*SCHEDULE[:2], {**SCHEDULE[2], "lr": 0.1}]},
     r"best_hyperparameters.json: schedule segment 3: unknown key\(s\) 'lr'"),
    ({"dropout": 0.2}, r"best_hyperparameters.json: the schedule's last segment has dropout = 0.1, but the final "
                       "values are dropout = 0.2"),
    ({"schedule": {"epochs": 5}}, "best_hyperparameters.json: schedule: expected a non-empty list"),
])
def test_a_schedule_that_does_not_fit_its_file_is_a_config_error_naming_it(tmp_path, changes, message):
    run = RunFolder(tmp_path)
    atomic_write_json(run.best_hyperparameters_file, tuned_file(**changes))
    with pytest.raises(ConfigError, match=message):
        schedule_for_run(run, tiny_config(tuning={"strategy": "random"}))
