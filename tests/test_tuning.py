"""Tuning: every strategy runs a real (tiny) Keras Tuner search, results land in the run folder, a rerun resumes."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from lstmkit.config import from_dict
from lstmkit.data import make_synthetic
from lstmkit.preprocessing import prepare
from lstmkit.runfolder import RunFolder, read_json
from lstmkit.training import spec_for_run
from lstmkit.tuning import make_tuner, read_trials, search_fingerprint, spec_from_hp, tune

TINY = {"seed": 3, "data": {"features": ["x1"], "length": 300}, "window": {"lookback": 6, "horizon": 2},
        "training": {"verbose": 0},
        "tuning": {"max_trials": 2, "epochs": 2, "patience": 1, "max_layers": 2, "max_units": 32,
                   "units_step": 16, "min_units": 16, "batch_sizes": [64], "optimizers": ["adam", "rmsprop"]}}


def tiny_config(strategy: str):
    return from_dict(TINY, {"tuning.strategy": strategy})


@pytest.fixture(scope="module")
def prepared():
    frame, _ = make_synthetic(300, 0.3, seed=3)
    return prepare(frame[["x1", "target"]], tiny_config("random"))


@pytest.mark.parametrize("strategy, tuner_class", [("random", kt.RandomSearch), ("bayesian", kt.BayesianOptimization),
                                                    ("hyperband", kt.Hyperband)])
def test_each_strategy_runs_a_search_and_saves_the_best(strategy, tuner_class, prepared, tmp_path):
    cfg, run = tiny_config(strategy), RunFolder(tmp_path)
    assert isinstance(make_tuner(prepared, cfg, run), tuner_class)
    spec, table = tune(prepared, cfg, run)
    assert len(table) >= 2 and (table["status"] == "COMPLETED").all()
    best = read_json(run.best_hyperparameters_file)
    assert best["val_loss"] == pytest.approx(table["val_loss"].min())
    assert spec.units == best["units"] and spec.optimizer in ("adam", "rmsprop") and 16 <= spec.units <= 32
    assert read_trials(run)["val_loss"].tolist() == pytest.approx(table["val_loss"].tolist())
    assert spec_for_run(run, cfg) == (spec, "tuning")  # the training stage picks the tuned hyperparameters up


def test_rerun_with_the_same_config_resumes_instead_of_repeating(prepared, tmp_path):
    cfg, run = tiny_config("random"), RunFolder(tmp_path)
    _, first = tune(prepared, cfg, run)
    trial_files = sorted(p.stat().st_mtime_ns for p in run.tuning_dir.rglob("trial.json"))
    _, again = tune(prepared, cfg, run)
    assert again.equals(first)
    assert sorted(p.stat().st_mtime_ns for p in run.tuning_dir.rglob("trial.json")) == trial_files  # nothing re-ran


def test_a_changed_config_starts_a_separate_search():
    a, b = tiny_config("random"), from_dict(TINY, {"tuning.strategy": "random", "tuning.max_units": 16})
    assert search_fingerprint(a) != search_fingerprint(b)
    assert search_fingerprint(a) == search_fingerprint(tiny_config("random"))


def test_search_space_follows_the_config():
    cfg = from_dict({}, {"tuning.min_units": 48, "tuning.max_units": 48, "tuning.optimizers": ["sgd"],
                         "tuning.min_layers": 3, "tuning.max_layers": 3})
    spec = spec_from_hp(kt.HyperParameters(), cfg)
    assert (spec.units, spec.optimizer, spec.layers) == (48, "sgd", 3)
    assert 0.2 <= spec.dropout <= 0.5 and 1e-4 <= spec.learning_rate <= 1e-1 and spec.batch_size in (32, 64, 128)


def test_the_tuner_can_choose_the_per_window_normalisation():
    cfg = from_dict({}, {"tuning.normalizations": ["last", "revin"]})
    hp = kt.HyperParameters()
    assert spec_from_hp(hp, cfg).normalization == "last"  # the first choice is the default value
    assert hp.get("normalization") == "last" and "normalization" in [p.name for p in hp.space]
    hp.values["normalization"] = "revin"
    assert spec_from_hp(hp, cfg).normalization == "revin"
    fixed = kt.HyperParameters()
    assert spec_from_hp(fixed, from_dict({})).normalization == "none"
    assert "normalization" not in [p.name for p in fixed.space]  # one choice: not a hyperparameter, the space stays classic
