"""Evaluation stage: every model and every baseline on the same test windows, in scaled and original units."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lstmkit.config import Config
from lstmkit.forecasters import Forecaster
from lstmkit.forecasters.baselines import AutoRegressive, LinearWindow, baselines
from lstmkit.metrics import METRICS, mase_scales, metric_report
from lstmkit.preprocessing import Prepared

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


def evaluate(model: Forecaster, prepared: Prepared, cfg: Config, noise_std: float | None = None) -> Evaluation:
    """Metrics of the model and every baseline on the same test windows (stride 1, all of them)."""
    from lstmkit.seasonality import resolve_config

    cfg, _ = resolve_config(cfg, prepared.index)  # `evaluation.seasonal_period: auto` -> this series' period
    actual = prepared.targets("test").astype(float)
    period = cfg.evaluation.seasonal_period
    forecasts = {"lstm": model.predict_split(prepared, "test")}
    extra = {}
    for b in baselines(cfg):
        b.fit(prepared)
        if cfg.training.fit_on == "train+val":  # the model saw the validation rows too: so do the baselines
            b.refit(prepared.train_val())
        forecasts[b.name] = b.predict_split(prepared, "test")
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
