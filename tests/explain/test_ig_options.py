"""Integrated Gradients options: integration rules, baselines, automatic steps, explained target, memory bound, labels."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lstmkit.explain.integrated_gradients import METHODS, integrated_gradients, quadrature
from lstmkit.models.neural.forecaster import build_network
from lstmkit.models.neural.spec import ModelSpec

LOOKBACK, FEATURES, HORIZON = 6, 2, 3


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(7, LOOKBACK, FEATURES)).astype(np.float32)


@pytest.fixture(scope="module")
def lstm():
    keras.backend.clear_session()  # the same initial weights whichever tests ran before in this process
    keras.utils.set_random_seed(3)
    return build_network(ModelSpec(units=8, dropout=0.0), LOOKBACK, FEATURES, HORIZON)


@pytest.mark.parametrize("method", METHODS)
def test_every_rule_has_weights_summing_to_one_on_the_unit_path(method):
    alphas, weights = quadrature(method, 5)
    assert len(alphas) == len(weights) == 5 and weights.sum() == pytest.approx(1.0)
    assert ((0 <= alphas) & (alphas <= 1)).all()


def test_rules_integrate_what_they_should_exactly():
    a, w = quadrature("gausslegendre", 3)  # exact up to degree 5
    assert (w * a**5).sum() == pytest.approx(1 / 6, rel=1e-12)
    for method in ("midpoint", "trapezoid"):  # exact on straight lines
        a, w = quadrature(method, 4)
        assert (w * (3 * a + 1)).sum() == pytest.approx(2.5, rel=1e-12)
    a, w = quadrature("left", 4)
    assert list(a) == [0, 0.25, 0.5, 0.75] and list(quadrature("right", 4)[0]) == [0.25, 0.5, 0.75, 1.0]


def test_more_steps_close_the_completeness_gap_fastest_with_gauss_legendre(lstm, x):
    gaps = {m: [integrated_gradients(lstm, x, steps=s, method=m).relative_gap() for s in (4, 32)] for m in METHODS}
    for method, (coarse, fine) in gaps.items():
        assert fine < coarse, method
    assert gaps["gausslegendre"][0] < min(gaps["midpoint"][0], gaps["trapezoid"][0], gaps["left"][0])


def test_auto_steps_doubles_until_the_gap_is_below_the_tolerance(lstm, x):
    strict = integrated_gradients(lstm, x, steps="auto", tolerance=1e-3, method="left", max_steps=8192)
    assert strict.relative_gap() <= 1e-3 and 16 < strict.steps.min() < 8192  # stopped by the tolerance, not the cap
    loose = integrated_gradients(lstm, x, steps="auto", tolerance=0.5, method="gausslegendre")
    assert (loose.steps == 16).all()
    capped = integrated_gradients(lstm, x, steps="auto", tolerance=1e-12, max_steps=32, method="left")
    assert (capped.steps == 32).all()


def test_baselines(lstm, x):
    last = integrated_gradients(lstm, x, baseline="last", steps=32)
    assert np.abs(last.values[:, -1, :]).max() == 0  # a flat line at the last value: the last step equals its baseline
    flat = np.repeat(x[:, -1:, :], LOOKBACK, axis=1)
    np.testing.assert_allclose(last.baseline_prediction, np.asarray(lstm(flat))[:, 0], rtol=1e-5, atol=1e-6)
    mean = np.array([0.3, -0.2], np.float32)
    by_name = integrated_gradients(lstm, x, baseline="mean", mean=mean, steps=16)
    by_array = integrated_gradients(lstm, x, baseline=np.broadcast_to(mean, (LOOKBACK, FEATURES)), steps=16)
    np.testing.assert_allclose(by_name.values, by_array.values, rtol=1e-6)
    noise = integrated_gradients(lstm, x, baseline="noise", samples=4, noise_std=0.5, steps=64, seed=1)
    assert noise.relative_gap() < 0.02  # complete against the mean prediction of its baselines
    again = integrated_gradients(lstm, x, baseline="noise", samples=4, noise_std=0.5, steps=64, seed=1)
    np.testing.assert_array_equal(noise.values, again.values)
    with pytest.raises(ValueError, match="needs the training mean"):
        integrated_gradients(lstm, x, baseline="mean")


def test_the_mean_over_the_horizon_is_the_mean_of_each_steps_attribution(lstm, x):
    mean = integrated_gradients(lstm, x, target="mean", steps=16).values
    each = np.mean([integrated_gradients(lstm, x, target=h, steps=16).values for h in range(HORIZON)], axis=0)
    np.testing.assert_allclose(mean, each, rtol=1e-4, atol=1e-6)


def test_a_tiny_internal_batch_gives_the_same_attributions(lstm, x):
    big = integrated_gradients(lstm, x, steps=10, batch_size=4096)
    small = integrated_gradients(lstm, x, steps=10, batch_size=7)  # 7 interpolated inputs per gradient call
    np.testing.assert_allclose(small.values, big.values, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(small.prediction, big.prediction, rtol=1e-6)


def test_any_keras_model_in_two_lines_with_labelled_output(x):
    keras.utils.set_random_seed(0)
    conv = keras.Sequential([keras.Input((LOOKBACK, FEATURES)), keras.layers.Conv1D(4, 3, activation="tanh"),
                             keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    attr = integrated_gradients(conv, x, features=["load", "temp"])
    frame = attr.to_frame()
    assert frame.shape == (7 * LOOKBACK * FEATURES, 1) and list(frame.index.names) == ["window", "lag", "feature"]
    assert frame.loc[(0, 0, "temp"), "attribution"] == attr.values[0, -1, 1]  # lag 0 is the last input
    assert attr.relative_gap() < 0.01


@pytest.mark.parametrize("kwargs, match", [({"method": "simpson"}, "not one of midpoint"), ({"baseline": "median"}, "not one of zeros"),
                                           ({"steps": 0}, "positive integer or 'auto'"), ({"target": "last"}, "horizon index")])
def test_bad_options_are_clear_errors(lstm, x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        integrated_gradients(lstm, x, **kwargs)


def test_ground_truth_scores_rank_the_planted_pairs_among_all_exogenous_cells():
    import pandas as pd

    from lstmkit.data.synthetic import make_synthetic
    from lstmkit.explain.integrated_gradients import ground_truth_scores

    _, truth = make_synthetic(300)  # planted: x1 @ lag 6, x2 @ lag 12; x3 is a distractor
    heat = pd.DataFrame(np.full((20, 4), 1.0), columns=["x1", "x2", "x3", "target"], index=pd.Index(range(1, 21), name="lag"))
    heat.loc[6, "x1"], heat.loc[12, "x2"], heat.loc[3, "x3"], heat.loc[1, "target"] = 9.0, 4.0, 6.0, 100.0
    scores = ground_truth_scores(heat, truth, "target")
    assert list(scores.index) == ["x1 @ lag 6", "x2 @ lag 12"]
    assert scores["rank"].tolist() == [1, 3] and scores["rank within feature"].tolist() == [1, 1]  # x3's spike is 2nd
    total = 57 + 9 + 4 + 6  # the target's own column is left out
    np.testing.assert_allclose(scores["share"], [9 / total, 4 / total])
    assert (scores["uniform"] == 1 / 60).all()
