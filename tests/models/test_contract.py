"""One contract, checked over every registered forecaster (like sktime's `check_estimator`): each example of each
kind the package registers (`Forecaster.examples()`: the baselines, and the neural forecaster in every architecture,
with a quantile head and replaying a schedule) fits, forecasts (windows, horizon) in scaled units, repeats itself with
the same seed, survives a save/load round trip, refuses a bad window with a clear error, and honours the
capabilities its tags declare."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lstmkit.config import from_dict
from lstmkit.core.errors import ForecasterError
from lstmkit.data.synthetic import make_synthetic
from lstmkit.data.windows import Prepared, prepare
from lstmkit.models import registry
from lstmkit.models.base import TAGS, Forecaster
from lstmkit.models.neural.forecaster import NETWORK_FILE

LOOKBACK, HORIZON = 24, 4
LEVEL, SPREAD = 1000.0, 50.0  # the series in original units: forecasts in these units would miss by about LEVEL
CONFIG = {"seed": 7, "data": {"features": ["x1"], "length": 420},
          "window": {"lookback": LOOKBACK, "horizon": HORIZON}, "tuning": {"strategy": "none"},
          "evaluation": {"seasonal_period": 24}}

PACKAGE_KINDS = {name: cls for name, cls in registry.kinds().items() if cls.__module__.startswith("lstmkit.")}


def cases() -> list:
    """(kind, example index) for every example of every forecaster the package registers, with readable ids."""
    out = []
    for kind, cls in sorted(PACKAGE_KINDS.items()):
        for i, example in enumerate(cls.examples()):
            out.append(pytest.param(kind, i, id=f"{kind}-{example.name}"))
    return out


CASES = cases()


def example(kind: str, i: int) -> Forecaster:
    """A fresh unfitted copy of example i of the kind."""
    return PACKAGE_KINDS[kind].examples()[i]


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    """A synthetic hourly series (target and one driver) far from zero in original units, split and scaled."""
    frame, _ = make_synthetic(CONFIG["data"]["length"], 0.3, seed=7)
    frame = frame[["x1", "target"]].copy()
    frame["target"] = LEVEL + SPREAD * frame["target"]
    return prepare(frame, from_dict(CONFIG))


@pytest.fixture(scope="module")
def fitted(prepared):
    """Factory: example i of a kind fitted on `prepared` (once per module)."""
    cache: dict[tuple[str, int], Forecaster] = {}

    def get(kind: str, i: int) -> Forecaster:
        if (kind, i) not in cache:
            cache[kind, i] = example(kind, i).fit(prepared)
        return cache[kind, i]

    return get


def test_every_registered_forecaster_has_examples_to_check():
    assert {"Persistence", "SeasonalNaive", "LinearWindow", "AutoRegressive", "NeuralForecaster"} <= set(PACKAGE_KINDS)
    for kind, cls in PACKAGE_KINDS.items():
        examples = cls.examples()
        assert examples and all(type(e) is cls for e in examples), kind


@pytest.mark.parametrize("kind,i", CASES)
def test_fit_and_predict_give_windows_by_horizon_in_scaled_units(kind, i, fitted, prepared):
    forecaster = fitted(kind, i)
    x, y = prepared.windows("test", slice(None))
    forecast = forecaster.predict(x)
    assert forecast.shape == (len(x), HORIZON) and forecast.dtype == np.float64
    assert np.isfinite(forecast).all()
    assert np.abs(forecast - y).mean() < 3 * y.std()  # scaled units (original ones would miss by ~ LEVEL / SPREAD)
    assert forecaster.predict(x[:0]).shape == (0, HORIZON)
    np.testing.assert_allclose(forecaster.predict_split(prepared, "test", batch_size=7), forecast, atol=1e-5)
    summary = forecaster.summary()
    assert summary["kind"] == kind and summary["horizon"] == HORIZON and summary["lookback"] == LOOKBACK
    assert set(summary["tags"]) == set(TAGS)


@pytest.mark.parametrize("kind,i", CASES)
def test_the_same_seed_gives_the_same_forecasts(kind, i, fitted, prepared):
    x, _ = prepared.windows("test", slice(0, 32))
    again = example(kind, i).fit(prepared)
    np.testing.assert_allclose(again.predict(x), fitted(kind, i).predict(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind,i", CASES)
def test_save_and_load_give_the_same_forecaster(kind, i, fitted, prepared, tmp_path):
    forecaster = fitted(kind, i)
    x, _ = prepared.windows("test", slice(0, 32))
    loaded = registry.load(forecaster.save(tmp_path / "saved"))
    assert type(loaded) is type(forecaster)
    np.testing.assert_array_equal(loaded.predict(x), forecaster.predict(x))
    assert loaded.summary() == forecaster.summary()
    if forecaster.get_tag("attention"):
        for key, value in forecaster.attention(x).items():
            np.testing.assert_array_equal(loaded.attention(x)[key], value)
    if forecaster.get_tag("neural"):  # the network alone loads under Keras safe mode (no pickled code)
        network = keras.models.load_model(tmp_path / "saved" / NETWORK_FILE, safe_mode=True)
        np.testing.assert_array_equal(np.asarray(network.predict_on_batch(x)),
                                      np.asarray(forecaster.network.predict_on_batch(x)))


@pytest.mark.parametrize("kind,i", CASES)
def test_a_bad_window_is_refused_with_a_clear_error(kind, i, fitted, prepared):
    with pytest.raises(ForecasterError, match="not fitted yet"):
        example(kind, i).predict(np.zeros((1, LOOKBACK, 2), dtype=np.float32))
    forecaster = fitted(kind, i)
    x, _ = prepared.windows("test", slice(0, 4))
    shape = rf"expected windows of shape \(n, {LOOKBACK}, 2\) \(windows, look-back steps, channels\), got "
    for bad in (x[:, 1:], x[..., :1], x[0]):
        with pytest.raises(ForecasterError, match=shape + rf"\({', '.join(map(str, bad.shape))},?\)"):
            forecaster.predict(bad)
    holed = x.copy()
    holed[2, 5, 1] = np.nan
    with pytest.raises(ForecasterError, match="window 2 holds a missing or infinite value at step 5, channel 1"):
        forecaster.predict(holed)


@pytest.mark.parametrize("kind,i", CASES)
def test_declared_capabilities_are_honoured_and_the_others_refused(kind, i, fitted, prepared):
    forecaster = fitted(kind, i)
    x, _ = prepared.windows("test", slice(0, 8))
    tags = forecaster.summary()["tags"]

    if tags["quantiles"]:
        q = forecaster.predict_quantiles(x, [0.1, 0.5, 0.9])
        assert q.shape == (len(x), HORIZON, 3) and np.isfinite(q).all()
        assert (np.diff(q, axis=-1) >= -1e-6).all()
    else:
        with pytest.raises(ForecasterError, match="needs the 'quantiles' capability"):
            forecaster.predict_quantiles(x, [0.1, 0.5, 0.9])

    if tags["samples"]:
        s = forecaster.predict_samples(x, 5, seed=3)
        assert s.shape == (len(x), 5, HORIZON) and np.isfinite(s).all()
        np.testing.assert_array_equal(forecaster.predict_samples(x, 5, seed=3), s)
        assert not np.array_equal(forecaster.predict_samples(x, 5, seed=4), s)
        assert s.std(axis=1).mean() > 0  # the paths differ
    else:
        with pytest.raises(ForecasterError, match="needs the 'samples' capability"):
            forecaster.predict_samples(x, 5)

    if tags["attention"]:
        weights = forecaster.attention(x)
        assert weights["time"].shape == (len(x), LOOKBACK)
        np.testing.assert_allclose(weights["time"].sum(axis=1), 1.0, atol=1e-4)
        assert ("variables" in weights) == tags["variable_selection"]
        if tags["variable_selection"]:
            assert weights["variables"].shape == (len(x), 2)
            np.testing.assert_allclose(weights["variables"].sum(axis=1), 1.0, atol=1e-4)
    else:
        assert not tags["variable_selection"]
        if hasattr(forecaster, "attention"):
            with pytest.raises(ForecasterError, match="has no attention weights"):
                forecaster.attention(x)

    assert tags["neural"] == hasattr(forecaster, "network")  # a network: gradients exist (Integrated Gradients)
