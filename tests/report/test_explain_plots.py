"""Figures of the explainability chapter: drawn from synthetic attributions, one feature to seven, 6 to 336 lags."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lstmkit.report import plots  # noqa: E402

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def panels(fig, prefix: str) -> list:
    """The axes of a figure whose label starts with `prefix`."""
    return [ax for ax in fig.axes if ax.get_label().startswith(prefix)]


def assert_symmetric(mappable) -> None:
    lo, hi = mappable.get_clim()
    assert hi > 0 and lo == pytest.approx(-hi)


@pytest.mark.parametrize("lookback, n_feat, horizon", [(6, 1, 3), (24, 3, 24), (336, 7, 24)])
def test_window_attribution(tmp_path, lookback, n_feat, horizon):
    features = [f"x{i}" for i in range(n_feat)]
    window, attr = RNG.normal(size=(lookback, n_feat)), RNG.normal(size=(lookback, n_feat))
    path = tmp_path / "window.png"
    fig = plots.window_attribution(window, attr, features, RNG.normal(size=horizon) + 50, RNG.normal(size=horizon) + 50,
                                   horizon_step=2, units="MW", path=path)
    assert path.stat().st_size > 0
    feats, forecast = panels(fig, "feature panel"), panels(fig, "forecast panel")
    assert len(feats) == n_feat and len(forecast) == 1
    assert [ax.get_ylabel() for ax in feats] == [f"{c} (scaled)" for c in features]
    assert feats[-1].get_xlabel().startswith("time step relative to the forecast origin")
    assert feats[0].get_xlim() == pytest.approx((-(lookback - 1) - 0.5, 0.5))
    assert "MW" in forecast[0].get_ylabel() and forecast[0].get_xlabel()
    assert "2-step forecast" in fig._suptitle.get_text()
    for ax in panels(fig, "attribution underlay"):  # bars on one shared scale centred on zero
        lo, hi = ax.get_ylim()
        assert lo == pytest.approx(-hi) and hi >= np.abs(attr).max()
    bars = [p for ax in panels(fig, "attribution underlay") for p in ax.patches]
    assert len(bars) == lookback * n_feat
    top = attr.argmax(axis=None)  # the largest positive attribution is drawn red, the most negative blue
    red, blue = bars[(top % n_feat) * lookback + top // n_feat], bars[attr.argmin(axis=None) % n_feat * lookback
                                                                       + attr.argmin(axis=None) // n_feat]
    assert red.get_facecolor()[0] > red.get_facecolor()[2] and blue.get_facecolor()[2] > blue.get_facecolor()[0]
    cbar = panels(fig, "colorbar")[0]
    assert cbar.get_ylabel() == "attribution (scaled output units)"


def test_window_attribution_cuts_a_dominant_bar_and_labels_its_value():
    """A window-normalised model credits its last value far above every other input: the rest must stay visible."""
    attr = RNG.normal(scale=0.01, size=(336, 1))
    attr[-1, 0] = 0.62
    fig = plots.window_attribution(RNG.normal(size=(336, 1)), attr, ["OT"], np.full(4, 20.0), np.full(4, 21.0),
                                   horizon_step=1, units="°C")
    under = panels(fig, "attribution underlay")[0]
    lo, hi = under.get_ylim()
    assert hi < 0.1 and lo == pytest.approx(-hi)  # the scale follows the bulk of the bars, not the one outlier
    heights = np.array([bar.get_height() for bar in under.patches])
    assert heights.max() <= hi and heights[-1] == heights.max()  # the outlier is cut at the top of the scale
    assert [t.get_text() for t in under.texts] == ["0.62"]
    assert "cut and labelled" in panels(fig, "feature panel")[0].get_title()


def test_window_attribution_rejects_bad_shapes():
    with pytest.raises(ValueError):
        plots.window_attribution(np.zeros((6, 2)), np.zeros((6, 3)), ["a", "b"], np.zeros(3), np.zeros(3), 1, "MW")
    with pytest.raises(ValueError):
        plots.window_attribution(np.zeros((6, 1)), np.zeros((6, 1)), ["a"], np.zeros(3), np.zeros(3), 4, "MW")


@pytest.mark.parametrize("k, lookback, n_feat", [(1, 336, 1), (4, 48, 3), (6, 24, 7)])
def test_window_heatmaps(tmp_path, k, lookback, n_feat):
    values = RNG.normal(size=(k, lookback, n_feat))
    values[0, 0, 0] = 1e3  # one extreme cell must not set the scale
    path = tmp_path / "heatmaps.png"
    fig = plots.window_heatmaps(values, [f"x{i}" for i in range(n_feat)], [f"2024-01-0{i + 1} 00:00" for i in range(k)],
                                horizon_step=3, path=path)
    assert path.stat().st_size > 0
    windows = panels(fig, "window panel")
    assert len(windows) == k and all(ax.get_title() and ax.get_xlabel() == "feature" for ax in windows)
    images = [ax.images[0] for ax in windows]
    assert all(im.get_clim() == images[0].get_clim() for im in images)
    assert_symmetric(images[0])
    assert images[0].get_clim()[1] < 1e3
    assert windows[0].get_ylim() == pytest.approx((2.5, lookback + 2.5))  # lags 3 .. lookback + 2 before the target
    assert "3 = last input" in windows[0].get_ylabel()
    assert panels(fig, "colorbar")[0].get_ylabel() == "attribution (scaled output units)"
    assert fig._suptitle.get_text().startswith("Signed attributions of chosen windows")
    with pytest.raises(ValueError):
        plots.window_heatmaps(np.zeros((7, 6, 1)), ["x"], list("abcdefg"), 1)


@pytest.mark.parametrize("level, rows", [("feature", ["y", "x1", "x2"]), ("lag block", ["1-24", "25-48", "49-72", "73-96"])])
def test_method_agreement(tmp_path, level, rows):
    methods = ["IG", "occlusion", "SHAP"]
    shares = pd.DataFrame(RNG.uniform(0, 5, size=(len(rows), 3)), index=rows, columns=methods)  # not normalised
    agreement = shares.rank().corr(method="spearman")
    fig = plots.method_agreement(shares, agreement, level, path=tmp_path / "agree.png")
    assert (tmp_path / "agree.png").stat().st_size > 0
    left, right = fig.axes[:2]
    widths = np.array([p.get_width() for p in left.patches]).reshape(3, len(rows))
    assert widths.sum(axis=1) == pytest.approx(1.0)
    assert left.get_ylabel() == level and level in left.get_title() and level in right.get_title()
    assert right.collections[0].get_clim() == (-1, 1)
    assert [t.get_text() for t in right.texts].count("1.00") >= 3
    assert fig._suptitle.get_text() == "Do the attribution methods agree?"


def test_ground_truth_ranks(tmp_path):
    scores = pd.DataFrame({"rank": [1, 4, 30], "share": [0.2, 0.08, 0.01], "uniform": 1 / 48},
                          index=["x1 @ lag 6", "x2 @ lag 12", "x3 @ lag 24"])
    fig = plots.ground_truth_ranks(scores, path=tmp_path / "truth.png")
    assert (tmp_path / "truth.png").stat().st_size > 0
    ax = fig.axes[0]
    assert [p.get_width() for p in ax.patches] == pytest.approx([0.2, 0.08, 0.01])
    assert [t.get_text() for t in ax.texts] == ["rank 1 of 48", "rank 4 of 48", "rank 30 of 48"]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_xdata()[0] == pytest.approx(1 / 48)
    assert ax.get_title() == "Attribution on the planted (feature, lag) pairs" and ax.get_xlabel() and ax.get_ylabel()


def test_lag_profiles_label_lags_in_the_series_time_step_and_go_logarithmic_for_one_dominant_lag():
    lags = pd.Index(np.arange(1, 337), name="lag")
    flat = pd.DataFrame({"x1": RNG.uniform(0.5, 1.0, 336), "target": RNG.uniform(0.5, 1.0, 336)}, index=lags)
    ax = plots.lag_profiles(flat, {"x1": 6}, unit="15-minute steps").axes[0]
    assert ax.get_xlabel() == "lag (15-minute steps before the explained target)"
    assert ax.get_yscale() == "linear" and [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [6]
    spiked = pd.DataFrame({"OT": np.r_[1.3, np.full(335, 0.004)]}, index=lags)  # a window-normalised model's last value
    ax = plots.lag_profiles(spiked, unit="hours").axes[0]
    assert ax.get_yscale() == "log" and "log scale" in ax.get_ylabel()


def test_attribution_heatmap_labels_lags_in_the_series_time_step():
    heat = pd.DataFrame({"x1": [0.1, 0.2, 0.3], "target": [0.3, 0.2, 0.1]}, index=pd.Index([1, 2, 3], name="lag"))
    ax = plots.attribution_heatmap(heat, 1, unit="days").axes[0]
    assert ax.get_xlabel() == "lag (days before the explained target)"
