"""The inference bundle: round trip against the forecaster, conformal intervals, input validation with clear messages,
manifest verification (tampered, missing, extra files; Keras safe mode), export from a run folder, the CLI, and
atomic writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmkit.bundle.format import _write_manifest, write_bundle
from lstmkit.bundle.runtime import load_bundle
from lstmkit.core.errors import BundleError, ForecastInputError
from lstmkit.data.windows import prepare
from lstmkit.probabilistic.conformal import conformal_quantile
from lstmkit.stages.export import export_bundle
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    """The tiny bundle, loaded."""
    return load_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def prepared(tiny_series):
    """The tiny series prepared as the bundle's model was trained on it (scalers fitted on the training rows)."""
    return prepare(tiny_series, tiny_config())


@pytest.fixture
def copy(tiny_bundle, tmp_path) -> Path:
    """A private copy of the tiny bundle to change."""
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


# ------------------------------------------------------------------ forecasting


def test_predict_equals_the_forecasters_own_forecast_in_original_units(bundle, tiny_series, prepared):
    for end in (len(tiny_series), 300):  # the last window, and one in the middle
        frame = tiny_series.iloc[:end]
        out = bundle.predict(frame)
        window = prepared.scaled[end - bundle.lookback:end][None]
        expected = prepared.to_original(bundle.forecaster.predict(window))[0]
        np.testing.assert_allclose(out["mean"].to_numpy(), expected, rtol=1e-5, atol=1e-4)
        assert list(out.index) == list(pd.date_range(frame.index[-1], periods=5, freq="h")[1:])
        assert out.index.name == "date"
    assert list(bundle.predict(tiny_series, horizon=2).columns) == ["mean", "lower_80", "upper_80", "lower_90",
                                                                    "upper_90", "lower_95", "upper_95"]
    assert len(bundle.predict(tiny_series, horizon=2)) == 2


def test_forecast_arrays_batches_match_single_windows(bundle, tiny_series, prepared):
    values = tiny_series[bundle.columns].to_numpy()
    starts = np.arange(0, 300)  # 300 windows: two padded chunks (256 + 44 -> 64)
    windows = values[starts[:, None] + np.arange(bundle.lookback)[None, :]]
    mean, lower, upper = bundle.forecast_arrays(windows)
    assert mean.shape == (300, 4) and lower.shape == upper.shape == (300, 4, 3)
    expected = prepared.to_original(bundle.forecaster.predict(prepared.scaled[starts[:, None]
                                                                              + np.arange(bundle.lookback)[None, :]]))
    np.testing.assert_allclose(mean, expected, rtol=1e-5, atol=1e-4)
    for n in (1, 3, 5):  # padded to 1, 4, 8 windows: padding never leaks into the answer
        np.testing.assert_allclose(bundle.forecast_arrays(windows[:n])[0], mean[:n], rtol=1e-5, atol=1e-4)
    bundle.warm_up((8,))


def test_intervals_are_nested_ordered_and_as_wide_as_the_conformal_radii(bundle, tiny_series, prepared):
    out = bundle.predict(tiny_series)
    labels = ["80", "90", "95"]
    for a, b in zip(labels, labels[1:]):
        assert (out[f"lower_{b}"] <= out[f"lower_{a}"]).all() and (out[f"upper_{a}"] <= out[f"upper_{b}"]).all()
    assert (out["lower_80"] < out["mean"]).all() and (out["mean"] < out["upper_80"]).all()
    scale = float(prepared.target_scaler.scale_[0])
    for label, level in zip(labels, (0.8, 0.9, 0.95)):
        radius = conformal_quantile(bundle.abs_errors, level, axis=0) * scale
        np.testing.assert_allclose((out[f"upper_{label}"] - out[f"lower_{label}"]).to_numpy() / 2, radius, rtol=1e-6)
        np.testing.assert_allclose((out[f"upper_{label}"] - out["mean"]).to_numpy(), radius, rtol=1e-6)


def test_calibration_errors_are_the_validation_errors(bundle, prepared):
    point = bundle.forecaster.predict_split(prepared, "val")
    np.testing.assert_allclose(bundle.abs_errors, np.abs(prepared.targets("val") - point), rtol=1e-5, atol=1e-6)
    assert bundle.calibration["windows"] == prepared.n_windows("val")
    assert bundle.calibration["source"] == "val"


def test_bundle_records_the_series_description(bundle, tiny_series, prepared):
    assert bundle.columns == ["x1", "x2", "x3", "target"] and bundle.target == "target"
    assert (bundle.lookback, bundle.horizon, bundle.freq, bundle.seasonal_period) == (24, 4, "h", 24)
    assert bundle.cutoff == tiny_series.index[prepared.bounds.train[1] - 1]
    assert len(bundle.version) == 12 and int(bundle.version, 16) >= 0
    assert bundle.levels == [0.8, 0.9, 0.95]
    pre = json.loads((bundle.path / "preprocessing.json").read_text())
    np.testing.assert_allclose(pre["scaler"]["mean"], prepared.scaler.mean_)
    np.testing.assert_allclose(pre["target_scaler"]["scale"], prepared.target_scaler.scale_)
    assert not [p for p in bundle.path.rglob("*") if p.suffix in (".joblib", ".pkl", ".pickle")]


def test_drift_band_is_the_quantile_of_rolling_step_one_errors(bundle, prepared):
    errors = bundle.abs_errors[:, 0] * float(prepared.target_scaler.scale_[0])
    rolling = pd.Series(errors).rolling(10).mean().dropna().to_numpy()
    assert bundle.drift_band(10, 0.9) == pytest.approx(np.quantile(rolling, 0.9))
    assert bundle.drift_band(10, 0.5) <= bundle.drift_band(10, 0.99)
    everything = bundle.drift_band(len(errors) + 100, 0.99)  # fewer windows than asked: the mean of them all
    assert everything == pytest.approx(errors.mean())


# ------------------------------------------------------------------ validation: one test per problem


def test_frame_without_datetime_index_is_refused(bundle, tiny_series):
    with pytest.raises(ForecastInputError, match="DatetimeIndex"):
        bundle.predict(tiny_series.reset_index())


def test_missing_columns_are_named(bundle, tiny_series):
    with pytest.raises(ForecastInputError, match="missing column\\(s\\) 'x2', 'x3'"):
        bundle.predict(tiny_series.drop(columns=["x2", "x3"]))


def test_extra_columns_are_ignored(bundle, tiny_series):
    extra = tiny_series.assign(note="text", other=1.0)[["note", "target", "other", "x3", "x2", "x1"]]
    pd.testing.assert_frame_equal(bundle.predict(extra), bundle.predict(tiny_series))


def test_other_time_step_is_refused(bundle, tiny_series):
    with pytest.raises(ForecastInputError, match="time step is 2-hour but the model was trained on 1-hour"):
        bundle.predict(tiny_series.iloc[::2])


def test_gap_names_the_first_missing_timestamp(bundle, tiny_series):
    gone = tiny_series.index[-10:-8]
    with pytest.raises(ForecastInputError, match=f"gap.*2 row\\(s\\) missing.*first missing: {gone[0]}"):
        bundle.predict(tiny_series.drop(index=gone))


def test_off_grid_timestamp_is_refused(bundle, tiny_series):
    frame = tiny_series.copy()
    stamps = frame.index.to_numpy().copy()
    stamps[-5] = stamps[-5] + np.timedelta64(30, "m")
    frame.index = pd.DatetimeIndex(stamps, name="date")
    with pytest.raises(ForecastInputError, match="off the time grid"):
        bundle.predict(frame)


def test_unsorted_timestamps_are_refused(bundle, tiny_series):
    frame = pd.concat([tiny_series.iloc[:-2], tiny_series.iloc[-1:], tiny_series.iloc[-2:-1]])
    with pytest.raises(ForecastInputError, match="timestamps must increase"):
        bundle.predict(frame)


def test_missing_value_names_column_and_timestamp(bundle, tiny_series):
    frame = tiny_series.copy()
    frame.iloc[-3, frame.columns.get_loc("x2")] = np.nan
    with pytest.raises(ForecastInputError, match=f"column 'x2' holds a missing value \\(NaN\\) at {frame.index[-3]}"):
        bundle.predict(frame)


def test_infinite_value_names_column_and_timestamp(bundle, tiny_series):
    frame = tiny_series.copy()
    frame.iloc[-1, frame.columns.get_loc("target")] = np.inf
    with pytest.raises(ForecastInputError, match=f"column 'target' holds an infinite value at {frame.index[-1]}"):
        bundle.predict(frame)


def test_non_numeric_column_is_refused(bundle, tiny_series):
    frame = tiny_series.astype({"x1": object})
    frame.iloc[-1, frame.columns.get_loc("x1")] = "n/a"
    with pytest.raises(ForecastInputError, match="column 'x1' is not numeric"):
        bundle.predict(frame)


def test_too_few_rows_says_how_many_are_needed(bundle, tiny_series):
    with pytest.raises(ForecastInputError, match="needs the last 24 rows.*has 23"):
        bundle.predict(tiny_series.iloc[-23:])
    assert len(bundle.predict(tiny_series.iloc[-24:])) == 4  # exactly the look-back is enough


@pytest.mark.parametrize("horizon", [0, 5, -1, 2.0, True])
def test_horizon_outside_one_to_the_bundles_is_refused(bundle, tiny_series, horizon):
    with pytest.raises(ForecastInputError, match="horizon"):
        bundle.predict(tiny_series, horizon=horizon)


def test_windows_of_the_wrong_shape_or_non_finite_are_refused(bundle):
    with pytest.raises(ForecastInputError, match="shape \\(n, 24, 4\\)"):
        bundle.forecast_arrays(np.zeros((2, 23, 4)))
    bad = np.zeros((2, 24, 4))
    bad[1, 5, 2] = np.nan
    with pytest.raises(ForecastInputError, match="window 1 .* column 'x3' at step 5"):
        bundle.forecast_arrays(bad)


def test_forecast_errors_are_value_errors():
    assert issubclass(ForecastInputError, ValueError) and issubclass(BundleError, ValueError)


# ------------------------------------------------------------------ verification


def test_changed_file_is_refused_naming_it(copy):
    path = copy / "calibration.json"
    path.write_text(path.read_text().replace('"windows"', '"windows" ', 1))
    with pytest.raises(BundleError, match="calibration.json: its content does not match the manifest"):
        load_bundle(copy)


def test_missing_file_is_refused_naming_it(copy):
    (copy / "model" / "model.keras").unlink()
    with pytest.raises(BundleError, match="model/model.keras: listed in the manifest but missing"):
        load_bundle(copy)


def test_extra_file_is_refused_naming_it(copy):
    (copy / "figures").mkdir()
    (copy / "figures" / "added.png").write_bytes(b"png")
    with pytest.raises(BundleError, match="figures/added.png: not listed in the manifest"):
        load_bundle(copy)


def test_unknown_format_and_missing_manifest_are_refused(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps(manifest | {"format": 99}))
    with pytest.raises(BundleError, match="manifest.json: bundle format 99 is not supported"):
        load_bundle(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json: missing"):
        load_bundle(copy)


def test_a_lambda_layer_is_refused_by_safe_mode(copy):
    import keras

    inputs = keras.Input((24, 4))
    outputs = keras.layers.Lambda(lambda x: x[:, -4:, -1] * 2.0)(inputs)
    keras.Model(inputs, outputs).save(copy / "model" / "model.keras")
    _write_manifest(copy)  # re-hashed: only safe mode stands in the way
    with pytest.raises(BundleError, match="model.keras: Keras safe mode refused to load the model") as err:
        load_bundle(copy)
    assert "Traceback" not in str(err.value) and len(str(err.value)) < 400


# ------------------------------------------------------------------ writing


def _rewrite(target: Path, bundle, metrics: dict | None = None) -> Path:
    """write_bundle of the tiny bundle's model and calibration into target."""
    from lstmkit.bundle.format import scaler_from_params

    pre = bundle.preprocessing
    return write_bundle(target, bundle.forecaster, scaler_from_params(pre["scaler"]),
                        scaler_from_params(pre["target_scaler"]), bundle.columns, bundle.target, bundle.freq,
                        bundle.cutoff, bundle.config, {"source": "val"}, bundle.abs_errors, metrics or {})


def test_rewriting_gives_the_same_forecasts_and_an_existing_bundle_is_replaced(bundle, tiny_series, tmp_path):
    target = _rewrite(tmp_path / "b", bundle)
    again = load_bundle(target)
    pd.testing.assert_frame_equal(again.predict(tiny_series), bundle.predict(tiny_series), rtol=1e-6)
    first = again.version
    _rewrite(target, bundle, {"note": "second"})
    assert load_bundle(target).version != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temporary or old folder left behind


def test_a_non_bundle_folder_or_a_file_is_never_overwritten(bundle, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(BundleError, match="non-empty folder that is not a bundle"):
        _rewrite(folder, bundle)
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="not a folder"):
        _rewrite(tmp_path / "file", bundle)
    (tmp_path / "empty").mkdir()
    assert load_bundle(_rewrite(tmp_path / "empty", bundle)).horizon == 4


def test_a_crash_mid_write_leaves_the_existing_bundle_untouched(bundle, tmp_path, monkeypatch):
    target = _rewrite(tmp_path / "b", bundle)
    before = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)  # fails after the model and preprocessing.json were written
    with pytest.raises(OSError, match="disk full"):
        _rewrite(target, bundle, {"note": "never"})
    after = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    with pytest.raises(OSError):
        _rewrite(tmp_path / "new", bundle)
    assert not (tmp_path / "new").exists()


def test_too_few_calibration_windows_for_a_level_are_refused(bundle, tmp_path):
    from lstmkit.bundle.format import scaler_from_params

    pre = bundle.preprocessing
    with pytest.raises(BundleError, match="10 calibration windows are too few for a 95% interval"):
        write_bundle(tmp_path / "b", bundle.forecaster, scaler_from_params(pre["scaler"]),
                     scaler_from_params(pre["target_scaler"]), bundle.columns, bundle.target, bundle.freq,
                     bundle.cutoff, bundle.config, {"source": "val"}, bundle.abs_errors[:10], {})
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------ export from a run folder, and the CLI


RUN = {"seed": 5, "data": {"source": "synthetic", "length": 480}, "split": {"train": 0.6, "val": 0.2, "test": 0.2},
       "window": {"lookback": 24, "horizon": 3}, "model": {"units": 4, "dropout": 0.0, "batch_size": 64},
       "training": {"epochs": 1, "patience": 1, "verbose": 0}, "tuning": {"strategy": "none"},
       "evaluation": {"seasonal_period": 24}, "uncertainty": {"levels": [0.8, 0.9], "folds": 2}}


def make_run(root: Path, overrides: dict | None = None):
    """A run folder whose data, preprocessing, training and evaluation stages ran (in-process, tiny)."""
    from lstmkit.config import from_dict
    from lstmkit.data.series import save_series
    from lstmkit.data.synthetic import make_synthetic
    from lstmkit.models.neural.forecaster import fit_forecaster
    from lstmkit.models.neural.spec import ModelSpec
    from lstmkit.runs.folder import start_run
    from lstmkit.stages.evaluation import evaluate, save_evaluation
    from lstmkit.stages.preprocessing import save_prepared
    from lstmkit.stages.training import TrainedModel, write_selected

    cfg = from_dict(RUN, overrides)
    frame, _ = make_synthetic(cfg.data.length, cfg.data.noise_std, cfg.seed)
    run = start_run(root, cfg)
    save_series(frame, run.series_file)
    prepared = prepare(frame, cfg)
    save_prepared(prepared, run)
    f = fit_forecaster(prepared, ModelSpec.from_config(cfg), cfg, cfg.seed, "lstm")
    folder = run.model_dir("lstm", cfg.seed)
    f.save(folder)
    model = TrainedModel("lstm", cfg.seed, f, "config", str(folder.relative_to(run.root)), False)
    write_selected(run, cfg, [model], model)
    save_evaluation(evaluate({"lstm": [f]}, prepared, cfg, selected=f), run)
    return run, prepared, f


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """(run, prepared, forecaster) of a tiny finished run (fit_on train)."""
    return make_run(tmp_path_factory.mktemp("run") / "run")


def test_export_from_a_run_folder(tiny_run, tmp_path):
    run, prepared, f = tiny_run
    run.figure_file("forecast").parent.mkdir(parents=True, exist_ok=True)
    run.figure_file("forecast").write_bytes(b"\x89PNG fake")
    b = load_bundle(export_bundle(run, tmp_path / "bundle"))
    assert (b.lookback, b.horizon, b.freq) == (24, 3, "h")
    assert b.cutoff == prepared.index[prepared.bounds.train[1] - 1]
    assert b.calibration["source"] == "val" and b.calibration["windows"] == prepared.n_windows("val")
    np.testing.assert_allclose(b.abs_errors, np.abs(prepared.targets("val") - f.predict_split(prepared, "val")),
                               rtol=1e-5, atol=1e-6)
    evaluation = json.loads(run.metrics_file.read_text())
    assert b.metrics["model"]["original"]["mse"] == pytest.approx(evaluation["model"]["original"]["mse"])
    assert set(b.metrics["baselines"]) == set(evaluation["baselines"])
    summary = b.manifest["summary"]
    assert summary["test_mse"] == pytest.approx(evaluation["model"]["original"]["mse"])
    best = evaluation["meta"]["best_baseline"]
    assert summary["best_baseline"] == best
    assert (b.path / "figures" / "forecast.png").read_bytes() == b"\x89PNG fake"
    assert (b.path / "config.yaml").is_file() and set(b.manifest["files"]) >= {"config.yaml", "figures/forecast.png"}
    frame = pd.DataFrame(prepared.original, index=prepared.index, columns=prepared.columns)
    np.testing.assert_allclose(b.predict(frame)["mean"].to_numpy(),
                               prepared.to_original(f.predict(prepared.scaled[-24:][None]))[0], rtol=1e-5, atol=1e-4)


def test_export_after_a_train_val_refit_calibrates_out_of_fold(tmp_path):
    run, prepared, f = make_run(tmp_path / "run", {"training.fit_on": "train+val"})
    b = load_bundle(export_bundle(run, tmp_path / "bundle"))
    assert b.cutoff == prepared.index[prepared.bounds.val[1] - 1]
    assert b.calibration["source"] == "oof" and b.calibration["folds"] == 2
    assert len(b.abs_errors) == b.calibration["windows"] > prepared.n_windows("val")
    assert (run.uncertainty_dir / "models" / "lstm" / "fold-0").is_dir()  # the chapter's fold models, reusable


def test_export_refuses_a_run_without_evaluation(tiny_run, tmp_path):
    run, _, _ = tiny_run
    copy_root = Path(shutil.copytree(run.root, tmp_path / "run"))
    (copy_root / "evaluation" / "metrics.json").unlink()
    from lstmkit.runs.folder import RunFolder

    with pytest.raises(BundleError, match="lacks the stage\\(s\\) evaluation"):
        export_bundle(RunFolder(copy_root), tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_cli_export_prints_version_and_figures_and_exits_cleanly_on_errors(tiny_run, tmp_path, capsys):
    from lstmkit.cli import main

    run, _, _ = tiny_run
    out = tmp_path / "bundle"
    assert main(["export", "--run-dir", str(run.root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    version = load_bundle(out).version
    assert f"version {version}" in printed and "test MSE" in printed and str(out) in printed
    (tmp_path / "notabundle").mkdir()
    (tmp_path / "notabundle" / "x").write_text("x")
    assert main(["export", "--run-dir", str(run.root), "--out", str(tmp_path / "notabundle")]) == 2
    assert "not a bundle" in capsys.readouterr().err
    assert main(["export", "--run-dir", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "no such run folder" in capsys.readouterr().err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text((run.root / "config.yaml").read_text())
    assert main(["export", "--run-dir", str(tmp_path / "half"), "--out", str(tmp_path / "b2")]) == 2
    assert "lacks the stage(s) data (01_data)" in capsys.readouterr().err


@pytest.mark.e2e
@pytest.mark.parametrize("spec", [{"architecture": "lstm", "quantiles": [0.1, 0.5, 0.9]}, {"architecture": "tcn"},
                                  {"architecture": "deepar"}, {"architecture": "patchtst"}])
def test_the_compiled_call_matches_predict_for_other_networks(spec, bundle, tiny_series, tmp_path):
    """Quantile heads (the median is the point forecast), convolutions, DeepAR's mean path, attention: the bundle's
    compiled model call gives what the forecaster's own predict gives (an untrained network suffices)."""
    from lstmkit.bundle.format import scaler_from_params
    from lstmkit.models.neural.forecaster import NeuralForecaster, build_network
    from lstmkit.models.neural.spec import ModelSpec

    s = ModelSpec.from_dict({"units": 8, "layers": 1, "dropout": 0.0, "lookback": 24} | spec)
    f = NeuralForecaster(s)
    f.network = build_network(s, 24, 4, 4, 3)
    f.lookback_, f.horizon_, f.channels_, f.target_index_ = 24, 4, 4, 3
    f.fit_seconds_, f.best_epoch_, f.val_loss_ = 0.0, 1, 0.0
    pre = bundle.preprocessing
    path = write_bundle(tmp_path / "b", f, scaler_from_params(pre["scaler"]), scaler_from_params(pre["target_scaler"]),
                        bundle.columns, bundle.target, "h", bundle.cutoff, bundle.config, {"source": "val"},
                        bundle.abs_errors, {})
    other = load_bundle(path)
    windows = tiny_series[bundle.columns].to_numpy()[np.arange(3)[:, None] + np.arange(24)[None, :]]
    scaled = bundle.scaler.transform(windows).astype(np.float32)
    expected = bundle.target_scaler.inverse(other.forecaster.predict(scaled))
    np.testing.assert_allclose(other.forecast_arrays(windows)[0], expected, rtol=1e-4, atol=1e-4)


def test_export_carries_the_uncertainty_chapters_conformal_entry(tiny_run, tmp_path):
    from lstmkit.config import from_dict
    from lstmkit.runs.folder import RunFolder
    from lstmkit.stages.uncertainty import run_uncertainty

    run, prepared, _ = tiny_run
    run = RunFolder(Path(shutil.copytree(run.root, tmp_path / "run")))
    cfg = from_dict(RUN, {"uncertainty.method": ["conformal"], "uncertainty.bootstrap": 20, "uncertainty.joint": False})
    chapter = run_uncertainty(run, cfg, prepared).metrics
    b = load_bundle(export_bundle(run, tmp_path / "bundle"))
    assert b.metrics["conformal"]["key"] == "lstm/conformal"
    assert b.metrics["conformal"]["coverage"] == chapter["lstm/conformal"]["coverage"]
    assert b.manifest["summary"]["coverage"] == chapter["lstm/conformal"]["coverage"]


def test_a_calendar_time_step_forecasts_on_its_calendar(bundle, tiny_series, tmp_path):
    from lstmkit.bundle.format import scaler_from_params

    pre = bundle.preprocessing
    monthly = load_bundle(write_bundle(tmp_path / "b", bundle.forecaster, scaler_from_params(pre["scaler"]),
                                       scaler_from_params(pre["target_scaler"]), bundle.columns, bundle.target, "MS",
                                       pd.Timestamp("2020-01-01"), bundle.config, {"source": "val"}, bundle.abs_errors, {}))
    frame = tiny_series.iloc[-30:].set_axis(pd.date_range("2018-01-01", periods=30, freq="MS", name="month"))
    out = monthly.predict(frame)
    assert list(out.index) == list(pd.date_range("2020-07-01", periods=4, freq="MS")) and out.index.name == "month"
    with pytest.raises(ForecastInputError, match="first missing: 2019-12-01"):
        monthly.predict(frame.drop(index=pd.Timestamp("2019-12-01")))
    with pytest.raises(ForecastInputError, match="time step is 'QS-JAN' but the model was trained on 'MS'"):
        monthly.predict(frame.set_axis(pd.date_range("2000-01-01", periods=30, freq="QS", name="month")))
