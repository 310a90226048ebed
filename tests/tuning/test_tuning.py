"""Tuning: every strategy runs a real (tiny) search; folds, budget, reproducibility, and resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from lstmkit.cli import main
from lstmkit.config import ConfigError
from lstmkit.data.series import save_series
from lstmkit.data.synthetic import make_synthetic
from lstmkit.data.windows import cv_folds, prepare
from lstmkit.runs.folder import RunFolder, start_run
from lstmkit.stages.checks import checked
from lstmkit.stages.preprocessing import save_prepared
from lstmkit.stages.training import spec_for_run
from lstmkit.tuning.objective import project_name, search_fingerprint, train_trial
from lstmkit.tuning.results import read_best, read_trials
from lstmkit.tuning.search import tune
from lstmkit.tuning.space import search_space

TINY = {"seed": 3, "data": {"features": ["x1"], "length": 400}, "window": {"lookback": 6, "horizon": 2},
        "training": {"verbose": 0},
        "tuning": {"max_trials": 3, "epochs": 2, "patience": 1,
                   "space": {"layers": {"max": 2}, "units": {"min": 8, "max": 16, "step": 8}, "batch_size": [64],
                             "optimizer": ["adam", "rmsprop"], "dropout": {"min": 0.0, "max": 0.2, "step": 0.1},
                             "learning_rate": {"min": 1e-3, "max": 1e-2, "log": True}}}}


def tiny_config(strategy: str = "random", **overrides):
    return checked(TINY, {"tuning.strategy": strategy, **overrides})


@pytest.fixture(scope="module")
def frame():
    return make_synthetic(400, 0.3, seed=3)[0][["x1", "target"]]


def run_folder(path: Path, cfg, frame) -> RunFolder:
    """A run folder whose data and preprocessing stages are done, as worker processes need it."""
    run = start_run(path, cfg)
    save_series(frame, run.series_file)
    save_prepared(prepare(frame, cfg), run)
    return run


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """The parts of a trials table that a rerun must repeat (timings differ)."""
    return table.drop(columns=["seconds"])


@pytest.mark.parametrize("strategy", ["random", "grid", "bayesian", "hyperband", "optuna"])
def test_each_strategy_runs_a_search_and_saves_the_best(strategy, frame, tmp_path):
    overrides = {"tuning.space.learning_rate": [0.001, 0.01]} if strategy == "grid" else {}
    cfg, run = tiny_config(strategy, **overrides), RunFolder(tmp_path)
    spec, table = tune(prepare(frame, cfg), cfg, run)
    assert len(table) >= (3 if strategy != "hyperband" else 2)
    assert set(table["status"]) <= {"COMPLETED", "PRUNED"} and (table["status"] == "COMPLETED").any()
    best = read_best(run)
    completed = table[table["status"] == "COMPLETED"]
    assert best["val_loss"] == pytest.approx(completed["val_loss"].min())
    assert best["strategy"] == strategy and best["trial"] == completed["val_loss"].idxmin()
    assert spec.units in (8, 16) and spec.optimizer in ("adam", "rmsprop") and spec.batch_size == 64
    assert 1e-3 <= spec.learning_rate <= 1e-2 and spec.lookback == 6
    assert read_trials(run)["val_loss"].tolist() == pytest.approx(table["val_loss"].tolist(), nan_ok=True)
    assert spec_for_run(run, cfg) == (spec, "tuning")  # the training stage picks the tuned hyperparameters up
    if strategy == "hyperband":
        assert table["budget_epochs"].max() == cfg.tuning.epochs
    if strategy == "grid":  # grid order: the first trials step through the last declared parameter
        assert sorted(table["learning_rate"].unique()) == [0.001, 0.01]


# ---------------------------------------------------------------- architecture searches (conditional spaces)

CONDITIONAL = {"architecture": ["gru", "cnn_lstm"], "layers": 1, "units": [4, 8], "dropout": 0.0, "learning_rate": 0.01,
               "optimizer": "adam", "batch_size": 64, "normalization": "last",
               "cnn_lstm.filters": [4, 8], "cnn_lstm.kernel_size": [2, 3]}


def fake_trials(monkeypatch, favour: str | None = None) -> list[dict]:
    """Replace training by a deterministic score of the values (no network trained; the `favour`ed architecture
    scores best); returns the values each trial got."""
    from lstmkit.tuning import objective
    from lstmkit.tuning.objective import TrialResult

    calls = []

    def fake(values, prepared, cfg, epochs, report=None):
        calls.append(dict(values))
        loss = 0.5 + 0.01 * (values.get("units", 0) + values.get("cnn_lstm.filters", 0) + values.get("cnn_lstm.kernel_size", 0))
        loss -= 0.3 * (values.get("architecture") == favour)
        if report is not None:
            report(0, loss)
        return TrialResult([loss], [1], 0.0)

    monkeypatch.setattr(objective, "train_trial", fake)
    return calls


@pytest.mark.parametrize("strategy", ["random", "grid", "bayesian", "hyperband", "optuna"])
def test_each_strategy_samples_an_architectures_settings_only_in_its_trials(strategy, frame, tmp_path, monkeypatch):
    calls = fake_trials(monkeypatch)
    space = CONDITIONAL if strategy == "grid" else {**CONDITIONAL, "units": {"min": 4, "max": 64, "step": 1}}
    cfg = tiny_config(strategy, **{"tuning.space": space, "tuning.max_trials": 12, "tuning.epochs": 3})
    _, table = tune(prepare(frame, cfg), cfg, RunFolder(tmp_path))
    options = ["cnn_lstm.filters", "cnn_lstm.kernel_size"]
    hyperparameters = ["architecture", "units", *options]
    assert calls and {c["architecture"] for c in calls} == {"gru", "cnn_lstm"}
    for values in calls:  # what each trial was trained with
        named = {k for k in values if k.startswith("cnn_lstm.")}
        assert named == (set(options) if values["architecture"] == "cnn_lstm" else set())
    gru = table["architecture"] == "gru"
    assert table.loc[gru, options].isna().all().all() and table.loc[~gru, options].notna().all().all()
    points = table[hyperparameters].astype(str).apply(tuple, axis=1)
    if strategy == "grid":  # the product over the active parameters only: 2 + 2 x 2 x 2 points, none repeated
        assert len(table) == search_space(cfg).grid_size() == 10 and points.is_unique
    elif strategy != "hyperband":  # (hyperband trains some configurations again with a larger budget)
        assert len(table) == 12
    best = read_best(RunFolder(tmp_path))
    winner = table.loc[best["trial"]]
    assert best["architecture"] == winner["architecture"]
    assert bool([k for k in best if k.startswith("cnn_lstm.")]) == (winner["architecture"] == "cnn_lstm")


def test_the_best_architecture_and_its_settings_round_trip_into_the_training_stage(frame, tmp_path, monkeypatch):
    fake_trials(monkeypatch, favour="cnn_lstm")
    space = {**CONDITIONAL, "architecture": ["cnn_lstm", "gru"], "units": [8]}  # cnn_lstm with 4 filters, kernel 2 wins
    cfg = tiny_config("grid", **{"tuning.space": space, "tuning.max_trials": 6, "model.cnn_lstm.conv_layers": 1})
    spec, table = tune(prepare(frame, cfg), cfg, RunFolder(tmp_path))
    best = json.loads(RunFolder(tmp_path).best_hyperparameters_file.read_text())
    assert {k: best[k] for k in ("architecture", "cnn_lstm.filters", "cnn_lstm.kernel_size", "cnn_lstm.conv_layers",
                                 "units")} == {"architecture": "cnn_lstm", "cnn_lstm.filters": 4,
                                               "cnn_lstm.kernel_size": 2, "cnn_lstm.conv_layers": 1, "units": 8}
    assert type(best["cnn_lstm.filters"]) is int  # not 4.0 from a column with the gru trials' NaN
    assert spec.options == {"filters": 4, "kernel_size": 2, "conv_layers": 1}
    assert spec_for_run(RunFolder(tmp_path), cfg, "cnn_lstm") == (spec, "tuning")
    other = spec_for_run(RunFolder(tmp_path), cfg, "gru")  # another architecture trains with its config settings
    assert other[1] == "config" and other[0].architecture == "gru"


@pytest.mark.parametrize("strategy", ["bayesian", "optuna"])
def test_a_fixed_architectures_own_settings_are_searched_in_every_trial(strategy, frame, tmp_path, monkeypatch):
    calls = fake_trials(monkeypatch)
    space = {k: v for k, v in CONDITIONAL.items() if k != "architecture"}
    cfg = tiny_config(strategy, **{"tuning.space": space, "model.architecture": "cnn_lstm", "tuning.max_trials": 4})
    spec, table = tune(prepare(frame, cfg), cfg, RunFolder(tmp_path))
    assert len(calls) == 4 and all({"cnn_lstm.filters", "cnn_lstm.kernel_size"} <= set(c) for c in calls)
    assert (table["architecture"] == "cnn_lstm").all() and table["cnn_lstm.filters"].notna().all()
    assert spec.architecture == "cnn_lstm" and spec.options["filters"] in (4, 8)
    assert spec_for_run(RunFolder(tmp_path), cfg) == (spec, "tuning")  # model.architecture: the default


def test_a_real_search_over_lstm_and_gru_builds_each_trials_network(frame, tmp_path, monkeypatch):
    from lstmkit.tuning import objective

    built, real = [], objective.build_network
    monkeypatch.setattr(objective, "build_network", lambda spec, *a, **k: built.append(real(spec, *a, **k)) or built[-1])
    cfg = tiny_config("grid", **{"tuning.space": {"architecture": ["lstm", "gru"], "layers": 1, "units": 4,
                                                  "dropout": 0.0, "learning_rate": 0.01, "optimizer": "adam",
                                                  "batch_size": 64, "normalization": "last"},
                                 "tuning.epochs": 1, "window.lookback": 6})
    spec, table = tune(prepare(frame, cfg), cfg, RunFolder(tmp_path))
    assert table["architecture"].tolist() == ["lstm", "gru"] and np.isfinite(table["val_loss"]).all()
    assert [m.name for m in built] == ["lstm_forecaster", "gru_forecaster"]
    assert spec.architecture == table.loc[table["val_loss"].idxmin(), "architecture"]
    assert spec_for_run(RunFolder(tmp_path), cfg, spec.architecture) == (spec, "tuning")


def _legacy_fingerprint(cfg) -> str:
    """The search fingerprint as computed before architectures could be searched (the whole `model` section was
    then the seven common settings)."""
    import hashlib

    values = cfg.to_dict()
    relevant = {k: values[k] for k in ("seed", "data", "split", "scaling", "window")}
    relevant["model"] = {k: values["model"][k] for k in ("layers", "units", "dropout", "learning_rate", "optimizer",
                                                         "batch_size", "normalization")}
    later = ("ray_address", "gpus_per_trial", "perturbation_interval")  # keys that came with the Ray strategies
    relevant["tuning"] = {k: v for k, v in values["tuning"].items()
                          if k not in ("max_trials", "max_minutes", "workers", *later)}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:10]


def test_the_fingerprint_follows_the_architecture_space_and_nothing_else():
    base = tiny_config("random")
    assert search_fingerprint(base) == _legacy_fingerprint(base)  # LSTM-only run folders still resume
    same = [tiny_config("random", **{"model.tcn.filters": 8}), tiny_config("random", **{"compare.architectures": ["gru"]}),
            tiny_config("random", **{"tuning.space.architecture": "lstm"})]
    assert all(search_fingerprint(c) == search_fingerprint(base) for c in same[:2])
    searched = tiny_config("random", **{"tuning.space.architecture": ["lstm", "tcn"]})
    different = [tiny_config("random", **{"tuning.space.architecture": ["lstm", "gru"]}), searched,
                 tiny_config("random", **{"model.architecture": "gru"}),
                 tiny_config("random", **{"tuning.space.architecture": ["lstm", "tcn"], "model.tcn.filters": 8}),
                 tiny_config("random", **{"tuning.space.architecture": ["lstm", "tcn"], "tuning.space.tcn.kernel_size": [2, 3]})]
    prints = [search_fingerprint(c) for c in [base, *different]]
    assert len(set(prints)) == len(prints)
    # settings the searched architectures never read leave the search alone
    assert search_fingerprint(tiny_config("random", **{"tuning.space.architecture": ["lstm", "tcn"],
                                                       "model.nbeats.width": 64, "model.architecture": "gru"})) \
        == search_fingerprint(searched)


def test_a_changed_architecture_space_starts_a_new_search(frame, tmp_path, monkeypatch):
    fake_trials(monkeypatch)
    run = RunFolder(tmp_path)
    gru_only = tiny_config("random", **{"tuning.space": {**CONDITIONAL, "architecture": "gru"} | {
        "cnn_lstm.filters": None, "cnn_lstm.kernel_size": None}, "tuning.max_trials": 2})
    _, first = tune(prepare(frame, gru_only), gru_only, run)
    both = tiny_config("random", **{"tuning.space": CONDITIONAL, "tuning.max_trials": 3})
    _, second = tune(prepare(frame, both), both, run)
    assert project_name(both) != project_name(gru_only)
    assert len(first) == 2 and len(second) == 3  # not the 2 earlier trials extended by one
    assert sorted(p.name for p in run.tuning_dir.iterdir() if p.name.startswith("search-")) == sorted(
        [project_name(gru_only), project_name(both)])
    _, again = tune(prepare(frame, both), both, run)  # the same space again: resumed, nothing new
    pd.testing.assert_frame_equal(again, second)


def test_optuna_reports_every_epoch_to_its_pruner(frame, tmp_path):
    cfg, run = tiny_config("optuna", **{"tuning.max_trials": 4, "tuning.epochs": 3}), RunFolder(tmp_path)
    tune(prepare(frame, cfg), cfg, run)
    study = _study(run, cfg)
    assert len(study.trials) == 4
    for t in study.trials:
        steps = sorted(t.intermediate_values)
        assert steps == list(range(len(steps))) and len(steps) >= 1
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value == pytest.approx(min(t.intermediate_values.values()))


def test_the_same_seed_gives_the_same_trials_and_best(frame, tmp_path):
    cfg = tiny_config("random")
    _, first = tune(prepare(frame, cfg), cfg, RunFolder(tmp_path / "a"))
    _, second = tune(prepare(frame, cfg), cfg, RunFolder(tmp_path / "b"))
    pd.testing.assert_frame_equal(comparable(first), comparable(second))
    assert read_best(RunFolder(tmp_path / "a")) == read_best(RunFolder(tmp_path / "b"))
    other = tiny_config("random", seed=4)
    _, third = tune(prepare(frame, other), other, RunFolder(tmp_path / "c"))
    assert not comparable(third).equals(comparable(first))


def test_rerun_resumes_and_a_larger_budget_extends_the_search(frame, tmp_path):
    cfg, run = tiny_config("random"), RunFolder(tmp_path)
    _, first = tune(prepare(frame, cfg), cfg, run)
    stamps = {p: p.stat().st_mtime_ns for p in run.tuning_dir.rglob("trial.json")}
    _, again = tune(prepare(frame, cfg), cfg, run)
    pd.testing.assert_frame_equal(again, first)
    assert {p: p.stat().st_mtime_ns for p in run.tuning_dir.rglob("trial.json")} == stamps  # nothing re-ran
    more = tiny_config("random", **{"tuning.max_trials": 5})
    assert search_fingerprint(more) == search_fingerprint(cfg)
    assert search_fingerprint(tiny_config("random", **{"tuning.space.units.max": 24})) != search_fingerprint(cfg)
    _, extended = tune(prepare(frame, more), more, run)
    assert len(extended) == 5
    pd.testing.assert_frame_equal(extended.iloc[:3], first)


def test_time_budget_stops_starting_trials_but_always_runs_one(frame, tmp_path):
    cfg = tiny_config("random", **{"tuning.max_minutes": 1e-4, "tuning.max_trials": 5})
    _, table = tune(prepare(frame, cfg), cfg, RunFolder(tmp_path))
    assert len(table) == 1 and table["status"].tolist() == ["COMPLETED"]
    cfg = tiny_config("optuna", **{"tuning.max_minutes": 1e-4, "tuning.max_trials": 5})
    _, table = tune(prepare(frame, cfg), cfg, RunFolder(tmp_path / "optuna"))
    assert len(table) == 1


def test_walk_forward_folds_expand_refit_the_scaler_and_end_at_the_run_split(frame):
    cfg = tiny_config()
    prepared = prepare(frame, cfg)
    folds = cv_folds(prepared, 3)
    val_rows = prepared.bounds.val[1] - prepared.bounds.val[0]
    assert [f.bounds.val for f in folds] == [(prepared.bounds.val[0] - 2 * val_rows, prepared.bounds.val[0] - val_rows),
                                             (prepared.bounds.val[0] - val_rows, prepared.bounds.val[0]),
                                             prepared.bounds.val]
    for f in folds:
        assert f.bounds.train == (0, f.bounds.val[0]) and f.n_windows("test") == 0
        train_rows = prepared.original[: f.bounds.train[1]]
        np.testing.assert_allclose(f.scaler.mean_, train_rows.astype(np.float64).mean(axis=0), rtol=1e-5)  # fold's training rows only (float32 series)
        assert f.origins("val")[0] == f.bounds.val[0] - 1  # first validation window: inputs before, targets inside
    np.testing.assert_allclose(folds[-1].scaled, prepared.scaled, rtol=1e-6)
    with pytest.raises(ConfigError, match="tuning.cv_folds: 9 folds"):
        cv_folds(prepared, 9)


def test_cross_validated_objective_is_the_mean_over_folds(frame):
    cfg, cv = tiny_config(), tiny_config(**{"tuning.cv_folds": 3})
    values = {"layers": 1, "units": 8, "dropout": 0.0, "learning_rate": 0.01, "optimizer": "adam"}
    single = train_trial(values, prepare(frame, cfg), cfg, epochs=2)
    folded = train_trial(values, prepare(frame, cv), cv, epochs=2)
    metrics = folded.metrics()
    assert [metrics[f"fold_{i}"] for i in (1, 2, 3)] == folded.fold_losses
    assert folded.val_loss == pytest.approx(np.mean(folded.fold_losses))
    assert folded.fold_losses[-1] == pytest.approx(single.val_loss, rel=1e-5)  # the last fold is the run's split
    assert len(set(np.round(folded.fold_losses, 6))) == 3


def test_tuned_lookback_reaches_the_trials_and_the_training_stage(frame, tmp_path):
    cfg = tiny_config("grid", **{"tuning.space": {"layers": 1, "units": 8, "dropout": 0.0, "learning_rate": 0.01,
                                                  "optimizer": "adam", "batch_size": 64, "lookback": [6, 12]}})
    run = RunFolder(tmp_path)
    spec, table = tune(prepare(frame, cfg), cfg, run)
    assert sorted(table["lookback"]) == [6, 12] and len(set(table["val_loss"])) == 2
    assert spec.lookback == table.loc[table["val_loss"].idxmin(), "lookback"]
    assert spec_for_run(run, cfg)[0].lookback == spec.lookback
    too_long = tiny_config(**{"tuning.space.lookback": [6, 400]})
    with pytest.raises(ConfigError, match="tuning.space.lookback: a look-back of 400"):
        tune(prepare(frame, too_long), too_long, RunFolder(tmp_path / "long"))


def test_an_interrupted_state_write_leaves_every_file_whole_and_the_search_resumes(frame, tmp_path, monkeypatch):
    import lstmkit.core.atomic as atomic

    cfg = tiny_config("random")
    _, reference = tune(prepare(frame, cfg), cfg, RunFolder(tmp_path / "reference"))
    run, real_fsync, calls = RunFolder(tmp_path / "run"), os.fsync, []

    def interrupted_fsync(fd):  # the 6th state write dies between writing and renaming
        calls.append(fd)
        if len(calls) == 6:
            raise KeyboardInterrupt
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        tune(prepare(frame, cfg), cfg, run)
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    for path in run.tuning_dir.rglob("*.json"):
        json.loads(path.read_text())  # whole, never truncated
    assert not list(run.tuning_dir.rglob("*.tmp"))
    _, resumed = tune(prepare(frame, cfg), cfg, run)
    pd.testing.assert_frame_equal(comparable(resumed), comparable(reference))


def _trial_states(run: RunFolder) -> dict[int, str]:
    """Status of every Keras Tuner trial file on disk (tolerating a file being replaced while read)."""
    states = {}
    for path in run.tuning_dir.rglob("trial.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        states[int(state["trial_id"])] = state["status"]
    return states


def _study(run: RunFolder, cfg) -> optuna.Study:
    """The Optuna study of a run's search, loaded from its database."""
    return optuna.load_study(study_name=project_name(cfg), storage=f"sqlite:///{run.tuning_dir / (project_name(cfg) + '.db')}")


def _optuna_states(run: RunFolder, cfg) -> dict[int, str]:
    """State of every Optuna trial, read straight from the study's SQLite file (RUNNING once it reported an epoch)."""
    import sqlite3

    db = run.tuning_dir / (project_name(cfg) + ".db")
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as con:
            rows = con.execute("SELECT t.number, t.state, COUNT(v.step) FROM trials t LEFT JOIN "
                               "trial_intermediate_values v ON v.trial_id = t.trial_id GROUP BY t.trial_id").fetchall()
    except sqlite3.Error:
        return {}
    return {n: "STARTING" if state == "RUNNING" and not steps else state for n, state, steps in rows}


@pytest.mark.parametrize("strategy", ["random", "optuna"])
def test_a_search_killed_mid_trial_resumes_without_redoing_finished_trials(strategy, frame, tmp_path):
    cfg = tiny_config(strategy, **{"tuning.max_trials": 4, "tuning.epochs": 4, "tuning.patience": 4})
    tune(prepare(frame, cfg), cfg, RunFolder(tmp_path / "reference"))
    run = run_folder(tmp_path / "run", cfg, frame)
    states = (lambda: _trial_states(run)) if strategy == "random" else (lambda: _optuna_states(run, cfg))
    running = "RUNNING"
    proc = subprocess.Popen([sys.executable, "-m", "lstmkit.cli", "tune", "--run-dir", str(run.root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (states().get(2) == running and states().get(1) not in (None, running)):  # trial 2 under way
        assert proc.poll() is None and time.monotonic() < deadline, "the search ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {k: v for k, v in states().items() if v != running}
    assert len(finished) == 2 and states()[2] == running
    stamps = {p: p.stat().st_mtime_ns for p in run.tuning_dir.rglob("trial.json") if json.loads(p.read_text())["status"] != running}
    completed_at = [t.datetime_complete for t in _study(run, cfg).trials[:2]] if strategy == "optuna" else None

    assert main(["tune", "--run-dir", str(run.root)]) == 0
    resumed = read_trials(run)
    assert len(resumed) == 4 and (resumed["status"].isin(["COMPLETED", "PRUNED"])).all()
    if strategy == "random":  # the killed trial reran with its own hyperparameters: the same search, the same best
        assert len(stamps) == 2 and {p: p.stat().st_mtime_ns for p in stamps} == stamps
        pd.testing.assert_frame_equal(comparable(resumed), comparable(read_trials(RunFolder(tmp_path / "reference"))),
                                      check_exact=False, rtol=1e-5)
        assert read_best(run)["trial"] == read_best(RunFolder(tmp_path / "reference"))["trial"]
    else:  # Optuna: the interrupted trial is marked failed and its parameters rerun as a new trial
        db = _optuna_states(run, cfg)
        assert db[2] == "FAIL" and sum(s in ("COMPLETE", "PRUNED") for s in db.values()) == 4
        assert 2 not in resumed.index
        study = _study(run, cfg)
        retry = [t for t in study.trials if t.user_attrs.get("retry_of") == 2]
        assert len(retry) == 1 and retry[0].params == study.trials[2].params and retry[0].number in resumed.index
        assert [t.datetime_complete for t in study.trials[:2]] == completed_at  # finished trials were not redone


def test_distributed_chief_and_two_workers_finish_the_search(frame, tmp_path):
    cfg = tiny_config("random", **{"tuning.max_trials": 4, "tuning.workers": 2})
    single = tiny_config("random", **{"tuning.max_trials": 4})
    tune(prepare(frame, single), single, RunFolder(tmp_path / "single"))
    run = run_folder(tmp_path / "run", cfg, frame)
    t0 = time.monotonic()
    spec, table = tune(prepare(frame, cfg), cfg, run)
    assert time.monotonic() - t0 < 120  # the chief ends with the search (no hang)
    assert len(table) == 4 and (table["status"] == "COMPLETED").all()
    # the oracle lives in the chief: the same seed proposes the same trials, whichever worker ran them
    pd.testing.assert_frame_equal(comparable(table), comparable(read_trials(RunFolder(tmp_path / "single"))),
                                  check_exact=False, rtol=1e-5)
    logs = run.tuning_dir / "logs"
    assert {p.name for p in logs.iterdir()} == {"chief.log", "tuner0.log", "tuner1.log"}
    assert "of a distributed search" in (logs / "tuner0.log").read_text()
    assert spec_for_run(run, cfg)[0] == spec


def test_a_distributed_search_over_architectures_runs_each_trials_network_in_the_workers(frame, tmp_path):
    space = {"architecture": ["lstm", "gru"], "layers": 1, "units": 4, "dropout": 0.0, "learning_rate": 0.01,
             "optimizer": "adam", "batch_size": 64, "normalization": "last"}
    cfg = tiny_config("grid", **{"tuning.space": space, "tuning.workers": 2, "tuning.epochs": 1})
    run = run_folder(tmp_path / "run", cfg, frame)
    spec, table = tune(prepare(frame, cfg), cfg, run)
    assert sorted(table["architecture"]) == ["gru", "lstm"] and (table["status"] == "COMPLETED").all()
    assert spec.architecture == table.loc[table["val_loss"].idxmin(), "architecture"]
    assert read_best(run)["architecture"] == spec.architecture
    assert spec_for_run(run, cfg, spec.architecture) == (spec, "tuning")


def _worker_pid(run: RunFolder, tuner_id: str) -> int | None:
    """PID of the local worker process with this Keras Tuner id (Linux /proc)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd, env = (proc / "cmdline").read_bytes(), (proc / "environ").read_bytes()
        except OSError:
            continue
        if str(run.root).encode() in cmd and f"KERASTUNER_TUNER_ID={tuner_id}".encode() in env.split(b"\0"):
            return int(proc.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the worker through /proc")
def test_a_worker_that_dies_mid_trial_is_restarted_and_the_search_completes(frame, tmp_path):
    import threading

    cfg = tiny_config("random", **{"tuning.max_trials": 4, "tuning.workers": 1, "tuning.epochs": 4, "tuning.patience": 4})
    run = run_folder(tmp_path / "run", cfg, frame)
    killed = []

    def kill_worker_mid_trial():
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not killed:
            if _trial_states(run).get(1) == "RUNNING" and (pid := _worker_pid(run, "tuner0")):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_worker_mid_trial)
    watcher.start()
    _, table = tune(prepare(frame, cfg), cfg, run)
    watcher.join()
    assert killed, "the worker was never caught mid-trial"
    assert len(table) == 4 and (table["status"] == "COMPLETED").all()
    assert (run.tuning_dir / "logs" / "tuner0.log").read_text().count("of a distributed search") == 2


def test_tune_command_needs_the_earlier_stages(tmp_path, capsys):
    run = start_run(tmp_path, tiny_config())
    assert main(["tune", "--run-dir", str(run.root)]) == 2
    assert "series.parquet is missing: run the data (01_data) stage" in capsys.readouterr().err


def test_workers_need_the_run_folder_to_hold_the_tuned_config(frame, tmp_path):
    cfg = tiny_config("random", **{"tuning.workers": 2})
    run = run_folder(tmp_path, tiny_config("random", **{"tuning.epochs": 3}), frame)
    with pytest.raises(ConfigError, match="differs from the configuration being tuned"):
        tune(prepare(frame, cfg), cfg, run)
    assert not (run.tuning_dir / "logs").exists()  # refused before any process started


# random: the quick profile's own strategy, run end to end in tests/cli/test_e2e.py; grid shares random's objective
@pytest.mark.parametrize("strategy", ["bayesian", "hyperband", "optuna"])
def test_each_strategy_runs_in_the_quick_profile(strategy, tmp_path):
    from lstmkit.config import load_config
    from lstmkit.data.series import load_series
    from lstmkit.runs.notebooks import project_root

    overrides = {"tuning.strategy": strategy} | ({"tuning.space.learning_rate": [0.001, 0.01]} if strategy == "grid" else {})
    cfg = load_config(project_root() / "configs" / "quick.yaml", overrides)
    spec, table = tune(prepare(load_series(cfg).frame, cfg), cfg, RunFolder(tmp_path))
    completed = table[table["status"] == "COMPLETED"]
    assert len(completed) >= 2 and np.isfinite(completed["val_loss"]).all()
    assert read_best(RunFolder(tmp_path))["val_loss"] == pytest.approx(completed["val_loss"].min())
    assert spec.units == 32 and spec.layers in (1, 2) and spec.lookback == cfg.window.lookback
    assert {"fold_1", "fold_2"} <= set(table.columns)  # the quick profile cross-validates over 2 folds
