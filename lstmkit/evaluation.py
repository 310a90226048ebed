"""Evaluation stage: forecast metrics and the baselines every figure is reported beside."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error

from lstmkit.config import Config
from lstmkit.preprocessing import Prepared

METRICS = ("mse", "rmse", "mae", "mape", "smape", "mase")


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE in percent: mean of 2|y - ŷ| / (|y| + |ŷ|), zero where both are zero."""
    den = np.abs(y) + np.abs(yhat)
    ratio = np.divide(2 * np.abs(y - yhat), den, out=np.zeros_like(den, dtype=float), where=den > 0)
    return float(100 * ratio.mean())


def mase_scale(train_target: np.ndarray, period: int) -> float:
    """In-sample MAE of the seasonal-naive forecast on the training target (the MASE denominator)."""
    if len(train_target) <= period:
        raise ValueError(f"the training target ({len(train_target)} rows) is shorter than the seasonal period {period}")
    return float(np.mean(np.abs(train_target[period:] - train_target[:-period])))


def metrics(y: np.ndarray, yhat: np.ndarray, scale: float) -> dict[str, float]:
    """MSE, RMSE, MAE, MAPE (%), sMAPE (%) and MASE over all values of y and ŷ."""
    y, yhat = np.ravel(y), np.ravel(yhat)
    mse = mean_squared_error(y, yhat)
    mae = mean_absolute_error(y, yhat)
    return {"mse": float(mse), "rmse": float(np.sqrt(mse)), "mae": float(mae),
            "mape": float(100 * mean_absolute_percentage_error(y, yhat)), "smape": smape(y, yhat),
            "mase": float(mae / scale)}


def metric_report(y: np.ndarray, yhat: np.ndarray, prepared: Prepared, period: int) -> dict:
    """Metrics of (n, horizon) forecasts in scaled and original units, overall and per horizon step."""
    train = slice(*prepared.bounds.train)
    y_orig, yhat_orig = prepared.to_original(y), prepared.to_original(yhat)
    scales = {"scaled": mase_scale(prepared.scaled[train, prepared.target_index].astype(float), period),
              "original": mase_scale(prepared.original[train, prepared.target_index], period)}
    pairs = {"scaled": (y, yhat), "original": (y_orig, yhat_orig)}
    report: dict = {u: metrics(*pairs[u], scales[u]) for u in pairs}
    report["per_horizon"] = {
        u: {m: [metrics(pairs[u][0][:, h], pairs[u][1][:, h], scales[u])[m] for h in range(y.shape[1])] for m in METRICS}
        for u in pairs}
    return report


# ---------------------------------------------------------------- baselines


class Forecaster:
    """One interface for every model: fit on a prepared series, predict the windows of a split."""

    name = "forecaster"

    def fit(self, prepared: Prepared) -> Forecaster:
        """Learn from the training (and, for model selection, validation) windows."""
        return self

    def refit(self, prepared: Prepared) -> Forecaster:
        """Refit the choices made by `fit` on the training windows of `prepared` (e.g. training+validation)."""
        return self

    def predict(self, prepared: Prepared, split: str) -> np.ndarray:
        """Scaled forecasts of shape (windows, horizon) for a split."""
        raise NotImplementedError


class Persistence(Forecaster):
    """Repeat the last observed value for every horizon step."""

    name = "persistence"

    def predict(self, prepared: Prepared, split: str) -> np.ndarray:
        y = prepared.scaled[:, prepared.target_index].astype(float)
        return np.repeat(y[prepared.origins(split)][:, None], prepared.horizon, axis=1)


@dataclass
class SeasonalNaive(Forecaster):
    """Repeat the value one season before each target step (from the observed past only)."""

    period: int = 24
    name: str = "seasonal_naive"

    def predict(self, prepared: Prepared, split: str) -> np.ndarray:
        y = prepared.scaled[:, prepared.target_index].astype(float)
        origins = prepared.origins(split)[:, None]
        h = np.arange(1, prepared.horizon + 1)[None, :]
        source = origins + h - self.period * np.ceil(h / self.period).astype(int)  # latest same-phase row <= origin
        if source.min() < 0:
            raise ValueError(f"seasonal period {self.period} reaches before the first row of the series")
        return y[source]


@dataclass
class LinearWindow(Forecaster):
    """Ridge regression from the flattened look-back window (all channels) to the horizon, alpha chosen on validation.

    With `last_value=True` it is NLinear-style: each channel's last observed value is subtracted from its window
    and the target's is added back to the forecast, which makes the model immune to level shifts.
    """

    alphas: list = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0])
    last_value: bool = False
    name: str = "linear"
    alpha_: float | None = None
    model_: Ridge | None = None

    def _design(self, prepared: Prepared, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flattened inputs, targets and the level added back to forecasts (zero unless last_value)."""
        x, y = prepared.arrays(split)
        level = x[:, -1:, :] if self.last_value else np.zeros_like(x[:, -1:, :])
        return (x - level).reshape(len(x), -1), y - level[:, :, prepared.target_index], level[:, :, prepared.target_index]

    def fit(self, prepared: Prepared) -> LinearWindow:
        from scipy.linalg import LinAlgWarning

        xt, yt, _ = self._design(prepared, "train")
        xv, yv, _ = self._design(prepared, "val")
        with warnings.catch_warnings():  # small alphas on long windows are ill-conditioned; validation judges them
            warnings.simplefilter("ignore", LinAlgWarning)
            scores = {a: mean_squared_error(yv, Ridge(alpha=a).fit(xt, yt).predict(xv)) for a in self.alphas}
            self.alpha_ = min(scores, key=scores.get)
            self.model_ = Ridge(alpha=self.alpha_).fit(xt, yt)
        return self

    def refit(self, prepared: Prepared) -> LinearWindow:
        """Refit with the chosen alpha on the training windows of `prepared` (e.g. training+validation)."""
        xt, yt, _ = self._design(prepared, "train")
        self.model_ = Ridge(alpha=self.alpha_).fit(xt, yt)
        return self

    def predict(self, prepared: Prepared, split: str) -> np.ndarray:
        x, _, level = self._design(prepared, split)
        return self.model_.predict(x).reshape(level.shape[0], -1) + level  # Ridge drops the axis of a 1-step horizon


@dataclass
class AutoRegressive(Forecaster):
    """statsmodels AutoReg on the target alone: order chosen by BIC and fitted on the training rows only, then rolled
    over every window with the parameters frozen (iterated multi-step forecasts from each window's own past)."""

    max_lag: int = 48
    name: str = "autoreg"
    lags_: int | None = None
    params_: np.ndarray | None = None

    def fit(self, prepared: Prepared) -> AutoRegressive:
        from statsmodels.tsa.ar_model import ar_select_order

        y = prepared.scaled[slice(*prepared.bounds.train), prepared.target_index].astype(float)
        max_lag = min(self.max_lag, prepared.lookback, len(y) // 4)
        selected = ar_select_order(y, maxlag=max_lag, ic="bic", trend="c").ar_lags
        self.lags_ = int(max(selected)) if selected else 1
        return self.refit(prepared)

    def refit(self, prepared: Prepared) -> AutoRegressive:
        """Fit the parameters of the chosen order on the training rows of `prepared` (e.g. training+validation)."""
        from statsmodels.tsa.ar_model import AutoReg

        y = prepared.scaled[slice(*prepared.bounds.train), prepared.target_index].astype(float)
        self.params_ = np.asarray(AutoReg(y, lags=self.lags_, trend="c").fit().params)
        return self

    def predict(self, prepared: Prepared, split: str) -> np.ndarray:
        x, _ = prepared.arrays(split)
        history = x[:, -self.lags_:, prepared.target_index].astype(float)  # (windows, lags), oldest first
        const, phi = self.params_[0], self.params_[1:]                     # phi[i] multiplies y[t - 1 - i]
        out = np.empty((len(x), prepared.horizon))
        for h in range(prepared.horizon):
            out[:, h] = const + history[:, ::-1] @ phi
            history = np.concatenate([history[:, 1:], out[:, h:h + 1]], axis=1)
        return out


class KerasForecaster(Forecaster):
    """A trained Keras model behind the common interface."""

    def __init__(self, model, name: str = "lstm"):
        self.model, self.name = model, name

    def predict(self, prepared: Prepared, split: str) -> np.ndarray:
        return np.asarray(self.model.predict(prepared.dataset(split, 1024), verbose=0), dtype=float)


def baselines(cfg: Config) -> list[Forecaster]:
    """The baselines computed in every run (cfg with its `auto` settings resolved, see seasonality.resolve_config)."""
    alphas = list(cfg.evaluation.ridge_alphas)
    return [Persistence(), SeasonalNaive(cfg.evaluation.seasonal_period), LinearWindow(alphas),
            LinearWindow(alphas, last_value=True, name="nlinear"), AutoRegressive(max_lag=2 * cfg.evaluation.seasonal_period)]


# ---------------------------------------------------------------- the stage


def metrics_table(metrics: dict, units: str) -> pd.DataFrame:
    """Overall test metrics of a metrics.json document, one row per forecaster (model first)."""
    rows = {"lstm": metrics["model"][units]} | {k: v[units] for k, v in metrics["baselines"].items()}
    table = pd.DataFrame(rows).T[list(METRICS)]
    table.index.name = "forecaster"
    return table


@dataclass
class Evaluation:
    """Test-split forecasts of the model and baselines, and their metrics."""

    actual: np.ndarray                  # (windows, horizon), scaled
    forecasts: dict[str, np.ndarray]    # name -> (windows, horizon), scaled; "lstm" first
    metrics: dict                       # the metrics.json document

    def table(self, units: str = "original") -> pd.DataFrame:
        """Overall metrics, one row per forecaster (model first)."""
        return metrics_table(self.metrics, units)

    def per_horizon(self, metric: str = "rmse", units: str = "original") -> pd.DataFrame:
        """One metric per horizon step (rows) and forecaster (columns)."""
        cols = {"lstm": self.metrics["model"]["per_horizon"][units][metric]}
        cols |= {k: v["per_horizon"][units][metric] for k, v in self.metrics["baselines"].items()}
        df = pd.DataFrame(cols)
        df.index = pd.RangeIndex(1, len(df) + 1, name="horizon step")
        return df


def evaluate(model, prepared: Prepared, cfg: Config, noise_std: float | None = None) -> Evaluation:
    """Metrics of the model and every baseline on the same test windows (stride 1, all of them)."""
    from lstmkit.seasonality import resolve_config

    cfg, _ = resolve_config(cfg, prepared.index)  # `evaluation.seasonal_period: auto` -> this series' period
    _, actual = prepared.arrays("test")
    actual = actual.astype(float)
    period = cfg.evaluation.seasonal_period
    forecasts = {"lstm": KerasForecaster(model).predict(prepared, "test")}
    extra = {}
    for b in baselines(cfg):
        b.fit(prepared)
        if cfg.training.fit_on == "train+val":  # the model saw the validation rows too: so do the baselines
            b.refit(prepared.train_val())
        forecasts[b.name] = b.predict(prepared, "test")
        if isinstance(b, LinearWindow):
            extra[f"{b.name}_alpha"] = b.alpha_
        if isinstance(b, AutoRegressive):
            extra["autoreg_lags"] = b.lags_
    reports = {name: metric_report(actual, f, prepared, period) for name, f in forecasts.items()}
    doc = {
        "model": reports.pop("lstm"),
        "baselines": reports,
        "meta": {
            "split": "test", "windows": int(len(actual)), "horizon": prepared.horizon, "lookback": prepared.lookback,
            "target": prepared.target, "seasonal_period": period, "stride": 1, "fit_on": cfg.training.fit_on,
            "first_origin": str(prepared.index[prepared.origins("test")[0]]),
            "last_origin": str(prepared.index[prepared.origins("test")[-1]]),
            **extra,
        },
    }
    if noise_std is not None:
        rmse = doc["model"]["original"]["rmse"]
        doc["meta"]["noise_std"] = noise_std
        doc["meta"]["rmse_to_noise_floor"] = rmse / noise_std
    return Evaluation(actual=actual, forecasts=forecasts, metrics=doc)


def save_evaluation(ev: Evaluation, run) -> None:
    """Write metrics.json and the test forecasts (scaled) atomically."""
    from lstmkit.runfolder import atomic_write_json

    atomic_write_json(run.metrics_file, ev.metrics)
    tmp = run.predictions_file.with_name(".predictions.tmp.npz")
    np.savez(tmp, actual=ev.actual, **ev.forecasts)
    tmp.replace(run.predictions_file)


def load_evaluation(run) -> Evaluation:
    """Read back what save_evaluation wrote."""
    from lstmkit.runfolder import read_json

    data = np.load(run.require(run.predictions_file, "evaluation (05_evaluation)"))
    forecasts = {k: data[k] for k in data.files if k != "actual"}
    return Evaluation(actual=data["actual"], forecasts=forecasts, metrics=read_json(run.metrics_file))


def residual_frame(ev: Evaluation, prepared: Prepared, step: int = 1) -> pd.DataFrame:
    """Actual, forecast and residual (original units) of the model at one horizon step, indexed by target time."""
    rows = prepared.target_rows("test")[:, step - 1]
    actual = prepared.to_original(ev.actual[:, step - 1])
    pred = prepared.to_original(ev.forecasts["lstm"][:, step - 1])
    return pd.DataFrame({"actual": actual, "forecast": pred, "residual": actual - pred}, index=prepared.index[rows])


def headline(metrics: dict, units: str) -> str:
    """One paragraph (Markdown) saying how the model's test RMSE compares with the best baseline and the noise floor."""
    meta = metrics["meta"]
    rmse = metrics["model"]["original"]["rmse"]
    baseline_rmse = {k: v["original"]["rmse"] for k, v in metrics["baselines"].items()}
    best = min(baseline_rmse, key=baseline_rmse.get)
    ratio = rmse / baseline_rmse[best]
    text = (f"On {meta['windows']:,} test windows the LSTM's RMSE is **{rmse:.4g} {units}**, {ratio:.2f} times that of "
            f"the best baseline ({best}, {baseline_rmse[best]:.4g} {units}): it "
            f"**{'beats' if ratio < 1 else 'does not beat'}** every baseline.")
    if "rmse_to_noise_floor" in meta:
        text += (f" The generator's noise has standard deviation {meta['noise_std']:.3g} {units}, the floor below which "
                 f"no forecaster's RMSE can go on average: the LSTM's RMSE is **{meta['rmse_to_noise_floor']:.2f} times "
                 f"the noise floor**.")
    return text


def styled(table: pd.DataFrame):
    """A metrics table for display: 4 significant digits, the best value of each metric highlighted."""
    return (table.style.format("{:.4g}").highlight_min(axis=0, props="font-weight: bold; background-color: #d4f4d4")
            .set_table_styles([{"selector": "th, td", "props": "padding: 2px 12px; text-align: right"}]))
