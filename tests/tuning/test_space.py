"""Tuning search space: the default space, user entries laid over it, validation messages, grids and `lstmkit config`."""

from __future__ import annotations

import pytest
import yaml

from lstmkit import cli
from lstmkit.config import Config, ConfigError, load_config
from lstmkit.stages.checks import checked, load_checked
from lstmkit.tuning.space import DEFAULT_SPACE, Param, merge_space, parse_space, search_space
from tests.paths import REPO

TUNED = ["layers", "units", "dropout", "learning_rate", "batch_size", "optimizer", "normalization"]


def space_of(**entries):
    """The validated search space of a config whose `tuning.space` holds these entries."""
    return search_space(checked({"tuning": {"space": entries}}))


# ------------------------------------------------------------------ defaults


def test_default_space_tunes_seven_including_window_normalisation_and_fixes_lookback_and_architecture():
    space = search_space(Config())
    assert space.names == TUNED
    assert space.fixed == {"architecture": "lstm", "lookback": 48}
    assert space.architectures == ("lstm",) and not space.searches_architecture
    assert space.params[1].grid() == [32, 64, 96, 128]
    assert [r["searched"] for r in space.table()] == [
        "1..2", "32..128 step 32", "0..0.3 step 0.1", "0.0003..0.01 (log scale)", "32 | 64 | 128",
        "adam | rmsprop", "last | revin", "fixed at lstm", "fixed at 48"]


def test_the_default_model_normalises_each_window_by_its_last_value():
    assert Config().model.normalization == "last"


def test_fixed_values_follow_the_model_and_window_settings():
    cfg = checked({"window": {"lookback": 12}, "model": {"normalization": "revin"}, "tuning": {"space": {"normalization": None}}})
    assert search_space(cfg).fixed == {"architecture": "lstm", "normalization": "revin", "lookback": 12}


# ------------------------------------------------------------------ merging user entries over the defaults


def test_partial_range_override_keeps_the_other_default_keys():
    cfg = checked({}, {"tuning.space.units.max": 64})
    assert cfg.tuning.space["units"] == {"min": 32, "max": 64, "step": 32}
    assert {k: v for k, v in cfg.tuning.space.items() if k != "units"} == {k: v for k, v in DEFAULT_SPACE.items() if k != "units"}
    assert DEFAULT_SPACE["units"]["max"] == 128  # the defaults themselves are untouched


@pytest.mark.parametrize("entry", [{"choices": [16, 48]}, [16, 48]])
def test_choices_or_a_plain_list_replace_a_range(entry):
    cfg = checked({"tuning": {"space": {"units": entry}}})
    units = search_space(cfg).params[1]
    assert (units.name, units.is_range, units.choices, units.grid()) == ("units", False, (16, 48), [16, 48])
    assert "min" not in str(cfg.tuning.space["units"])


@pytest.mark.parametrize("entries,name,value", [
    ({"units": 96}, "units", 96),
    ({"optimizer": "sgd"}, "optimizer", "sgd"),
    ({"optimizer": ["rmsprop"]}, "optimizer", "rmsprop"),
    ({"layers": {"min": 2, "max": 2}}, "layers", 2),
    ({"dropout": {"choices": [0]}}, "dropout", 0.0),
    ({"lookback": 24}, "lookback", 24),
])
def test_scalar_one_choice_or_min_equal_max_fixes_the_value(entries, name, value):
    space = space_of(**entries)
    assert name not in space.names and space.fixed[name] == value
    assert type(space.fixed[name]) is type(value)


def test_null_fixes_at_the_model_setting_and_survives_a_save_and_reload(tmp_path):
    cfg = checked({"model": {"units": 80, "optimizer": "rmsprop"}, "tuning": {"space": {"units": None}}},
                    {"tuning.space.optimizer": None})
    space = search_space(cfg)
    assert space.names == ["layers", "dropout", "learning_rate", "batch_size", "normalization"]
    assert (space.fixed["units"], space.fixed["optimizer"]) == (80, "rmsprop")
    again = checked(cfg.to_dict())
    assert again.tuning.space == cfg.tuning.space and again.tuning.space["units"] is None
    cfg.save(tmp_path / "config.yaml")
    assert search_space(load_config(tmp_path / "config.yaml")) == space


def test_merge_is_idempotent():
    user = {"units": {"max": 64}, "layers": 2, "dropout": None, "optimizer": ["adam", "sgd"],
            "learning_rate": {"step": 0.002, "min": 0.002}, "batch_size": {"min": 16, "max": 64, "step": 16},
            "lookback": {"choices": [24, 48]}}
    merged = merge_space(user)
    assert merge_space(merged) == merged
    assert merged["learning_rate"] == {"min": 0.002, "max": 0.01, "step": 0.002}
    grid = merge_space(user, "grid")
    assert merge_space(grid, "grid") == grid


def test_step_on_learning_rate_drops_the_inherited_log_and_log_drops_a_step():
    space = space_of(learning_rate={"step": 0.002, "min": 0.002}, dropout={"min": 0.1, "log": True})
    lr, dropout = space.params[3], space.params[2]
    assert (lr.step, lr.log, lr.grid()) == (0.002, False, [0.002, 0.004, 0.006, 0.008, 0.01])
    assert (dropout.step, dropout.log, dropout.grid(), dropout.describe()) == (None, True, None, "0.1..0.3 (log scale)")


def test_exponent_notation_in_a_yaml_file_is_read_as_a_number(tmp_path):
    path = tmp_path / "profile.yaml"
    path.write_text("tuning:\n  space:\n    learning_rate: {min: 1e-5, max: 1e-2}\n    dropout: {step: 1e-1}\n")
    dropout, lr = search_space(load_config(path)).params[2:4]
    assert (lr.min, lr.max, lr.log) == (1e-5, 1e-2, True)
    assert dropout.grid() == [0.0, 0.1, 0.2, 0.3]


# ------------------------------------------------------------------ bad spaces


@pytest.mark.parametrize("entries,message", [
    ({"batch_size": {"choices": []}}, "tuning.space.batch_size.choices: must be a non-empty list, got []"),
    ({"units": {"min": 200}}, "tuning.space.units: min (200) is greater than max (128)"),
    ({"unit": 64}, "tuning.space: unknown hyperparameter 'unit'; tunable are: layers, units, dropout, learning_rate, "
                   "batch_size, optimizer, normalization, lookback, architecture, and an architecture's own settings "
                   "as `<architecture>.<setting>` (e.g. tcn.kernel_size)"),
    ({"units": {"maximum": 64}}, "tuning.space.units: unknown key 'maximum'; use `choices`, or `min`, `max` and optional "
                                 "`step` or `log`"),
    ({"units": {"choices": [32, 64], "min": 16}}, "tuning.space.units: give either `choices` or a `min`/`max` range, not both"),
    ({"optimizer": {"min": 1, "max": 2}}, "tuning.space.optimizer: optimizer is categorical; give a list of `choices`"),
    ({"lookback": {"max": 96}}, "tuning.space.lookback: a range needs `min` and `max` (missing `min`)"),
    ({"dropout": 1.5}, "tuning.space.dropout: 1.5 is not a number in [0, 1)"),
    ({"optimizer": ["adam", "adagrad"]}, "tuning.space.optimizer.choices: 'adagrad' is not one of adam, rmsprop, sgd"),
    ({"normalization": "batch"}, "tuning.space.normalization: 'batch' is not one of none, last, revin"),
    ({"units": {"min": 0}}, "tuning.space.units.min: 0 is not an integer of at least 1"),
    ({"units": {"max": 100.5}}, "tuning.space.units.max: 100.5 is not an integer of at least 1"),
    ({"layers": True}, "tuning.space.layers: True is not an integer from 1 to 8"),
    ({"learning_rate": {"min": False, "max": 0.1}}, "tuning.space.learning_rate.min: False is not a number in (0, 10)"),
    ({"learning_rate": {"step": 0.01, "log": True}}, "tuning.space.learning_rate: give `step` or `log: true`, not both"),
    ({"units": {"step": 0}}, "tuning.space.units.step: must be a positive integer, got 0"),
    ({"units": {"step": 2.5}}, "tuning.space.units.step: must be a positive integer, got 2.5"),
    ({"units": {"step": float("inf")}}, "tuning.space.units.step: must be a positive integer, got inf"),
    ({"dropout": {"step": -0.1}}, "tuning.space.dropout.step: must be a positive number, got -0.1"),
    ({"units": {"log": "yes"}}, "tuning.space.units.log: expected true or false, got 'yes'"),
    ({"dropout": {"min": 0.0, "log": True}}, "tuning.space.dropout: a log-scale range needs min > 0, got 0.0"),
    ({"batch_size": [32, 64, 32]}, "tuning.space.batch_size.choices: [32, 64, 32] repeats a value"),
])
def test_bad_space_entries_are_config_errors_naming_the_key(entries, message):
    with pytest.raises(ConfigError) as err:
        space_of(**entries)
    assert str(err.value) == message


def test_grid_strategy_needs_every_range_to_be_finite():
    cfg = checked({"tuning": {"strategy": "grid", "space": {"learning_rate": 1e-3, "dropout": [0.1],
                                                              "layers": {"min": 1, "max": 4}}}})
    assert search_space(cfg).grid_size() == 4 * 3 * 3  # an integer range without a step is finite
    with pytest.raises(ConfigError, match="but tuning.space.dropout is a continuous range"):
        checked({"tuning": {"strategy": "grid", "space": {"learning_rate": 1e-3, "dropout": {"step": None}}}})
    with pytest.raises(ConfigError, match=r"^tuning.strategy grid needs a finite grid, but tuning.space.dropout is a "
                                          r"continuous range; give it a `step` or a list of `choices`$"):
        parse_space({"layers": {"min": 1, "max": 2}, "dropout": {"min": 0.1, "max": 0.3}}).grid_size()


def test_a_bad_space_in_a_yaml_file_names_the_file(tmp_path):
    path = tmp_path / "profile.yaml"
    path.write_text("tuning:\n  space:\n    units: {min: 0}\n")
    with pytest.raises(ConfigError) as err:
        load_checked(path)
    assert str(err.value) == f"{path}: tuning.space.units.min: 0 is not an integer of at least 1"


# ------------------------------------------------------------------ trial values and grids


def test_values_lay_sampled_values_over_fixed_ones_and_round_dropout():
    space = search_space(checked({"model": {"units": 80}, "tuning": {"space": {"units": None}}}))
    values = space.values({"dropout": 0.30000000000000004, "layers": 2, "normalization": "last", "trial_id": "07"})
    assert values == {"architecture": "lstm", "units": 80, "normalization": "last", "lookback": 48, "dropout": 0.3,
                      "layers": 2}


@pytest.mark.parametrize("param,grid", [
    (Param("layers", int, min=1, max=4), [1, 2, 3, 4]),
    (Param("units", int, min=16, max=100, step=32), [16, 48, 80]),
    (Param("dropout", float, min=0.0, max=0.3, step=0.1), [0.0, 0.1, 0.2, 0.3]),
    (Param("learning_rate", float, min=1e-4, max=1e-1, log=True), None),
    (Param("dropout", float, min=0.1, max=0.3), None),
    (Param("optimizer", str, choices=("sgd", "adam")), ["sgd", "adam"]),
])
def test_param_grid(param, grid):
    assert param.grid() == grid


def test_grid_size_is_the_product_of_the_grids():
    cfg = checked({"tuning": {"strategy": "grid", "space": {"learning_rate": [1e-3, 1e-2], "lookback": [24, 48],
                                                              "units": {"min": 32, "max": 96, "step": 32}}}})
    assert search_space(cfg).grid_size() == 3 * 3 * 4 * 2 * 3 * 2


def test_grid_without_a_grid_of_its_own_searches_the_324_common_values():
    cfg = checked({"tuning": {"strategy": "grid"}})
    space = search_space(cfg)
    assert {p.name: p.grid() for p in space.params} == {
        "layers": [1, 2, 3], "units": [50, 100, 150], "dropout": [0.2, 0.3, 0.4, 0.5],
        "learning_rate": [0.001, 0.01, 0.1], "batch_size": [32, 64, 128]}
    assert space.grid_size() == 324
    assert space.fixed == {"architecture": "lstm", "optimizer": cfg.model.optimizer,
                           "normalization": cfg.model.normalization,
                           "lookback": cfg.window.lookback}  # the rest of the default space is not searched
    assert checked(cfg.to_dict()).tuning.space == cfg.tuning.space  # a saved grid run reloads as it was


def test_an_explicit_grid_wins_over_the_default_grid_entry_by_entry():
    cfg = checked({"tuning": {"strategy": "grid", "space": {"units": [16, 32], "learning_rate": None,
                                                              "optimizer": ["adam", "rmsprop"]}}})
    grids = {p.name: p.grid() for p in search_space(cfg).params}
    assert grids == {"layers": [1, 2, 3], "units": [16, 32], "dropout": [0.2, 0.3, 0.4, 0.5], "batch_size": [32, 64, 128],
                     "optimizer": ["adam", "rmsprop"]}
    assert search_space(cfg).fixed["learning_rate"] == cfg.model.learning_rate
    assert search_space(cfg).grid_size() == 3 * 2 * 4 * 3 * 2


# ------------------------------------------------------------------ lstmkit config


def test_cli_config_prints_the_merged_space(capsys):
    assert cli.main(["config", str(REPO / "configs" / "quick.yaml"), "--set", "tuning.space.units.max=48"]) == 0
    space = yaml.safe_load(capsys.readouterr().out)["tuning"]["space"]
    assert space["units"] == {"min": 32, "max": 48, "step": 32} and space["layers"] == {"min": 1, "max": 2}
    assert space["learning_rate"] == DEFAULT_SPACE["learning_rate"]


def test_cli_config_with_a_bad_space_exits_2_with_the_message_on_stderr(capsys):
    path = REPO / "configs" / "quick.yaml"
    assert cli.main(["config", str(path), "--set", "tuning.space.optimizer=[adam, adagrad]"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: {path}: tuning.space.optimizer.choices: 'adagrad' is not one of adam, rmsprop, sgd\n"


# ------------------------------------------------------------------ architectures and conditional settings


def test_a_conditional_space_searches_architectures_and_their_own_settings():
    space = space_of(architecture=["lstm", "gru", "tcn"], **{"tcn.kernel_size": [3, 5], "tcn.filters": 16})
    assert space.names == ["architecture", *TUNED, "tcn.kernel_size"]  # architecture first: the others hang on it
    assert space.architectures == ("lstm", "gru", "tcn") and space.searches_architecture
    assert [p.architecture for p in space.params] == [None] * 8 + ["tcn"]
    assert space.fixed == {"lookback": 48, "tcn.filters": 16}
    assert [p.name for p in space.params_for("gru")] == ["architecture", *TUNED]
    assert space.params_for("tcn")[-1].name == "tcn.kernel_size" and space.params[-1].type is int
    rows = {r["hyperparameter"]: r["searched"] for r in space.table()}
    assert rows["architecture"] == "lstm | gru | tcn"
    assert rows["tcn.kernel_size"] == "3 | 5 (when architecture is tcn)"
    assert rows["tcn.filters"] == "fixed at 16 (when architecture is tcn)"


def test_a_trials_values_keep_only_the_settings_of_its_architecture():
    space = space_of(architecture=["lstm", "tcn"], **{"tcn.kernel_size": [3, 5], "tcn.filters": 16})
    gru_like = space.values({"architecture": "lstm", "units": 32, "tcn.kernel_size": 5})
    assert gru_like["architecture"] == "lstm" and not [k for k in gru_like if k.startswith("tcn.")]
    tcn = space.values({"architecture": "tcn", "units": 32, "tcn.kernel_size": 5})
    assert (tcn["tcn.kernel_size"], tcn["tcn.filters"], tcn["units"]) == (5, 16, 32)


def test_settings_of_the_fixed_architecture_need_no_architecture_entry():
    cfg = checked({"model": {"architecture": "nbeats"},
                     "tuning": {"space": {"nbeats.width": {"min": 128, "max": 512, "step": 128},
                                          "nbeats.stacks": ["generic", "interpretable"]}}})
    space = search_space(cfg)
    assert space.architectures == ("nbeats",) and space.fixed["architecture"] == "nbeats"
    stacks, width = space.params[-2:]  # (an architecture's own settings come in name order)
    assert (width.name, width.grid(), stacks.type, stacks.choices) == (
        "nbeats.width", [128, 256, 384, 512], str, ("generic", "interpretable"))
    assert "(when architecture" not in str(space.table())  # one architecture: no condition to state


@pytest.mark.parametrize("nested", [
    {"tcn": {"kernel_size": [3, 5]}},  # YAML written as a nested mapping
    {"tcn.kernel_size": {"choices": [3, 5]}},
])
def test_nested_or_flat_settings_merge_into_flat_keys_and_reload_as_they_were(nested, tmp_path):
    cfg = checked({"tuning": {"space": {"architecture": ["lstm", "tcn"], **nested}}})
    assert cfg.tuning.space["tcn.kernel_size"] in ([3, 5], {"choices": [3, 5]}) and "tcn" not in cfg.tuning.space
    assert merge_space(cfg.tuning.space) == cfg.tuning.space
    cfg.save(tmp_path / "config.yaml")
    assert search_space(load_config(tmp_path / "config.yaml")) == search_space(cfg)


def test_a_dotted_override_reaches_an_architecture_setting():
    cfg = checked({}, {"tuning.space.architecture": ["gru", "patchtst"], "tuning.space.patchtst.d_model": [16, 64]})
    assert search_space(cfg).params[-1].choices == (16, 64) and search_space(cfg).architectures == ("gru", "patchtst")


@pytest.mark.parametrize("entries,message", [
    ({"tcn.kernel_sise": [3, 5]}, "tuning.space.tcn.kernel_sise: 'kernel_sise' is not a setting of tcn; its settings "
                                  "are: filters, kernel_size, dilations"),
    ({"tcn.kernel_size": "wide"}, "tuning.space.tcn.kernel_size: 'wide' is not an integer of at least 1"),
    ({"tcn.kernel_size": [3, 2.5]}, "tuning.space.tcn.kernel_size.choices: 2.5 is not an integer of at least 1"),
    ({"nbeats.stacks": ["generic", "seasonal"]},
     "tuning.space.nbeats.stacks.choices: 'seasonal' is not one of generic, interpretable"),
    ({"nbeats.stacks": {"min": 1, "max": 2}}, "tuning.space.nbeats.stacks: nbeats.stacks is categorical; give a list "
                                              "of `choices`"),
    ({"tcn.dilations": [1, 2]}, "tuning.space.tcn.dilations: model.tcn.dilations is a list setting, which cannot be "
                                "tuned; set model.tcn.dilations instead"),
    ({"gru.units": [4, 8]}, "tuning.space.gru.units: gru has no settings of its own; tune the common hyperparameters "
                            "(layers, units, dropout, learning_rate, batch_size, optimizer, normalization, lookback) "
                            "instead"),
    ({"transformer.d_model": 16}, "tuning.space.transformer.d_model: unknown architecture 'transformer'; architectures "
                                  "are: attention_lstm, bilstm, cnn_lstm, deepar, gru, lstm, nbeats, patchtst, tcn, tft"),
    ({"architecture": ["lstm", "rnn"]}, "tuning.space.architecture.choices: 'rnn' is not one of attention_lstm, "
                                        "bilstm, cnn_lstm, deepar, gru, lstm, nbeats, patchtst, tcn, tft"),
    ({"architecture": {"min": 1, "max": 2}}, "tuning.space.architecture: architecture is categorical; give a list of "
                                             "`choices`"),
])
def test_bad_architecture_settings_are_config_errors_naming_the_key(entries, message):
    with pytest.raises(ConfigError) as err:
        space_of(**{"architecture": ["lstm", "gru", "tcn", "nbeats"], **entries})
    assert str(err.value) == message


@pytest.mark.parametrize("entries,message", [
    ({"patchtst.d_model": [16, 64]}, "tuning.space.patchtst.d_model: the search trains lstm only (model.architecture), "
                                     "not patchtst; add patchtst to tuning.space.architecture or remove this entry"),
    ({"architecture": ["lstm", "gru"], "tcn.kernel_size": 3},
     "tuning.space.tcn.kernel_size: the search trains lstm, gru only (tuning.space.architecture), not tcn; add tcn to "
     "tuning.space.architecture or remove this entry"),
])
def test_a_setting_of_an_architecture_the_search_does_not_train_is_a_config_error(entries, message):
    with pytest.raises(ConfigError) as err:
        space_of(**entries)
    assert str(err.value) == message


def test_the_grid_of_a_conditional_space_sums_each_architectures_product():
    cfg = checked({"tuning": {"strategy": "grid", "space": {
        "architecture": ["lstm", "gru", "tcn"], "tcn.kernel_size": [3, 5, 7], "units": [4, 8], "layers": 1,
        "dropout": 0.0, "learning_rate": 1e-3, "batch_size": 64}}})
    assert search_space(cfg).grid_size() == 2 + 2 + 2 * 3  # not 3 x 2 x 3: tcn.kernel_size only in tcn trials
    with pytest.raises(ConfigError, match="tuning.space.tcn.filters is a continuous range"):
        checked({"tuning": {"strategy": "grid", "space": {"architecture": ["lstm", "tcn"],
                                                            "tcn.filters": {"min": 8, "max": 32, "log": True}}}})
