"""Conformal calibration: finite-sample quantile, coverage on exchangeable data within its CI, normalised scores, CQR,
joint bands, and adaptive conformal inference under a shift with delayed (leak-free) feedback."""

import numpy as np
import pytest

from lstmkit.probabilistic import conformal as C
from lstmkit.probabilistic import interval_metrics as im

GRID = [0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975]
LEVELS = [0.5, 0.8, 0.9, 0.95]


def ci(hits: np.ndarray, block: int = 1) -> tuple[float, float]:
    """95% bootstrap CI of a coverage."""
    return im.block_bootstrap_ci(hits, block=block, reps=300, seed=0)


def test_conformal_quantile_is_the_finite_sample_order_statistic():
    scores = np.arange(9, 0, -1, dtype=float)  # 9..1, unsorted
    assert C.conformal_quantile(scores, 0.9) == 9.0  # ceil(10 * 0.9) = 9th smallest
    assert C.conformal_quantile(scores, 0.8) == 8.0
    assert C.conformal_quantile(scores, 0.75) == 8.0  # ceil(7.5) = 8
    assert C.conformal_quantile(scores[:5], 0.9) == np.inf  # ceil(6 * 0.9) = 6 > 5 scores
    per_step = C.conformal_quantile(np.stack([scores, 10 * scores], axis=1), 0.8, axis=0)
    assert per_step.tolist() == [8.0, 80.0]
    with pytest.raises(ValueError, match="level"):
        C.conformal_quantile(scores, 1.0)


def test_finite_sample_correction_gives_nominal_coverage_with_few_calibration_windows():
    """n = 24 calibration windows, level 0.9: the ceil(25 * 0.9) = 23rd smallest score covers a new window with
    probability exactly 23/25 = 0.92 >= 0.9; the uncorrected ceil(24 * 0.9) = 22nd (or np.quantile) undercovers."""
    rng = np.random.default_rng(0)
    reps, n = 4000, 24
    cal, new = rng.normal(size=(reps, n)), rng.normal(size=reps)
    q = np.array([C.conformal_quantile(np.abs(c), 0.9) for c in cal])
    naive = np.quantile(np.abs(cal), 0.9, axis=1)
    hits = np.abs(new) <= q
    lo, hi = ci(hits)
    assert lo <= 23 / 25 <= hi and lo > 0.88
    assert (np.abs(new) <= naive).mean() < 0.89


@pytest.mark.parametrize("joint", [False, True])
def test_split_conformal_covers_exchangeable_windows_within_the_bootstrap_ci(joint):
    rng = np.random.default_rng(1)
    h = 6
    scale = np.linspace(0.5, 2.0, h)  # a different error scale per horizon step
    # many calibration windows: the CI below holds the test windows' sampling error only, not the calibration draw's
    y_cal, y_test = rng.normal(size=(20000, h)) * scale, rng.normal(size=(3000, h)) * scale
    point_cal, point_test = np.zeros_like(y_cal), np.zeros_like(y_test)
    sc = C.SplitConformal(GRID, joint=joint).fit(y_cal, point_cal)
    q = sc.predict(point_test)
    assert q.shape == (3000, h, len(GRID))
    assert (np.diff(q, axis=-1) >= 0).all()
    assert np.array_equal(q[..., GRID.index(0.5)], point_test)
    for level in LEVELS:
        lower, upper = im.interval(q, GRID, level)
        hit = im.hits(y_test, lower, upper)
        target = hit.all(axis=1) if joint else hit  # joint bands promise whole paths, per-step bands each value
        lo, hi = ci(target)
        assert lo <= level <= hi, (level, target.mean(), lo, hi)
        if not joint:
            assert np.all(np.abs(hit.mean(axis=0) - level) < 0.03)
        else:
            assert hit.mean() > level  # whole-path bands are wider than per-step ones


def test_too_few_calibration_windows_give_infinite_bands_for_high_levels_only():
    rng = np.random.default_rng(13)
    y = rng.normal(size=(9, 2))
    q = C.SplitConformal(GRID).fit(y, np.zeros_like(y)).predict(np.zeros((3, 2)))
    lower95, upper95 = im.interval(q, GRID, 0.95)  # ceil(10 * 0.95) = 10 > 9 windows
    lower80, upper80 = im.interval(q, GRID, 0.8)  # ceil(10 * 0.8) = 8: finite
    assert np.isneginf(lower95).all() and np.isposinf(upper95).all()
    assert np.isfinite(lower80).all() and np.isfinite(upper80).all()


def test_per_step_bands_do_not_cover_whole_paths_but_joint_bands_do():
    rng = np.random.default_rng(2)
    y_cal, y_test = rng.normal(size=(2000, 12)), rng.normal(size=(2000, 12))
    zeros = np.zeros_like(y_cal)
    per_step = C.SplitConformal(GRID).fit(y_cal, zeros).predict(zeros)
    joint = C.SplitConformal(GRID, joint=True).fit(y_cal, zeros).predict(zeros)
    assert im.joint_coverage(y_test, *im.interval(per_step, GRID, 0.9)) < 0.5
    assert abs(im.joint_coverage(y_test, *im.interval(joint, GRID, 0.9)) - 0.9) < 0.03


def test_normalized_scores_follow_the_spread():
    """Heteroscedastic errors with a known spread: normalised bands cover both regimes, absolute bands do not."""
    rng = np.random.default_rng(3)
    n, h = 4000, 3
    spread = np.where(rng.random((2 * n, 1)) < 0.5, 0.5, 3.0) * np.ones((1, h))
    y = rng.normal(size=(2 * n, h)) * spread
    point = np.zeros_like(y)
    cal, test = slice(0, n), slice(n, 2 * n)
    wide = spread[test] > 1
    for score, close in (("normalized", True), ("absolute", False)):
        sc = C.SplitConformal(GRID, score=score).fit(y[cal], point[cal], spread=spread[cal])
        q = sc.predict(point[test], spread=spread[test])
        hit = im.hits(y[test], *im.interval(q, GRID, 0.9))
        gap = abs(hit[wide].mean() - 0.9) + abs(hit[~wide].mean() - 0.9)
        assert (gap < 0.04) == close, (score, hit[wide].mean(), hit[~wide].mean())
    with pytest.raises(ValueError, match="spread is required"):
        C.SplitConformal(GRID, score="normalized").fit(y[cal], point[cal])


@pytest.mark.parametrize("factor", [0.3, 3.0])
def test_cqr_repairs_too_narrow_and_too_wide_quantiles(factor):
    from scipy import stats

    rng = np.random.default_rng(4)
    n, h = 3000, 4
    y_cal, y_test = rng.normal(size=(n, h)), rng.normal(size=(n, h))
    base = np.broadcast_to(factor * stats.norm.ppf(GRID), (n, h, len(GRID)))  # N(0, factor^2) quantiles: miscalibrated
    sc = C.SplitConformal(GRID, score="cqr").fit(y_cal, quantiles=base)
    q = sc.predict(quantiles=base)
    assert (np.diff(q, axis=-1) >= 0).all()
    assert np.array_equal(q[..., GRID.index(0.5)], base[..., GRID.index(0.5)])
    for level in (0.8, 0.95):
        before = im.coverage(y_test, *im.interval(base, GRID, level))
        after = im.coverage(y_test, *im.interval(q, GRID, level))
        assert abs(before - level) > 0.04
        assert abs(after - level) < 0.02
    widened = im.width(*im.interval(q, GRID, 0.9)) > im.width(*im.interval(base, GRID, 0.9))
    assert widened == (factor < 1)


def test_crossing_calibrated_bands_are_nested_by_widening_only():
    grid = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    q = np.array([[[-1.0, -2.0, 0.0, 3.0, 1.0]]])  # 0.25 below 0.1 and 0.75 above 0.9
    nested = C.nest(q, grid)
    assert nested[0, 0].tolist() == [-2.0, -2.0, 0.0, 3.0, 3.0]
    assert (nested[..., :2] <= q[..., :2]).all() and (nested[..., 3:] >= q[..., 3:]).all()


def test_errors_are_clear():
    y, zeros = np.zeros((10, 2)), np.zeros((10, 2))
    with pytest.raises(ValueError, match="score must be one of"):
        C.SplitConformal(GRID, score="signed")
    with pytest.raises(ValueError, match="median 0.5"):
        C.SplitConformal([0.05, 0.95])
    with pytest.raises(ValueError, match="needs both quantiles"):
        C.SplitConformal([0.1, 0.5, 0.8], score="cqr")
    with pytest.raises(ValueError, match="fit"):
        C.SplitConformal(GRID).predict(zeros)
    with pytest.raises(ValueError, match="point has shape"):
        C.SplitConformal(GRID).fit(y, np.zeros((10, 3)))
    sc = C.SplitConformal(GRID).fit(y, zeros)
    with pytest.raises(ValueError, match="horizon 3"):
        sc.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="quantiles are required|quantiles \\(windows"):
        C.SplitConformal(GRID, score="cqr").fit(y)


def shifted(seed: int, n_cal: int = 1500, m: int = 3000, h: int = 4) -> tuple:
    """Calibration windows of unit-variance errors; test windows whose error scale triples halfway through."""
    rng = np.random.default_rng(seed)
    y_cal = rng.normal(size=(n_cal, h))
    y_test = rng.normal(size=(m, h)) * np.where(np.arange(m) < m // 2, 1.0, 3.0)[:, None]
    return y_cal, y_test


@pytest.mark.parametrize("refresh, infinite", [(True, False), (False, True)])
def test_aci_restores_coverage_under_a_variance_shift_where_split_conformal_loses_it(refresh, infinite):
    y_cal, y_test = shifted(5)
    m = len(y_test)
    zeros_cal, zeros_test = np.zeros_like(y_cal), np.zeros_like(y_test)
    sc = C.SplitConformal(GRID).fit(y_cal, zeros_cal)
    split = sc.predict(zeros_test)
    aci = C.adaptive(sc, y_test, zeros_test, gamma=0.02, refresh=refresh, infinite=infinite)
    late = slice(m // 2 + 300, m)  # after ACI had time to react to the shift
    split_cov = im.coverage(y_test[late], *im.interval(split[late], GRID, 0.9))
    aci_hits = im.hits(y_test[late], *im.interval(aci[late], GRID, 0.9))
    assert split_cov < 0.5
    lo, hi = ci(aci_hits, block=4)
    assert lo - 0.02 <= 0.9 <= hi + 0.02, (aci_hits.mean(), lo, hi)
    assert np.all(np.abs(aci_hits.mean(axis=0) - 0.9) < 0.05)  # later steps learn later (delayed feedback)
    assert (aci[..., 1:] >= aci[..., :-1]).all()  # not np.diff: inf - inf is NaN
    assert np.isfinite(aci).all() != infinite  # fixed scores: only infinite bands reach 3x the calibration errors


def test_aci_on_fixed_scores_with_finite_bands_is_capped_by_the_largest_calibration_score():
    y_cal, y_test = shifted(5)
    sc = C.SplitConformal(GRID).fit(y_cal, np.zeros_like(y_cal))
    aci = C.adaptive(sc, y_test, np.zeros_like(y_test), gamma=0.02, refresh=False)
    late = slice(len(y_test) // 2 + 300, None)
    assert np.isfinite(aci).all()
    assert im.coverage(y_test[late], *im.interval(aci[late], GRID, 0.9)) < 0.8


def test_aci_keeps_nominal_coverage_on_exchangeable_windows():
    rng = np.random.default_rng(6)
    y_cal, y_test = rng.normal(size=(1500, 4)), rng.normal(size=(3000, 4))
    sc = C.SplitConformal(GRID).fit(y_cal, np.zeros_like(y_cal))
    aci = C.adaptive(sc, y_test, np.zeros_like(y_test), gamma=0.005)
    for level in (0.8, 0.95):
        hit = im.hits(y_test, *im.interval(aci, GRID, level))
        lo, hi = ci(hit, block=4)
        assert lo <= level <= hi


def test_aci_joint_bands_restore_whole_path_coverage():
    y_cal, y_test = shifted(7, h=6)
    m = len(y_test)
    sc = C.SplitConformal(GRID, joint=True).fit(y_cal, np.zeros_like(y_cal))
    aci, alpha = C.adaptive(sc, y_test, np.zeros_like(y_test), gamma=0.02, return_alpha=True)
    assert alpha.shape == (m, 1, len(sc.levels_))
    late = slice(m // 2 + 400, m)
    split_joint = im.joint_coverage(y_test[late], *im.interval(sc.predict(np.zeros_like(y_test))[late], GRID, 0.9))
    aci_joint = im.joint_coverage(y_test[late], *im.interval(aci[late], GRID, 0.9))
    assert split_joint < 0.3
    assert abs(aci_joint - 0.9) < 0.04


def test_aci_uses_only_outcomes_observed_by_each_origin():
    """The step-h outcome of window t reaches the bands from window t + h on, never earlier."""
    y_cal, y_test = shifted(8, m=200, h=5)
    sc = C.SplitConformal(GRID).fit(y_cal, np.zeros_like(y_cal))
    zeros = np.zeros_like(y_test)
    base, alpha = C.adaptive(sc, y_test, zeros, gamma=0.05, return_alpha=True)
    t0, step = 100, 3  # 0-based step 3 = the 4-step-ahead outcome, observed at window t0 + 4
    changed = y_test.copy()
    changed[t0, step] = 50.0 if abs(y_test[t0, step]) < 1 else 0.0  # flips that outcome's hit
    out, alpha2 = C.adaptive(sc, changed, zeros, gamma=0.05, return_alpha=True)
    assert np.array_equal(out[: t0 + step + 1], base[: t0 + step + 1])
    assert not np.array_equal(alpha2[t0 + step + 1, step], alpha[t0 + step + 1, step])
    assert np.array_equal(alpha2[t0 + step + 1, :step], alpha[t0 + step + 1, :step])  # other steps: untouched
    future = y_test.copy()
    future[t0:] = 0.0  # rewriting every outcome from window t0 on changes nothing up to window t0
    assert np.array_equal(C.adaptive(sc, future, zeros, gamma=0.05)[: t0 + 1], base[: t0 + 1])


def test_aci_with_a_rolling_score_window_and_cqr():
    from scipy import stats

    y_cal, y_test = shifted(9, m=2000, h=3)
    base_cal = np.broadcast_to(stats.norm.ppf(GRID), y_cal.shape + (len(GRID),))
    base_test = np.broadcast_to(stats.norm.ppf(GRID), y_test.shape + (len(GRID),))
    sc = C.SplitConformal(GRID, score="cqr").fit(y_cal, quantiles=base_cal)
    aci = C.adaptive(sc, y_test, quantiles=base_test, gamma=0.02, window=500)
    late = slice(1300, 2000)
    assert abs(im.coverage(y_test[late], *im.interval(aci[late], GRID, 0.9)) - 0.9) < 0.04
    assert (np.diff(aci, axis=-1) >= 0).all()
    with pytest.raises(ValueError, match="fitted"):
        C.adaptive(C.SplitConformal(GRID), y_test, np.zeros_like(y_test))


def reference_aci(sc: C.SplitConformal, y: np.ndarray, gamma: float, window: int | None, refresh: bool, infinite: bool,
                  **forecasts) -> np.ndarray:
    """ACI by plain loops, sorting each score set from scratch: the reference for `adaptive`'s Fenwick trees."""
    test, cal = sc.scores(y, **forecasts), sc.cal_scores_
    m, h = y.shape
    steps, delay = (1, lambda j: h) if sc.joint else (h, lambda j: j + 1)
    if sc.joint:
        test, cal = sc._standardise(test)[:, None, :], sc._standardise(cal)[:, None, :]
    levels = sc.levels_
    qs = np.empty((m, steps, len(levels)))
    for j in range(steps):
        for i, level in enumerate(levels):
            s = min(i, test.shape[-1] - 1)
            alpha = 1 - level
            for t in range(m):
                r = t - delay(j)
                if r >= 0:
                    alpha += gamma * ((1 - level) - (test[r, j, s] > qs[r, j, i]))
                known = np.concatenate([cal[:, j, s], test[: r + 1, j, s] if refresh and r >= 0 else []])
                known = np.sort(known[-window:] if window else known)
                k = int(np.ceil((len(known) + 1) * (1 - alpha) - 1e-9))
                qs[t, j, i] = np.inf if k > len(known) and infinite else known[min(max(k, 1), len(known)) - 1]
    return sc.bands(qs * sc.scale_[None] if sc.joint else qs, forecasts.get("point"), forecasts.get("spread"),
                    forecasts.get("quantiles"))


@pytest.mark.parametrize("score, joint, window, refresh, infinite", [
    ("absolute", False, None, True, False), ("absolute", False, 40, True, False), ("absolute", True, None, True, False),
    ("cqr", False, 30, True, False), ("normalized", False, None, False, True), ("cqr", True, None, False, False)])
def test_aci_matches_a_loop_reference(score, joint, window, refresh, infinite):
    from scipy import stats

    y_cal, y_test = shifted(10, n_cal=60, m=150, h=3)
    rng = np.random.default_rng(11)
    forecasts = {"cal": {}, "test": {}}
    for name, y in (("cal", y_cal), ("test", y_test)):
        if score == "cqr":
            forecasts[name]["quantiles"] = np.broadcast_to(stats.norm.ppf(GRID), y.shape + (len(GRID),))
        else:
            forecasts[name]["point"] = 0.1 * rng.normal(size=y.shape)
        if score == "normalized":
            forecasts[name]["spread"] = rng.uniform(0.5, 1.5, size=y.shape)
    sc = C.SplitConformal(GRID, score=score, joint=joint).fit(y_cal, **forecasts["cal"])
    got = C.adaptive(sc, y_test, gamma=0.03, window=window, refresh=refresh, infinite=infinite, **forecasts["test"])
    expected = reference_aci(sc, y_test, 0.03, window, refresh, infinite, **forecasts["test"])
    assert np.array_equal(got, expected)


def test_sample_quantiles_feed_the_same_grid():
    rng = np.random.default_rng(12)
    samples = rng.normal(size=(5, 400, 3))
    q = C.sample_quantiles(samples, GRID)
    assert q.shape == (5, 3, len(GRID)) and (np.diff(q, axis=-1) >= 0).all()
    assert q[2, 1, GRID.index(0.5)] == pytest.approx(np.median(samples[2, :, 1]))
