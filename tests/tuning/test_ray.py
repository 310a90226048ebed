"""Ray Tune strategies (lstmkit.tuning.backends.ray): seeded initial configurations, PBT's mutations and clipping, the results
log, configuration errors, the winner's schedule, and one small in-process PBT search end to end (table, lineage,
schedule, resume)."""

from __future__ import annotations

import json
import math
import pickle
import re

import numpy as np
import pandas as pd
import pyarrow.fs
import pytest

from lstmkit.config import ConfigError
from lstmkit.core.errors import TuningError
from lstmkit.data.synthetic import make_synthetic
from lstmkit.data.windows import prepare
from lstmkit.models.neural.forecaster import check_schedule
from lstmkit.runs.folder import RunFolder
from lstmkit.stages.checks import checked
from lstmkit.tuning.backends.ray import (
    LINEAGE_COLUMNS,
    _digests,
    _resume_from,
    experiment_dir,
    explore,
    initial_configs,
    mutations,
    read_results,
    results_log,
    trial_number,
    whole_file_storage,
)
from lstmkit.tuning.results import best_schedule, read_best, read_trials
from lstmkit.tuning.search import tune
from lstmkit.tuning.space import MUTABLE, Param, search_space

# every kind of parameter: an int range with a step, an int log range, a float range with a step, a float log range,
# numeric and text choices
SPACE = {"layers": {"min": 1, "max": 3}, "units": {"min": 8, "max": 64, "log": True},
         "dropout": {"min": 0.0, "max": 0.4, "step": 0.1}, "learning_rate": {"min": 1e-4, "max": 1e-2, "log": True},
         "batch_size": {"min": 16, "max": 128, "step": 16}, "optimizer": ["adam", "rmsprop"],
         "normalization": ["last", "revin"]}


def ray_config(space: dict | None = None, **overrides):
    """A pbt configuration over `space` (SPACE by default) with the Ray strategies' single fold."""
    values = {"tuning": {"strategy": "pbt", "cv_folds": 1, "max_trials": 4, "space": SPACE if space is None else space}}
    return checked(values, overrides)


def in_range(p: Param, v) -> bool:
    """Whether `v` is a value `p` can take: one of its choices, or inside its range, of its type and on its step."""
    if not p.is_range:
        return v in p.choices
    if not isinstance(v, p.type) or isinstance(v, bool) or not p.min <= v <= p.max:
        return False
    return p.step is None or math.isclose((v - p.min) / p.step, round((v - p.min) / p.step), abs_tol=1e-9)


# ---------------------------------------------------------------- initial configurations


def test_initial_configs_repeat_for_a_seed_and_differ_for_another():
    space = search_space(ray_config())
    first, again, other = (initial_configs(space, 6, seed) for seed in (11, 11, 12))
    assert first == again
    assert first != other
    assert len(first) == 6 and all(set(c) == set(space.names) for c in first)


def test_initial_configs_respect_each_params_range_step_scale_and_choices():
    space = search_space(ray_config())
    configs = initial_configs(space, 200, 3)
    for p in space.params:
        values = [c[p.name] for c in configs]
        bad = [v for v in values if not in_range(p, v)]
        assert not bad, f"{p.name} ({p.describe()}): {bad[:5]}"
        assert len(set(values)) > 1, f"{p.name} never varies in 200 draws"
    # log scales: the geometric middle splits the draws about in half (a linear draw would put ~90% above it)
    for name, (lo, hi) in {"learning_rate": (1e-4, 1e-2), "units": (8, 64)}.items():
        below = np.mean([c[name] < math.sqrt(lo * hi) for c in configs])
        assert 0.3 < below < 0.7, f"{name}: {below:.0%} of the draws below the geometric middle"
    assert {c["optimizer"] for c in configs} == {"adam", "rmsprop"}


def test_initial_configs_sample_an_architectures_settings_only_in_its_trials():
    cfg = ray_config({**SPACE, "architecture": ["lstm", "tcn"], "tcn.kernel_size": [2, 3]})
    configs = initial_configs(search_space(cfg), 40, 5)
    lstm = [c for c in configs if c["architecture"] == "lstm"]
    tcn = [c for c in configs if c["architecture"] == "tcn"]
    assert lstm and tcn
    assert all(c["tcn.kernel_size"] is None for c in lstm)
    assert all(c["tcn.kernel_size"] in (2, 3) for c in tcn)
    assert {c["tcn.kernel_size"] for c in tcn} == {2, 3}


# ---------------------------------------------------------------- PBT's mutations and explore step


def test_mutations_hold_only_the_tuned_ones_of_learning_rate_dropout_and_batch_size():
    space = search_space(ray_config())
    assert set(mutations(space)) == set(MUTABLE)
    assert mutations(space)["dropout"] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    fixed_dropout = search_space(ray_config({**SPACE, "dropout": 0.2, "batch_size": [32, 64]}))
    assert set(mutations(fixed_dropout)) == {"learning_rate", "batch_size"}
    assert mutations(fixed_dropout)["batch_size"] == [32, 64]  # choices: neighbours in the list


@pytest.mark.parametrize("given,expected", [
    ({"learning_rate": 0.5, "dropout": 0.9, "batch_size": 1000}, {"learning_rate": 1e-2, "dropout": 0.4, "batch_size": 128}),
    ({"learning_rate": 1e-7, "dropout": -0.3, "batch_size": 3}, {"learning_rate": 1e-4, "dropout": 0.0, "batch_size": 16}),
    ({"learning_rate": 2e-3, "dropout": 0.27, "batch_size": 77.6}, {"learning_rate": 2e-3, "dropout": 0.3, "batch_size": 80}),
    ({"learning_rate": 2e-3, "dropout": 0.12, "batch_size": 38.4}, {"learning_rate": 2e-3, "dropout": 0.1, "batch_size": 32}),
])
def test_explore_clips_a_perturbed_value_into_its_range_onto_its_step_in_its_type(given, expected):
    space = search_space(ray_config())
    out = explore(space)({**given, "units": 99, "optimizer": "adam"})
    assert out["learning_rate"] == pytest.approx(expected["learning_rate"])
    assert out["dropout"] == pytest.approx(expected["dropout"]) and out["dropout"] == round(out["dropout"], 10)
    assert out["batch_size"] == expected["batch_size"] and type(out["batch_size"]) is int
    assert out["units"] == 99 and out["optimizer"] == "adam"  # PBT never perturbs a shape or the optimizer


def test_explore_leaves_choices_and_inactive_values_alone():
    space = search_space(ray_config({**SPACE, "batch_size": [32, 64]}))
    out = explore(space)({"learning_rate": None, "dropout": 0.2, "batch_size": 64})
    assert out == {"learning_rate": None, "dropout": 0.2, "batch_size": 64}


# ---------------------------------------------------------------- the results log


def record(trial: int, epoch: int, val_loss: float) -> dict:
    """One line of the driver's results log, as `_results_callback` writes it."""
    return {"trial": trial, "val_loss": val_loss, "epoch": epoch, "learning_rate": 1e-3, "dropout": 0.1, "batch_size": 32,
            "architecture": "lstm", "copied_from": -1, "seconds": float(epoch), "node": "n",
            "schedule": json.dumps([{"epochs": epoch, "learning_rate": 1e-3, "dropout": 0.1, "batch_size": 32,
                                     "trial": trial}]), "time_total_s": float(epoch)}


def test_read_results_skips_a_line_cut_short_and_keeps_the_last_report_of_an_epoch(tmp_path):
    log = tmp_path / "search.results.jsonl"
    lines = [record(1, 1, 0.9), record(0, 1, 0.8), record(0, 2, 0.7), record(0, 2, 0.6),  # epoch 2 run again
             record(1, 2, 0.5)]
    text = "\n".join(json.dumps(r) for r in lines) + "\n"
    log.write_text(text + json.dumps(record(1, 3, 0.4))[:37])  # the kill cut the last line short
    table = read_results(log)
    assert list(zip(table["trial"], table["epoch"], strict=True)) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert table["val_loss"].tolist() == [0.8, 0.6, 0.9, 0.5]
    assert set(LINEAGE_COLUMNS) <= set(table.columns)


def test_read_results_of_a_search_that_logged_nothing_is_empty(tmp_path):
    table = read_results(tmp_path / "missing.results.jsonl")
    assert table.empty and set(LINEAGE_COLUMNS) <= set(table.columns)


def test_rays_storage_shows_a_file_being_written_as_its_old_version_until_it_is_whole(tmp_path):
    storage = pickle.loads(pickle.dumps(whole_file_storage()))  # as Ray's trial workers receive it
    state = tmp_path / "experiment" / "experiment_state-1.json"
    state.parent.mkdir()
    state.write_text('{"old": 1}')
    with storage.open_output_stream(str(state)) as f:
        f.write(b'{"new"')
        assert state.read_text() == '{"old": 1}'  # a kill now leaves the old state whole
        f.write(b': 2}')
    assert state.read_text() == '{"new": 2}'
    assert [p.name for p in state.parent.iterdir()] == [state.name]  # no temporary file left


@pytest.mark.parametrize("copied", ["", '{"trial_data": [["{\\"trainable_name'], ids=["empty", "cut short"])
def test_rays_storage_keeps_the_last_whole_experiment_state_when_a_copy_is_not(tmp_path, copied):
    """Ray rewrites its staged experiment state in place while a background copy of it may be reading it: a copy that
    is empty or cut short must not replace the storage's last whole state (the resume after a kill read it empty)."""
    staging, experiment = tmp_path / "staging", tmp_path / "experiment"
    staging.mkdir()
    experiment.mkdir()
    (experiment / "experiment_state-1.json").write_text('{"trial_data": []}')
    (experiment / "trial").mkdir()
    (experiment / "trial" / "result.json").write_text("{}\n")
    (staging / "experiment_state-1.json").write_text(copied)
    (staging / "trial").mkdir()
    (staging / "trial" / "result.json").write_text('{"epoch": 1}\n{"epo')  # not the state: written as it is
    pyarrow.fs.copy_files(str(staging), str(experiment), destination_filesystem=whole_file_storage())
    assert (experiment / "experiment_state-1.json").read_text() == '{"trial_data": []}'
    assert (experiment / "trial" / "result.json").read_text() == '{"epoch": 1}\n{"epo'
    (staging / "experiment_state-1.json").write_text('{"trial_data": [1]}')
    pyarrow.fs.copy_files(str(staging), str(experiment), destination_filesystem=whole_file_storage())
    assert (experiment / "experiment_state-1.json").read_text() == '{"trial_data": [1]}'
    assert sorted(p.name for p in experiment.iterdir()) == ["experiment_state-1.json", "trial"]  # no temporary left


def test_a_saved_ray_search_that_cannot_be_read_is_an_error_naming_its_folder(tmp_path, frame):
    cfg = checked(TINY)
    run = RunFolder(tmp_path / "run")
    state = experiment_dir(cfg, run) / "experiment_state-1.json"
    state.parent.mkdir(parents=True)
    state.write_text("")  # a state from before the storage kept whole files only
    with pytest.raises(TuningError, match=f"saved Ray search in {re.escape(str(state.parent))} cannot be read.*delete that folder"):
        tune(prepare(frame, cfg), cfg, run)


@pytest.mark.parametrize("trial_id,number", [("a1b2c_00000", 0), ("a1b2c_00003", 3), ("train_ray_trial_5e6f7_00012", 12)])
def test_trial_number_is_the_counter_at_the_end_of_rays_trial_id(trial_id, number):
    assert trial_number(trial_id) == number


# ---------------------------------------------------------------- configuration errors


@pytest.mark.parametrize("values,key,says", [
    ({"tuning": {"strategy": "pbt", "cv_folds": 2}}, "tuning.cv_folds", "set tuning.cv_folds to 1 (got 2)"),
    ({"tuning": {"strategy": "asha", "cv_folds": 2}}, "tuning.cv_folds", "set tuning.cv_folds to 1 (got 2)"),
    ({"tuning": {"strategy": "pbt", "max_trials": 1}}, "tuning.max_trials", "at least 2 trials, got 1"),
    ({"tuning": {"strategy": "pbt", "space": {"learning_rate": 1e-3, "dropout": None, "batch_size": [64]}}},
     "tuning.space", "learning_rate, dropout and batch_size"),
    ({"tuning": {"strategy": "pbt", "perturbation_interval": 0}}, "tuning.perturbation_interval", "at least 1 epoch, got 0"),
])
def test_ray_settings_that_cannot_work_are_config_errors_naming_the_key(values, key, says):
    with pytest.raises(ConfigError) as err:
        checked(values)
    message = str(err.value)
    assert message.startswith(f"{key}:") and says in message


def test_asha_needs_no_mutable_parameter_and_one_pbt_mutable_is_enough():
    checked({"tuning": {"strategy": "asha", "cv_folds": 1, "space": {"learning_rate": 1e-3, "dropout": None,
                                                                     "batch_size": [64]}}})
    cfg = checked({"tuning": {"strategy": "pbt", "cv_folds": 1, "space": {"learning_rate": 1e-3, "dropout": None}}})
    assert [p.name for p in search_space(cfg).mutable()] == ["batch_size"]


# ---------------------------------------------------------------- the winner's schedule


def test_best_schedule_is_the_winners_segments_and_ancestry():
    segments = [{"epochs": 2, "learning_rate": 1e-3, "dropout": 0.1, "batch_size": 32, "trial": 2},
                {"epochs": 1, "learning_rate": 8e-4, "dropout": 0.1, "batch_size": 32, "trial": 0},
                {"epochs": 3, "learning_rate": 8e-4, "dropout": 0.2, "batch_size": 64, "trial": 0},
                {"epochs": 1, "learning_rate": 6e-4, "dropout": 0.2, "batch_size": 64, "trial": 1}]
    table = pd.DataFrame({"val_loss": [0.3, 0.2, 0.4], "best_epoch": [5, 7, 6],
                          "schedule": [None, json.dumps(segments), json.dumps(segments[:1])]})
    out = best_schedule(table, 1)
    assert out["lineage"] == [2, 0, 1]
    assert out["schedule"] == [{k: s[k] for k in ("epochs", *MUTABLE)} for s in segments]
    assert sum(s["epochs"] for s in out["schedule"]) == table.loc[1, "best_epoch"]
    assert check_schedule(out["schedule"]) == out["schedule"]
    assert best_schedule(table, 0) == {}  # a trial without a schedule
    assert best_schedule(table.drop(columns="schedule"), 1) == {}  # another strategy's table


# ---------------------------------------------------------------- a real PBT search, in this process

TINY = {"seed": 3, "data": {"features": ["x1"], "length": 400}, "window": {"lookback": 6, "horizon": 2},
        "training": {"verbose": 0},
        "tuning": {"strategy": "pbt", "cv_folds": 1, "max_trials": 3, "epochs": 3, "perturbation_interval": 1,
                   "patience": 1,
                   "space": {"layers": 1, "units": [8, 16], "batch_size": [32, 64], "optimizer": ["adam"],
                             "normalization": ["last"], "dropout": {"min": 0.0, "max": 0.2, "step": 0.1},
                             "learning_rate": {"min": 1e-3, "max": 1e-2, "log": True}}}}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """A 400-row hourly synthetic series: one feature and the target."""
    return make_synthetic(400, 0.3, seed=3)[0][["x1", "target"]]


@pytest.fixture(scope="module")
def pbt_search(tmp_path_factory, frame):
    """A finished 3-trial, 3-epoch PBT search (exploit/explore after every epoch) in a run folder, and a random search
    over the same space: (cfg, run, table, random search's saved table)."""
    cfg = checked(TINY)
    prepared = prepare(frame, cfg)
    run = RunFolder(tmp_path_factory.mktemp("pbt"))
    _, table = tune(prepared, cfg, run)
    random_cfg = checked(TINY, {"tuning.strategy": "random", "tuning.max_trials": 1, "tuning.epochs": 1})
    random_run = RunFolder(tmp_path_factory.mktemp("random"))
    tune(prepared, random_cfg, random_run)
    return cfg, run, table, read_trials(random_run)


def test_a_pbt_search_saves_the_trials_table_of_the_other_strategies(pbt_search):
    cfg, run, table, random_table = pbt_search
    saved = read_trials(run)
    assert list(saved.columns) == list(random_table.columns)
    assert saved.index.name == random_table.index.name == "trial"
    assert {"architecture", *search_space(cfg).names, "val_loss", "best_epoch", "seconds", "status"} <= set(saved.columns)
    assert sorted(saved.index) == [0, 1, 2] and set(saved["status"]) == {"COMPLETED"}
    assert saved["val_loss"].tolist() == pytest.approx(table["val_loss"].tolist())
    assert saved["best_epoch"].between(1, cfg.tuning.epochs).all()
    space = {p.name: p for p in search_space(cfg).params}
    for name in ("units", "batch_size", "dropout", "learning_rate"):  # the trials' final values, inside the space
        assert all(in_range(space[name], v.item() if hasattr(v, "item") else v) for v in table[name]), name


def test_a_pbt_search_writes_one_lineage_row_per_trial_epoch(pbt_search):
    cfg, run, table, _ = pbt_search
    lineage = pd.read_csv(run.lineage_file)
    assert list(lineage.columns) == LINEAGE_COLUMNS
    logged = read_results(results_log(cfg, run))
    assert len(lineage) == len(logged) == len(lineage[["trial", "epoch"]].drop_duplicates())
    for trial, rows in lineage.groupby("trial"):
        assert rows["epoch"].tolist() == list(range(1, cfg.tuning.epochs + 1)), f"trial {trial}"
        assert rows["val_loss"].min() == pytest.approx(table.loc[trial, "val_loss"])
    copies = lineage.dropna(subset=["copied_from"])
    assert len(copies), "3 trials exploiting after every epoch: the worst one copies a better one at least once"
    assert (copies["copied_from"] != copies["trial"]).all() and copies["copied_from"].isin(table.index).all()
    assert (copies["epoch"] >= 2).all()  # the first epoch after a copy: the donor's weights had trained one or more
    assert lineage["seconds"].ge(0).all() and set(lineage["architecture"]) == {"lstm"}
    assert lineage["learning_rate"].between(1e-3, 1e-2).all() and lineage["batch_size"].isin([32, 64]).all()


def test_a_pbt_winners_schedule_sums_to_its_best_epoch_and_ends_with_its_values(pbt_search):
    cfg, run, table, _ = pbt_search
    best = read_best(run)
    schedule = best["schedule"]
    assert check_schedule(schedule) == schedule  # helper A's replay accepts it as it is
    assert sum(s["epochs"] for s in schedule) == best["best_epoch"]
    assert {k: schedule[-1][k] for k in MUTABLE} == {k: best[k] for k in MUTABLE}
    assert best["val_loss"] == pytest.approx(table["val_loss"].min()) and best["strategy"] == "pbt"
    assert best["lineage"] and set(best["lineage"]) <= set(table.index)
    for a, b in zip(schedule, schedule[1:], strict=False):  # a new segment only where a value changed
        assert any(a[k] != b[k] for k in MUTABLE)


def test_rerunning_a_finished_pbt_search_resumes_it_without_training_again(pbt_search, frame):
    cfg, run, table, _ = pbt_search
    log = results_log(cfg, run)
    before, best = log.read_text(), read_best(run)
    _, again = tune(prepare(frame, cfg), cfg, run)
    assert log.read_text() == before
    assert again["val_loss"].tolist() == pytest.approx(table["val_loss"].tolist())
    assert read_best(run) == best


def test_a_diverging_trial_reports_the_worst_score_ends_and_the_search_says_so(tmp_path, frame):
    cfg = checked(TINY, {"tuning.strategy": "asha", "tuning.max_trials": 2})
    prepared = prepare(frame, cfg)
    start, stop = prepared.bounds["val"]
    prepared.scaled[start:stop, prepared.target_index] = np.nan  # every validation loss is NaN from the first epoch
    run = RunFolder(tmp_path)
    with pytest.raises(TuningError, match="diverged"):
        tune(prepared, cfg, run)
    seen = read_results(results_log(cfg, run))
    assert seen.groupby("trial")["epoch"].max().to_dict() == {0: 1, 1: 1}  # ended after the epoch that diverged
    assert np.isposinf(seen["val_loss"].astype(float)).all()  # reported as the worst score




def checkpoint_folder(trial_dir, index: int, owner: int, epoch: int, weights: bytes = b"w"):
    """A trial checkpoint as train_ray_trial writes it: weights, optimizer and a state with their digests."""
    folder = trial_dir / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    (folder / "model.weights.h5").write_bytes(weights + bytes([epoch]))
    (folder / "optimizer.npz").write_bytes(b"o" + bytes([epoch]))
    (folder / "state.json").write_text(json.dumps({"epoch": epoch, "owner": owner, "digests": _digests(folder)}))
    return folder


def test_a_trial_resumes_from_its_newest_whole_logged_checkpoint_when_rays_state_is_behind(tmp_path):
    from ray import tune as ray_tune

    own, log = tmp_path / "trial_2", tmp_path / "search.results.jsonl"
    log.write_text("".join(json.dumps(record(t, e, 0.5)) + "\n" for t, e in [(2, 1), (2, 2), (2, 3), (0, 4)]))
    named = ray_tune.Checkpoint.from_directory(str(checkpoint_folder(own, 1, owner=2, epoch=2)))
    newest = checkpoint_folder(own, 2, owner=2, epoch=3)
    checkpoint_folder(own, 3, owner=2, epoch=4)  # persisted, but the trial was killed before the driver logged it
    assert _resume_from(named, own, 2, log).path == str(newest)  # the kill came between the log and Ray's state
    assert _resume_from(None, own, 2, log).path == str(newest)  # Ray's state named no checkpoint yet
    (newest / "model.weights.h5").write_bytes(b"old")  # a copy over an older checkpoint, cut short by a kill
    assert _resume_from(named, own, 2, log) is named
    donor = ray_tune.Checkpoint.from_directory(str(checkpoint_folder(tmp_path / "trial_0", 1, owner=0, epoch=2)))
    assert _resume_from(donor, own, 2, log) is donor  # PBT's exploit: another trial's weights, taken as they are
    assert _resume_from(None, tmp_path / "trial_5", 5, log) is None  # a trial that never saved one starts afresh
