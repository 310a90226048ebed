"""The inference bundle's format: what a bundle folder holds and how it is written and checked.

A bundle holds the model (`model/`, a saved forecaster; networks as `model.keras`, loaded under Keras safe mode), the
fitted scalers as plain numbers (`preprocessing.json`: no pickle), the column order, look-back, horizon, time step and
training cutoff, the split-conformal interval calibration (`calibration.json`, `calibration.npz`), the test metrics
(`metrics.json`), the run's configuration (`config.yaml`), copies of the report's key figures (`figures/`) and a
`manifest.json` holding the sha256 of every file and the content version. `write_bundle` writes one atomically (a
temporary folder swapped into place), `verify` checks one against its manifest (BundleError naming the file)."""

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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lstmkit.config import Config
from lstmkit.core.atomic import atomic_write_json, atomic_write_text, sha256_file
from lstmkit.core.errors import BundleError
from lstmkit.core.jsonable import jsonable
from lstmkit.core.labels import level_label
from lstmkit.core.timeindex import offset
from lstmkit.core.version import __version__
from lstmkit.data.seasonality import seasonality
from lstmkit.probabilistic.conformal import conformal_quantile

if TYPE_CHECKING:
    from lstmkit.config import Config
    from lstmkit.models.base import Forecaster


BUNDLE_FORMAT = 1
MANIFEST_FILE = "manifest.json"
MODEL_DIR = "model"
PREPROCESSING_FILE = "preprocessing.json"
CALIBRATION_FILE = "calibration.json"
ERRORS_FILE = "calibration.npz"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
FIGURES_DIR = "figures"


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


def _files(root: Path) -> list[str]:
    """Every file below root except the manifest, as sorted POSIX relative paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)


def content_version(files: dict[str, str]) -> str:
    """The bundle version: 12 hex characters of the sha256 over the sorted `path sha256` lines of its files."""
    text = "".join(f"{k} {files[k]}\n" for k in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _write_manifest(root: Path, summary: dict | None = None, created: str | None = None) -> dict:
    """Hash every file below root and write manifest.json (format, version, created, lstmkit version, files, summary)."""
    files = {rel: sha256_file(root / rel) for rel in _files(root)}
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
    offset(freq)  # a valid alias, or pandas' ValueError
    seasonal = cfg.evaluation.seasonal_period
    if not isinstance(seasonal, int):  # `auto` of a configuration not resolved against a series: from the time step

        seasonal = seasonality(freq).main
    preprocessing = {
        "columns": columns, "target": target, "target_index": columns.index(target),
        "lookback": int(forecaster.lookback_), "horizon": horizon, "freq": freq,
        "cutoff": pd.Timestamp(cutoff).isoformat(), "seasonal_period": int(seasonal),
        "units": cfg.data.units, "scaler": scaler_params(scaler), "target_scaler": scaler_params(target_scaler),
        "extra": jsonable({k: v for k, v in extra.items() if k not in ("figures", "summary")}),
    }
    calib = {"method": "split conformal per horizon step", "score": "absolute", "units": "scaled",
             "finite_sample": "ceil((n + 1) L)-th smallest of n scores", **jsonable(dict(calibration)),
             "windows": int(len(errors)), "levels": levels, "radii": radii}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the bundle folder is readable like the run folder's others
        forecaster.save(tmp / MODEL_DIR)
        atomic_write_json(tmp / PREPROCESSING_FILE, preprocessing)
        atomic_write_json(tmp / CALIBRATION_FILE, calib)
        np.savez(tmp / ERRORS_FILE, abs_errors=np.abs(errors))
        atomic_write_json(tmp / METRICS_FILE, jsonable(metrics))
        import yaml

        atomic_write_text(tmp / CONFIG_FILE, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        for name, src in (extra.get("figures") or {}).items():
            if Path(src).is_file():
                (tmp / FIGURES_DIR).mkdir(exist_ok=True)
                shutil.copyfile(src, tmp / FIGURES_DIR / f"{name}.png")
        summary = summary_of(metrics, calib) | jsonable(extra.get("summary") or {})
        _write_manifest(tmp, summary=summary)
        _fsync_tree(tmp)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


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
        if sha256_file(f) != files[rel]:
            raise BundleError(f"{f}: its content does not match the manifest (sha256 differs): the bundle was changed "
                              "after it was written")
    extra = [rel for rel in _files(path) if rel not in files]
    if extra:
        raise BundleError(f"{path / extra[0]}: not listed in the manifest (a file added to the bundle after it was "
                          "written)")
    if manifest.get("version") != content_version(files):
        raise BundleError(f"{manifest_file}: version {manifest.get('version')!r} does not match its file hashes")
    return manifest


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
    return jsonable(out)
