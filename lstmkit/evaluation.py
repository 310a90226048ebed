"""Evaluation stage: forecast metrics and the baselines every figure is reported beside."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error

from lstmkit.config import Config
from lstmkit.preprocessing import Prepared

METRICS = ("mse", "rmse", "mae", "mape", "smape", "mase")


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE in percent: mean of 2|y - ŷ| / (|y| + |ŷ|), zero where both are zero."""
    den = np.abs(y) + np.abs(yhat)
    ratio = np.divide(2 * np.abs(y - yhat), den, out=np.zeros_like(den, dtype=float), where=den > 0)
    return float(100 * ratio.mean())


CHUNK = 1 << 20  # values per chunk of the chunked sums below (bounds their float64 temporaries)


def mase_scale(train_target: np.ndarray, period: int) -> float:
    """In-sample MAE of the seasonal-naive forecast on the training target (the MASE denominator), summed in chunks."""
    n = len(train_target)
    if n <= period:
        raise ValueError(f"the training target ({n} rows) is shorter than the seasonal period {period}")
    total = 0.0
    for a in range(period, n, CHUNK):
        b = min(a + CHUNK, n)
        total += float(np.abs(np.asarray(train_target[a:b], float) - np.asarray(train_target[a - period:b - period], float)).sum())
    return total / (n - period)


def metrics(y: np.ndarray, yhat: np.ndarray, scale: float) -> dict[str, float]:
    """MSE, RMSE, MAE, MAPE (%), sMAPE (%) and MASE over all values of y and ŷ."""
    y, yhat = np.ravel(y), np.ravel(yhat)
    mse = mean_squared_error(y, yhat)
    mae = mean_absolute_error(y, yhat)
    return {"mse": float(mse), "rmse": float(np.sqrt(mse)), "mae": float(mae),
            "mape": float(100 * mean_absolute_percentage_error(y, yhat)), "smape": smape(y, yhat),
            "mase": float(mae / scale)}


def mase_scales(prepared: Prepared, period: int) -> dict[str, float]:
    """The MASE denominators of a prepared series in scaled and original units (training rows only)."""
    train = slice(*prepared.bounds.train)
    return {"scaled": mase_scale(prepared.scaled[train, prepared.target_index], period),
            "original": mase_scale(prepared.to_original(prepared.scaled[train, prepared.target_index]), period)}


def metric_report(y: np.ndarray, yhat: np.ndarray, prepared: Prepared, period: int,
                  scales: dict[str, float] | None = None) -> dict:
    """Metrics of (n, horizon) forecasts in scaled and original units, overall and per horizon step.

    Computed one horizon step (n values) at a time: every metric is a mean over values or the root of one, and each
    step holds the same number of values, so the overall figure is the mean over steps (RMSE: the root of the mean MSE).
    """
    scales = scales or mase_scales(prepared, period)
    report: dict = {"per_horizon": {}}
    for units in ("scaled", "original"):
        steps = []
        for h in range(y.shape[1]):
            pair = (np.asarray(y[:, h], float), np.asarray(yhat[:, h], float))
            if units == "original":
                pair = (prepared.to_original(pair[0]), prepared.to_original(pair[1]))
            steps.append(metrics(*pair, scales[units]))
        overall = {m: float(np.mean([step[m] for step in steps])) for m in METRICS}
        overall["rmse"] = float(np.sqrt(overall["mse"]))
        report[units] = overall
        report["per_horizon"][units] = {m: [step[m] for step in steps] for m in METRICS}
    return {"scaled": report["scaled"], "original": report["original"], "per_horizon": report["per_horizon"]}


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
        y = prepared.scaled[:, prepared.target_index]
        return np.repeat(y[prepared.origins(split)].astype(float)[:, None], prepared.horizon, axis=1)


@dataclass
class SeasonalNaive(Forecaster):
    """Repeat the value one season before each target step (from the observed past only)."""

    period: int = 24
    name: str = "seasonal_naive"

    def predict(self, prepared: Prepared, split: str) -> np.ndarray:
        y = prepared.scaled[:, prepared.target_index]
        origins = prepared.origins(split)[:, None]
        h = np.arange(1, prepared.horizon + 1)[None, :]
        source = origins + h - self.period * np.ceil(h / self.period).astype(int)  # latest same-phase row <= origin
        if source.min() < 0:
            raise ValueError(f"seasonal period {self.period} reaches before the first row of the series")
        return y[source].astype(float)


class NormalEquations:
    """Least squares with an intercept from running sums (X^T X, X^T Y, column sums) accumulated batch by batch.

    Memory is features x features whatever the number of rows, and the solution is the one sklearn's Ridge
    (cholesky solver, fit_intercept=True) finds from all rows at once. Sums are taken about the first batch's means,
    which keeps the centring exact enough in float64 for data of any level.
    """

    def __init__(self) -> None:
        self.n = 0
        self.shift_x: np.ndarray | None = None
        self.shift_y: np.ndarray | None = None

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add rows: x (rows, features), y (rows, outputs)."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        if self.shift_x is None:
            self.shift_x, self.shift_y = x.mean(axis=0), y.mean(axis=0)
            self.sum_x, self.sum_y = np.zeros(x.shape[1]), np.zeros(y.shape[1])
            self.xtx, self.xty = np.zeros((x.shape[1], x.shape[1])), np.zeros((x.shape[1], y.shape[1]))
        x, y = x - self.shift_x, y - self.shift_y
        self.n += len(x)
        self.sum_x += x.sum(axis=0)
        self.sum_y += y.sum(axis=0)
        self.xtx += x.T @ x
        self.xty += x.T @ y

    def solve(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """Ridge coefficients (features, outputs) and intercept (outputs,) for a penalty alpha (0: ordinary least squares)."""
        from scipy import linalg

        mx, my = self.sum_x / self.n, self.sum_y / self.n
        a = self.xtx - self.n * np.outer(mx, mx)
        b = self.xty - self.n * np.outer(mx, my)
        a.flat[::a.shape[0] + 1] += alpha
        try:
            coef = linalg.solve(a, b, assume_a="pos")
        except linalg.LinAlgError:  # singular (alpha 0 with collinear columns): the minimum-norm solution
            coef = linalg.lstsq(a, b)[0]
        return coef, (my + self.shift_y) - (mx + self.shift_x) @ coef


@dataclass
class LinearWindow(Forecaster):
    """Ridge regression from the flattened look-back window (all channels) to the horizon, alpha chosen on validation.

    With `last_value=True` it is NLinear-style: each channel's last observed value is subtracted from its window
    and the target's is added back to the forecast, which makes the model immune to level shifts.
    Fitted on every training window through normal equations accumulated in batches (`NormalEquations`), so memory
    stays at (lookback x channels)^2 whatever the length of the series; predictions are made batch by batch.
    """

    alphas: list = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0])
    last_value: bool = False
    name: str = "linear"
    batch_size: int | None = None  # windows per batch; None: Prepared.batch_windows()
    alpha_: float | None = None
    coef_: np.ndarray | None = None       # (lookback x channels, horizon), inputs flattened time-major
    intercept_: np.ndarray | None = None  # (horizon,)

    def _design(self, x: np.ndarray, y: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A batch's flattened inputs, targets and the level added back to forecasts (zero unless last_value)."""
        level = x[:, -1:, :] if self.last_value else np.zeros_like(x[:, -1:, :])
        return (x - level).reshape(len(x), -1), y - level[:, :, target], level[:, :, target]

    def _batches(self, prepared: Prepared, split: str):
        """(flattened inputs, targets, level) of a split's windows, batch by batch."""
        for x, y in prepared.batches(split, self.batch_size):
            yield self._design(x, y, prepared.target_index)

    def _normal_equations(self, prepared: Prepared) -> NormalEquations:
        """Sums over every training window of `prepared`."""
        eq = NormalEquations()
        for x, y, _ in self._batches(prepared, "train"):
            eq.add(x, y)
        return eq

    def fit(self, prepared: Prepared) -> LinearWindow:
        from scipy.linalg import LinAlgWarning

        eq = self._normal_equations(prepared)
        with warnings.catch_warnings():  # small alphas on long windows are ill-conditioned; validation judges them
            warnings.simplefilter("ignore", LinAlgWarning)
            solutions = {a: eq.solve(a) for a in self.alphas}
        errors = dict.fromkeys(self.alphas, 0.0)
        for x, y, _ in self._batches(prepared, "val"):
            for a, (coef, intercept) in solutions.items():
                errors[a] += float(((x @ coef + intercept - y) ** 2).sum())
        self.alpha_ = min(errors, key=errors.get)
        self.coef_, self.intercept_ = solutions[self.alpha_]
        return self

    def refit(self, prepared: Prepared) -> LinearWindow:
        """Refit with the chosen alpha on the training windows of `prepared` (e.g. training+validation)."""
        from scipy.linalg import LinAlgWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LinAlgWarning)
            self.coef_, self.intercept_ = self._normal_equations(prepared).solve(self.alpha_)
        return self

    def predict(self, prepared: Prepared, split: str) -> np.ndarray:
        out = np.empty((prepared.n_windows(split), prepared.horizon))
        a = 0
        for x, _, level in self._batches(prepared, split):
            out[a:a + len(x)] = x @ self.coef_ + self.intercept_ + level
            a += len(x)
        return out


@dataclass
class AutoRegressive(Forecaster):
    """statsmodels AutoReg on the target alone: order chosen by BIC and fitted on the training rows only, then rolled
    over every window with the parameters frozen (iterated multi-step forecasts from each window's own past).

    The order is selected on the last `select_rows` training rows (all of them for shorter series: statsmodels builds
    a rows x max_lag design matrix); the parameters of that order are the least-squares fit over every training row,
    accumulated in batches (`NormalEquations`), which is what AutoReg's OLS computes.
    """

    max_lag: int = 48
    name: str = "autoreg"
    select_rows: int = 20_000
    lags_: int | None = None
    params_: np.ndarray | None = None

    def fit(self, prepared: Prepared) -> AutoRegressive:
        from statsmodels.tsa.ar_model import ar_select_order

        y = prepared.scaled[slice(*prepared.bounds.train), prepared.target_index]
        max_lag = min(self.max_lag, prepared.lookback, len(y) // 4)
        recent = np.asarray(y[-self.select_rows:], float)
        selected = ar_select_order(recent, maxlag=min(max_lag, len(recent) // 4), ic="bic", trend="c").ar_lags
        self.lags_ = int(max(selected)) if selected else 1
        return self.refit(prepared)

    def refit(self, prepared: Prepared) -> AutoRegressive:
        """Fit the parameters of the chosen order on the training rows of `prepared` (e.g. training+validation)."""
        y = prepared.scaled[slice(*prepared.bounds.train), prepared.target_index]
        p, eq = self.lags_, NormalEquations()
        lagged = np.lib.stride_tricks.sliding_window_view(y, p + 1)  # row t: y[t .. t + p], a view
        chunk = max(1, CHUNK // (p + 1))  # rows per chunk: about CHUNK float64 values at a time
        for a in range(0, len(lagged), chunk):
            rows = np.asarray(lagged[a:a + chunk], float)
            eq.add(rows[:, p - 1::-1], rows[:, p:])  # regressors y[t-1] .. y[t-p], as AutoReg orders them
        coef, intercept = eq.solve(0.0)
        self.params_ = np.concatenate([intercept, coef[:, 0]])
        return self

    def predict(self, prepared: Prepared, split: str) -> np.ndarray:
        const, phi = self.params_[0], self.params_[1:]  # phi[i] multiplies y[t - 1 - i]
        origins = prepared.origins(split)
        y = prepared.scaled[:, prepared.target_index]
        out = np.empty((len(origins), prepared.horizon))
        chunk = max(1, CHUNK // self.lags_)  # windows per chunk: about CHUNK float64 history values at a time
        for a in range(0, len(origins), chunk):
            o = origins[a:a + chunk]
            history = y[o[:, None] + np.arange(1 - self.lags_, 1)[None, :]].astype(float)  # (windows, lags), oldest first
            for h in range(prepared.horizon):
                out[a:a + len(o), h] = const + history[:, ::-1] @ phi
                history = np.concatenate([history[:, 1:], out[a:a + len(o), h:h + 1]], axis=1)
        return out


class KerasForecaster(Forecaster):
    """A trained Keras model behind the common interface."""

    def __init__(self, model, name: str = "lstm"):
        self.model, self.name = model, name

    def predict(self, prepared: Prepared, split: str, batch_size: int = 4096) -> np.ndarray:
        """(windows, horizon) forecasts in scaled units, batch by batch into one array (no window array is built)."""
        n = prepared.n_windows(split)
        out = np.empty((n, prepared.horizon))
        for a in range(0, n, batch_size):
            inputs, _ = prepared.windows(split, slice(a, a + batch_size))
            out[a:a + len(inputs)] = np.asarray(self.model.predict_on_batch(inputs)).reshape(len(inputs), -1)
        return out


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
    actual = prepared.targets("test").astype(float)
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
    scales = mase_scales(prepared, period)
    reports = {name: metric_report(actual, f, prepared, period, scales) for name, f in forecasts.items()}
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
    from lstmkit.atomic import atomic_path, atomic_write_json

    atomic_write_json(run.metrics_file, ev.metrics)
    with atomic_path(run.predictions_file) as tmp:
        np.savez(tmp, actual=ev.actual, **ev.forecasts)


def load_evaluation(run) -> Evaluation:
    """Read back what save_evaluation wrote."""
    from lstmkit.atomic import read_json

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
    if baseline_rmse[best] == 0:  # e.g. an exactly periodic series under seasonal naive
        return (f"On {meta['windows']:,} test windows the best baseline ({best}) forecasts every value exactly (RMSE 0): "
                f"the test span repeats what came before, so no forecaster can beat it. The LSTM's RMSE is "
                f"**{rmse:.4g} {units}**.")
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
