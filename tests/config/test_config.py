"""Configuration: defaults, YAML files, dotted overrides, validation and key documentation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from lstmkit.config import Config, ConfigError, config_keys, describe_keys, from_dict, load_config, parse_override
from lstmkit.stages.checks import checked, config_reference
from tests.paths import REPO


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ loading


def test_defaults_without_a_file():
    cfg = load_config()
    assert cfg == Config()
    assert (cfg.seed, cfg.window.lookback, cfg.window.horizon) == (42, 48, 6)
    assert cfg.data.features == ["x1", "x2", "x3"]
    assert cfg.split.train == 0.7 and cfg.scaling.method == "standard"


def test_default_list_values_are_not_shared_between_instances():
    a, b = Config(), Config()
    a.data.features.append("x9")
    assert b.data.features == ["x1", "x2", "x3"]


def test_yaml_file_values_replace_defaults_and_keep_the_rest(tmp_path):
    path = write_yaml(tmp_path, "seed: 3\nwindow: {lookback: 12}\ndata:\n  features: [x1]\n  length: 600\n")
    cfg = load_config(path)
    assert cfg.seed == 3
    assert cfg.window.lookback == 12 and cfg.window.horizon == 6
    assert cfg.data.features == ["x1"] and cfg.data.length == 600
    assert cfg.model == Config().model


def test_overrides_take_precedence_over_the_file(tmp_path):
    path = write_yaml(tmp_path, "window: {lookback: 12, horizon: 3}\ntraining: {epochs: 9}\n")
    cfg = load_config(path, {"window.horizon": 2, "training.epochs": 5, "seed": 8})
    assert (cfg.window.lookback, cfg.window.horizon) == (12, 2)
    assert cfg.training.epochs == 5 and cfg.seed == 8


def test_override_applies_when_the_section_is_absent_from_the_file():
    assert load_config(None, {"window.lookback": 10}).window.lookback == 10


def test_override_applies_when_the_section_is_empty_in_the_file(tmp_path):
    path = write_yaml(tmp_path, "seed: 1\nscaling:\n")
    assert load_config(path, {"scaling.method": "minmax"}).scaling.method == "minmax"


def test_shipped_profiles_load():
    quick = load_config(REPO / "configs" / "quick.yaml")
    default = load_config(REPO / "configs" / "default.yaml")
    assert quick.data.length == 1200 and quick.window.lookback == 24 and quick.tuning.strategy == "random"
    assert default.tuning.strategy == "bayesian" and default.data.length == 5040


def test_save_and_load_round_trip(tmp_path):
    cfg = from_dict({"seed": 5, "window": {"lookback": 10, "horizon": 2}, "split": {"train": 300, "val": 0.2, "test": 50}})
    cfg.save(tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert isinstance(again.split.train, int) and isinstance(again.split.val, float)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_is_a_config_error(tmp_path):
    path = write_yaml(tmp_path, "window: {lookback: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


# ------------------------------------------------------------------ unknown keys


def test_unknown_override_key_lists_every_valid_key():
    with pytest.raises(ConfigError) as err:
        load_config(None, {"window.lookbak": 3})
    message = str(err.value)
    assert "unknown config key 'window.lookbak'" in message
    for key in config_keys():
        assert key in message


def test_unknown_nested_key_in_file_names_file_and_key(tmp_path):
    path = write_yaml(tmp_path, "training:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "'training.epoch'" in message
    assert "training.epochs" in message and "explain.batch_size" in message


def test_unknown_top_level_key_in_file(tmp_path):
    path = write_yaml(tmp_path, "seeds: 3\n")
    with pytest.raises(ConfigError, match="unknown config key 'seeds'"):
        load_config(path)


def test_section_that_is_not_a_mapping(tmp_path):
    path = write_yaml(tmp_path, "window: 12\n")
    with pytest.raises(ConfigError, match="window: expected a mapping"):
        load_config(path)


# ------------------------------------------------------------------ types and choices


@pytest.mark.parametrize("values,message", [
    ({"window": {"lookback": "abc"}}, "window.lookback: expected an integer or 'auto', got 'abc'"),
    ({"window": {"lookback": 1.5}}, "window.lookback: expected an integer, got 1.5"),
    ({"window": {"lookback": True}}, "window.lookback: expected an integer, got True"),
    ({"model": {"dropout": "high"}}, "model.dropout: expected a number, got 'high'"),
    ({"training": {"use_tuned": "yes"}}, "training.use_tuned: expected true or false, got 'yes'"),
    ({"data": {"target": 3}}, "data.target: expected a string, got 3"),
    ({"data": {"features": "x1"}}, "data.features: expected a list, got 'x1'"),
])
def test_type_errors_name_the_key(values, message):
    with pytest.raises(ConfigError) as err:
        from_dict(values)
    assert str(err.value) == message


def test_type_error_from_a_file(tmp_path):
    path = write_yaml(tmp_path, "window:\n  lookback: abc\n")
    with pytest.raises(ConfigError, match=r"profile.yaml: window.lookback: expected an integer or 'auto', got 'abc'"):
        load_config(path)


def test_whole_float_is_accepted_as_integer():
    cfg = from_dict({"window": {"lookback": 12.0}})
    assert cfg.window.lookback == 12 and isinstance(cfg.window.lookback, int)


def test_integer_is_accepted_for_a_number_and_kept_integer():
    cfg = from_dict({"split": {"train": 300, "val": 60, "test": 60}, "model": {"learning_rate": 1}})
    assert cfg.split.train == 300 and isinstance(cfg.split.train, int)
    assert cfg.model.learning_rate == 1


def test_null_list_becomes_empty():
    assert from_dict({"data": {"features": None}}).data.features == []


def test_infinite_integer_is_a_config_error():
    with pytest.raises(ConfigError, match="window.lookback"):
        from_dict({"window": {"lookback": math.inf}})


@pytest.mark.parametrize("values,message", [
    ({"scaling": {"method": "robust"}}, "scaling.method: 'robust' is not one of standard, minmax"),
    ({"training": {"verbose": 3}}, "training.verbose: 3 is not one of 0, 1, 2"),
    ({"tuning": {"strategy": "tpe"}}, "tuning.strategy: 'tpe' is not one of random, grid, bayesian, hyperband, optuna, pbt, asha, none"),
    ({"training": {"fit_on": "all"}}, "training.fit_on: 'all' is not one of train, train+val"),
])
def test_values_outside_choices_are_rejected(values, message):
    with pytest.raises(ConfigError) as err:
        from_dict(values)
    assert str(err.value) == message


@pytest.mark.parametrize("values,message", [
    ({"data": {"source": "parquet"}}, "data.source: 'parquet' is not one of synthetic, csv, etth1, etth2, ettm1, ettm2, jena_climate, electricity"),
    ({"model": {"architecture": "transformer"}}, "model.architecture: 'transformer' is not one of attention_lstm, bilstm, "
                                                 "cnn_lstm, deepar, gru, lstm, nbeats, patchtst, tcn, tft"),
    ({"compare": {"architectures": ["lstm", "rnn"]}}, "compare.architectures: 'rnn' is not one of attention_lstm, "
                                                      "bilstm, cnn_lstm, deepar, gru, lstm, nbeats, patchtst, tcn, tft"),
    ({"model": {"tcn": {"kernel_size": 1}}}, "model.tcn.kernel_size: must be at least 2, got 1"),
    ({"model": {"tcn": {"filters": "many"}}}, "model.tcn.filters: expected an integer, got 'many'"),
    ({"model": {"patchtst": {"norm": "group"}}}, "model.patchtst.norm: 'group' is not one of batch, layer"),
])
def test_values_another_layer_owns_are_checked_before_a_run(values, message):
    """The named datasets, the architectures and their own settings are checked by their layers (check_config)."""
    from_dict(values)  # the configuration's own checks pass
    with pytest.raises(ConfigError) as err:
        checked(values)
    assert str(err.value) == message


def test_a_misspelt_architecture_setting_names_the_closest_and_lists_the_architectures_own_keys():
    with pytest.raises(ConfigError) as err:
        checked({"model": {"tcn": {"kernal_size": 5}}})
    message = str(err.value)
    assert message.startswith("unknown config key 'model.tcn.kernal_size'; did you mean 'model.tcn.kernel_size'?")
    assert "Valid keys: model.tcn.filters, model.tcn.kernel_size, model.tcn.dilations" in message  # tcn's own keys
    with pytest.raises(ConfigError, match=r"model.tcm: no architecture is named 'tcm'; did you mean model.tcn\?"):
        checked({"model": {"tcm": {"filters": 5}}})


def test_check_config_writes_every_architecture_section_out_in_full():
    cfg = checked({"model": {"tcn": {"filters": 8}}})
    assert cfg.model.section("tcn") == {"filters": 8, "kernel_size": 3, "dilations": []}
    assert cfg.model.section("nbeats")["width"] == 256 and cfg.model.section("deepar")["likelihood"] == "gaussian"
    assert checked(cfg.to_dict()) == cfg  # checking a checked configuration changes nothing


def test_every_declared_choice_is_accepted():
    needs = {("data.source", "csv"): {"path": "series.csv"}}
    for row in describe_keys():
        for choice in row["choices"] or ():
            *sections, name = row["key"].split(".")
            values = {name: choice, **needs.get((row["key"], choice), {})}
            for section in reversed(sections):
                values = {section: values}
            node = from_dict(values)
            for section in sections:
                node = getattr(node, section)
            assert getattr(node, name) == choice


def test_grid_strategy_with_a_continuous_range_of_its_own_names_it():
    with pytest.raises(ConfigError) as err:
        checked({"tuning": {"strategy": "grid", "space": {"learning_rate": {"min": 1e-3, "max": 1e-2}}}})
    assert str(err.value) == ("tuning.strategy grid needs a finite grid, but tuning.space.learning_rate is a continuous "
                              "range; give it a `step` or a list of `choices`")


# ------------------------------------------------------------------ cross-field validation


@pytest.mark.parametrize("name,lo,hi", [("layers", 4, 2), ("units", 200, 128), ("dropout", 0.6, 0.3),
                                        ("learning_rate", 0.5, 0.01)])
def test_tuning_min_above_max_is_rejected(name, lo, hi):
    with pytest.raises(ConfigError) as err:
        checked({"tuning": {"space": {name: {"min": lo}}}})
    assert str(err.value) == f"tuning.space.{name}: min ({lo}) is greater than max ({hi})"


def test_tuning_min_equal_to_max_is_allowed():
    cfg = checked({"tuning": {"space": {"layers": {"min": 2, "max": 2}}}})
    assert cfg.tuning.space["layers"] == {"min": 2, "max": 2}


@pytest.mark.parametrize("values,match", [
    ({"window": {"lookback": 0}}, "window.lookback: must be at least 1, got 0"),
    ({"split": {"val": -0.1}}, "split.val: must be positive"),
    ({"model": {"dropout": 1.0}}, r"model.dropout: must be in \[0, 1\)"),
    ({"tuning": {"max_minutes": -1}}, r"tuning.max_minutes: must be 0 \(no budget\) or positive, got -1"),
    ({"tuning": {"cv_folds": 0}}, "tuning.cv_folds must be at least 1"),
    ({"tuning": {"workers": -1}}, "tuning.workers at least 0"),
    ({"tuning": {"strategy": "optuna", "workers": 2}}, "tuning.workers: distributed tuning uses Keras Tuner's chief/worker mode"),
    ({"tuning": {"space": [1, 2]}}, r"tuning.space: expected a mapping, got \[1, 2\]"),
    ({"explain": {"horizon_step": 7}}, r"explain.horizon_step: must be between 1 and window.horizon \(6\)"),
    ({"evaluation": {"plot_step": 0}}, "evaluation.plot_step"),
    ({"data": {"source": "csv"}}, "data.path: required when data.source is csv"),
])
def test_cross_field_validation(values, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(values)


def test_an_empty_choice_list_in_the_space_is_refused_before_a_run():
    with pytest.raises(ConfigError, match=r"tuning.space.batch_size.choices: must be a non-empty list, got \[\]"):
        checked({"tuning": {"space": {"batch_size": []}}})


# ------------------------------------------------------------------ overrides


@pytest.mark.parametrize("text,expected", [
    ("training.epochs=5", ("training.epochs", 5)),
    ("model.dropout=0.25", ("model.dropout", 0.25)),
    ("data.features=[x1, x2]", ("data.features", ["x1", "x2"])),
    ("training.use_tuned=false", ("training.use_tuned", False)),
    ("data.path=", ("data.path", None)),
    ("data.path=null", ("data.path", None)),
    ("data.target=load", ("data.target", "load")),
    (" window.lookback = 24", ("window.lookback", 24)),
    ("data.path=a=b.csv", ("data.path", "a=b.csv")),
])
def test_parse_override_reads_yaml_values(text, expected):
    key, value = parse_override(text)
    assert (key, value) == expected
    assert type(value) is type(expected[1])


def test_parse_override_reads_exponent_notation_as_a_number():
    assert parse_override("model.learning_rate=1e-3") == ("model.learning_rate", 1e-3)


def test_parse_override_requires_an_equals_sign():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("training.epochs")


def test_parsed_overrides_apply_through_from_dict():
    base = Config().to_dict()
    cfg = from_dict(base, dict(map(parse_override, ["data.features=[x2]", "window.horizon=2", "explain.horizon_step=2"])))
    assert cfg.data.features == ["x2"] and cfg.window.horizon == 2 and cfg.explain.horizon_step == 2


def test_override_reaches_inside_the_space_mapping_but_not_beside_it():
    cfg = checked(Config().to_dict(), dict(map(parse_override, ["tuning.space.units.max=64", "tuning.workers=2"])))
    assert cfg.tuning.space["units"] == {"min": 32, "max": 64, "step": 32} and cfg.tuning.workers == 2
    with pytest.raises(ConfigError, match="unknown config key 'tuning.spaces.units'"):
        from_dict({}, {"tuning.spaces.units": 3})


def test_overrides_do_not_mutate_the_input_dict():
    base = Config().to_dict()
    from_dict(base, {"window.lookback": 7})
    assert base["window"]["lookback"] == 48


# ------------------------------------------------------------------ key listing and documentation


def test_config_keys_are_dotted_leaves_of_the_tree():
    keys = config_keys()
    assert len(keys) == len(set(keys))
    assert keys[0] == "seed"
    assert {"window.lookback", "split.train", "tuning.space", "training.fit_on", "explain.batch_size"} <= set(keys)
    assert not any(k.startswith("tuning.space.") or k.startswith("tuning.min_") for k in keys)
    assert "window" not in keys and "data" not in keys
    assert {"model.architecture", "model.layers", "compare.seeds"} <= set(keys)
    tree = Config().to_dict()
    assert len(keys) == sum(len(v) if isinstance(v, dict) else 1 for v in tree.values())


def test_the_reference_adds_every_architectures_own_keys_after_the_model_section():
    rows = config_reference()
    keys = [row["key"] for row in rows]
    assert {"model.tcn.kernel_size", "model.patchtst.patch_len", "model.deepar.likelihood", "model.nbeats.stacks"} <= set(keys)
    assert keys.index("model.normalization") < keys.index("model.attention_lstm.score") < keys.index("compare.architectures")
    assert [k for k in keys if not k.startswith("model.") or k.count(".") == 1] == config_keys()
    defaults = checked({}).to_dict()
    for row in rows:
        node = defaults
        for part in row["key"].split("."):
            node = node[part]
        assert row["default"] == node, row["key"]
        assert row["help"].strip(), row["key"]
        if row["choices"]:
            assert row["default"] in row["choices"], row["key"]


def test_every_key_is_documented():
    rows = describe_keys()
    assert [r["key"] for r in rows] == config_keys()
    for row in rows:
        assert isinstance(row["help"], str) and row["help"].strip(), row["key"]


def test_described_defaults_match_the_default_config():
    defaults = Config().to_dict()
    for row in describe_keys():
        node = defaults
        for part in row["key"].split("."):
            node = node[part]
        assert row["default"] == node, row["key"]


def test_described_choices_include_the_default():
    for row in describe_keys():
        if row["choices"]:
            assert row["default"] in row["choices"], row["key"]


def test_to_dict_is_yaml_safe():
    text = yaml.safe_dump(Config().to_dict())
    assert yaml.safe_load(text) == Config().to_dict()


def test_an_empty_override_of_a_text_key_is_the_empty_setting():
    cfg = from_dict({"data": {"date_column": "when"}}, dict([parse_override("data.date_column=")]))
    assert cfg.data.date_column == ""
