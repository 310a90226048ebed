"""Interval metrics against reference implementations (sklearn, scoringrules, properscoring) and hand computations."""

import json

import numpy as np
import properscoring as ps
import pytest
import scoringrules as sr
from scipy import stats
from sklearn.metrics import mean_pinball_loss

from lstmkit.core.labels import level_label
from lstmkit.probabilistic import interval_metrics as im

GRID = np.array([0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975])


def gaussian_quantiles(mu: np.ndarray, sigma: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Quantiles (n, h, K) of N(mu, sigma^2) forecasts at the grid levels."""
    return mu[..., None] + sigma[..., None] * stats.norm.ppf(grid)


def overlapping_windows(n: int, h: int, seed: int) -> np.ndarray:
    """Targets (n, h) of stride-1 windows over one iid N(0, 1) series: window t, step j is e[t + j]."""
    e = np.random.default_rng(seed).normal(size=n + h)
    return np.lib.stride_tricks.sliding_window_view(e, h)[:n].copy()


def test_pinball_equals_sklearn_mean_pinball_loss_per_level():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 6))
    q = rng.normal(size=(50, 6, len(GRID)))  # crossing quantiles on purpose: the loss is per level
    loss = im.pinball(y, q, GRID)
    assert loss.shape == (len(GRID),)
    for k, tau in enumerate(GRID):
        assert loss[k] == pytest.approx(mean_pinball_loss(y.ravel(), q[..., k].ravel(), alpha=tau), rel=1e-12)


def test_crps_from_quantiles_converges_to_the_closed_form_gaussian_crps():
    rng = np.random.default_rng(1)
    mu, sigma = rng.normal(size=(40, 5)), rng.uniform(0.5, 2.0, size=(40, 5))
    y = mu + sigma * rng.normal(size=mu.shape)
    exact = float(np.mean(sr.crps_normal(y, mu, sigma)))
    assert exact == pytest.approx(float(np.mean(ps.crps_gaussian(y, mu, sigma))), rel=1e-9)
    errors = []
    for k in (9, 99, 999):
        grid = np.arange(1, k + 1) / (k + 1)
        errors.append(abs(im.crps_quantiles(y, gaussian_quantiles(mu, sigma, grid), grid) - exact) / exact)
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.005


def test_cell_weighted_crps_is_closer_on_an_uneven_grid():
    rng = np.random.default_rng(2)
    mu, sigma = np.zeros((400, 8)), np.ones((400, 8))
    y = rng.normal(size=mu.shape)
    q = gaussian_quantiles(mu, sigma, GRID)
    exact = float(np.mean(sr.crps_normal(y, mu, sigma)))
    mean_err = abs(im.crps_quantiles(y, q, GRID, weights="mean") - exact)
    cells_err = abs(im.crps_quantiles(y, q, GRID) - exact)  # cells: the default, as in report()
    assert cells_err < mean_err
    assert im.grid_cells(GRID).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="weights"):
        im.crps_quantiles(y, q, GRID, weights="trapezoid")


def test_crps_from_samples_equals_properscoring_and_approaches_the_gaussian_crps():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(30, 4))
    samples = rng.normal(size=(30, 200, 4))
    got = im.crps_samples(y, samples, chunk=7)  # chunks smaller than n: the chunked sum must add up
    reference = float(np.mean(ps.crps_ensemble(y, samples.transpose(0, 2, 1))))
    assert got == pytest.approx(reference, rel=1e-10)
    many = rng.normal(size=(30, 4000, 4))
    exact = float(np.mean(sr.crps_normal(y, 0.0, 1.0)))
    assert im.crps_samples(y, many) == pytest.approx(exact, rel=0.02)
    with pytest.raises(ValueError, match="samples"):
        im.crps_samples(y, samples.transpose(0, 2, 1))


def test_winkler_and_msis_by_hand():
    y = np.array([[0.0, 5.0, -3.0]])
    lower, upper = -np.ones((1, 3)), np.ones((1, 3))
    # level 0.8: alpha 0.2, 2/alpha = 10; widths 2; penalties 0, 10 * 4, 10 * 2
    assert im.interval_score(y, lower, upper, 0.8)[0].tolist() == pytest.approx([2.0, 42.0, 22.0])
    assert im.winkler(y, lower, upper, 0.8) == pytest.approx(22.0)
    assert im.msis(y, lower, upper, 0.8, scale=2.0) == pytest.approx(11.0)
    assert im.width(lower, upper) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="scale"):
        im.msis(y, lower, upper, 0.8, scale=0.0)


def test_interval_and_coverage_by_hand():
    q = np.zeros((2, 2, len(GRID)))
    q[..., 1], q[..., 7] = -1.0, 1.0  # the 0.05 and 0.95 columns
    lower, upper = im.interval(q, GRID, 0.9)
    assert (lower == -1).all() and (upper == 1).all()
    y = np.array([[0.0, 1.0], [2.0, -0.5]])  # an end counts as inside
    assert im.hits(y, lower, upper).tolist() == [[True, True], [False, True]]
    assert im.coverage(y, lower, upper) == 0.75
    assert im.coverage_per_step(y, lower, upper).tolist() == [0.5, 1.0]
    assert im.joint_coverage(y, lower, upper) == 0.5
    with pytest.raises(ValueError, match="needs the quantile 0.2"):
        im.interval(q, GRID, 0.6)


def test_block_bootstrap_ci_holds_the_truth_where_a_window_bootstrap_does_not():
    """Overlapping windows share outcomes: blocks of `horizon` windows keep the CI honest, single windows do not."""
    h, n, level = 12, 400, 0.9
    z = stats.norm.ppf(0.95)
    inside = {"block": 0, "window": 0}
    widths = {"block": [], "window": []}
    for seed in range(40):
        hits = np.abs(overlapping_windows(n, h, seed)) <= z  # exact 90% intervals: the true coverage is 0.9
        for name, block in (("block", h), ("window", 1)):
            lo, hi = im.block_bootstrap_ci(hits, block=block, reps=300, seed=seed)
            inside[name] += lo <= level <= hi
            widths[name].append(hi - lo)
    # nominal 95% of 40 = 38; with ~33 blocks the moving-block CI is still somewhat narrow (33 of 40 here)
    assert inside["block"] >= 30
    assert inside["window"] <= 24  # far too narrow (16 of 40 here): it treats overlapping windows as independent
    assert np.mean(widths["block"]) > 1.5 * np.mean(widths["window"])


def test_pit_is_uniform_for_calibrated_forecasts_and_not_for_overconfident_ones():
    rng = np.random.default_rng(4)
    y = rng.normal(size=(2000, 3))
    mu, one = np.zeros_like(y), np.ones_like(y)
    calibrated = im.pit(y, gaussian_quantiles(mu, one, GRID), GRID)
    narrow = im.pit(y, gaussian_quantiles(mu, 0.5 * one, GRID), GRID)
    assert calibrated.shape == y.shape and (calibrated >= 0).all() and (calibrated <= 1).all()
    assert stats.kstest(calibrated.ravel(), "uniform").pvalue > 0.01
    assert stats.kstest(narrow.ravel(), "uniform").pvalue < 1e-6
    samples = rng.normal(size=(2000, 99, 3))
    assert stats.kstest(im.pit_samples(y, samples).ravel(), "uniform").pvalue > 0.01
    assert stats.kstest(im.pit_samples(y, 0.5 * samples).ravel(), "uniform").pvalue < 1e-6


def test_pit_interpolates_between_grid_quantiles():
    grid = np.array([0.1, 0.5, 0.9])
    q = np.array([[[-1.0, 0.0, 1.0]]]).repeat(4, axis=1)
    y = np.array([[-1.0, -0.5, 0.0, 0.5]])
    assert im.pit(y, q, grid)[0].tolist() == pytest.approx([0.1, 0.3, 0.5, 0.7])
    tails = im.pit(np.array([[-5.0, 5.0]]), q[:, :2], grid)[0]
    assert 0 <= tails[0] < 0.1 and 0.9 <= tails[1] <= 1
    infinite = np.array([[[-np.inf, 0.0, np.inf]]])
    value = im.pit(np.array([[-3.0]]), infinite, grid)[0, 0]
    assert 0.1 <= value <= 0.5  # between the levels of its (infinite, finite) bracket, never NaN


def test_report_format_units_and_values():
    rng = np.random.default_rng(5)
    y = rng.normal(size=(300, 4))
    q = gaussian_quantiles(np.zeros_like(y), np.ones_like(y), GRID)
    r = im.report(y, q, GRID, [0.9, 0.8], msis_scale=0.5, target_scale=3.0, bootstrap=200, seed=1)
    json.dumps(r, allow_nan=False)
    assert list(r["coverage"]) == ["80", "90"]
    lower, upper = im.interval(q, GRID, 0.9)
    assert r["coverage"]["90"] == pytest.approx(im.coverage(y, lower, upper))
    assert r["joint_coverage"]["90"] == pytest.approx(im.joint_coverage(y, lower, upper))
    assert r["coverage_per_step"]["90"] == pytest.approx(im.coverage_per_step(y, lower, upper).tolist())
    lo, hi = r["coverage_ci"]["90"]
    assert lo <= r["coverage"]["90"] <= hi and hi - lo > 0
    assert len(r["coverage_per_step_ci"]["90"][0]) == 4
    assert r["msis_level"] == 0.9  # 0.95 is not a level: the widest one
    assert r["msis"] == pytest.approx(im.winkler(y, lower, upper, 0.9) / 0.5)
    assert r["crps"] == pytest.approx(im.crps_quantiles(y, q, GRID))
    assert list(r["pinball"]) == [level_label(t) for t in GRID] and "2.5" in r["pinball"]
    assert r["original"]["width"]["90"] == pytest.approx(3.0 * r["width"]["90"])
    assert r["original"]["crps"] == pytest.approx(3.0 * r["crps"])
    assert r["original"]["winkler"]["80"] == pytest.approx(3.0 * r["winkler"]["80"])
    assert "quantile-grid" in r["crps_estimator"] and "9 levels" in r["crps_estimator"]
    off = im.report(y, q, GRID, [0.95], msis_scale=1.0, bootstrap=0)
    assert off["coverage_ci"]["95"] is None and off["msis_level"] == 0.95


def test_report_turns_infinite_bands_into_none():
    y = np.zeros((5, 2))
    q = np.zeros((5, 2, 3))
    q[..., 0], q[..., 2] = -np.inf, np.inf
    r = im.report(y, q, np.array([0.05, 0.5, 0.95]), [0.9], msis_scale=1.0, bootstrap=50)
    assert r["coverage"]["90"] == 1.0 and r["width"]["90"] is None and r["crps"] is None
    json.dumps(r, allow_nan=False)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="quantiles must be"):
        im.pinball(np.zeros((3, 2)), np.zeros((3, 2, 4)), GRID)
    with pytest.raises(ValueError, match="ascending"):
        im.pinball(np.zeros((3, 2)), np.zeros((3, 2, 2)), np.array([0.9, 0.1]))
