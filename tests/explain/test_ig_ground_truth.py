"""Proof on ground truth: an LSTM forecaster trained close to the noise floor, explained by IG, points at the planted pairs.

The synthetic target is driven by x1 six steps back and x2 twelve steps back (plus their product); x3 is a
distractor that shares the daily cycle but has no effect. Forty thousand hourly rows give the model enough windows
to learn that function closely: its test RMSE must be within 2x the noise standard deviation (a forecaster that knew
the driver terms exactly and predicted the rest linearly from 16 lags scores 1.2x). The model is then explained on
test windows it never saw, and IG must put the most attribution exactly on the planted lag of each driver.
"""

from __future__ import annotations

import pytest

from lstmkit.config import from_dict
from lstmkit.data.synthetic import make_synthetic
from lstmkit.data.windows import prepare
from lstmkit.explain.integrated_gradients import (
    feature_importance,
    ground_truth_scores,
    importance_heatmap,
    integrated_gradients,
    sample_windows,
)
from lstmkit.models.baselines.linear import LinearWindow
from lstmkit.models.metrics import metrics
from lstmkit.models.neural.forecaster import fit_forecaster
from lstmkit.models.neural.spec import ModelSpec
from lstmkit.report.explainability import ground_truth_summary

LENGTH, LOOKBACK, NOISE = 40_000, 16, 0.3


@pytest.fixture(scope="module")
def trained():
    """A 1x64 LSTM forecaster trained on the synthetic series for the 1-step forecast, with its prepared data and the
    truth."""
    frame, truth = make_synthetic(length=LENGTH, noise_std=NOISE, seed=42)
    cfg = from_dict({"seed": 42, "data": {"source": "synthetic", "length": LENGTH, "noise_std": NOISE},
                     "window": {"lookback": LOOKBACK, "horizon": 1},
                     "training": {"epochs": 100, "patience": 10, "verbose": 0}})
    prepared = prepare(frame, cfg)
    spec = ModelSpec("lstm", units=64, dropout=0.0, learning_rate=3e-3, batch_size=128, lookback=LOOKBACK)
    return fit_forecaster(prepared, spec, cfg), prepared, truth


@pytest.fixture(scope="module")
def explained(trained):
    """IG of the forecaster's 1-step forecast over 256 test windows, as a lag x channel heatmap."""
    forecaster, prepared, _ = trained
    x, _ = prepared.arrays("test")
    attr = integrated_gradients(forecaster, x[sample_windows(len(x), 256)], steps="auto", method="gausslegendre", target=0,
                                features=list(prepared.columns))
    return attr, importance_heatmap(attr, list(prepared.columns), horizon_step=1)


def test_the_model_is_trained_close_to_the_noise_floor(trained):
    forecaster, prepared, _ = trained
    _, y = prepared.arrays("test")
    lstm, linear = (metrics(prepared.to_original(y), prepared.to_original(f.predict_split(prepared, "test")), 1.0)["rmse"]
                    for f in (forecaster, LinearWindow().fit(prepared)))
    assert lstm < 2 * NOISE, f"LSTM test RMSE {lstm:.3f} is not within 2x the noise floor {NOISE}"
    assert lstm < 0.8 * linear, f"LSTM {lstm:.3f} does not clearly beat the linear baseline {linear:.3f}"


def test_ig_is_complete_on_the_trained_model(explained):
    attr, _ = explained
    assert attr.relative_gap() < 0.01


def test_ig_ranks_the_planted_pairs_first(trained, explained):
    _, prepared, truth = trained
    _, heatmap = explained
    scores = ground_truth_scores(heatmap, truth, prepared.target)
    assert set(scores.index) == {"x1 @ lag 6", "x2 @ lag 12"}
    # each driver's planted lag carries more attribution than any other lag of that input
    assert (scores["top lag"] == scores["lag"]).all(), scores
    # the strongest exogenous cell of all is a planted pair, and every planted pair gets over 5x an even share
    assert scores["rank"].min() == 1, scores
    assert (scores["share"] > 5 * scores["uniform"]).all(), scores
    assert "for 2 of 2 driving pairs" in ground_truth_summary(scores, feature_importance(heatmap), truth)


def test_the_distractor_gets_almost_nothing(trained, explained):
    _, prepared, truth = trained
    _, heatmap = explained
    cells = heatmap.drop(columns=[prepared.target])
    planted = min(cells.loc[lag, feature] for feature, lag in truth.driving_pairs())
    assert cells["x3"].max() < planted / 10
    assert feature_importance(heatmap)["x3"] < 0.05
