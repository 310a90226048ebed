"""Inference bundle: a trained forecaster with everything needed to forecast from new data, in one verified folder.

A bundle holds the model (`model/`, a saved forecaster; networks as `model.keras`, loaded under Keras safe mode), the
fitted scalers as plain numbers (`preprocessing.json`: no pickle), the column order, look-back, horizon, time step and
training cutoff, the split-conformal interval calibration (`calibration.json`, `calibration.npz`), the test metrics
(`metrics.json`), the run's configuration (`config.yaml`), copies of the report's key figures (`figures/`) and a
`manifest.json` holding the sha256 of every file. `load_bundle` refuses a bundle whose files do not match it.

`Bundle.predict(frame)` forecasts the next `horizon` steps after the frame's last row from its last `lookback` rows,
validated with errors as clear as the CSV loader's; `Bundle.forecast_arrays` is the batched core the service calls.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lstmkit.atomic import atomic_write_json, atomic_write_text
from lstmkit.conformal import conformal_quantile

if TYPE_CHECKING:
    from lstmkit.config import Config
    from lstmkit.forecasters.base import Forecaster
    from lstmkit.runfolder import RunFolder

BUNDLE_FORMAT = 1
MANIFEST_FILE = "manifest.json"
MODEL_DIR = "model"
PREPROCESSING_FILE = "preprocessing.json"
CALIBRATION_FILE = "calibration.json"
ERRORS_FILE = "calibration.npz"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
FIGURES_DIR = "figures"
MAX_BUCKET = 256  # most windows per model call; smaller batches are padded to a power of two (few compiled shapes)


class BundleError(ValueError):
    """A bundle that cannot be used: the message names the file and what is wrong with it."""


class ForecastInputError(ValueError):
    """A frame or window that cannot be forecast from (columns, time step, gaps, missing values, too few rows)."""


# ------------------------------------------------------------------ scalers as plain numbers


def scaler_params(scaler) -> dict:
    """A fitted sklearn StandardScaler or MinMaxScaler as JSON-ready numbers: `{"kind", ...fitted parameters}`."""
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    if isinstance(scaler, StandardScaler):
        mean = np.zeros(scaler.n_features_in_) if scaler.mean_ is None else np.asarray(scaler.mean_, dtype=float)
        scale = np.ones(scaler.n_features_in_) if scaler.scale_ is None else np.asarray(scaler.scale_, dtype=float)
        return {"kind": "standard", "mean": mean.tolist(), "scale": scale.tolist()}
    if isinstance(scaler, MinMaxScaler):
        return {"kind": "minmax", "min": np.asarray(scaler.min_, dtype=float).tolist(),
                "scale": np.asarray(scaler.scale_, dtype=float).tolist(),
                "data_min": np.asarray(scaler.data_min_, dtype=float).tolist(),
                "data_max": np.asarray(scaler.data_max_, dtype=float).tolist(),
                "feature_range": [float(v) for v in scaler.feature_range]}
    raise BundleError(f"cannot store a scaler of type {type(scaler).__name__} in a bundle (standard or minmax only)")


def scaler_from_params(params: dict):
    """The fitted sklearn scaler that `scaler_params` describes (for retraining with the same preprocessing)."""
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    if params["kind"] == "standard":
        s = StandardScaler()
        s.mean_ = np.asarray(params["mean"], dtype=float)
        s.scale_ = np.asarray(params["scale"], dtype=float)
        s.var_ = s.scale_ ** 2
        s.n_features_in_ = len(s.mean_)
        s.n_samples_seen_ = 1
        return s
    s = MinMaxScaler(feature_range=tuple(params["feature_range"]))
    s.min_ = np.asarray(params["min"], dtype=float)
    s.scale_ = np.asarray(params["scale"], dtype=float)
    s.data_min_ = np.asarray(params["data_min"], dtype=float)
    s.data_max_ = np.asarray(params["data_max"], dtype=float)
    s.data_range_ = s.data_max_ - s.data_min_
    s.n_features_in_ = len(s.min_)
    s.n_samples_seen_ = 1
    return s


class Affine:
    """A fitted scaler applied as numbers: standard `(x - mean) / scale`, minmax `x * scale + min` (sklearn's formulas)."""

    def __init__(self, params: dict):
        """From `scaler_params`' dict."""
        self.kind = params["kind"]
        if self.kind not in ("standard", "minmax"):
            raise BundleError(f"{PREPROCESSING_FILE}: unknown scaler kind {self.kind!r}")
        self.scale = np.asarray(params["scale"], dtype=float)
        self.shift = np.asarray(params["mean" if self.kind == "standard" else "min"], dtype=float)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Original units -> scaled (last axis: channels), float64."""
        x = np.asarray(x, dtype=float)
        return (x - self.shift) / self.scale if self.kind == "standard" else x * self.scale + self.shift

    def inverse(self, s: np.ndarray) -> np.ndarray:
        """Scaled -> original units (last axis: channels, or a single channel broadcast), float64."""
        s = np.asarray(s, dtype=float)
        return s * self.scale + self.shift if self.kind == "standard" else (s - self.shift) / self.scale

    def unit(self) -> np.ndarray:
        """Original units per scaled unit of each channel (multiplies a scaled distance)."""
        return self.scale if self.kind == "standard" else 1.0 / self.scale


# ------------------------------------------------------------------ helpers


def bucket(n: int) -> int:
    """The padded batch size of n windows: the next power of two, at most MAX_BUCKET."""
    return min(MAX_BUCKET, 1 << max(0, int(n) - 1).bit_length())


def level_label(level: float) -> str:
    """A level as a percentage without trailing zeros: 0.8 -> '80', 0.975 -> '97.5'."""
    return f"{round(float(level) * 100, 6):g}"


def _sha256(path: Path) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[str]:
    """Every file below root except the manifest, as sorted POSIX relative paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)


def content_version(files: dict[str, str]) -> str:
    """The bundle version: 12 hex characters of the sha256 over the sorted `path sha256` lines of its files."""
    text = "".join(f"{k} {files[k]}\n" for k in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _write_manifest(root: Path, summary: dict | None = None, created: str | None = None) -> dict:
    """Hash every file below root and write manifest.json (format, version, created, lstmkit version, files, summary)."""
    from lstmkit import __version__

    files = {rel: _sha256(root / rel) for rel in _files(root)}
    old = {}
    if (root / MANIFEST_FILE).exists():
        old = json.loads((root / MANIFEST_FILE).read_text())
    manifest = {"format": BUNDLE_FORMAT, "version": content_version(files),
                "created": created or old.get("created") or datetime.now(UTC).isoformat(timespec="seconds"),
                "lstmkit": __version__, "files": files,
                "summary": summary if summary is not None else old.get("summary", {})}
    atomic_write_json(root / MANIFEST_FILE, manifest)
    return manifest


def is_bundle(path: Path) -> bool:
    """Whether a folder looks like a bundle (holds a manifest.json with a bundle format)."""
    try:
        return "format" in json.loads((Path(path) / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return False


def _offset(freq: str):
    """The pandas offset of an alias."""
    from pandas.tseries.frequencies import to_offset

    return to_offset(freq)


def _json_ready(value: Any) -> Any:
    """Replace non-finite floats by None, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def summary_of(metrics: dict, calibration: dict | None = None) -> dict:
    """Key figures for the manifest: test MSE/MAE (original units) of the model and the best baseline, interval
    coverage (the uncertainty chapter's conformal entry when present), and the calibration windows."""
    out: dict = {}
    model = metrics.get("model") or {}
    original = model.get("original") or {}
    if original:
        out["model"] = metrics.get("model_name")
        out["test_mse"] = original.get("mse")
        out["test_mae"] = original.get("mae")
    baselines = metrics.get("baselines") or {}
    best = None
    for name, entry in baselines.items():
        mse = (entry.get("original") or {}).get("mse")
        if mse is not None and (best is None or mse < best[1]):
            best = (name, mse, (entry.get("original") or {}).get("mae"))
    if best:
        out["best_baseline"], out["baseline_test_mse"], out["baseline_test_mae"] = best
    conformal = metrics.get("conformal") or {}
    if conformal.get("coverage") is not None:
        out["coverage"] = conformal["coverage"]
    if calibration:
        out["calibration"] = calibration.get("source")
        out["calibration_windows"] = calibration.get("windows")
    return _json_ready(out)


# ------------------------------------------------------------------ writing


def validation_errors(forecaster: Forecaster, prepared) -> np.ndarray:
    """Absolute errors (n_val, horizon), scaled, of the forecaster on the validation windows of `prepared` (calibration
    data when the model was fitted on the training rows only)."""
    point = forecaster.predict_split(prepared, "val")
    return np.abs(prepared.with_lookback(forecaster.lookback_).targets("val") - point)


def _prepare_target(out: Path) -> None:
    """Refuse an `out` that is a file or a non-empty folder that is not a bundle (a bundle is replaced)."""
    if out.exists() and not out.is_dir():
        raise BundleError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not is_bundle(out):
        raise BundleError(f"{out}: a non-empty folder that is not a bundle (no {MANIFEST_FILE}); refusing to overwrite "
                          "it: choose an empty or new folder")


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished temporary bundle onto `out`; an existing bundle there is moved aside first, then removed."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}-{threading.get_ident()}"
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    """fsync every file and folder below root (the bundle is durable before it is renamed into place)."""
    for p in [*root.rglob("*"), root]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bundle(out: Path, forecaster: Forecaster, scaler, target_scaler, columns: list[str], target: str, freq: str,
                 cutoff: pd.Timestamp, cfg: Config, calibration: dict, abs_errors: np.ndarray, metrics: dict,
                 extra: dict | None = None) -> Path:
    """Write a bundle folder atomically (a temporary sibling folder, renamed into place) and return its path.

    forecaster: fitted, predicting scaled (n, lookback, channels) -> (n, horizon); scaler/target_scaler: the fitted
    sklearn scalers of all channels / the target; columns: model input order (target included); freq: the pandas offset
    alias of the time step; cutoff: the last row the model was fitted on; calibration: `source` (`val`/`oof`) and any
    notes; abs_errors: (n_cal, horizon) absolute errors in scaled units of windows the model was not fitted on;
    metrics: the test metrics (metrics.json); extra: `figures` {name: png path} to copy, `summary` to merge into the
    manifest's, anything else is recorded in preprocessing.json under `extra`.

    A non-empty `out` that is not a bundle is refused (BundleError); an existing bundle is replaced atomically.
    """
    out = Path(out)
    _prepare_target(out)
    extra = dict(extra or {})
    columns = list(columns)
    if target not in columns:
        raise BundleError(f"target {target!r} is not among the columns {columns}")
    errors = np.asarray(abs_errors, dtype=float)
    horizon = int(forecaster.horizon_)
    if errors.ndim != 2 or errors.shape[1] != horizon or len(errors) == 0:
        raise BundleError(f"calibration errors must be (windows, {horizon}) with at least one window, got {errors.shape}")
    if not np.isfinite(errors).all():
        raise BundleError("calibration errors hold NaN or infinite values")
    levels = sorted(float(v) for v in cfg.uncertainty.levels)
    radii = {}
    for level in levels:
        r = np.asarray(conformal_quantile(np.abs(errors), level, axis=0), dtype=float)
        if not np.isfinite(r).all():
            need = math.ceil(level / (1 - level))
            raise BundleError(f"{len(errors)} calibration windows are too few for a {level_label(level)}% interval "
                              f"(the finite-sample conformal quantile needs at least {need})")
        radii[level_label(level)] = r.tolist()
    freq = str(freq)
    _offset(freq)  # a valid alias, or pandas' ValueError
    seasonal = cfg.evaluation.seasonal_period
    if not isinstance(seasonal, int):  # `auto` of a configuration not resolved against a series: from the time step
        from lstmkit.seasonality import seasonality

        seasonal = seasonality(freq).main
    preprocessing = {
        "columns": columns, "target": target, "target_index": columns.index(target),
        "lookback": int(forecaster.lookback_), "horizon": horizon, "freq": freq,
        "cutoff": pd.Timestamp(cutoff).isoformat(), "seasonal_period": int(seasonal),
        "units": cfg.data.units, "scaler": scaler_params(scaler), "target_scaler": scaler_params(target_scaler),
        "extra": _json_ready({k: v for k, v in extra.items() if k not in ("figures", "summary")}),
    }
    calib = {"method": "split conformal per horizon step", "score": "absolute", "units": "scaled",
             "finite_sample": "ceil((n + 1) L)-th smallest of n scores", **_json_ready(dict(calibration)),
             "windows": int(len(errors)), "levels": levels, "radii": radii}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the bundle folder is readable like the run folder's others
        forecaster.save(tmp / MODEL_DIR)
        atomic_write_json(tmp / PREPROCESSING_FILE, preprocessing)
        atomic_write_json(tmp / CALIBRATION_FILE, calib)
        np.savez(tmp / ERRORS_FILE, abs_errors=np.abs(errors))
        atomic_write_json(tmp / METRICS_FILE, _json_ready(metrics))
        import yaml

        atomic_write_text(tmp / CONFIG_FILE, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        for name, src in (extra.get("figures") or {}).items():
            if Path(src).is_file():
                (tmp / FIGURES_DIR).mkdir(exist_ok=True)
                shutil.copyfile(src, tmp / FIGURES_DIR / f"{name}.png")
        summary = summary_of(metrics, calib) | _json_ready(extra.get("summary") or {})
        _write_manifest(tmp, summary=summary)
        _fsync_tree(tmp)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


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
        from lstmkit.atomic import read_json

        chapter = read_json(run.uncertainty_metrics_file)
        key = next((k for k in (f"{name}/conformal", f"{selected.get('model')}/conformal") if k in chapter), None)
        if key:
            doc["conformal"] = {"key": key, **chapter[key]}
    return doc


def run_calibration(run: RunFolder, cfg: Config, forecaster: Forecaster, prepared, selected_path: Path) -> tuple[dict, np.ndarray]:
    """Calibration data the model did not fit on, as (description, absolute errors (n_cal, horizon) in the run's scaled
    units): its validation windows (`val`: the model was fitted on training rows), or the out-of-fold errors of
    walk-forward refits (`oof`, as the uncertainty chapter: its saved fold models are reused when present)."""
    from lstmkit.uncertainty import Source, calibration_forecasts, calibration_mode

    mode = calibration_mode(cfg)
    if mode == "val":
        errors = validation_errors(forecaster, prepared)
        a, b = prepared.bounds.val
        return {"source": "val", "rows": [int(a), int(b)],
                "note": "validation windows; the model was fitted on training rows only"}, errors
    from lstmkit.tuning import cv_folds

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
    from lstmkit.atomic import read_json
    from lstmkit.data import read_series
    from lstmkit.preprocessing import load_prepared
    from lstmkit.runfolder import RunFolder
    from lstmkit.seasonality import infer_freq, resolve_config
    from lstmkit.training import load_selected, read_selected

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


# ------------------------------------------------------------------ loading


def verify(path: Path) -> dict:
    """The bundle's manifest after checking every file against it (BundleError naming the first file that differs)."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: no such bundle folder")
    manifest_file = path / MANIFEST_FILE
    if not manifest_file.is_file():
        raise BundleError(f"{manifest_file}: missing; {path} is not a bundle (write one with `lstmkit export`)")
    try:
        manifest = json.loads(manifest_file.read_text())
    except ValueError as e:
        raise BundleError(f"{manifest_file}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{manifest_file}: holds no file list; not a bundle manifest")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{manifest_file}: bundle format {manifest.get('format')!r} is not supported "
                          f"(this lstmkit reads format {BUNDLE_FORMAT}); export the bundle again")
    files = manifest["files"]
    for rel in sorted(files):
        f = path / rel
        if not f.is_file():
            raise BundleError(f"{f}: listed in the manifest but missing from the bundle")
        if _sha256(f) != files[rel]:
            raise BundleError(f"{f}: its content does not match the manifest (sha256 differs): the bundle was changed "
                              "after it was written")
    extra = [rel for rel in _files(path) if rel not in files]
    if extra:
        raise BundleError(f"{path / extra[0]}: not listed in the manifest (a file added to the bundle after it was "
                          "written)")
    if manifest.get("version") != content_version(files):
        raise BundleError(f"{manifest_file}: version {manifest.get('version')!r} does not match its file hashes")
    return manifest


def _load_forecaster(folder: Path) -> Forecaster:
    """The bundle's forecaster; a refusal of Keras safe mode becomes a BundleError saying so."""
    from lstmkit.forecasters import load

    try:
        return load(folder)
    except Exception as e:  # Keras raises ValueError/TypeError with a deep trace; name the file and the reason
        text = str(e)
        where = folder / "model.keras" if (folder / "model.keras").exists() else folder
        if "safe_mode" in text or "safe mode" in text.lower() or "Lambda" in text:
            raise BundleError(f"{where}: Keras safe mode refused to load the model: it holds code that safe mode does "
                              "not deserialise (e.g. a Lambda layer); only bundles written by lstmkit load") from None
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise BundleError(f"{where}: the model cannot be loaded ({first})") from None


def load_bundle(path: str | Path) -> Bundle:
    """Open a bundle: every file is checked against manifest.json (BundleError), the model loads under Keras safe mode."""
    return Bundle(Path(path))


class Bundle:
    """A verified inference bundle, ready to forecast (see the module docstring)."""

    def __init__(self, path: Path):
        """Verify and load the bundle at `path` (BundleError when it cannot be used)."""
        from lstmkit.config import ConfigError, load_config

        self.path = Path(path).resolve()
        self.manifest = verify(self.path)
        self.version: str = self.manifest["version"]
        try:
            pre = json.loads((self.path / PREPROCESSING_FILE).read_text())
            self.calibration: dict = json.loads((self.path / CALIBRATION_FILE).read_text())
            self.metrics: dict = json.loads((self.path / METRICS_FILE).read_text())
        except (OSError, ValueError) as e:
            raise BundleError(f"{self.path}: a bundle file cannot be read ({e})") from None
        try:
            self.config: Config = load_config(self.path / CONFIG_FILE)
        except (ConfigError, OSError, ValueError) as e:
            raise BundleError(f"{self.path / CONFIG_FILE}: {e}") from None
        try:
            with np.load(self.path / ERRORS_FILE) as data:
                self.abs_errors: np.ndarray = np.asarray(data["abs_errors"], dtype=float)
        except (OSError, ValueError, KeyError) as e:
            raise BundleError(f"{self.path / ERRORS_FILE}: cannot be read as calibration errors ({e})") from None
        try:
            self._describe(pre)
        except (KeyError, TypeError, ValueError) as e:
            raise BundleError(f"{self.path}: {PREPROCESSING_FILE} or {CALIBRATION_FILE} is malformed ({type(e).__name__}: {e})") from None
        self.forecaster: Forecaster = _load_forecaster(self.path / MODEL_DIR)
        if int(self.forecaster.lookback_) != self.lookback or int(self.forecaster.horizon_) != self.horizon:
            raise BundleError(f"{self.path / MODEL_DIR}: the model's look-back/horizon "
                              f"({self.forecaster.lookback_}, {self.forecaster.horizon_}) differ from "
                              f"{PREPROCESSING_FILE} ({self.lookback}, {self.horizon})")
        self._call = None
        self._candidates: list | None = None
        self._lock = threading.Lock()

    def _describe(self, pre: dict) -> None:
        """Set the series description, scalers and interval radii from preprocessing.json and calibration.json."""
        self.preprocessing = pre
        self.columns: list[str] = list(pre["columns"])
        self.target: str = pre["target"]
        self.target_index: int = self.columns.index(self.target)
        self.lookback: int = int(pre["lookback"])
        self.horizon: int = int(pre["horizon"])
        self.freq: str = pre["freq"]
        self.offset = _offset(self.freq)
        fixed = isinstance(self.offset, pd.offsets.Tick) or type(self.offset) is pd.offsets.Day
        self._step_ns: int | None = pd.Timedelta(self.offset).value if fixed and self.offset.n > 0 else None
        self.cutoff = pd.Timestamp(pre["cutoff"])
        seasonal = pre.get("seasonal_period")
        self.seasonal_period: int = int(seasonal) if seasonal else 1
        self.units: str = pre.get("units", "a.u.")
        self.scaler = Affine(pre["scaler"])
        self.target_scaler = Affine(pre["target_scaler"])
        self.levels: list[float] = [float(v) for v in self.calibration["levels"]]
        self.labels: list[str] = [level_label(v) for v in self.levels]
        self.radii = np.array([self.calibration["radii"][k] for k in self.labels], dtype=float).T  # (horizon, L) scaled

    def __repr__(self) -> str:
        return (f"Bundle({str(self.path)!r}, version={self.version!r}, lookback={self.lookback}, horizon={self.horizon}, "
                f"freq={self.freq!r})")

    # ------------------------------------------------------------ the model call

    def _network_calls(self) -> list:
        """Compiled functions scaled (n, lookback, channels) float32 -> scaled (n, horizon), fastest first: the network
        under XLA (`jit_compile`, one compile per batch shape), then a plain tf.function; none without a network."""
        network = getattr(self.forecaster, "network", None)
        if network is None:
            return []
        import tensorflow as tf

        from lstmkit.forecasters import heads

        spec = self.forecaster.spec
        median = heads.median_index(spec.quantiles) if spec.quantiles else None
        horizon = self.horizon
        signature = [tf.TensorSpec([None, self.lookback, len(self.columns)], tf.float32)]

        def call(x):
            y = network(x, training=False)
            if median is not None:
                y = tf.reshape(y, [tf.shape(x)[0], horizon, -1])[..., median]
            return tf.reshape(y, [tf.shape(x)[0], horizon])

        return [tf.function(call, input_signature=signature, jit_compile=True, reduce_retracing=True),
                tf.function(call, input_signature=signature, reduce_retracing=True)]

    def _run(self, scaled: np.ndarray) -> np.ndarray:
        """One model call on scaled float32 windows (b, lookback, channels) -> (b, horizon), with the first compiled
        function that works (an architecture XLA cannot compile falls back to the plain one, then to `predict`)."""
        if self._call is None:
            with self._lock:
                while self._call is None:
                    candidates = self._candidates if self._candidates is not None else self._network_calls()
                    self._candidates = candidates
                    if not candidates:
                        self._call = lambda x: self.forecaster.predict(np.asarray(x))
                        break
                    try:
                        out = np.asarray(candidates[0](scaled), dtype=float)
                    except Exception:  # noqa: BLE001 - e.g. an op XLA cannot compile: try the next, slower call
                        candidates.pop(0)
                        continue
                    self._call = candidates[0]
                    return out
        return np.asarray(self._call(scaled), dtype=float)

    def _scaled_forecast(self, scaled: np.ndarray) -> np.ndarray:
        """Forecasts (n, horizon) scaled from scaled float32 windows (n, lookback, channels).

        Batches are padded to the next power of two up to MAX_BUCKET windows (longer inputs go MAX_BUCKET at a time),
        so the compiled model sees a few shapes only, each compiled once (see `warm_up`).
        """
        n = len(scaled)
        if n == 0:
            return np.empty((0, self.horizon))
        out = np.empty((n, self.horizon))
        for a in range(0, n, MAX_BUCKET):
            chunk = scaled[a:a + MAX_BUCKET]
            size = bucket(len(chunk))
            if size > len(chunk):
                chunk = np.concatenate([chunk, np.zeros((size - len(chunk), *chunk.shape[1:]), dtype=np.float32)])
            out[a:a + MAX_BUCKET] = self._run(np.ascontiguousarray(chunk, dtype=np.float32))[:min(MAX_BUCKET, n - a)]
        return out

    def warm_up(self, batch_sizes: tuple[int, ...] | None = None) -> None:
        """Compile and run the model once for each batch shape used: the power-of-two buckets up to the largest of
        `batch_sizes` (default: the bundle configuration's `serve.batch_max`), so no request pays a compile."""
        largest = max(batch_sizes) if batch_sizes else max(1, int(self.config.serve.batch_max))
        size = 1
        while True:
            self._scaled_forecast(np.zeros((size, self.lookback, len(self.columns)), dtype=np.float32))
            if size >= min(bucket(largest), MAX_BUCKET):
                break
            size *= 2

    # ------------------------------------------------------------ forecasting

    def _horizon(self, horizon: int | None) -> int:
        """The requested horizon, checked to lie in 1..the bundle's horizon."""
        if horizon is None:
            return self.horizon
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)):
            raise ForecastInputError(f"horizon must be a whole number between 1 and {self.horizon}, got {horizon!r}")
        if not 1 <= int(horizon) <= self.horizon:
            raise ForecastInputError(f"horizon {horizon} is out of range: the model forecasts 1 to {self.horizon} "
                                     "steps ahead")
        return int(horizon)

    def forecast_arrays(self, values: np.ndarray, horizon: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forecast n windows in one model call.

        values: (n, lookback, channels) in ORIGINAL units, channels in `columns` order. Returns mean (n, h), lower
        (n, h, L) and upper (n, h, L) in original units, L = len(levels) ascending, h = horizon (default: the bundle's).
        """
        h = self._horizon(horizon)
        values = np.asarray(values)
        shape = (self.lookback, len(self.columns))
        if values.ndim != 3 or values.shape[1:] != shape:
            raise ForecastInputError(f"windows must have shape (n, {shape[0]}, {shape[1]}) (windows, look-back steps, "
                                     f"columns {', '.join(self.columns)}), got {values.shape}")
        try:
            values = values.astype(float, copy=False)
        except (TypeError, ValueError):
            raise ForecastInputError("windows must hold numbers") from None
        if not np.isfinite(values).all():
            w, t, c = np.argwhere(~np.isfinite(values))[0]
            raise ForecastInputError(f"window {w} holds a missing or infinite value in column {self.columns[c]!r} at "
                                     f"step {t}")
        scaled = self.scaler.transform(values).astype(np.float32)
        mean_scaled = self._scaled_forecast(scaled)[:, :h]
        mean = self.target_scaler.inverse(mean_scaled)
        radius = self.radii[:h] * self.target_scaler.unit()[0]  # (h, L) original units
        return mean, mean[..., None] - radius[None], mean[..., None] + radius[None]

    def future_index(self, last: pd.Timestamp, horizon: int) -> pd.DatetimeIndex:
        """The `horizon` timestamps following `last` on the bundle's time step."""
        last = pd.Timestamp(last)
        if self._step_ns is not None:
            return pd.DatetimeIndex(last + pd.to_timedelta(np.arange(1, int(horizon) + 1) * self._step_ns))
        return pd.DatetimeIndex([last + self.offset * k for k in range(1, int(horizon) + 1)])

    def check_window(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame's last `lookback` rows of the model's columns, validated (ForecastInputError naming the problem):
        a DatetimeIndex, every model column (extra columns are ignored), numeric finite values, increasing timestamps
        one time step apart (the bundle's), and at least `lookback` rows."""
        if not isinstance(frame, pd.DataFrame):
            raise ForecastInputError(f"expected a pandas DataFrame, got {type(frame).__name__}")
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise ForecastInputError(f"the frame needs a DatetimeIndex (timestamps as its index), got a "
                                     f"{type(frame.index).__name__}; e.g. frame.set_index('date')")
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ForecastInputError(f"missing column(s) {', '.join(map(repr, missing))}: the model reads "
                                     f"{', '.join(self.columns)}")
        if len(frame) < self.lookback:
            raise ForecastInputError(f"too few rows: the model needs the last {self.lookback} rows (its look-back), "
                                     f"the frame has {len(frame)}")
        window = frame.iloc[-self.lookback:][self.columns]
        self._check_steps(window.index)
        try:
            values = window.to_numpy(dtype=float)
        except (TypeError, ValueError):
            values = None
        if values is None or not np.isfinite(values).all():  # find and name the first fault, column by column
            for c in self.columns:
                try:
                    v = window[c].to_numpy(dtype=float)
                except (TypeError, ValueError):
                    raise ForecastInputError(f"column {c!r} is not numeric (e.g. {window[c].iloc[-1]!r})") from None
                bad = ~np.isfinite(v)
                if bad.any():
                    i = int(np.argmax(bad))
                    what = "a missing value (NaN)" if np.isnan(v[i]) else "an infinite value"
                    raise ForecastInputError(f"column {c!r} holds {what} at {window.index[i]}; fill or drop it first")
        return window

    def _check_steps(self, index: pd.DatetimeIndex) -> None:
        """ForecastInputError unless the timestamps increase by exactly the bundle's step (naming the first fault)."""
        stamps = index
        if len(stamps) < 2:
            return
        if self._step_ns is not None and (np.diff(stamps.asi8) == self._step_ns).all():
            return  # the common case, checked in integer nanoseconds
        back = np.flatnonzero(np.asarray(stamps[1:] <= stamps[:-1]))
        if len(back):
            i = int(back[0])
            raise ForecastInputError(f"timestamps must increase: {stamps[i + 1]} comes after {stamps[i]} "
                                     "(sort the frame by time and drop duplicate timestamps)")
        expected = stamps[:-1] + self.offset
        bad = np.flatnonzero(np.asarray(stamps[1:] != expected))
        if not len(bad):
            return
        i = int(bad[0])
        prev, got = stamps[i], stamps[i + 1]
        inferred = pd.infer_freq(stamps) if len(stamps) >= 3 else None
        if inferred and _offset(inferred) != self.offset:
            raise ForecastInputError(f"the time step is {_step_name(inferred)} but the model was trained on "
                                     f"{_step_name(self.freq)} data (freq {self.freq!r}): resample the frame to it")
        grid = pd.date_range(prev, got, freq=self.offset)
        if grid[-1] == got and len(grid) > 2:
            missing = len(grid) - 2
            raise ForecastInputError(f"gap in the timestamps: {missing} row(s) missing between {prev} and {got} "
                                     f"(first missing: {grid[1]}; time step {_step_name(self.freq)}); fill the gap first")
        raise ForecastInputError(f"timestamp {got} is off the time grid: expected {expected[i]} after {prev} "
                                 f"(time step {_step_name(self.freq)}, freq {self.freq!r})")

    def predict(self, frame: pd.DataFrame, horizon: int | None = None) -> pd.DataFrame:
        """Forecast table from the frame's last `lookback` rows: index the next `horizon` timestamps (named like the
        frame's), columns `mean`, `lower_<L>`, `upper_<L>` per level (e.g. lower_80, upper_95), original units."""
        h = self._horizon(horizon)
        window = self.check_window(frame)
        mean, lower, upper = self.forecast_arrays(window.to_numpy(dtype=float)[None], h)
        index = self.future_index(window.index[-1], h)
        index.name = frame.index.name
        out = {"mean": mean[0]}
        for j, label in enumerate(self.labels):
            out[f"lower_{label}"] = lower[0, :, j]
            out[f"upper_{label}"] = upper[0, :, j]
        return pd.DataFrame(out, index=index)

    def drift_band(self, window: int, level: float) -> float:
        """The `level` quantile of the rolling mean absolute step-1 error over `window` consecutive calibration windows,
        in original units: the band a service's rolling error is expected to stay under.

        With fewer calibration windows than `window`, the mean over all of them is the one rolling value (the band is
        then that mean, whatever the level).
        """
        if int(window) < 1:
            raise ValueError(f"drift_band: window must be at least 1, got {window}")
        if not 0 < float(level) <= 1:
            raise ValueError(f"drift_band: level must be in (0, 1], got {level}")
        errors = self.abs_errors[:, 0] * self.target_scaler.unit()[0]
        w = min(int(window), len(errors))
        rolling = np.convolve(errors, np.ones(w) / w, mode="valid")
        return float(np.quantile(rolling, float(level)))


def _step_name(freq: str) -> str:
    """A time step in words (e.g. `1-hour`, `15-minute`) from a pandas offset alias; a calendar step as its alias."""
    from lstmkit.data import _grid_text

    return _grid_text(_offset(freq))
