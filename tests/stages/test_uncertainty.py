"""The uncertainty stage (07): entries beside the conformalised baseline, honest calibration (never test windows; ACI
uses an outcome only once observed), out-of-fold calibration in the run's scaling, resume without retraining, methods
that do not apply skipped with a reason, and the chapter's figures."""

from __future__ import annotations

import dataclasses

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from lstmkit.config import from_dict  # noqa: E402
from lstmkit.data.synthetic import make_synthetic  # noqa: E402
from lstmkit.data.windows import prepare  # noqa: E402
from lstmkit.runs.folder import start_run  # noqa: E402

TINY = {"seed": 3, "data": {"source": "synthetic", "features": [], "length": 480},
        "split": {"train": 0.6, "val": 0.2, "test": 0.2}, "window": {"lookback": 24, "horizon": 3},
        "model": {"units": 4, "dropout": 0.2, "batch_size": 64}, "training": {"epochs": 1, "patience": 1},
        "tuning": {"strategy": "none"}, "evaluation": {"seasonal_period": 24},
        "uncertainty": {"method": ["conformal", "aci"], "levels": [0.8, 0.9], "quantiles": [0.1, 0.5, 0.9],
                        "bootstrap": 50, "folds": 2, "mc_samples": 8}}


def make_run(root, overrides: dict | None = None):
    """A run folder with a tiny trained and selected LSTM (as the training stage leaves it), its config and series."""
    from lstmkit.models.neural.forecaster import fit_forecaster
    from lstmkit.models.neural.spec import ModelSpec
    from lstmkit.stages.training import TrainedModel, write_selected

    cfg = from_dict(TINY, overrides)
    frame, _ = make_synthetic(cfg.data.length, cfg.data.noise_std, cfg.seed)
    prepared = prepare(frame, cfg)
    run = start_run(root, cfg)
    spec = ModelSpec.from_config(cfg)
    f = fit_forecaster(prepared, spec, cfg, cfg.seed, "lstm")
    folder = run.model_dir("lstm", cfg.seed)
    f.save(folder)
    model = TrainedModel("lstm", cfg.seed, f, "config", str(folder.relative_to(run.root)), False)
    write_selected(run, cfg, [model], model)
    return run, cfg, prepared


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(run, cfg, prepared) of a tiny run with a trained model (dropout 0.2)."""
    return make_run(tmp_path_factory.mktemp("u") / "run")


@pytest.fixture(scope="module")
def conformal_result(tiny):
    """The stage's result with the default conformal and ACI methods."""
    from lstmkit.stages.uncertainty import run_uncertainty

    run, cfg, prepared = tiny
    return run_uncertainty(run, cfg, prepared)


def test_every_entry_is_reported_beside_the_conformalised_seasonal_naive(tiny, conformal_result):
    run, cfg, prepared = tiny
    m = conformal_result.metrics
    assert {"lstm/conformal", "lstm/joint_conformal", "lstm/aci", "seasonal_naive/conformal",
            "seasonal_naive/aci", "meta"} == set(m)
    n, h, grid = prepared.n_windows("test"), cfg.window.horizon, cfg.uncertainty.grid()
    assert m["meta"]["grid"] == grid and m["meta"]["windows"] == n
    for key, entry in conformal_result.entries.items():
        for lv in ("80", "90"):
            assert 0 <= entry["coverage"][lv] <= 1 and len(entry["coverage_per_step"][lv]) == h
            assert 0 <= entry["joint_coverage"][lv] <= entry["coverage"][lv]
            assert entry["width"][lv] > 0
        assert np.isfinite(entry["crps"]) and np.isfinite(entry["msis"])
        q = conformal_result.quantiles[key]
        assert q.shape == (n, h, len(grid))
        assert (np.diff(q, axis=-1) >= -1e-9).all(), f"{key}: quantiles cross"
    # coverage in metrics.json is what the saved quantiles give on the test actuals
    lo, hi = conformal_result.interval("lstm/conformal", 0.9)
    y = prepared.targets("test")
    assert m["lstm/conformal"]["coverage"]["90"] == pytest.approx(np.mean((y >= lo) & (y <= hi)))


def test_saved_results_load_back(tiny, conformal_result):
    from lstmkit.stages.uncertainty import load_uncertainty

    back = load_uncertainty(tiny[0])
    assert back.metrics == conformal_result.metrics
    assert set(back.quantiles) == set(conformal_result.quantiles)
    for k, q in conformal_result.quantiles.items():
        np.testing.assert_allclose(back.quantiles[k], q, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(back.origins, tiny[2].origins("test"))


def test_original_units_are_scaled_units_times_the_target_scale(tiny, conformal_result):
    prepared = tiny[2]
    scale = float(np.diff(prepared.to_original(np.array([0.0, 1.0])))[0])
    entry = conformal_result.metrics["lstm/conformal"]
    assert scale != pytest.approx(1.0)
    assert entry["original"]["width"]["90"] == pytest.approx(entry["width"]["90"] * scale)
    assert entry["original"]["crps"] == pytest.approx(entry["crps"] * scale)


def test_calibration_never_uses_the_test_windows(tmp_path, tiny, conformal_result):
    """Split conformal offsets (quantile minus point forecast) do not change when every test outcome changes."""
    from lstmkit.stages.uncertainty import run_uncertainty

    run, cfg, prepared = tiny
    a, b = prepared.bounds.test
    changed = dataclasses.replace(prepared, scaled=prepared.scaled.copy())
    changed.scaled[a:b, changed.target_index] += np.random.default_rng(0).normal(0, 3, b - a)
    again = run_uncertainty(run, cfg, changed)
    median = cfg.uncertainty.grid().index(0.5)
    for key in ("lstm/conformal", "seasonal_naive/conformal"):
        before, after = conformal_result.quantiles[key], again.quantiles[key]
        np.testing.assert_allclose(after - after[..., median:median + 1], before - before[..., median:median + 1],
                                   atol=1e-9)
    run_uncertainty(run, cfg, prepared)  # leave the shared run folder as the other tests expect it


def test_aci_uses_a_test_outcome_only_once_it_is_observed(tiny, conformal_result):
    """Changing the series from row R on leaves the ACI bands of every window whose origin lies before R unchanged."""
    from lstmkit.stages.uncertainty import run_uncertainty

    run, cfg, prepared = tiny
    origins = prepared.origins("test")
    cut = origins[len(origins) // 2]
    changed = dataclasses.replace(prepared, scaled=prepared.scaled.copy())
    changed.scaled[cut:, changed.target_index] += 5.0  # a level shift: later windows miss, ACI widens
    again = run_uncertainty(run, cfg, changed)
    before = origins < cut
    for key in ("lstm/aci", "seasonal_naive/aci"):
        np.testing.assert_allclose(again.quantiles[key][before], conformal_result.quantiles[key][before], atol=1e-9)
        assert not np.allclose(again.quantiles[key][~before], conformal_result.quantiles[key][~before])
    run_uncertainty(run, cfg, prepared)


def test_validation_calibration_targets_lie_in_the_validation_rows(tiny):
    from lstmkit.stages.training import load_selected
    from lstmkit.stages.uncertainty import Source, calibration_forecasts

    run, cfg, prepared = tiny
    f = load_selected(run)
    cal = calibration_forecasts(run, Source("lstm", f, "point", "point", None), prepared, "val", [],
                                cfg.uncertainty.grid(), 0)
    rows = prepared.target_rows("val")
    assert rows.min() >= prepared.bounds.val[0] and rows.max() < prepared.bounds.test[0]
    np.testing.assert_allclose(cal.y, prepared.scaled[rows, prepared.target_index], rtol=1e-6)


def test_out_of_fold_calibration_is_in_the_run_scaling_and_before_the_test(tiny):
    """Each fold's refit forecasts its own block; actuals converted back into the run's scaling equal the series."""
    from lstmkit.data.windows import cv_folds
    from lstmkit.stages.training import read_selected
    from lstmkit.stages.uncertainty import Source, calibration_forecasts

    run, cfg, prepared = tiny
    from lstmkit.models.registry import load

    folder = run.root / read_selected(run)["path"]
    folds = cv_folds(prepared, 2)
    src = Source("lstm", load(folder), "point", "point", folder)
    cal = calibration_forecasts(run, src, prepared, "oof", folds, cfg.uncertainty.grid(), 0)
    rows = np.concatenate([f.target_rows("val") for f in folds])
    assert rows.max() < prepared.bounds.test[0]
    np.testing.assert_allclose(cal.y, prepared.scaled[rows, prepared.target_index], rtol=1e-4, atol=1e-4)
    assert (run.uncertainty_dir / "models" / "lstm" / "fold-1" / "forecaster.json").is_file()
    mtime = (run.uncertainty_dir / "models" / "lstm" / "fold-0" / "model.keras").stat().st_mtime_ns
    again = calibration_forecasts(run, src, prepared, "oof", folds, cfg.uncertainty.grid(), 0)  # reloaded
    assert (run.uncertainty_dir / "models" / "lstm" / "fold-0" / "model.keras").stat().st_mtime_ns == mtime
    np.testing.assert_allclose(again.point, cal.point, rtol=1e-5, atol=1e-5)


def test_quantile_head_is_trained_once_and_reloaded_on_resume(tiny):
    from lstmkit.stages.uncertainty import run_uncertainty

    run, cfg, prepared = tiny
    cfg = from_dict(cfg.to_dict(), {"uncertainty.method": ["quantile", "quantile+conformal"]})
    first = run_uncertainty(run, cfg, prepared)
    network = run.uncertainty_dir / "models" / "lstm-quantile" / f"seed-{cfg.seed}" / "model.keras"
    mtime = network.stat().st_mtime_ns
    second = run_uncertainty(run, cfg, prepared)
    assert network.stat().st_mtime_ns == mtime
    assert "reloaded" in second.metrics["meta"]["sources"]["quantile"]["note"]
    for key in ("lstm-quantile/quantile", "lstm-quantile/quantile+conformal"):
        np.testing.assert_allclose(second.quantiles[key], first.quantiles[key], rtol=1e-6, atol=1e-6)
    assert "quantile-grid" in first.metrics["lstm-quantile/quantile"]["crps_estimator"]


def test_mc_dropout_samples_and_reports_the_ensemble_crps(tiny):
    from lstmkit.stages.uncertainty import run_uncertainty

    run, cfg, prepared = tiny
    cfg = from_dict(cfg.to_dict(), {"uncertainty.method": ["mc_dropout", "mc_dropout+conformal"]})
    result = run_uncertainty(run, cfg, prepared)
    raw = result.metrics["lstm/mc_dropout"]
    assert "quantile-grid" in raw["crps_estimator"]  # one estimator in `crps` for every entry, so they compare
    assert "crps_ensemble" in raw["crps_samples_estimator"] and raw["crps_samples"] > 0
    assert abs(raw["crps_samples"] / raw["crps"] - 1) < 0.25  # two estimators of one forecast's CRPS
    assert "lstm/mc_dropout+conformal" in result.metrics
    assert result.pit["lstm/mc_dropout"].shape == result.actual.shape


def test_a_method_that_does_not_apply_is_skipped_with_a_reason(tmp_path):
    from lstmkit.report.uncertainty import sources_text
    from lstmkit.stages.uncertainty import run_uncertainty

    run, cfg, prepared = make_run(tmp_path / "run", overrides={"model.dropout": 0.0,
                                                               "uncertainty.method": ["conformal", "mc_dropout"]})
    result = run_uncertainty(run, cfg, prepared)
    assert "lstm/mc_dropout" not in result.metrics and "lstm/conformal" in result.metrics
    assert "dropout" in result.metrics["meta"]["skipped"]["mc_dropout"]
    assert "mc_dropout` was skipped" in sources_text(result.metrics)


def test_calibration_mode_follows_fit_on():
    from lstmkit.stages.uncertainty import calibration_mode

    assert calibration_mode(from_dict(TINY)) == "val"
    assert calibration_mode(from_dict(TINY, {"training.fit_on": "train+val"})) == "oof"
    assert calibration_mode(from_dict(TINY, {"training.fit_on": "train+val", "uncertainty.calibration": "val"})) == "val"


def test_figures_have_titles_and_labelled_axes(tiny, conformal_result):
    from lstmkit.report import plots
    from lstmkit.report import uncertainty as uncertainty_text

    run, cfg, prepared = tiny
    r, m = conformal_result, conformal_result.metrics
    keys = uncertainty_text.figure_keys(m)
    assert keys[-1] == "seasonal_naive/conformal"
    times, actual, fans = uncertainty_text.fan_inputs(r, prepared, [keys[0], keys[-1]], 1, 48)
    np.testing.assert_allclose(actual, prepared.to_original(prepared.targets("test")[:48, 0]), rtol=1e-5)
    figures = [plots.fan_chart(times, actual, fans, r.grid, 1, "target", "a.u."),
               plots.reliability(uncertainty_text.reliability_inputs(m, keys)),
               plots.pit_histograms({k: r.pit[k] for k in keys}),
               plots.width_over_time(*uncertainty_text.width_inputs(r, prepared, keys, 0.9, 1), 0.9, 1, "a.u.")]
    for fig in figures:
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert all(ax.get_title() for ax in visible)
        assert all(ax.get_xlabel() for ax in visible[-1:]) and visible[0].get_ylabel()
    import matplotlib.pyplot as plt

    plt.close("all")


def test_report_headline_prefers_an_entry_that_covers_then_the_lowest_crps(conformal_result):
    import copy

    from lstmkit.report.uncertainty import headline

    m = copy.deepcopy(conformal_result.metrics)
    m["lstm/conformal"].update(coverage_ci={**m["lstm/conformal"]["coverage_ci"], "90": [0.5, 0.6]}, crps=0.01)
    m["lstm/aci"].update(coverage_ci={**m["lstm/aci"]["coverage_ci"], "90": [0.85, 0.95]}, crps=0.3)
    m["lstm/joint_conformal"].update(coverage_ci={**m["lstm/joint_conformal"]["coverage_ci"], "90": [0.88, 0.99]},
                                     crps=0.2)
    text = headline(m, "a.u.")
    assert "`lstm/joint_conformal`" in text and "seasonal naive" in text  # lstm/conformal has a lower CRPS but misses
    for key in ("lstm/aci", "lstm/joint_conformal"):
        m[key]["coverage_ci"]["90"] = [0.1, 0.2]
    assert "`lstm/conformal`" in headline(m, "a.u.") and "no entry" in headline(m, "a.u.")


def test_a_baseline_as_the_selected_forecaster_gets_conformal_and_aci_only(tmp_path, tiny):
    """Any forecaster of the contract: a baseline has no samples or quantiles, so those methods are skipped."""
    from lstmkit.core.atomic import atomic_write_json
    from lstmkit.models.baselines.linear import LinearWindow
    from lstmkit.stages.uncertainty import run_uncertainty

    _, cfg, prepared = tiny
    run = start_run(tmp_path / "run", cfg)
    f = LinearWindow(name="linear").fit(prepared)
    folder = f.save(run.model_dir("linear", 0))
    atomic_write_json(run.selected_file, {"model": "linear", "seed": 0, "path": str(folder.relative_to(run.root)),
                                          "models": []})
    cfg = from_dict(cfg.to_dict(), {"uncertainty.method": ["conformal", "aci", "quantile", "mc_dropout"]})
    result = run_uncertainty(run, cfg, prepared)
    assert {k for k in result.metrics if k != "meta"} == {"linear/conformal", "linear/joint_conformal", "linear/aci",
                                                         "seasonal_naive/conformal", "seasonal_naive/aci"}
    skipped = result.metrics["meta"]["skipped"]
    assert "not a neural network" in skipped["quantile"] and "not a neural network" in skipped["mc_dropout"]


def test_width_chart_marks_an_entry_far_wider_than_the_baseline_off_scale():
    import matplotlib.pyplot as plt
    import pandas as pd

    from lstmkit.report import plots

    times = pd.date_range("2024-01-01", periods=50, freq="h")
    widths = {"m/conformal": np.linspace(1, 2, 50), "m/quantile": np.full(50, 100.0), "seasonal_naive/conformal": np.ones(50)}
    fig = plots.width_over_time(times, widths, {"m/conformal (median)": np.zeros(50)}, 0.9, 1, "a.u.")
    top = fig.axes[0]
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert "m/quantile (off scale: median 100)" in labels and "m/conformal" in labels
    assert 2 <= top.get_ylim()[1] < 100
    plt.close(fig)


def test_reliability_text_counts_the_steps_whose_ci_misses_nominal(conformal_result):
    import copy

    from lstmkit.report.uncertainty import reliability_text

    m = copy.deepcopy(conformal_result.metrics)
    h = len(m["lstm/aci"]["coverage_per_step"]["90"])
    m["lstm/aci"]["coverage_per_step"]["90"] = [0.7] + [0.9] * (h - 1)
    m["lstm/aci"]["coverage_per_step_ci"]["90"] = [[0.6] + [0.85] * (h - 1), [0.8] + [0.95] * (h - 1)]
    text = reliability_text(m, ["lstm/aci"])
    assert f"1 of {h} steps below" in text and "0 above" in text and "0.700 at step 1" in text
