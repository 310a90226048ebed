"""Anomaly flags: injection with ground truth, conformal p-values, alarm aggregation, metrics and the labels file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lstmkit.anomalies import labels as an_labels
from lstmkit.anomalies import metrics as an_metrics
from lstmkit.anomalies import scores as an_scores
from lstmkit.config import load_config
from lstmkit.core import errors as an_errors
from lstmkit.core.errors import DataError
from lstmkit.data.series import load_series
from lstmkit.data.synthetic import ANOMALY_KINDS, ANOMALY_STEPS, anomaly_labels, inject_anomalies
from lstmkit.stages import anomalies as an
from tests.paths import SHARED_DATA


def _cfg(**overrides):
    """The quick profile (synthetic, 1200 rows) without injected anomalies, with overrides."""
    from lstmkit.runs.notebooks import project_root

    return load_config(project_root() / "configs" / "quick.yaml", {"data.anomalies": 0, **overrides})


# ------------------------------------------------------------------ injection

def test_injection_lands_in_the_test_span_with_its_ground_truth():
    cfg = _cfg(**{"data.anomalies": 3})
    clean = load_series(_cfg()).frame
    series = load_series(cfg)
    changed = np.flatnonzero(~np.isclose(series.frame["target"], clean["target"]))
    test_start = int(round(0.85 * len(clean)))
    assert changed.min() >= test_start
    assert [e["kind"] for e in series.anomalies] == list(ANOMALY_KINDS)
    truth = np.zeros(len(clean), dtype=bool)
    for e in series.anomalies:
        assert e["last_row"] - e["first_row"] + 1 == ANOMALY_STEPS[e["kind"]]
        truth[e["first_row"]:e["last_row"] + 1] = True
    assert set(changed) <= set(np.flatnonzero(truth)) and truth[changed].all()
    pd.testing.assert_frame_equal(series.frame[["x1", "x2", "x3"]], clean[["x1", "x2", "x3"]])  # inputs untouched
    labels = anomaly_labels(series.anomalies)
    windows = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in labels["synthetic"]]
    np.testing.assert_array_equal(an_labels.point_labels(series.frame.index, windows), truth)


def test_injecting_more_anomalies_than_the_test_span_holds_is_a_clear_error():
    frame = pd.DataFrame({"target": np.zeros(100)}, index=pd.date_range("2024", periods=100, freq="h"))
    with pytest.raises(DataError, match="data.anomalies: 5 anomalies need"):
        inject_anomalies(frame, "target", 5, (60, 100), 0.3, 0)


# ------------------------------------------------------------------ scores and p-values

def test_conformal_pvalues_by_hand():
    p = an_scores.conformal_pvalues(np.array([3.0, 1.0, 4.0, 2.0]), np.array([0.5, 2.0, 4.5]))
    np.testing.assert_allclose(p, [5 / 5, 4 / 5, 1 / 5])  # (1 + #{cal >= s}) / (n + 1)


def test_smoothed_scores_by_hand():
    r = np.array([1.0, 3.0, -1.0, 5.0])
    np.testing.assert_allclose(an_scores.scores_from(r, 1.0, 2.0), [0, 1, 1, 2])
    np.testing.assert_allclose(an_scores.scores_from(r, 1.0, 2.0, smooth=2), np.sqrt([0.5, 1.0, 2.5]))


@pytest.mark.parametrize("smooth", [1, 6])
def test_false_alarm_rate_holds_on_clean_data(smooth):
    """Exchangeable residuals: p-values are (super-)uniform, so p <= a flags about a share a, never much more."""
    ps = []
    for seed in range(5):  # the rate achieved with one calibration sample varies: average over five
        rng = np.random.default_rng(seed)
        cal_r, test_r = rng.standard_t(5, 8000), rng.standard_t(5, 40000)
        centre, scale = an_scores.robust_scale(cal_r)
        cal = an_scores.scores_from(cal_r, centre, scale, smooth)
        ps.append(an_scores.conformal_pvalues(cal, an_scores.scores_from(test_r, centre, scale, smooth)))
    p = np.concatenate(ps)
    for a in (0.01, 0.05, 0.2):
        assert abs(np.mean(p <= a) - a) < 0.25 * a, a
    hist, _ = np.histogram(p, bins=10, range=(0, 1))
    assert hist.min() > 0.8 * hist.mean()  # uniform


# ------------------------------------------------------------------ aggregation

def test_alarm_aggregation_min_run_and_suppression():
    flags = np.array([1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 1], dtype=bool)
    np.testing.assert_array_equal(an_scores.aggregate_alarms(flags), flags)
    np.testing.assert_array_equal(an_scores.aggregate_alarms(flags, min_run=2).astype(int),
                                  [0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(an_scores.aggregate_alarms(flags, min_run=1, suppress=3).astype(int),
                                  [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(an_scores.aggregate_alarms(flags, min_run=2, suppress=2).astype(int),
                                  [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0])
    assert an_metrics.events(flags) == [(0, 0), (2, 4), (6, 7), (10, 10)]


# ------------------------------------------------------------------ metrics

def test_detection_metrics_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 0, 0, 0, 1, 1], dtype=bool)
    alarms = np.array([1, 0, 0, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.1, 0.3, 0.8, 0.7, 0.2, 0.4, 0.5, 0.6, 0.05])
    m = an_metrics.detection_metrics(labels, scores, alarms, alarms)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 5)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))
    # events: labels (2-4), (8-9); alarm events (0-0) false, (3-4) true -> precision 1/2, recall 1/2
    assert (m["event_precision"], m["event_recall"], m["event_f1"]) == (0.5, 0.5, 0.5)
    # AUC-ROC: pairs (positive, negative) ordered right; positives .3 .8 .7 .6 .05, negatives .9 .1 .2 .4 .5
    pos, neg = scores[labels], scores[~labels]
    assert m["auc_roc"] == pytest.approx(np.mean(pos[:, None] > neg[None, :]))
    # average precision: ranks of positives among scores sorted down: .8(2) .7(3) .6(4) .3(7) .05(10)
    ap = (1 / 2 + 2 / 3 + 3 / 4 + 4 / 7 + 5 / 10) / 5
    assert m["auc_pr"] == pytest.approx(ap)
    assert m["false_alarm_rate"] == pytest.approx(1 / 5)


def test_random_baseline_gives_chance_level():
    labels = np.zeros(2000, dtype=bool)
    labels[500:700] = True
    m = an_metrics.random_baseline(labels, n_flags=40, min_run=1, suppress=0, reps=50, seed=1)
    assert m["auc_roc"] == pytest.approx(0.5, abs=0.02)
    assert m["auc_pr"] == pytest.approx(0.1, abs=0.02)
    assert m["flag_rate"] == pytest.approx(0.02)
    assert m["precision"] == pytest.approx(0.1, abs=0.03)


# ------------------------------------------------------------------ labels file

def _write(tmp_path, content) -> str:
    path = tmp_path / "labels.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot be read as JSON"),
    ([["2020-01-01", "2020-01-02"]], "expected an object"),
    ({"other.csv": []}, "no labels for 'series.csv'; the file labels: 'other.csv'"),
    ({"series.csv": "2020-01-01"}, "must be a list of"),
    ({"series.csv": [["2020-01-01"]]}, "entry 0 is"),
    ({"series.csv": [["2020-01-01", "2020-01-02"], ["tomorrow-ish", "2020-01-02"]]}, "entry 1 .* two timestamps"),
    ({"series.csv": [["2020-01-03", "2020-01-02"]]}, r"entry 0 ends \(2020-01-02 00:00:00\) before it starts"),
])
def test_a_bad_labels_file_is_a_clear_error(tmp_path, content, message):
    path = _write(tmp_path, content)
    with pytest.raises(an_errors.LabelsError, match=message) as e:
        an_labels.read_labels(path, "series.csv")
    assert path in str(e.value)


def test_a_missing_labels_file_is_named(tmp_path):
    with pytest.raises(an_errors.LabelsError, match="labels.json: labels file not found"):
        an_labels.read_labels(tmp_path / "labels.json", "x")


def test_nab_labels_read():

    path = SHARED_DATA / "nab" / "label_windows.json"
    if not path.exists():
        pytest.skip("the NAB development data are not here")
    windows = an_labels.read_labels(path, "machine_temperature_system_failure.csv")
    assert len(windows) == 4 and windows[0][0] == pd.Timestamp("2013-12-10 06:25")


# ------------------------------------------------------------------ the stage on injected anomalies

def test_injected_anomalies_are_found(tmp_path):
    """A ridge forecaster on the synthetic series with one anomaly of each kind in the test span: every anomaly is
    flagged, few normal observations are, and the scores rank anomalies far above chance."""
    from lstmkit.data.windows import prepare
    from lstmkit.models.baselines.linear import LinearWindow

    cfg = _cfg(**{"data.length": 3000, "data.anomalies": 3, "anomalies.false_alarm_rate": 0.01})
    series = load_series(cfg)
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(anomaly_labels(series.anomalies)))
    cfg.anomalies.labels = str(path)
    prepared = prepare(series.frame, cfg)
    model = LinearWindow().fit(prepared)
    result = an.run_anomalies(None, cfg, model, prepared)
    m = result.metrics
    assert m["event_recall"] == 1.0  # each injected anomaly raises an alarm inside its window
    # point-wise, a step-1 residual sees a level shift at its ends and a variance change at its large draws only
    assert m["auc_roc"] > m["random_baseline"]["auc_roc"] + 0.1
    assert m["auc_pr"] > 3 * m["random_baseline"]["auc_pr"]
    assert m["false_alarm_rate"] < 0.03
    assert m["event_f1"] > m["random_baseline"]["event_f1"]
    assert result.meta["calibration"] == "val" and result.meta["calibration_scores"] > 300
    frame = result.frame
    assert (frame["split"] == "test").all() and len(frame) == prepared.bounds.test[1] - prepared.bounds.test[0]
    spike = series.anomalies[0]
    assert frame["p_value"].iloc[spike["first_row"] - prepared.bounds.test[0]] == result.meta["smallest_pvalue"]


def test_flag_threshold_matches_the_pvalue_rule():
    rng = np.random.default_rng(3)
    cal, scores = rng.exponential(size=199), rng.exponential(size=5000) * 1.5
    for rate in (0.01, 0.05, 0.3):
        t = an_scores.flag_threshold(cal, rate)
        np.testing.assert_array_equal(an_scores.conformal_pvalues(cal, scores) <= rate, scores > t)
    assert an_scores.flag_threshold(cal[:20], 0.01) == np.inf  # 1/(n + 1) > rate: nothing can be flagged


@pytest.mark.parametrize("name", ["ambient_temperature", "machine_temperature", "ec2_latency"])
def test_nab_configs_name_their_labels_and_keep_them_out_of_calibration(name, monkeypatch):
    """Each NAB profile loads with its repairs; its validation rows (the calibration data) hold no label and its test
    span holds at least one label window. Relative paths become absolute before the notebooks (run in notebooks/)."""
    from pathlib import Path

    from lstmkit.data.splits import split_bounds
    from lstmkit.runs.notebooks import project_root
    from lstmkit.stages.checks import absolute_paths

    root = project_root()
    monkeypatch.chdir(root)
    cfg = absolute_paths(load_config(root / "configs" / f"nab_{name}.yaml"))
    if not Path(cfg.data.path).exists():
        pytest.skip("the NAB development data are not here")
    assert Path(cfg.data.path).is_absolute() and Path(cfg.anomalies.labels).is_absolute()
    frame = load_series(cfg).frame
    labels = an_labels.point_labels(frame.index, an_labels.read_labels(cfg.anomalies.labels, Path(cfg.data.path).name))
    b = split_bounds(len(frame), cfg.split.train, cfg.split.val, cfg.split.test)
    assert not labels[slice(*b.val)].any() and labels[slice(*b.test)].any()
    assert an.calibration_source(cfg) == "val"


def test_scores_pooled_at_the_labels_resolution():
    labels = np.array([0, 1, 1, 1, 0, 0, 1, 0, 0], dtype=bool)
    assert an_labels.label_resolution(labels) == 2  # windows of 3 and 1 observations: median 2
    np.testing.assert_array_equal(an_metrics.pooled(np.array([0, 5, 0, 0, 0, 1.0]), 3), [5, 5, 5, 0, 1, 1])
    # a single high score in the middle of a wide window: point-wise it ranks 1 of 5 labelled observations,
    # pooled over the window's width every labelled observation sees it
    labels = np.zeros(50, dtype=bool)
    labels[20:25] = True
    scores = np.linspace(0, 1, 50)[::-1] * 0.5
    scores[22] = 9.0
    m = an_metrics.detection_metrics(labels, scores, scores > 5, scores > 5, resolution=5)
    assert m["auc_roc"] < 0.7 and m["auc_roc_pooled"] == 1.0


def test_rolling_pvalues_by_hand_and_against_a_drift():
    p = an_scores.rolling_pvalues(np.array([1.0, 2.0, 3.0]), np.array([2.5, 0.5, 3.5]))
    # 2.5 vs [1, 2, 3] -> 1 at least as large; 0.5 vs [2, 3, 2.5] -> 3; 3.5 vs [3, 2.5, 0.5] -> 0
    np.testing.assert_allclose(p, [2 / 4, 4 / 4, 1 / 4])
    rng = np.random.default_rng(2)
    cal = np.abs(rng.normal(size=1000))
    drifting = np.abs(rng.normal(size=20000)) * np.linspace(1.0, 1.6, 20000)  # errors grow slowly
    fixed = np.mean(an_scores.conformal_pvalues(cal, drifting) <= 0.01)
    rolling = np.mean(an_scores.rolling_pvalues(cal, drifting) <= 0.01)
    assert fixed > 0.03 and abs(rolling - 0.01) < 0.004


def test_anomaly_figures_are_titled_with_units(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from lstmkit.report import plots

    rng = np.random.default_rng(0)
    idx = pd.date_range("2024-01-01", periods=200, freq="h")
    frame = pd.DataFrame({"value": rng.normal(size=200), "forecast": np.zeros(200), "score": np.abs(rng.normal(size=200)),
                          "p_value": rng.random(200), "label": np.arange(200) // 10 == 5}, index=idx)
    frame["flag"] = frame["p_value"] <= 0.05
    frame["alarm"] = frame["flag"]
    fig = plots.anomaly_series(frame, 2.0, "°C", path=tmp_path / "a.png")
    assert fig.axes[0].get_ylabel() == "value (°C)" and fig.axes[0].get_title() and fig.axes[1].get_ylabel()
    assert len(fig.axes[0].patches) == 1  # one label window shaded
    fig = plots.pvalue_distribution(frame, np.abs(rng.normal(size=100)), 0.05, path=tmp_path / "p.png")
    assert all(ax.get_title() and ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    fig = plots.alarm_heatmaps(rng.normal(size=(2, 24, 2)), ["x", "target"], ["t1", "t2"], path=tmp_path / "h.png")
    assert "Integrated Gradients" in fig._suptitle.get_text()
    assert all((tmp_path / f).exists() for f in ("a.png", "p.png", "h.png"))


@pytest.mark.parametrize("steps", [1, 4])
def test_validation_and_test_span_is_calibrated_out_of_fold(steps):
    """anomalies.span val+test scores the validation rows too, so they cannot calibrate: walk-forward refits over the
    training rows give residuals the scoring model never fitted on, in the run's scaled units."""
    from lstmkit.data.windows import prepare
    from lstmkit.models.baselines.linear import LinearWindow

    cfg = _cfg(**{"data.length": 2000, "anomalies.span": "val+test", "uncertainty.folds": 3, "anomalies.steps": steps})
    prepared = prepare(load_series(cfg).frame, cfg)
    result = an.run_anomalies(None, cfg, LinearWindow().fit(prepared), prepared)
    assert result.meta["calibration"] == "oof" and "3 walk-forward refits" in result.meta["calibration_text"]
    assert result.meta["steps"] == steps and len(result.meta["scales"]) == steps
    assert set(result.frame["split"]) == {"val", "test"} and result.frame.index[0] == prepared.index[prepared.bounds.val[0]]
    b = prepared.bounds.train[1]
    assert b - 2 * b // 4 - prepared.lookback < result.meta["calibration_scores"] <= 3 * b // 4  # the folds' blocks
    assert 0.0 <= result.meta["flags"] / len(result.frame) < 0.05  # clean data: about the chosen rate of flags
    assert result.metrics == {}  # no labels


# ------------------------------------------------------------------ scores over several horizon steps (anomalies.steps)

def _prepared_with(target: np.ndarray, **overrides):
    """The quick profile's series (inputs x1-x3) of len(target) rows with `target` as its target, prepared."""
    from lstmkit.data.windows import prepare

    cfg = _cfg(**{"data.length": len(target), "data.anomalies": 0, **overrides})
    frame = load_series(cfg).frame.copy()
    frame["target"] = target
    return cfg, prepare(frame, cfg)


def test_step_forecasts_take_step_j_from_the_window_ending_j_rows_before():
    """Column j - 1 of row t is the step-j forecast of the look-back window ending at row t - j (never later)."""
    from lstmkit.models.baselines.persistence import Persistence

    class Tagged(Persistence):
        """Persistence plus 100 x the horizon step, so that the step a forecast came from can be read off it."""

        def _predict(self, windows):
            return super()._predict(windows) + 100.0 * np.arange(1, self.horizon_ + 1)[None, :]

    cfg, prepared = _prepared_with(np.arange(600.0), **{"window.horizon": 5})
    model = Tagged().fit(prepared)
    rows = np.array([40, 41, 300, 599])
    got = an_scores.step_forecasts(model, prepared, rows, 5)
    target = prepared.scaled[:, prepared.target_index]
    expected = target[rows[:, None] - np.arange(1, 6)[None, :]] + 100.0 * np.arange(1, 6)[None, :]
    np.testing.assert_allclose(got, expected)
    np.testing.assert_allclose(an_scores.step1_forecasts(model, prepared, rows), expected[:, 0])
    with pytest.raises(ValueError, match="rows before it"):
        an_scores.step_forecasts(model, prepared, np.array([prepared.lookback + 3]), 5)


def test_multistep_scores_by_hand():
    r = np.array([[1.0, 4.0], [3.0, 0.0], [-1.0, 8.0]])
    score, step = an_scores.multistep_scores(r, np.array([1.0, 0.0]), np.array([2.0, 4.0]))
    # standardised: step 1 -> 0, 1, 1; step 2 -> 1, 0, 2
    np.testing.assert_allclose(score, [1, 1, 2])
    np.testing.assert_array_equal(step, [2, 1, 2])
    centres, scales = an_scores.step_scales(r)
    np.testing.assert_allclose(centres, [1.0, 4.0])


def _ramp_series(n: int = 3000, start: int = 2650, length: int = 200, slope: float = 0.25, seed: int = 0):
    """Noise (sd 1) with a ramp of `slope` per row over rows [start, start + length), the new level kept after it."""
    rng = np.random.default_rng(seed)
    level = np.clip(np.arange(n) - start, 0, length) * slope
    return rng.normal(size=n) + level


@pytest.mark.parametrize("steps, found", [(1, False), (24, True)])
def test_a_slow_ramp_is_missed_at_step_1_and_found_over_the_horizon(steps, found, tmp_path):
    """Persistence follows a ramp one row late: its step-1 error grows by the slope only (0.25 sd, lost in the noise),
    while its step-24 error grows by 24 x the slope. Scored over 24 steps the ramp is flagged; at step 1 it is not."""
    from lstmkit.models.baselines.persistence import Persistence

    target = _ramp_series()
    cfg, prepared = _prepared_with(target, **{"window.horizon": 24, "anomalies.steps": steps,
                                              "split.train": 0.7, "split.val": 0.15, "split.test": 0.15})
    path = tmp_path / "labels.json"
    idx = prepared.index
    path.write_text(json.dumps({"synthetic": [[str(idx[2650]), str(idx[2849])]]}))
    cfg.anomalies.labels = str(path)
    result = an.run_anomalies(None, cfg, Persistence().fit(prepared), prepared)
    m, frame = result.metrics, result.frame
    assert result.meta["steps"] == steps
    ramp = frame["label"].to_numpy()
    late = ramp & (np.cumsum(ramp) > 24)  # rows of the ramp that every one of the 24 forecasts was made before
    if found:
        assert m["auc_roc"] > 0.9 and frame["flag"].to_numpy()[late].mean() > 0.5
        assert (frame["score_step"].to_numpy()[late] > 12).mean() > 0.8  # the older forecasts are the broken ones
    else:
        assert m["auc_roc"] < 0.65 and frame["flag"].to_numpy()[late].mean() < 0.05
    # after the ramp, the forecasts made during it stay broken for up to `steps` - 1 rows; elsewhere about the rate
    after = np.zeros(len(frame), dtype=bool)
    end = np.flatnonzero(ramp)[-1]
    after[end + 1:end + steps] = True
    assert frame["flag"].to_numpy()[~ramp & ~after].mean() < 0.03


def test_steps_are_capped_at_the_horizon():
    from lstmkit.models.baselines.persistence import Persistence

    cfg, prepared = _prepared_with(_ramp_series(1200, 1100, 50), **{"anomalies.steps": 10})  # quick profile: H = 4
    result = an.run_anomalies(None, cfg, Persistence().fit(prepared), prepared)
    assert result.meta["steps"] == 4 and result.meta["steps_chosen"] == 10
    assert len(result.meta["scales"]) == 4 and set(result.frame["score_step"]) <= {1, 2, 3, 4}


@pytest.mark.parametrize("calibration", ["fixed", "rolling"])
def test_the_score_of_an_observation_uses_nothing_after_it(calibration):
    """Changing the series after row t leaves every score, p-value and flag up to t as it was."""
    from lstmkit.models.baselines.linear import LinearWindow

    overrides = {"window.horizon": 6, "anomalies.steps": 6, "anomalies.calibration": calibration}
    target = _ramp_series(1500, 1400, 60, seed=4)
    cfg, prepared = _prepared_with(target, **overrides)
    model = LinearWindow().fit(prepared)
    before = an.run_anomalies(None, cfg, model, prepared).frame
    t = 1385
    changed = target.copy()
    changed[t + 1:] += np.random.default_rng(9).normal(0, 50, len(target) - t - 1)
    _, prepared2 = _prepared_with(changed, **overrides)
    after = an.run_anomalies(None, cfg, model, prepared2).frame
    upto = before.index <= prepared.index[t]
    assert upto.sum() > 100 and (~upto).sum() > 100  # test span: rows 1275-1499
    pd.testing.assert_frame_equal(before[upto], after[upto])
    assert not np.allclose(before["score"][~upto], after["score"][~upto])  # the change is seen after t


@pytest.mark.parametrize("steps", [4, 24])
def test_multistep_pvalues_stay_uniform_on_clean_data(steps):
    """Exchangeable multi-step errors (step j: the sum of j innovations, so the steps are correlated and grow): the
    maximum over the steps, calibrated alike, gives (super-)uniform p-values and keeps the chosen rate."""
    ps = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        cal_r, test_r = (np.cumsum(rng.standard_t(5, (n, steps)), axis=1) for n in (8000, 40000))
        centres, scales = an_scores.step_scales(cal_r)
        cal = an_scores.multistep_scores(cal_r, centres, scales)[0]
        ps.append(an_scores.conformal_pvalues(cal, an_scores.multistep_scores(test_r, centres, scales)[0]))
    p = np.concatenate(ps)
    for a in (0.01, 0.05, 0.2):
        assert abs(np.mean(p <= a) - a) < 0.25 * a, a
    hist, _ = np.histogram(p, bins=10, range=(0, 1))
    assert hist.min() > 0.8 * hist.mean()


def test_steps_must_be_positive():
    from lstmkit.config import ConfigError

    with pytest.raises(ConfigError, match="anomalies.steps: must be at least 1"):
        _cfg(**{"anomalies.steps": 0})


def test_alarms_explain_the_forecast_that_gave_the_score():
    """With several steps, each explained observation's attribution is of the step-j forecast whose error gave its
    score, made from the window ending j rows before it (the explained outputs are those forecasts)."""
    from lstmkit.data.windows import prepare
    from lstmkit.models.neural.forecaster import fit_forecaster
    from lstmkit.models.neural.spec import ModelSpec

    cfg = _cfg(**{"anomalies.steps": 4, "model.units": 4, "training.epochs": 1, "training.verbose": 0,
                  "explain.steps": 8, "explain.auto_steps": False})
    prepared = prepare(load_series(cfg).frame, cfg)
    model = fit_forecaster(prepared, ModelSpec.from_config(cfg), cfg)
    result = an.run_anomalies(None, cfg, model, prepared)
    step = result.frame["score_step"].to_numpy()
    positions = np.array([np.flatnonzero(step == 1)[0], *np.flatnonzero(step > 1)[:2]])
    assert len(positions) == 3
    attr, origins = an.explain_alarms(model, prepared, cfg, result, positions)
    p = prepared.with_lookback(model.lookback_)
    rows = p.index.get_indexer(result.frame.index[positions])
    np.testing.assert_array_equal(origins, rows - step[positions])
    windows = p.scaled[origins[:, None] + np.arange(-p.lookback + 1, 1)[None, :]]
    expected = model.predict(windows)[np.arange(3), step[positions] - 1]
    np.testing.assert_allclose(attr.prediction, expected, rtol=1e-4, atol=1e-5)
    assert attr.values.shape == (3, p.lookback, len(p.columns))


# ------------------------------------------------------------------ filled values are not observations

def test_smoothed_scores_leave_filled_residuals_out_by_hand():
    r = np.array([1.0, np.nan, 5.0, np.nan, np.nan])  # standardised (r - 1) / 2: 0, -, 2, -, -
    np.testing.assert_allclose(an_scores.scores_from(r, 1.0, 2.0, smooth=2), [0.0, 2.0, 2.0, np.nan])
    score, step = an_scores.multistep_scores(np.array([[1.0, 3.0], [np.nan, np.nan]]), np.zeros(2), np.ones(2))
    np.testing.assert_allclose(score, [3.0, np.nan])
    np.testing.assert_array_equal(step, [2, 0])


@pytest.mark.parametrize("calibration,smooth", [("fixed", 1), ("rolling", 3)])
def test_filled_values_are_never_scored_flagged_or_evaluated(tmp_path, calibration, smooth):
    """Spikes put where the data stage filled values: without data/filled.parquet (an older run) they are flagged;
    with it they get no score, p-value or flag, stay out of the calibration, and every metric equals the metric of
    the observed values alone."""
    from lstmkit.core.atomic import atomic_write_json
    from lstmkit.data.series import save_filled
    from lstmkit.models.baselines.persistence import Persistence
    from lstmkit.runs.folder import RunFolder

    rng = np.random.default_rng(3)
    target = 10 * np.sin(np.arange(1200) * 2 * np.pi / 24) + rng.normal(0, 1, 1200)
    overrides = {"anomalies.calibration": calibration, "anomalies.smooth": smooth, "anomalies.false_alarm_rate": 0.01}
    cfg, prepared = _prepared_with(target, **overrides)
    val, test = prepared.bounds.val, prepared.bounds.test
    filled = np.zeros(1200, dtype=bool)
    filled[[val[0] + 60, val[0] + 61, test[0] + 30, test[0] + 31, test[0] + 100, test[0] + 140]] = True
    target[filled] += np.where(np.arange(1200) < test[0], 40.0, 80.0)[filled]  # made-up values far off the forecasts
    cfg, prepared = _prepared_with(target, **overrides)
    model = Persistence().fit(prepared)
    older, run = RunFolder(tmp_path / "older"), RunFolder(tmp_path / "new")
    for r in (older, run):
        atomic_write_json(r.anomaly_labels_file, {"synthetic": [[str(prepared.index[test[0] + 90]),
                                                                 str(prepared.index[test[0] + 120])]]})
    save_filled(prepared.index, filled, run.filled_file)

    before = an.run_anomalies(older, cfg, model, prepared)  # no file: every row an observation, as before
    own = filled[prepared.index.get_indexer(before.frame.index)]
    assert own.sum() == 4 and not before.frame["filled"].any() and before.frame["flag"][own].any()
    assert before.meta["filled_left_out"] == 0

    result = an.run_anomalies(run, cfg, model, prepared)
    f = result.frame
    np.testing.assert_array_equal(f["filled"].to_numpy(), own)
    assert f["score"][own].isna().all() and f["p_value"][own].isna().all() and not f["flag"][own].any()
    assert not f["alarm"][own].any() and f["score"][~own].notna().all() and f["p_value"][~own].notna().all()
    after = [i + 1 for i in np.flatnonzero(own) if i + 1 < len(f) and not own[i + 1]]
    assert len(after) == 3 and f["score"].iloc[after].notna().all()  # look-back holds a filled value: still scored
    assert result.meta["filled_left_out"] == 4 and result.meta["filled_left_out_labelled"] == 1
    assert result.meta["filled_calibration_left_out"] == 2
    assert len(result.calibration_scores) == len(before.calibration_scores) - 2
    if smooth == 1:  # the calibration scores (validation rows in order) are those of before, less the filled two
        np.testing.assert_allclose(result.calibration_scores, np.delete(before.calibration_scores, [60, 61]))
    obs = ~own
    y = f["label"].to_numpy()[obs]
    width = an_labels.label_resolution(y)
    expected = an_metrics.detection_metrics(y, f["score"].to_numpy()[obs], f["flag"].to_numpy()[obs],
                                    f["alarm"].to_numpy()[obs], width)
    expected["random_baseline"] = an_metrics.random_baseline(y, int(f["flag"].sum()), cfg.anomalies.min_run,
                                                     cfg.anomalies.suppress, seed=cfg.seed, resolution=width)
    got = dict(result.metrics)
    assert got.pop("random_baseline") == pytest.approx(expected.pop("random_baseline"), nan_ok=True)
    assert got == pytest.approx(expected, nan_ok=True)
    assert result.metrics["labelled_share"] == pytest.approx(30 / (len(f) - 4))
