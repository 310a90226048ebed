"""Evaluation stage: every trained model, their ensemble and every baseline on the same test windows, in scaled and
original units, with a Diebold–Mariano test of each against the best baseline.

`evaluation/metrics.json` holds `model` (the run's selected forecaster: the one later chapters explain), `baselines`,
`models` ({name: metrics as means over seeds, with `sd`, `seeds`, `parameters`, `fit_seconds`, `val_loss`, `dm`},
the ensemble under `ensemble`) and `meta` (the test windows, the selected model, the best baseline, ...)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lstmkit.config import Config
from lstmkit.core.atomic import atomic_path, atomic_write_json, read_json
from lstmkit.core.jsonable import jsonable
from lstmkit.data.seasonality import resolve_config
from lstmkit.data.windows import Prepared
from lstmkit.models.base import Forecaster
from lstmkit.models.baselines import baselines
from lstmkit.models.baselines.autoregressive import AutoRegressive
from lstmkit.models.baselines.linear import LinearWindow
from lstmkit.models.metrics import METRICS, diebold_mariano, mase_scales, metric_report
from lstmkit.stages.training import select_model

ENSEMBLE = "ensemble"
SELECTED_KEY = "_selected"  # predictions.npz: the selected forecaster's own forecasts (one seed)

# ---------------------------------------------------------------- metrics.json as tables


def model_entries(metrics: dict) -> dict[str, dict]:
    """The model rows of a metrics.json document: `models` (ensemble included), or the one `model` of older runs."""
    if metrics.get("models"):
        return metrics["models"]
    return {selected_name(metrics): metrics["model"]}


def selected_name(metrics: dict) -> str:
    """The name of the run's selected model in a metrics.json document (`meta.selected.model`)."""
    return (metrics.get("meta", {}).get("selected") or {}).get("model", "model")


@dataclass
class Evaluation:
    """Test-split forecasts of the models, their ensemble and the baselines, and their metrics."""

    actual: np.ndarray                  # (windows, horizon), scaled
    forecasts: dict[str, np.ndarray]    # name -> (windows, horizon), scaled: models (mean over seeds), ensemble, baselines
    metrics: dict                       # the metrics.json document
    selected: np.ndarray | None = None  # (windows, horizon), scaled: the run's selected forecaster (one seed)

    @property
    def selected_name(self) -> str:
        """The name of the run's selected model."""
        return selected_name(self.metrics)

    def selected_forecast(self) -> np.ndarray:
        """Forecasts (windows, horizon), scaled, of the run's selected forecaster (its own seed)."""
        return self.selected if self.selected is not None else self.forecasts[self.selected_name]

    def table(self, units: str = "original") -> pd.DataFrame:
        """Overall metrics, one row per forecaster (models, ensemble, baselines)."""
        return metrics_table(self.metrics, units)

    def comparison(self) -> pd.DataFrame:
        """The comparison table (see comparison_table)."""
        return comparison_table(self.metrics)

    def per_horizon(self, metric: str = "rmse", units: str = "original") -> pd.DataFrame:
        """One metric per horizon step (rows) and forecaster (columns: models, ensemble, baselines)."""
        entries = model_entries(self.metrics) | self.metrics["baselines"]
        df = pd.DataFrame({k: v["per_horizon"][units][metric] for k, v in entries.items()})
        df.index = pd.RangeIndex(1, len(df) + 1, name="horizon step")
        return df

    def selected_and_baselines(self) -> dict[str, np.ndarray]:
        """Forecasts (windows, horizon) of the selected forecaster and of each baseline, for the forecast figure."""
        return {self.selected_name: self.selected_forecast()} | {k: self.forecasts[k] for k in self.metrics["baselines"]}


# ---------------------------------------------------------------- the stage


def _group(models) -> dict[str, list[Forecaster]]:
    """{name: [forecaster per seed]} from one forecaster, a list of them, or such a dict."""
    if isinstance(models, Forecaster):
        return {models.name: [models]}
    if isinstance(models, dict):
        return {k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in models.items()}
    groups: dict[str, list[Forecaster]] = {}
    for f in models:
        groups.setdefault(f.name, []).append(f)
    return groups


def _val_loss(f: Forecaster) -> float:
    """A forecaster's validation loss (scaled MSE), or infinity when it has none."""
    v = getattr(f, "val_loss_", None)
    return float(v) if v is not None and np.isfinite(v) else np.inf


def _mean_reports(reports: list[dict]) -> dict:
    """metric_report documents averaged over seeds: overall and per-horizon values are means."""
    out: dict = {"per_horizon": {}}
    for units in ("scaled", "original"):
        out[units] = {m: float(np.mean([r[units][m] for r in reports])) for m in METRICS}
        out["per_horizon"][units] = {m: np.mean([r["per_horizon"][units][m] for r in reports], axis=0).tolist()
                                     for m in METRICS}
    return {"scaled": out["scaled"], "original": out["original"], "per_horizon": out["per_horizon"]}


def _sd_reports(reports: list[dict]) -> dict | None:
    """Sample standard deviations over seeds of the overall metrics (None for a single seed)."""
    if len(reports) < 2:
        return None
    return {units: {m: float(np.std([r[units][m] for r in reports], ddof=1)) for m in METRICS}
            for units in ("scaled", "original")}


def ensemble_members(val_losses: dict[str, float], how: str, top_k: int) -> list[str]:
    """The models averaged by the ensemble (compare.ensemble): all (`mean`), the top_k by validation loss (`top_k`),
    or none (`none`, or fewer than two models)."""
    if how == "none" or len(val_losses) < 2:
        return []
    if how == "top_k":
        ranked = sorted(val_losses, key=lambda n: (val_losses[n], list(val_losses).index(n)))
        members = ranked[:max(top_k, 1)]
        return members if len(members) >= 2 else []
    return list(val_losses)


def evaluate(models, prepared: Prepared, cfg: Config, noise_std: float | None = None,
             selected: Forecaster | None = None) -> Evaluation:
    """Metrics of every model, their ensemble and every baseline on the same test windows (stride 1, all of them).

    `models`: one forecaster, a list, or {name: [forecaster per seed]}; a model's metrics are means over its seeds.
    `selected`: the run's selected forecaster (default: the best validation loss, as the training stage chooses).
    """
    cfg, _ = resolve_config(cfg, prepared.index)  # `evaluation.seasonal_period: auto` -> this series' period
    groups = _group(models)
    if not groups:
        raise ValueError("evaluate: no model to evaluate")
    actual = prepared.targets("test").astype(float)
    period = cfg.evaluation.seasonal_period
    scales = mase_scales(prepared, period)

    def report(f: np.ndarray) -> dict:
        return metric_report(actual, f, prepared, period, scales)

    if selected is None:
        name, index = select_model({n: dict(enumerate(_val_loss(f) for f in group)) for n, group in groups.items()})
        selected = groups[name][index]
    forecasts: dict[str, np.ndarray] = {}
    docs: dict[str, dict] = {}
    selected_forecast, chosen = None, selected.name
    for name, group in groups.items():
        reports, total = [], None
        for f in group:  # one seed's forecasts at a time: a running sum, not every seed's array at once
            p = f.predict_split(prepared, "test")
            reports.append(report(p))
            if f is selected:
                selected_forecast, selected_report, chosen = p, reports[-1], name
            if total is None:
                total = p if len(group) == 1 else p.copy()
            else:
                total += p
        forecasts[name] = total if len(group) == 1 else total / len(group)
        docs[name] = _mean_reports(reports) | {
            "sd": _sd_reports(reports), "seeds": [int(getattr(f, "seed", i)) for i, f in enumerate(group)],
            "parameters": int(round(np.mean([f.parameter_count() for f in group]))),
            "fit_seconds": float(np.mean([getattr(f, "fit_seconds_", np.nan) for f in group])),
            "val_loss": jsonable(np.mean([_val_loss(f) for f in group]))}
    if selected_forecast is None:  # a selected forecaster outside `models`: score it on its own
        selected_forecast = selected.predict_split(prepared, "test")
        selected_report = report(selected_forecast)
    members = ensemble_members({n: np.inf if d["val_loss"] is None else d["val_loss"] for n, d in docs.items()},
                               cfg.compare.ensemble, cfg.compare.top_k)
    if members:
        forecasts[ENSEMBLE] = sum(forecasts[n] for n in members) / len(members)
        docs[ENSEMBLE] = report(forecasts[ENSEMBLE]) | {
            "sd": None, "seeds": None, "members": members, "how": cfg.compare.ensemble,
            "parameters": int(sum(docs[n]["parameters"] for n in members)),
            "fit_seconds": float(sum(docs[n]["fit_seconds"] for n in members)), "val_loss": None}

    extra: dict = {}
    baseline_docs: dict[str, dict] = {}
    for b in baselines(cfg):
        b.fit(prepared)
        if cfg.training.fit_on == "train+val":  # the models saw the validation rows too: so do the baselines
            b.refit(prepared.train_val())
        forecasts[b.name] = b.predict_split(prepared, "test")
        baseline_docs[b.name] = report(forecasts[b.name]) | {"parameters": int(b.parameter_count()),
                                                             "fit_seconds": float(b.fit_seconds_)}
        if isinstance(b, LinearWindow):
            extra[f"{b.name}_alpha"] = b.alpha_
        if isinstance(b, AutoRegressive):
            extra["autoreg_lags"] = b.lags_

    best_baseline = min(baseline_docs, key=lambda k: baseline_docs[k]["scaled"]["mse"])
    reference = actual - forecasts[best_baseline]
    for name, doc in (docs | baseline_docs).items():
        if name != best_baseline:
            dm = diebold_mariano(actual - forecasts[name], reference, prepared.horizon)
            doc["dm"] = {"against": best_baseline, **{k: jsonable(v) if isinstance(v, float) else v for k, v in dm.items()}}
    best_on_test = min(docs, key=lambda k: docs[k]["scaled"]["mse"])
    doc = {
        "model": selected_report,
        "baselines": baseline_docs,
        "models": docs,
        "meta": {
            "split": "test", "windows": int(len(actual)), "horizon": prepared.horizon, "lookback": prepared.lookback,
            "target": prepared.target, "seasonal_period": period, "stride": 1, "fit_on": cfg.training.fit_on,
            "first_origin": str(prepared.index[prepared.origins("test")[0]]),
            "last_origin": str(prepared.index[prepared.origins("test")[-1]]),
            "selected": {"model": chosen, "seed": int(getattr(selected, "seed", 0)),
                         "criterion": "validation loss"},
            "best_on_test": best_on_test, "best_baseline": best_baseline,
            "dm": "Diebold–Mariano on per-window mean squared errors against the best baseline (test MSE), "
                  "Newey–West variance with horizon - 1 lags, Harvey–Leybourne–Newbold correction; models use "
                  "their forecasts averaged over seeds",
            **extra,
        },
    }
    if noise_std is not None:
        rmse = doc["model"]["original"]["rmse"]
        doc["meta"]["noise_std"] = noise_std
        doc["meta"]["rmse_to_noise_floor"] = rmse / noise_std
    return Evaluation(actual=actual, forecasts=forecasts, metrics=doc, selected=selected_forecast)


def save_evaluation(ev: Evaluation, run) -> None:
    """Write metrics.json and the test forecasts (scaled; models as means over seeds, and the selected forecaster's
    own under `_selected` when its model has several seeds) atomically."""
    atomic_write_json(run.metrics_file, ev.metrics)
    same = ev.selected is None or ev.selected is ev.forecasts.get(ev.selected_name)  # one seed: stored once
    extra = {} if same else {SELECTED_KEY: ev.selected}
    with atomic_path(run.predictions_file) as tmp:
        np.savez(tmp, actual=ev.actual, **ev.forecasts, **extra)


def load_evaluation(run) -> Evaluation:
    """Read back what save_evaluation wrote."""
    data = np.load(run.require(run.predictions_file, "evaluation (05_evaluation)"))
    forecasts = {k: data[k] for k in data.files if k not in ("actual", SELECTED_KEY)}
    return Evaluation(actual=data["actual"], forecasts=forecasts, metrics=read_json(run.metrics_file),
                      selected=data[SELECTED_KEY] if SELECTED_KEY in data.files else None)


def residual_frame(ev: Evaluation, prepared: Prepared, step: int = 1, name: str | None = None) -> pd.DataFrame:
    """Actual, forecast and residual (original units) at one horizon step, indexed by target time: of the selected
    forecaster by default, or of the forecaster `name`."""
    rows = prepared.target_rows("test")[:, step - 1]
    forecast = ev.forecasts[name] if name is not None else ev.selected_forecast()
    actual = prepared.to_original(ev.actual[:, step - 1])
    pred = prepared.to_original(forecast[:, step - 1])
    return pd.DataFrame({"actual": actual, "forecast": pred, "residual": actual - pred}, index=prepared.index[rows])


def metrics_table(metrics: dict, units: str) -> pd.DataFrame:
    """Overall test metrics of a metrics.json document, one row per forecaster: models, the ensemble, baselines."""
    rows = {k: v[units] for k, v in model_entries(metrics).items()} | {k: v[units] for k, v in metrics["baselines"].items()}
    table = pd.DataFrame(rows).T[list(METRICS)]
    table.index.name = "forecaster"
    return table


def comparison_table(metrics: dict) -> pd.DataFrame:
    """The comparison of a metrics.json document, one row per model, the ensemble and each baseline (numbers).

    Columns: kind, test MSE and MAE (scaled and original) with their standard deviations over seeds, seeds,
    parameters, training seconds (mean over seeds), validation loss, and the Diebold–Mariano statistic and p-value
    against the best baseline (negative: fewer squared errors than it).
    """
    rows = []
    entries = [(k, "ensemble" if k == ENSEMBLE else "model", v) for k, v in model_entries(metrics).items()]
    entries += [(k, "baseline", v) for k, v in metrics["baselines"].items()]
    for name, kind, m in entries:
        sd = m.get("sd") or {}
        row = {"forecaster": name, "kind": kind}
        for units in ("scaled", "original"):
            for metric in ("mse", "mae"):
                row[f"{metric} {units}"] = m[units][metric]
                row[f"{metric} {units} sd"] = (sd.get(units) or {}).get(metric, np.nan)
        dm = m.get("dm") or {}
        row |= {"seeds": len(m["seeds"]) if m.get("seeds") else np.nan, "parameters": m.get("parameters", np.nan),
                "fit seconds": m.get("fit_seconds", np.nan), "val loss": m.get("val_loss", np.nan),
                "dm statistic": dm.get("statistic", np.nan), "dm p-value": dm.get("p_value", np.nan)}
        rows.append(row)
    return pd.DataFrame(rows).set_index("forecaster").astype({c: float for c in
                                                             ("seeds", "parameters", "fit seconds", "val loss",
                                                              "dm statistic", "dm p-value")})
