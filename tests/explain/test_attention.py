"""Temporal attention analysis: profiles and rank agreement on constructed inputs with known answers, the analysis of a
stub attention forecaster (with and without variable selection), the no-attention path, the figures, and a real
attention LSTM trained for one epoch."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lstmkit.config import from_dict  # noqa: E402
from lstmkit.core.errors import ForecasterError  # noqa: E402
from lstmkit.data.synthetic import Driver, GroundTruth  # noqa: E402
from lstmkit.explain import attention  # noqa: E402
from lstmkit.explain.integrated_gradients import Attribution  # noqa: E402
from lstmkit.models.base import Forecaster  # noqa: E402
from lstmkit.report import explainability as explain_text  # noqa: E402
from lstmkit.report import plots  # noqa: E402
from lstmkit.stages import explainability as attention_explainability

LOOKBACK, CHANNELS, HORIZON = 6, 3, 2
COLUMNS = ["x1", "x2", "target"]


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


class StubAttention(Forecaster):
    """A forecaster with the attention tag whose weights are given: `time` (lookback,) and `variables` (channels,)."""

    name = "stub"
    tags = {"attention": True}

    def __init__(self, time: np.ndarray, variables: np.ndarray | None = None):
        self.time, self.variables = np.asarray(time, float), variables
        self.lookback_, self.horizon_, self.channels_ = LOOKBACK, HORIZON, CHANNELS

    def _predict(self, windows: np.ndarray) -> np.ndarray:
        return np.repeat(windows[:, -1:, -1], HORIZON, axis=1)

    def attention(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        out = {"time": np.tile(self.time, (len(windows), 1))}
        if self.variables is not None:
            out["variables"] = np.tile(self.variables, (len(windows), 1))
        return out


class StubTFT(StubAttention):
    """The stub with variable-selection weights too."""

    name = "stub_tft"
    tags = {"attention": True, "variable_selection": True}


class NoAttention(StubAttention):
    """A forecaster without attention weights."""

    name = "plain"
    tags = {}


def attribution(mass_per_lag: np.ndarray, channel_mass: np.ndarray | None = None, n: int = 4) -> Attribution:
    """Attributions whose |value| at window position i and channel j is mass_per_lag[i] * channel_mass[j] (signs
    alternate; every channel 1 by default)."""
    channel_mass = np.ones(CHANNELS) if channel_mass is None else channel_mass
    values = np.outer(mass_per_lag, channel_mass)[None].repeat(n, axis=0)
    values *= np.where(np.arange(n) % 2, -1.0, 1.0)[:, None, None]  # the sign must not matter
    return Attribution(values, np.zeros(n), np.zeros(n), features=COLUMNS)


def windows(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, LOOKBACK, CHANNELS)).astype(np.float32)


# ------------------------------------------------------------------ profiles and agreement, known answers


def test_time_profile_is_the_mean_weight_per_lag_in_ascending_lag_order():
    w = np.array([[0.1, 0.1, 0.1, 0.1, 0.2, 0.4], [0.3, 0.1, 0.1, 0.1, 0.2, 0.2]])
    profile = attention.time_profile(w, horizon_step=2)
    assert profile.index.name == "lag" and list(profile.index) == [2, 3, 4, 5, 6, 7]  # last input: lag 2
    np.testing.assert_allclose(profile.to_numpy(), [0.3, 0.2, 0.1, 0.1, 0.1, 0.2])
    assert profile.sum() == pytest.approx(1.0)


def test_ig_profiles_sum_absolute_attribution_over_channels_and_lags():
    mass = np.array([1.0, 0, 0, 0, 2.0, 5.0])
    attr = attribution(mass, np.array([1.0, 3.0, 0.0]))
    lags = attention.ig_time_profile(attr.values, horizon_step=1)
    np.testing.assert_allclose(lags.loc[[1, 2, 6]].to_numpy(), [5 / 8, 2 / 8, 1 / 8])
    channels = attention.ig_variable_profile(attr.values, COLUMNS)
    np.testing.assert_allclose(channels.to_numpy(), [0.25, 0.75, 0.0])
    np.testing.assert_allclose(attention.variable_profile(np.array([[0.2, 0.3, 0.5], [0.4, 0.3, 0.3]]), COLUMNS),
                               [0.3, 0.3, 0.4])


def test_identical_profiles_agree_perfectly_and_reversed_ones_are_opposite():
    up = pd.Series([0.05, 0.1, 0.15, 0.2, 0.22, 0.28], index=range(1, 7))
    same = attention.rank_agreement(up, up * 3, top_k=2)
    assert same.spearman == pytest.approx(1.0) and same.overlap == 1.0 and same.first == [6, 5] == same.second
    reversed_ = attention.rank_agreement(up, pd.Series(up.to_numpy()[::-1], index=up.index), top_k=2)
    assert reversed_.spearman == pytest.approx(-1.0) and reversed_.overlap == 0.0
    half = attention.rank_agreement(up, pd.Series([0.1, 0.05, 0.15, 0.2, 0.28, 0.22], index=up.index), top_k=4)
    assert 0 < half.spearman < 1 and half.overlap == 1.0  # same top four, two pairs swapped
    assert attention.rank_agreement(up, up, top_k=50).top_k == 6  # k is capped at the number of entries


def test_a_flat_profile_has_no_rank_correlation_and_bad_k_is_a_clear_error():
    up = pd.Series([0.1, 0.2, 0.3, 0.4])
    flat = attention.rank_agreement(up, pd.Series(0.25, index=up.index), top_k=2)
    assert np.isnan(flat.spearman) and flat.to_dict()["spearman"] is None
    with pytest.raises(ValueError, match="explain.attention_top_k"):
        attention.rank_agreement(up, up, top_k=0)


def test_window_spearman_ranks_each_window_on_its_own():
    w = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    values = np.array([[1.0, 2.0, 3.0, 4.0]] * 3)[:, :, None] * np.array([1.0, -1.0])  # |.| summed over 2 channels
    rho = attention.window_spearman(w, values)
    np.testing.assert_allclose(rho[:2], [1.0, -1.0])
    assert np.isnan(rho[2])  # constant attention: nothing to rank
    with pytest.raises(ValueError, match="same windows and steps"):
        attention.window_spearman(w[:, :3], values)


def test_planted_lags_are_ranked_among_all_lags_for_each_method():
    truth = GroundTruth(drivers=[Driver("x1", 3, 1.0, "linear"), Driver("x2", 5, 1.0, "tanh")], noise_std=0.3,
                        distractors=["x3"])
    profiles = pd.DataFrame({"attention": [0.1, 0.1, 0.4, 0.1, 0.2, 0.1], "ig": [0.5, 0.1, 0.2, 0.05, 0.1, 0.05]},
                            index=pd.Index(range(1, 7), name="lag"))
    scores = attention.planted_lag_scores(profiles, truth)
    assert list(scores.index) == ["x1 @ lag 3", "x2 @ lag 5"]
    assert scores["attention rank"].tolist() == [1, 2] and scores["ig rank"].tolist() == [2, 3]
    np.testing.assert_allclose(scores["attention share"], [0.4, 0.2])
    assert (scores["uniform"] == 1 / 6).all()
    roles = attention.channel_roles(["x1", "x2", "x3", "target"], truth, "target")
    assert roles == {"x1": "driver", "x2": "driver", "x3": "distractor", "target": "target"}


# ------------------------------------------------------------------ the analysis of an attention forecaster


def test_analyse_an_attention_forecaster_whose_weights_follow_ig():
    mass = np.array([0.0, 0.1, 0.2, 0.6, 0.3, 1.0])
    forecaster = StubAttention(mass / mass.sum())
    truth = GroundTruth(drivers=[Driver("x1", 3, 1.0, "linear")], noise_std=0.3)
    result = attention.analyse(forecaster, windows(), attribution(mass), horizon_step=1, truth=truth, target="target",
                               top_k=3)
    assert list(result.time.columns) == ["attention", "ig"] and list(result.time.index) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(result.time["attention"], result.time["ig"])
    assert result.time_agreement.spearman == pytest.approx(1.0) and result.time_agreement.overlap == 1.0
    np.testing.assert_allclose(result.window_spearman, 1.0)
    assert result.variables is None and result.channel_scores is None
    assert result.lag_scores.loc["x1 @ lag 3", "attention rank"] == 2  # lag 1 (1.0) first, lag 3 (0.6) second
    summary = result.to_dict()
    assert summary["model"] == "stub" and summary["time"]["lags"] == [1, 2, 3, 4, 5, 6]
    assert summary["time_agreement"]["spearman"] == pytest.approx(1.0) and "variables" not in summary
    assert summary["planted_lags"][0]["pair"] == "x1 @ lag 3"
    text = explain_text.time_summary(result, "hours")
    assert "puts 45% of its weight on lag 1 (hours), IG 45% of its attribution on lag 1." in text
    assert "Spearman rank correlation of 1.00 over the 6 lags" in text and "share 3 of their 3" in text
    assert "planted `x1 @ lag 3` the attention ranks the lag 2nd of 6" in text
    assert "weighs time steps but not input channels" in explain_text.variable_summary(result)


def test_analyse_a_variable_selecting_forecaster_against_the_drivers():
    mass = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.5])
    forecaster = StubTFT(mass[::-1] / mass.sum(), variables=np.array([0.6, 0.1, 0.3]))
    truth = GroundTruth(drivers=[Driver("x1", 3, 1.0, "linear")], noise_std=0.3, distractors=["x2"])
    result = attention.analyse(forecaster, windows(), attribution(mass, np.array([3.0, 1.0, 2.0])), truth=truth,
                               target="target", top_k=1)
    assert result.time_agreement.first == [6] and result.time_agreement.second == [1]  # reversed: lag 6 vs lag 1
    assert result.time_agreement.overlap == 0.0
    assert explain_text.time_summary(result).startswith("The attention puts 50% of its weight on lag 6 (steps), IG 50% "
                                                     "of its attribution on lag 1.")
    flat = attention.analyse(StubAttention(np.full(LOOKBACK, 1 / LOOKBACK)), windows(), attribution(mass))
    assert explain_text.time_summary(flat).startswith("The attention is spread almost evenly over the look-back window: "
                                                   "its mean weights range from 16.7% to 16.7%")
    np.testing.assert_allclose(result.variables["variable selection"], [0.6, 0.1, 0.3])
    np.testing.assert_allclose(result.variables["ig"], [0.5, 1 / 6, 1 / 3])
    assert result.variable_agreement.spearman == pytest.approx(1.0)
    assert result.channel_scores.loc["x1", "role"] == "driver" and result.channel_scores.loc["x2", "role"] == "distractor"
    assert result.channel_scores.loc["x1", "variable selection rank"] == 1
    summary = result.to_dict()
    assert summary["variables"]["variable selection"]["x1"] == pytest.approx(0.6)
    assert summary["variable_agreement"]["spearman"] == pytest.approx(1.0)
    assert [r["channel"] for r in summary["channel_roles"]] == COLUMNS
    text = explain_text.variable_summary(result)
    assert "The driver `x1` gets 60.0% of the selection weight (rank 1 of 3)" in text
    assert "The distractor `x2`" in text


def test_weights_that_break_the_contract_are_clear_errors():
    attr = attribution(np.ones(LOOKBACK))
    with pytest.raises(ValueError, match="window 0 sum to"):
        attention.analyse(StubAttention(np.full(LOOKBACK, 0.5)), windows(), attr)
    with pytest.raises(ValueError, match=r"shape \(4, 5\), expected \(4, 6\)"):
        attention.analyse(StubAttention(np.full(LOOKBACK - 1, 0.2)), windows(), attr)
    with pytest.raises(ValueError, match="gave no `variables`"):
        attention.analyse(StubTFT(np.full(LOOKBACK, 1 / LOOKBACK)), windows(), attr)
    with pytest.raises(ValueError, match="do not belong"):
        attention.analyse(StubAttention(np.full(LOOKBACK, 1 / LOOKBACK)), windows(3), attr)


def test_a_model_without_attention_gets_one_sentence_naming_the_architectures_that_have_it():
    archs = attention.attention_architectures()
    assert "attention_lstm" in archs and "lstm" not in archs  # read from the architectures' own TAGS
    text = explain_text.no_attention_text(NoAttention(np.ones(LOOKBACK)))
    assert text.startswith("The selected model, `plain`, exposes no attention weights")
    assert "`attention_lstm`" in text and ". " not in text and text.endswith("(`model.architecture`).")
    with pytest.raises(ForecasterError, match="exposes no attention weights"):
        attention.analyse(NoAttention(np.ones(LOOKBACK)), windows(), attribution(np.ones(LOOKBACK)))


# ------------------------------------------------------------------ figures


def test_attention_profiles_figure(tmp_path):
    lags = pd.Index(np.arange(1, 25), name="lag")
    rng = np.random.default_rng(1)
    profiles = pd.DataFrame({"attention": rng.dirichlet(np.ones(24)), "ig": rng.dirichlet(np.ones(24))}, index=lags)
    agreement = attention.rank_agreement(profiles["attention"], profiles["ig"], 5)
    fig = plots.attention_profiles(profiles, agreement, {"x1": 6, "x2": 12}, unit="hours", path=tmp_path / "att.png")
    assert (tmp_path / "att.png").stat().st_size > 0
    left, right = fig.axes
    assert left.get_xlabel() == "lag (hours before the explained target)" and "%" in left.get_ylabel()
    np.testing.assert_allclose(left.lines[0].get_ydata(), profiles["attention"] * 100)
    assert [line.get_xdata()[0] for line in left.lines if line.get_linestyle() == "--"] == [6, 12]
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["attention weight", "Integrated Gradients",
                                                                    "planted lag"]
    assert f"Spearman {agreement.spearman:.2f} over 24 lags" in right.get_title()
    assert "rank by attention weight" in right.get_xlabel() and "rank by Integrated Gradients" in right.get_ylabel()
    assert fig._suptitle.get_text() == "Temporal attention beside Integrated Gradients"
    with pytest.raises(ValueError):
        plots.attention_profiles(profiles[["ig"]])


def test_variable_selection_figure(tmp_path):
    shares = pd.DataFrame({"variable selection": [0.5, 0.1, 0.4], "ig": [0.6, 0.05, 0.35]},
                          index=pd.Index(COLUMNS, name="channel"))
    agreement = attention.rank_agreement(shares["variable selection"], shares["ig"], 2)
    fig = plots.variable_selection(shares, agreement, {"x1": "driver", "x2": "distractor", "target": "target"},
                                   path=tmp_path / "vs.png")
    assert (tmp_path / "vs.png").stat().st_size > 0
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x1 (driver)", "x2 (distractor)", "target"]
    assert [p.get_width() for p in ax.patches] == pytest.approx([50, 10, 40, 60, 5, 35])
    assert ax.get_xlabel() == "share of the total (%)" and ax.get_ylabel() == "input channel"
    assert "Spearman 1.00 over 3 channels, top-2 overlap 100%" in ax.get_title()
    every = attention.rank_agreement(shares["variable selection"], shares["ig"], 3)  # top-3 of 3: always 100%
    assert plots.variable_selection(shares, every).axes[0].get_title().endswith("Spearman 1.00 over 3 channels")


# ------------------------------------------------------------------ a real attention LSTM


def test_an_attention_lstm_trained_one_epoch_gives_profiles_of_the_right_shape(row_prepared):
    from lstmkit.config import TrainingConfig
    from lstmkit.explain.integrated_gradients import integrated_gradients
    from lstmkit.models.neural.forecaster import NeuralForecaster
    from lstmkit.models.neural.spec import ModelSpec

    p = row_prepared(lookback=8, horizon=3, feature_values=np.cos(np.arange(100)), target_values=np.sin(np.arange(100)))
    forecaster = NeuralForecaster(ModelSpec("attention_lstm", units=4, dropout=0.0, batch_size=16),
                                  TrainingConfig(epochs=1, verbose=0), seed=2).fit(p)
    assert forecaster.get_tag("attention") and not forecaster.get_tag("variable_selection")
    x, _ = p.windows("test", np.arange(6))
    attr = integrated_gradients(forecaster, x, steps=16, features=list(p.columns))
    truth = GroundTruth(drivers=[Driver("x", 3, 1.0, "linear")], noise_std=0.1)
    result = attention.analyse(forecaster, x, attr, horizon_step=1, truth=truth, target="target", top_k=3)
    assert result.time.shape == (8, 2) and list(result.time.index) == list(range(1, 9))
    np.testing.assert_allclose(result.time.sum().to_numpy(), 1.0)
    assert (result.time["attention"] > 0).all()  # a softmax
    assert result.window_spearman.shape == (6,) and result.time_agreement.entries == 8
    assert -1 <= result.time_agreement.spearman <= 1 and result.time_agreement.top_k == 3
    assert result.variables is None and list(result.lag_scores.index) == ["x @ lag 3"]
    plots.attention_profiles(result.time, result.time_agreement, {"x": 3})


def test_a_tft_trained_one_epoch_gives_time_and_variable_profiles(row_prepared):
    from lstmkit.config import TrainingConfig
    from lstmkit.explain.integrated_gradients import integrated_gradients
    from lstmkit.models.neural.forecaster import NeuralForecaster
    from lstmkit.models.neural.spec import ModelSpec

    p = row_prepared(lookback=8, horizon=3, feature_values=np.cos(np.arange(100)), target_values=np.sin(np.arange(100)))
    forecaster = NeuralForecaster(ModelSpec("tft", units=4, dropout=0.0, batch_size=16, options={"heads": 2}),
                                  TrainingConfig(epochs=1, verbose=0), seed=3).fit(p)
    assert forecaster.get_tag("attention") and forecaster.get_tag("variable_selection")
    x, _ = p.windows("test", np.arange(5))
    attr = integrated_gradients(forecaster, x, steps=16, features=list(p.columns))
    truth = GroundTruth(drivers=[Driver("x", 2, 1.0, "linear")], noise_std=0.1)
    result = attention.analyse(forecaster, x, attr, horizon_step=1, truth=truth, target="target", top_k=1)
    assert result.time.shape == (8, 2) and result.variables.shape == (2, 2)
    assert list(result.variables.index) == ["x", "target"]
    np.testing.assert_allclose(result.variables.sum().to_numpy(), 1.0)
    assert result.variable_agreement.entries == 2 and result.variable_agreement.top_k == 1
    assert result.channel_scores["role"].tolist() == ["driver", "target"]
    summary = result.to_dict()
    assert set(summary["variables"]) == {"variable selection", "ig"}
    plots.variable_selection(result.variables, result.variable_agreement, {"x": "driver", "target": "target"})


def test_one_input_channel_leaves_variable_selection_nothing_to_choose():
    class OneChannel(StubTFT):
        def __init__(self):
            super().__init__(np.full(LOOKBACK, 1 / LOOKBACK), variables=np.ones(1))
            self.channels_ = 1

    attr = Attribution(np.ones((4, LOOKBACK, 1)), np.zeros(4), np.zeros(4), features=["OT"])
    result = attention.analyse(OneChannel(), windows()[:, :, :1], attr)
    assert result.variables.shape == (1, 2) and np.isnan(result.variable_agreement.spearman)
    assert explain_text.variable_summary(result) == ("With one input channel (`OT`) variable selection has nothing to "
                                                  "choose between: it gives that channel all its weight.")
    assert result.to_dict()["variable_agreement"]["spearman"] is None


# ------------------------------------------------------------------ every attention model of a comparison run


@pytest.fixture(scope="module")
def comparison_run(tmp_path_factory, row_prepared):
    """A run folder as the training stage leaves it after comparing lstm (selected), attention_lstm (two seeds) and
    tft, each trained one epoch on a toy series (look-back 8, horizon 3) and saved."""
    from lstmkit.config import TrainingConfig
    from lstmkit.models.neural.forecaster import NeuralForecaster
    from lstmkit.models.neural.spec import ModelSpec
    from lstmkit.runs.folder import RunFolder
    from lstmkit.stages.training import TrainedModel, write_selected

    p = row_prepared(lookback=8, horizon=3, feature_values=np.cos(np.arange(100)), target_values=np.sin(np.arange(100)))
    run = RunFolder(tmp_path_factory.mktemp("comparison"))
    cfg = from_dict({"window": {"lookback": 8, "horizon": 3}, "explain": {"windows": 5, "steps": 16}})
    trained = []
    for arch, seed, options in [("lstm", 1, {}), ("attention_lstm", 1, {}), ("attention_lstm", 2, {}),
                                ("tft", 1, {"heads": 2})]:
        f = NeuralForecaster(ModelSpec(arch, units=4, dropout=0.0, batch_size=16, options=options),
                             TrainingConfig(epochs=1, verbose=0), seed=seed, name=arch).fit(p)
        folder = f.save(run.model_dir(arch, seed))
        trained.append(TrainedModel(arch, seed, f, "config", str(folder.relative_to(run.root)), False))
    trained[0].forecaster.val_loss_ = -1.0  # lstm is selected, whatever one epoch gave
    write_selected(run, cfg, trained, trained[0])
    return run, cfg, p, trained


def test_each_attention_architecture_of_a_run_is_analysed_at_its_best_seed(comparison_run):
    from lstmkit.stages.explainability import explain_test_windows, explain_windows

    run, cfg, p, trained = comparison_run
    assert attention_explainability.trained_names(run) == ["lstm", "attention_lstm", "tft"]
    best = min(trained[1:3], key=lambda m: m.forecaster.val_loss_).seed
    assert [(e["model"], e["seed"]) for e in attention_explainability.attention_entries(run)] == [("attention_lstm", best), ("tft", 1)]
    assert [e["model"] for e in attention_explainability.attention_entries(run, "variable_selection")] == ["tft"]
    assert attention_explainability.attention_entries(run, "quantiles") == []  # no model of the run has that tag
    selected = trained[0].forecaster
    positions, attr = explain_test_windows(selected, p, cfg)
    models = attention_explainability.analyse_run(run, cfg, selected, p, positions, attr, horizon_step=1)
    assert [(m.name, m.seed, m.selected) for m in models] == [("attention_lstm", best, False), ("tft", 1, False)]
    for m in models:  # IG of that model (not of the selected lstm), on the selected model's explained windows
        expected = explain_windows(m.forecaster, p, cfg, positions)
        np.testing.assert_allclose(m.attribution.values, expected.values, rtol=1e-5, atol=1e-7)
        assert not np.allclose(m.attribution.values, attr.values)
        assert m.analysis.time.shape == (8, 2) and m.analysis.window_spearman.shape == (len(positions),)
    assert models[0].analysis.variables is None and models[1].analysis.variables.shape == (2, 2)
    summary = attention_explainability.attention_summary(models)
    assert list(summary) == ["attention_lstm", "tft"]
    assert summary["tft"]["seed"] == 1 and summary["tft"]["selected"] is False and "variable_agreement" in summary["tft"]
    assert summary["attention_lstm"]["relative_completeness_gap"] == pytest.approx(models[0].attribution.relative_gap())
    intro = explain_text.model_intro(models[1])
    assert intro.startswith("### `tft`, seed 1\n\n") and "not selected" in intro and f"same {len(positions)} test" in intro
    assert "variable-selection weight" in intro and "variable-selection" not in explain_text.model_intro(models[0])
    assert attention_explainability.attention_summary([]) is None


def test_a_selected_attention_model_reuses_the_chapters_attributions(comparison_run, tmp_path):
    import json
    import shutil

    from lstmkit.models.registry import load
    from lstmkit.runs.folder import RunFolder
    from lstmkit.stages.explainability import explain_test_windows

    run, cfg, p, trained = comparison_run
    copy = RunFolder(tmp_path / "run")
    shutil.copytree(run.root, copy.root)
    choice = json.loads(copy.selected_file.read_text())
    choice.update(model="tft", seed=1, path=trained[3].path)
    copy.selected_file.write_text(json.dumps(choice))
    selected = load(copy.root / trained[3].path)
    positions, attr = explain_test_windows(selected, p, cfg)
    models = attention_explainability.analyse_run(copy, cfg, selected, p, positions, attr)
    tft = next(m for m in models if m.name == "tft")
    assert tft.selected and tft.attribution is attr and tft.forecaster is selected
    assert "selected model" in explain_text.model_intro(tft) and not next(m for m in models if m.name != "tft").selected


def test_windows_of_another_look_back_keep_their_forecast_origins(row_prepared):
    p = row_prepared(lookback=8, horizon=3)
    positions = np.array([0, 5, 10])
    other, theirs = attention_explainability.same_windows(p, positions, 12)
    assert other.lookback == 12
    np.testing.assert_array_equal(other.origins("test")[theirs], p.origins("test")[positions])
    same, kept = attention_explainability.same_windows(p, positions, 8)
    assert same is p and (kept == positions).all()


def test_no_attention_in_a_comparison_run_names_the_run_s_other_models():
    text = explain_text.no_attention_text(NoAttention(np.ones(LOOKBACK)), ["plain", "gru"])
    assert text.startswith("The selected model, `plain`, exposes no attention weights, nor does the other model of "
                           "this run (`gru`), so there is no attention to set beside IG;")
    assert "`attention_lstm`" in text and text.endswith("or `compare.architectures` to train them beside the others).")
