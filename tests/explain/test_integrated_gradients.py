"""Integrated Gradients: exactness on linear models, completeness on an LSTM, batching, and lag bookkeeping."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from lstmkit.config import from_dict
from lstmkit.core.atomic import read_json
from lstmkit.data.synthetic import Driver, GroundTruth
from lstmkit.explain.integrated_gradients import (
    Attribution,
    completeness_table,
    feature_importance,
    ground_truth_scores,
    importance_heatmap,
    integrated_gradients,
    integrated_gradients_loop,
    lag_importance,
    lag_labels,
    sample_windows,
)
from lstmkit.models.neural.forecaster import build_network
from lstmkit.models.neural.spec import ModelSpec
from lstmkit.report.explainability import ground_truth_summary
from lstmkit.runs.folder import RunFolder
from lstmkit.stages.explainability import explain_test_windows, save_explanation

LOOKBACK, CHANNELS, HORIZON = 6, 2, 3


@pytest.fixture(scope="module")
def windows():
    return np.random.default_rng(0).normal(size=(5, LOOKBACK, CHANNELS)).astype(np.float32)


@pytest.fixture(scope="module")
def linear_model():
    """Dense model on the flattened window with known weights: f_k(x) = x . W[:, k] + b_k."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(LOOKBACK * CHANNELS, HORIZON)).astype(np.float32)
    b = np.array([0.5, -1.0, 2.0], np.float32)
    model = keras.Sequential([keras.Input((LOOKBACK, CHANNELS)), keras.layers.Flatten(), keras.layers.Dense(HORIZON)])
    model.layers[-1].set_weights([w, b])
    return model, w, b


@pytest.fixture(scope="module")
def lstm_model():
    """Tiny seeded LSTM forecaster (untrained weights are a fine non-linear function for IG checks)."""
    keras.utils.set_random_seed(3)
    return build_network(ModelSpec(units=8, dropout=0.0), LOOKBACK, CHANNELS, HORIZON)


# ------------------------------------------------------------------ exactness on a linear model


@pytest.mark.parametrize("output_index", [0, 2])
def test_ig_of_a_linear_model_is_input_times_weight(linear_model, windows, output_index):
    model, w, _ = linear_model
    attr = integrated_gradients(model, windows, steps=8, target=output_index)
    expected = windows * w[:, output_index].reshape(LOOKBACK, CHANNELS)
    np.testing.assert_allclose(attr.values, expected, rtol=1e-5, atol=1e-6)


def test_ig_of_a_linear_model_with_a_baseline(linear_model, windows):
    model, w, _ = linear_model
    baseline = np.full((LOOKBACK, CHANNELS), 0.7, np.float32)
    attr = integrated_gradients(model, windows, baseline=baseline, steps=4, target=1)
    expected = (windows - baseline) * w[:, 1].reshape(LOOKBACK, CHANNELS)
    np.testing.assert_allclose(attr.values, expected, rtol=1e-5, atol=1e-6)


def test_ig_predictions_are_model_outputs(linear_model, windows):
    model, w, b = linear_model
    baseline = np.full((LOOKBACK, CHANNELS), -0.2, np.float32)
    attr = integrated_gradients(model, windows, baseline=baseline, steps=4, target=2)
    flat = windows.reshape(len(windows), -1)
    np.testing.assert_allclose(attr.prediction, flat @ w[:, 2] + b[2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(attr.baseline_prediction, np.full(len(windows), baseline.ravel() @ w[:, 2] + b[2]),
                               rtol=1e-5, atol=1e-5)


def test_ig_of_a_linear_model_is_complete(linear_model, windows):
    model, _, _ = linear_model
    attr = integrated_gradients(model, windows, steps=2)
    np.testing.assert_allclose(attr.values.sum(axis=(1, 2)), attr.delta, rtol=1e-5, atol=1e-5)
    assert attr.relative_gap() < 1e-5


# ------------------------------------------------------------------ completeness on an LSTM


def test_ig_completeness_on_a_small_lstm(lstm_model, windows):
    attr = integrated_gradients(lstm_model, windows, steps=64, target=1)
    assert attr.values.shape == windows.shape
    assert np.abs(attr.delta).min() > 1e-3  # the check would be vacuous if f(x) = f(baseline)
    np.testing.assert_allclose(attr.values.sum(axis=(1, 2)), attr.delta, atol=1e-3 * np.abs(attr.delta).max())
    assert attr.relative_gap() < 1e-3


def test_ig_completeness_improves_with_more_steps(lstm_model, windows):
    coarse = integrated_gradients(lstm_model, 3 * windows, steps=2).relative_gap()
    fine = integrated_gradients(lstm_model, 3 * windows, steps=128).relative_gap()
    assert fine < coarse


def test_attribution_gap_properties():
    attr = Attribution(values=np.ones((2, 2, 1)), prediction=np.array([3.0, 1.0]),
                       baseline_prediction=np.array([0.0, 0.0]))
    np.testing.assert_array_equal(attr.delta, [3.0, 1.0])
    np.testing.assert_array_equal(attr.completeness_gap, [1.0, 1.0])
    assert attr.relative_gap() == pytest.approx(0.5)


# ------------------------------------------------------------------ vectorised vs reference, chunking


def test_vectorised_ig_equals_loop_reference(lstm_model, windows):
    fast = integrated_gradients(lstm_model, windows[:3], steps=8, target=2)
    slow = integrated_gradients_loop(lstm_model, windows[:3], steps=8, target=2)
    np.testing.assert_allclose(fast.values, slow, rtol=1e-4, atol=1e-6)
    assert np.abs(slow).max() > 1e-3


@pytest.mark.parametrize("batch_size", [1, 8, 20])
def test_chunking_does_not_change_attributions(lstm_model, windows, batch_size):
    whole = integrated_gradients(lstm_model, windows, steps=8, batch_size=4096)
    chunked = integrated_gradients(lstm_model, windows, steps=8, batch_size=batch_size)
    np.testing.assert_allclose(chunked.values, whole.values, rtol=1e-5, atol=1e-7)
    # float32 matmuls of another batch size round differently: a few 1e-8 on predictions of ~1e-2
    np.testing.assert_allclose(chunked.prediction, whole.prediction, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(chunked.baseline_prediction, whole.baseline_prediction, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ lags, sampling and summaries


def test_lag_labels_hand_values():
    np.testing.assert_array_equal(lag_labels(5, 1), [5, 4, 3, 2, 1])
    np.testing.assert_array_equal(lag_labels(5, 3), [7, 6, 5, 4, 3])


@pytest.mark.parametrize("lookback,step", [(1, 1), (48, 1), (48, 6), (24, 4)])
def test_last_window_position_has_lag_equal_to_horizon_step(lookback, step):
    lags = lag_labels(lookback, step)
    assert lags[-1] == step
    assert lags[0] == lookback - 1 + step
    np.testing.assert_array_equal(np.diff(lags), -1)


def test_lag_of_a_position_matches_row_distance_to_target(row_prepared):
    """Position i of a window is row origin-lookback+1+i; the explained target is row origin+step."""
    p = row_prepared(lookback=8, horizon=3)
    x, y = p.arrays("test")
    for step in (1, 2, 3):
        np.testing.assert_array_equal(y[0, step - 1] - x[0, :, 1], lag_labels(8, step))


def test_sample_windows():
    np.testing.assert_array_equal(sample_windows(10, 3), [0, 4, 9])  # linspace 0, 4.5, 9 -> 0, 4 (half to even), 9
    np.testing.assert_array_equal(sample_windows(4, 10), [0, 1, 2, 3])
    s = sample_windows(1000, 128)
    assert len(s) == 128 and s[0] == 0 and s[-1] == 999 and (np.diff(s) > 0).all()


def planted_attribution(lookback: int = 6):
    """Attributions with all x1 mass at window position lookback-4 and x2 mass at position 0."""
    values = np.zeros((2, lookback, 3))
    values[:, lookback - 4, 0] = [1.0, -3.0]     # x1, mean |.| = 2
    values[:, 0, 1] = 1.0                         # x2, mean |.| = 1
    values[:, -1, 2] = 1.0                        # target's own last value, mean |.| = 1
    return Attribution(values, np.zeros(2), np.zeros(2))


def test_importance_heatmap_rows_are_lags():
    heat = importance_heatmap(planted_attribution(), ["x1", "x2", "target"], horizon_step=2)
    assert heat.index.name == "lag" and list(heat.index) == [2, 3, 4, 5, 6, 7]
    assert heat.loc[5, "x1"] == 2.0   # position 2 of 6 with step 2: lag 6 - 1 - 2 + 2 = 5
    assert heat.loc[7, "x2"] == 1.0   # position 0: lag lookback - 1 + step
    assert heat.loc[2, "target"] == 1.0
    assert heat.to_numpy().sum() == 4.0


def test_feature_and_lag_importance_shares():
    heat = importance_heatmap(planted_attribution(), ["x1", "x2", "target"], horizon_step=2)
    feats = feature_importance(heat)
    assert feats.index[0] == "x1"  # sorted by share, largest first
    assert (feats["x1"], feats["x2"], feats["target"]) == pytest.approx((0.5, 0.25, 0.25))
    lags = lag_importance(heat)
    assert lags[5] == pytest.approx(0.5) and lags[3] == 0.0 and lags.sum() == pytest.approx(1.0)


def test_ground_truth_scores_find_each_features_top_lag():
    heat = importance_heatmap(planted_attribution(), ["x1", "x2", "target"], horizon_step=2)
    heat.insert(2, "x3", 0.1)  # a distractor with flat importance
    truth = GroundTruth(drivers=[Driver("x1", 5, 1.0, "linear"), Driver("x2", 4, 1.0, "tanh")], noise_std=0.3,
                        distractors=["x3"])
    scores = ground_truth_scores(heat, truth, "target")
    assert list(scores.index) == ["x1 @ lag 5", "x2 @ lag 4"]
    assert scores.loc["x1 @ lag 5", "top lag"] == 5 and scores.loc["x1 @ lag 5", "rank within feature"] == 1
    assert scores.loc["x2 @ lag 4", "top lag"] == 7 and scores.loc["x2 @ lag 4", "rank within feature"] == 2
    text = ground_truth_summary(scores, pd.Series({"x1": 0.6, "x2": 0.3, "x3": 0.1}), truth)
    assert "for 1 of 2 driving pairs (`x1 @ lag 5`)" in text and "`x3`, which has no effect on the target, carries 10.0%" in text
    assert "runner-up" not in text  # x1 has no second lag with attribution
    assert "`x2 @ lag 4` comes 2nd among x2's lags, behind lag 7." in text  # 3 lags off: not a neighbour


def test_ground_truth_summary_names_the_echo_of_a_driver_in_the_targets_last_value():
    truth = GroundTruth(drivers=[Driver("x1", 3, 1.0, "linear"), Driver("x2", 4, 1.0, "tanh")], noise_std=0.3)
    heat = pd.DataFrame({"x1": [0.0, 0.1, 1.0, 0.5, 0.2], "x2": [0.1, 0.2, 0.0, 0.9, 0.4], "target": 1.0},
                        index=pd.Index([1, 2, 3, 4, 5], name="lag"))
    scores = ground_truth_scores(heat, truth, "target")
    assert scores["next lag"].tolist() == [4, 5]
    text = ground_truth_summary(scores, pd.Series({"x1": 0.5, "x2": 0.5}), truth)
    assert "comes 1 step later (`x1 @ lag 4`, `x2 @ lag 5`)" in text
    assert "comes 2 steps later" not in ground_truth_summary(scores, pd.Series(dtype=float), truth, first_lag=2)
    heat.loc[5, "x2"] = 1.0  # x2's top lag is now the planted lag's neighbour
    text = ground_truth_summary(ground_truth_scores(heat, truth, "target"), pd.Series(dtype=float), truth)
    assert "`x2 @ lag 4` comes 2nd among x2's lags, behind lag 5; when an input is autocorrelated" in text


# ------------------------------------------------------------------ the explainability stage


def dense_model(lookback: int, channels: int, horizon: int, seed: int = 2):
    """Linear Dense forecaster with random known weights; returns (model, weights of shape (lookback*channels, horizon))."""
    w = np.random.default_rng(seed).normal(size=(lookback * channels, horizon)).astype(np.float32)
    model = keras.Sequential([keras.Input((lookback, channels)), keras.layers.Flatten(), keras.layers.Dense(horizon)])
    model.layers[-1].set_weights([w, np.zeros(horizon, np.float32)])
    return model, w


def test_explain_test_windows_explains_the_configured_step(row_prepared):
    p = row_prepared(lookback=8, horizon=3, feature_values=np.cos(np.arange(100)))
    model, w = dense_model(8, 2, 3)
    cfg = from_dict({"window": {"lookback": 8, "horizon": 3}, "explain": {"windows": 5, "steps": 4, "horizon_step": 2}})
    positions, attr = explain_test_windows(model, p, cfg)
    np.testing.assert_array_equal(positions, sample_windows(18, 5))
    x, _ = p.arrays("test")
    np.testing.assert_allclose(attr.values, x[positions] * w[:, 1].reshape(8, 2), rtol=1e-5, atol=1e-4)


def test_completeness_table_summarises_the_gap():
    attr = Attribution(values=np.ones((2, 2, 1)), prediction=np.array([3.0, 1.0]),
                       baseline_prediction=np.array([0.0, 0.0]))
    table = completeness_table(attr)["value"]
    assert table["windows explained"] == 2
    assert table["mean |f(x) - f(baseline)|"] == pytest.approx(2.0)
    assert table["mean gap"] == pytest.approx(1.0) and table["largest gap"] == pytest.approx(1.0)
    assert table["median relative gap"] == pytest.approx(np.median([1 / 3, 1.0]))
    assert table["total gap / total |f(x) - f(baseline)|"] == pytest.approx(0.5)


def test_save_explanation_writes_lags_in_window_order(tmp_path):
    attr = planted_attribution()
    columns = ["x1", "x2", "target"]
    heat = importance_heatmap(attr, columns, horizon_step=2)
    run = RunFolder(tmp_path)
    save_explanation(run, np.array([0, 3]), attr, heat, columns)
    saved = np.load(run.attributions_file)
    np.testing.assert_array_equal(saved["lags"], lag_labels(6, 2))  # lag of each window position
    np.testing.assert_array_equal(saved["attributions"], attr.values)
    assert list(saved["columns"]) == columns
    summary = read_json(run.explanation_file)
    assert summary["windows"] == 2
    assert summary["top_lag_per_feature"] == {"x1": 5, "x2": 7, "target": 2}
    assert summary["feature_share"]["x1"] == pytest.approx(0.5)
    assert sorted(f.name for f in run.attributions_file.parent.iterdir()) == ["attributions.npz", "summary.json"]


# ------------------------------------------------------------------ through the forecaster contract


@pytest.fixture(scope="module")
def neural_forecaster(row_prepared):
    """A tiny LSTM forecaster of the contract, trained one epoch on a toy series (look-back 8, horizon 3)."""
    from lstmkit.config import TrainingConfig
    from lstmkit.models.neural.forecaster import NeuralForecaster

    p = row_prepared(lookback=8, horizon=3, feature_values=np.cos(np.arange(100)), target_values=np.sin(np.arange(100)))
    forecaster = NeuralForecaster(ModelSpec(units=4, dropout=0.0, batch_size=16), TrainingConfig(epochs=1, verbose=0),
                                  seed=1, name="tiny")
    return forecaster.fit(p), p


def test_explain_test_windows_differentiates_the_forecasters_network(neural_forecaster):
    forecaster, p = neural_forecaster
    cfg = from_dict({"window": {"lookback": 8, "horizon": 3}, "explain": {"windows": 4, "steps": 16, "horizon_step": 3}})
    positions, attr = explain_test_windows(forecaster, p, cfg)
    same_positions, same = explain_test_windows(forecaster.network, p, cfg)
    np.testing.assert_array_equal(positions, same_positions)
    np.testing.assert_allclose(attr.values, same.values, rtol=1e-6)
    x, _ = p.windows("test", positions)
    np.testing.assert_allclose(attr.prediction, forecaster.predict(x)[:, 2], rtol=1e-4, atol=1e-6)  # the contract's
    assert attr.feature_names == ["x", "target"] and attr.relative_gap() < 0.05                     # forecasts


def test_explaining_needs_a_network_and_windows_of_the_models_look_back(neural_forecaster):
    from lstmkit.core.errors import ForecasterError
    from lstmkit.models.baselines.persistence import Persistence

    forecaster, p = neural_forecaster
    cfg = from_dict({"window": {"lookback": 8, "horizon": 3}, "explain": {"windows": 4, "steps": 4}})
    with pytest.raises(ForecasterError, match="reads windows of 8 steps.*with_lookback\\(8\\)"):
        explain_test_windows(forecaster, p.with_lookback(6), cfg)
    baseline = Persistence().fit(p)
    with pytest.raises(ForecasterError, match=f"{baseline.name}: gradient attributions need a neural forecaster"):
        explain_test_windows(baseline, p, cfg)


def test_model_words_and_window_normalisation(neural_forecaster):
    from lstmkit.explain.integrated_gradients import window_normalised
    from lstmkit.models.baselines.persistence import Persistence
    from lstmkit.report.explainability import describe_model

    forecaster, _ = neural_forecaster
    assert describe_model(forecaster) == "`tiny` (architecture `lstm`)"
    assert describe_model(Persistence()) == f"`{Persistence().name}`"
    assert not window_normalised(forecaster) and not window_normalised(Persistence())
    forecaster.spec.normalization = "revin"
    try:
        assert window_normalised(forecaster)
    finally:
        forecaster.spec.normalization = "none"


def test_save_explanation_records_the_model_and_its_attention(tmp_path, neural_forecaster):
    forecaster, _ = neural_forecaster
    attr = planted_attribution()
    columns = ["x1", "x2", "target"]
    run = RunFolder(tmp_path)
    analyses = {"attention_lstm": {"seed": 7, "time_agreement": {"spearman": 0.5}},
                "tft": {"seed": 8, "time_agreement": {"spearman": -0.1}}}
    save_explanation(run, np.array([0, 3]), attr, importance_heatmap(attr, columns, 2), columns, forecaster=forecaster,
                     attention=analyses)
    summary = read_json(run.explanation_file)
    assert summary["model"] == {"name": "tiny", "architecture": "lstm"}
    assert summary["attention"] == analyses  # every attention model of the run, by name
    save_explanation(run, np.array([0, 3]), attr, importance_heatmap(attr, columns, 2), columns, attention={})
    assert read_json(run.explanation_file)["attention"] is None  # a run without attention weights
