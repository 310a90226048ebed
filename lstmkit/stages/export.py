"""The export of a run's selected model as an inference bundle (`lstmkit export`, and chapter 9 before its replay):
the forecaster the training stage selected, the preprocessing stage's scalers, a split-conformal calibration on the
validation windows (the uncertainty stage's when it ran with the same settings), the test metrics beside the best
baseline, and the report's key figures, written by `lstmkit.bundle.format.write_bundle`; `ensure_bundle` reuses the
run's bundle while it still matches the run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lstmkit.bundle.format import _prepare_target, validation_errors, write_bundle
from lstmkit.config import Config
from lstmkit.core.atomic import read_json
from lstmkit.core.errors import BundleError
from lstmkit.core.timeindex import infer_freq
from lstmkit.data.seasonality import resolve_config
from lstmkit.data.series import read_series
from lstmkit.data.windows import cv_folds
from lstmkit.runs.folder import RunFolder
from lstmkit.stages.preprocessing import load_prepared
from lstmkit.stages.training import load_selected, read_selected
from lstmkit.stages.uncertainty import Source, calibration_forecasts, calibration_mode

if TYPE_CHECKING:
    from lstmkit.config import Config
    from lstmkit.models.base import Forecaster
    from lstmkit.runs.folder import RunFolder


# ------------------------------------------------------------------ the stage


def ensure_bundle(run, echo=None) -> Path:
    """The run's bundle at `run.bundle_dir`: exported from the selected model unless a bundle newer than the
    selection is there already."""
    manifest = run.bundle_dir / "manifest.json"
    selected = run.selected_file
    if manifest.exists() and (not selected.exists() or manifest.stat().st_mtime >= selected.stat().st_mtime):
        return run.bundle_dir
    shutil.rmtree(run.bundle_dir, ignore_errors=True)
    out = export_bundle(run, run.bundle_dir)
    if echo:
        echo(f"Exported the selected model as a bundle to {out}")
    return Path(out)


KEY_FIGURES = ("series", "learning_curves", "forecast", "per_horizon", "comparison", "residuals",
               "feature_importance", "fan_chart", "reliability", "interval_width")  # copied into figures/ when present
REQUIRED_STAGES = (("series_file", "data (01_data)"), ("scaler_file", "preprocessing (02_preprocessing)"),
                   ("selected_file", "training (04_training)"), ("metrics_file", "evaluation (05_evaluation)"))


def _bundle_metrics(run: RunFolder, evaluation: dict, selected: dict) -> dict:
    """The bundle's metrics.json: the selected model's and the baselines' test metrics (original and scaled units) from
    evaluation/metrics.json, and the uncertainty chapter's split-conformal entry of the model when present."""
    meta = evaluation.get("meta", {})
    name = (meta.get("selected") or {}).get("model") or selected.get("model")
    doc = {"model_name": name, "seed": selected.get("seed"), "model": evaluation.get("model", {}),
           "baselines": evaluation.get("baselines", {}), "best_baseline": meta.get("best_baseline"),
           "split": "test", "windows": meta.get("windows"), "first_origin": meta.get("first_origin"),
           "last_origin": meta.get("last_origin"), "fit_on": meta.get("fit_on"), "source": "evaluation/metrics.json"}
    if run.uncertainty_metrics_file.exists():
        chapter = read_json(run.uncertainty_metrics_file)
        key = next((k for k in (f"{name}/conformal", f"{selected.get('model')}/conformal") if k in chapter), None)
        if key:
            doc["conformal"] = {"key": key, **chapter[key]}
    return doc


def run_calibration(run: RunFolder, cfg: Config, forecaster: Forecaster, prepared, selected_path: Path) -> tuple[dict, np.ndarray]:
    """Calibration data the model did not fit on, as (description, absolute errors (n_cal, horizon) in the run's scaled
    units): its validation windows (`val`: the model was fitted on training rows), or the out-of-fold errors of
    walk-forward refits (`oof`, as the uncertainty chapter: its saved fold models are reused when present)."""
    mode = calibration_mode(cfg)
    if mode == "val":
        errors = validation_errors(forecaster, prepared)
        a, b = prepared.bounds.val
        return {"source": "val", "rows": [int(a), int(b)],
                "note": "validation windows; the model was fitted on training rows only"}, errors

    folds = cv_folds(prepared, cfg.uncertainty.folds)
    src = Source(forecaster.name, forecaster, "point", "point", selected_path)
    cal = calibration_forecasts(run, src, prepared, "oof", folds, [0.5], cfg.seed)
    return {"source": "oof", "folds": len(folds),
            "note": "out-of-fold errors of walk-forward refits over the training+validation rows"}, np.abs(cal.y - cal.point)


def export_bundle(run: RunFolder, out: Path) -> Path:
    """Write the bundle of a finished run folder (stages through evaluation) to `out`, atomically; returns its path.

    The selected model (training/selected.json), its scalers, columns, look-back, horizon, time step and training
    cutoff (the last row it was fitted on: end of training, or of validation with `training.fit_on: train+val`), the
    split-conformal calibration on data it did not fit on, the test metrics, the configuration and the key figures.
    """
    run = run if isinstance(run, RunFolder) else RunFolder(Path(run).resolve())
    if not run.config_file.exists():
        raise BundleError(f"{run.root} is not a run folder (no config.yaml): run `lstmkit run` first")
    missing = [stage for attr, stage in REQUIRED_STAGES if not getattr(run, attr).exists()]
    if missing:
        raise BundleError(f"{run.root}: cannot export, the run lacks the stage(s) {', '.join(missing)}; run them first, "
                          f"e.g. `lstmkit run --run-dir {run.root} --from {missing[0].split()[0]} --to evaluation`")
    out = Path(out)
    _prepare_target(out)  # refuse early, before any work
    frame = read_series(run.series_file)
    cfg, _ = resolve_config(run.config(), frame.index)
    freq = frame.index.freqstr if frame.index.freq is not None else infer_freq(frame.index)
    if not freq:
        raise BundleError(f"{run.series_file}: the series has no regular time step; a bundle needs one")
    selected = read_selected(run)
    forecaster = load_selected(run)
    prepared = load_prepared(run).with_lookback(forecaster.lookback_)
    fit_on = selected.get("fit_on", cfg.training.fit_on)
    last_fitted = prepared.bounds.val[1] - 1 if fit_on == "train+val" else prepared.bounds.train[1] - 1
    calibration, errors = run_calibration(run, cfg, forecaster, prepared, run.root / selected["path"])
    metrics = _bundle_metrics(run, read_json(run.metrics_file), selected)
    figures = {name: run.figure_file(name) for name in KEY_FIGURES if run.figure_file(name).is_file()}
    extra = {"run": str(run.root), "selected": {k: selected.get(k) for k in ("model", "seed", "path", "source")},
             "fit_on": fit_on, "figures": figures, "series_rows": len(frame)}
    return write_bundle(out, forecaster, prepared.scaler, prepared.target_scaler, prepared.columns, prepared.target,
                        freq, frame.index[last_fitted], cfg, calibration, errors, metrics, extra)
