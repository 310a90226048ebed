"""The stronger baselines: NLinear-style ridge and the statsmodels autoregression rolled over windows."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.models.baselines.autoregressive import AutoRegressive
from lstmkit.models.baselines.linear import LinearWindow
from lstmkit.models.baselines.persistence import Persistence


def test_nlinear_is_immune_to_a_level_shift_that_breaks_plain_ridge(row_prepared):
    # a random walk: tomorrow's value is today's, whatever the level; test sits far above the training range
    rng = np.random.default_rng(1)
    walk = np.cumsum(rng.normal(size=300))
    walk[200:] += 50.0
    p = row_prepared(n=300, train=150, val=50, lookback=6, horizon=2, target_values=walk)
    _, y = p.arrays("test")
    nlinear = LinearWindow([0.1, 1.0, 10.0], last_value=True).fit(p).predict_split(p, "test")
    plain = LinearWindow([0.1, 1.0, 10.0]).fit(p).predict_split(p, "test")
    persistence_mse = np.mean((y - p.arrays("test")[0][:, -1:, 1]) ** 2)
    assert np.mean((y - nlinear) ** 2) < 1.2 * persistence_mse  # as good as the last value on a random walk
    assert np.mean((y - plain) ** 2) > 5 * np.mean((y - nlinear) ** 2)


def test_nlinear_adds_the_last_target_value_back(row_prepared):
    p = row_prepared(n=120, train=70, val=25, lookback=5, horizon=3)  # target = row number: a perfect ramp
    forecast = LinearWindow([1e-6], last_value=True).fit(p).predict_split(p, "test")
    np.testing.assert_allclose(forecast, p.target_rows("test"), atol=1e-3)


def test_autoreg_recovers_an_ar2_process_and_rolls_its_forecasts(row_prepared):
    rng = np.random.default_rng(2)
    y = np.zeros(3000)
    for t in range(2, len(y)):
        y[t] = 0.3 + 0.6 * y[t - 1] - 0.2 * y[t - 2] + rng.normal(scale=0.1)
    p = row_prepared(n=3000, train=2000, val=500, lookback=10, horizon=3, target_values=y)
    ar = AutoRegressive(max_lag=10).fit(p)
    assert ar.lags_ == 2
    np.testing.assert_allclose(ar.params_, [0.3, 0.6, -0.2], atol=0.03)
    f = ar.predict_split(p, "test")
    x, _ = p.arrays("test")
    c, a1, a2 = ar.params_
    one = c + a1 * x[:, -1, 1] + a2 * x[:, -2, 1]     # iterated by hand from each window's own past
    two = c + a1 * one + a2 * x[:, -1, 1]
    three = c + a1 * two + a2 * one
    np.testing.assert_allclose(f, np.stack([one, two, three], axis=1), rtol=1e-10)


def test_autoreg_uses_training_rows_only(row_prepared):
    rng = np.random.default_rng(3)
    y = rng.normal(size=600)
    y[400:] = 1000.0 + np.arange(200)  # wild test part must not influence the fitted parameters
    p = row_prepared(n=600, train=300, val=100, lookback=8, horizon=2, target_values=y)
    clean = row_prepared(n=600, train=300, val=100, lookback=8, horizon=2, target_values=np.r_[y[:400], np.zeros(200)])
    assert AutoRegressive(max_lag=8).fit(p).params_ == pytest.approx(AutoRegressive(max_lag=8).fit(clean).params_)


@pytest.mark.parametrize("horizon, mse, mae, windows", [(96, 0.2955, 0.4232, 2785), (24, 0.2294, 0.3573, 2857)])
def test_ett_protocol_reproduces_the_literature_persistence_figures(horizon, mse, mae, windows):
    """configs/ett.yaml on any ETT-format file (here the bundled ETTh2, given as a plain CSV path)."""
    from lstmkit.config import load_config
    from lstmkit.data.datasets import dataset_path
    from lstmkit.data.series import load_series
    from lstmkit.data.windows import prepare
    from lstmkit.runs.notebooks import project_root

    cfg = load_config(project_root() / "configs" / "ett.yaml", {"data.path": str(dataset_path("etth2")),
                                                               "window.horizon": horizon})
    p = prepare(load_series(cfg).frame, cfg)
    _, y = p.arrays("test")
    f = Persistence().fit(p).predict_split(p, "test")
    assert len(y) == windows
    assert np.mean((y - f) ** 2) == pytest.approx(mse, abs=5e-5)
    assert np.mean(np.abs(y - f)) == pytest.approx(mae, abs=5e-5)
    if horizon == 96:  # the published "Repeat" row is over all 7 columns: the same windows, every channel
        cfg7 = load_config(project_root() / "configs" / "ett.yaml", {
            "data.path": str(dataset_path("etth2")), "data.features": ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"]})
        p7 = prepare(load_series(cfg7).frame, cfg7)
        actual = p7.scaled[p7.target_rows("test")]                       # (windows, horizon, channels)
        repeat = p7.scaled[p7.origins("test")][:, None, :]
        assert np.mean((actual - repeat) ** 2) == pytest.approx(0.4317, abs=5e-5)
        assert np.mean(np.abs(actual - repeat)) == pytest.approx(0.4216, abs=5e-5)


def test_every_baseline_saves_and_loads_behind_the_contract(row_prepared, tmp_path):
    from lstmkit.config import from_dict
    from lstmkit.models.baselines import baselines
    from lstmkit.models.registry import load

    rng = np.random.default_rng(4)
    p = row_prepared(n=300, train=200, val=50, lookback=8, horizon=3, target_values=rng.normal(size=300).cumsum())
    for b in baselines(from_dict({"evaluation": {"seasonal_period": 4}})):
        b.fit(p)
        back = load(b.save(tmp_path / b.name))
        np.testing.assert_array_equal(back.predict_split(p, "test"), b.predict_split(p, "test"))
        summary = b.summary()
        assert summary["name"] == b.name and not summary["tags"]["neural"] and summary["parameters"] >= 0
    assert LinearWindow([1.0]).fit(p).parameter_count() == 8 * 2 * 3 + 3  # coefficients (inputs x horizon) + intercept
