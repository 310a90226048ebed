"""Uncertainty stage: probabilistic forecasts of the run's selected model, calibrated on data it did not fit on,
scored on the test windows beside the conformalised seasonal-naive baseline.

Each `uncertainty.method` makes quantile forecasts `q` (windows, horizon, K) on one ascending grid of levels
(`UncertaintyConfig.grid`), in scaled units:

- `conformal`: split conformal on the selected model's point forecasts (absolute errors, per horizon step, finite-sample
  correction); `aci`: adaptive conformal inference walking the test windows in time order, each outcome used only once
  it has been observed (`lstmkit.probabilistic.conformal`);
- `quantile`: the selected architecture retrained with a non-crossing quantile head (pinball loss), trained here into
  `uncertainty/models/<architecture>-quantile/seed-<seed>/` unless the selected model already has one;
- `mc_dropout`: Monte Carlo dropout samples of the selected model (only its dropout layers sample);
- `deepar`: DeepAR's likelihood sample paths (the run's own DeepAR when the comparison trained one, else trained here
  into `uncertainty/models/deepar/seed-<seed>/`);
- `<base>+conformal` / `<base>+aci`: a probabilistic base calibrated: conformalised quantile regression (quantile and
  DeepAR's sample quantiles) or scores normalised by the MC-dropout spread.

The seasonal-naive baseline gets `conformal` and `aci` always. Calibration data: the validation windows when the model
was fitted on training rows (`val`), or the out-of-fold forecasts of walk-forward refits over the training+validation
rows (`oof`: each fold's model refitted from scratch on its prefix for the model's best epoch count and forecasting
the next block; residuals converted through original units into the run's scaling). The test windows are never
calibration data. Models trained by the stage (heads, DeepAR, fold refits) are saved with what they were trained from
and reloaded when the stage runs again, as the training stage does.

`uncertainty/metrics.json`: `{"<forecaster>/<method>": interval_metrics.report(...) + crps_estimator, seconds}` and
`meta`; `uncertainty/quantiles.npz`: the test quantiles of every entry, the grid, the actuals and the origins."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lstmkit.config import Config, replace
from lstmkit.core.atomic import atomic_path, atomic_write_json, read_json
from lstmkit.core.errors import ForecasterError
from lstmkit.core.labels import level_label
from lstmkit.data.seasonality import resolve_config
from lstmkit.data.windows import Prepared, cv_folds
from lstmkit.models.base import MANIFEST, Forecaster
from lstmkit.models.baselines.seasonal_naive import SeasonalNaive
from lstmkit.models.metrics import mase_scales
from lstmkit.models.neural import architectures
from lstmkit.models.neural.forecaster import fit_forecaster
from lstmkit.models.registry import load
from lstmkit.probabilistic import interval_metrics as im
from lstmkit.probabilistic.calibration import adaptive_conformal, split_conformal
from lstmkit.probabilistic.forecasts import Forecasts, concat, forecasts_of
from lstmkit.runs.folder import RunFolder
from lstmkit.stages.training import CHECKPOINT, FIT_FILE, fit_record, load_selected, read_selected, reusable, spec_for_run

STAGE = "uncertainty (07_uncertainty)"
BASELINE = "seasonal_naive"
BASES = ("quantile", "mc_dropout", "deepar")
JOINT = "joint_conformal"  # method name of whole-path conformal bands (uncertainty.joint)


# ---------------------------------------------------------------- models: the selected one, heads, DeepAR


@dataclass
class Source:
    """A forecaster whose outputs a method calibrates or reports: `kind` point, quantile or samples; `folder` where it
    is saved (None for the baseline); `base` the method family (point, quantile, mc_dropout, deepar)."""

    name: str
    forecaster: Forecaster
    kind: str
    base: str
    folder: Path | None
    n_samples: int = 0
    note: str = ""


def _trained_here(run: RunFolder, cfg: Config, prepared: Prepared, spec, name: str, echo=None) -> tuple[Forecaster, Path, bool]:
    """A model the stage trains (a quantile head, DeepAR): reloaded when a complete one trained from the same spec,
    settings and data is in `uncertainty/models/<name>/seed-<seed>/`, else trained there (like the training stage)."""
    folder = run.uncertainty_dir / "models" / name / f"seed-{cfg.seed}"
    record = fit_record(spec, cfg, cfg.seed, prepared)
    if reusable(folder, record):
        return load(folder), folder, True
    (folder / MANIFEST).unlink(missing_ok=True)
    quiet = replace(cfg, {"training.verbose": 0})  # the chapter stays readable
    f = fit_forecaster(prepared, spec, quiet, cfg.seed, name, checkpoint=folder / CHECKPOINT)
    atomic_write_json(folder / FIT_FILE, record)
    f.save(folder)
    if echo is not None:
        echo(f"{name}: trained (validation loss {f.val_loss_:.4g})")
    return f, folder, False


def quantile_source(run: RunFolder, cfg: Config, prepared: Prepared, selected: Forecaster, path: Path, grid: list[float],
                    echo=None) -> Source:
    """The quantile head: the selected model itself when its head has every grid level, else its architecture and
    hyperparameters retrained with a head on the grid (pinball loss). ForecasterError/ConfigError when impossible."""
    if getattr(selected, "spec", None) is None:
        raise ForecasterError(f"{selected.name} is not a neural network: there is no architecture to give a quantile head")
    have = [round(float(q), 10) for q in getattr(selected.spec, "quantiles", [])]
    if have and set(grid) <= set(have):
        return Source(selected.name, selected, "quantile", "quantile", path, note="the selected model's own head")
    spec = dataclasses.replace(selected.spec, quantiles=list(grid), lookback=selected.lookback_)
    name = f"{selected.spec.architecture}-quantile"
    f, folder, resumed = _trained_here(run, cfg, prepared, spec, name, echo)
    if not f.get_tag("quantiles"):
        raise ForecasterError(f"{name}: the network trained with quantile levels has no quantile head")
    return Source(name, f, "quantile", "quantile", folder,
                  note="reloaded (already trained by this stage)" if resumed else "trained by this stage")


def deepar_samples(cfg: Config) -> int:
    """Sample paths per window of DeepAR's intervals (`model.deepar.samples`)."""
    return int(architectures.config_options(cfg, "deepar")["samples"])


def deepar_source(run: RunFolder, cfg: Config, prepared: Prepared, echo=None) -> Source:
    """DeepAR: the run's own (best validation loss over its seeds) when the comparison trained it, else trained here."""
    entries = [m for m in read_selected(run).get("models", []) if m["model"] == "deepar"]
    if entries:
        best = min(entries, key=lambda m: np.inf if m.get("val_loss") is None else m["val_loss"])
        folder = run.root / best["path"]
        return Source("deepar", load(folder), "samples", "deepar", folder, deepar_samples(cfg),
                      note=f"trained by the training stage (seed {best['seed']})")
    spec, _ = spec_for_run(run, cfg, "deepar")
    f, folder, resumed = _trained_here(run, cfg, prepared, spec, "deepar", echo)
    return Source("deepar", f, "samples", "deepar", folder, deepar_samples(cfg),
                  note="reloaded (already trained by this stage)" if resumed else "trained by this stage")


def mc_dropout_reason(f: Forecaster) -> str | None:
    """Why Monte Carlo dropout does not apply to a forecaster (None when it does)."""
    spec = getattr(f, "spec", None)
    if spec is None:
        return f"{f.name} is not a neural network: it has no dropout to sample"
    if spec.architecture == "deepar":
        return f"{f.name} is DeepAR, whose samples come from its likelihood (method `deepar`), not from dropout"
    if not spec.dropout > 0:
        return f"{f.name} was trained without dropout (`model.dropout` {spec.dropout:g}): there is nothing to sample"
    if not f.get_tag("samples"):
        return f"{f.name} has no sampling dropout layer (its forecaster lacks the `samples` capability)"
    return None


# ---------------------------------------------------------------- calibration data


def calibration_mode(cfg: Config) -> str:
    """`val` or `oof`: `uncertainty.calibration`, with `auto` following `training.fit_on`."""
    mode = cfg.uncertainty.calibration
    if mode == "auto":
        return "oof" if cfg.training.fit_on == "train+val" else "val"
    return mode


def calibration_sentence(mode: str, cfg: Config, prepared: Prepared, folds: list[Prepared] | None = None) -> str:
    """Which calibration data were used and why the model did not fit on them (Markdown)."""
    idx = prepared.index
    if mode == "val":
        a, b = prepared.bounds.val
        text = (f"Calibration data: the **{prepared.n_windows('val'):,} validation windows** (targets "
                f"{idx[a]} to {idx[b - 1]}). ")
        if cfg.training.fit_on == "train":
            text += ("The model was fitted on the training rows only (the validation loss chose its epoch, nothing "
                     "more), so its validation errors are the errors of data it did not fit on.")
        else:
            text += ("**Caution:** the final model was refitted on training+validation rows (`training.fit_on: "
                     "train+val`), so its validation errors are in-sample and the intervals are likely too narrow; "
                     "`uncertainty.calibration: oof` (or `auto`) calibrates on out-of-fold errors instead.")
        return text
    folds = folds or []
    blocks = ", ".join(f"{idx[f.bounds.val[0]].date() if hasattr(idx[f.bounds.val[0]], 'date') else idx[f.bounds.val[0]]}"
                       f"–{idx[f.bounds.val[1] - 1].date() if hasattr(idx[f.bounds.val[1] - 1], 'date') else idx[f.bounds.val[1] - 1]}"
                       for f in folds)
    return (f"Calibration data: **out-of-fold forecasts of {len(folds)} walk-forward refits** over the "
            f"training+validation rows ({sum(f.n_windows('val') for f in folds):,} windows; blocks {blocks}). Each fold's "
            "model was refitted from scratch on the rows before its block (for the model's best epoch count, no early "
            "stopping on the block) and forecast the block; "
            + ("the final model was fitted on training+validation rows, so its own validation errors would be "
               "in-sample." if cfg.training.fit_on == "train+val" else
               "this uses more calibration windows than the validation split alone.")
            + " Fold errors are converted through original units into the run's scaling.")


def _linear_map(source: Prepared, target: Prepared) -> tuple[float, float]:
    """(a, b) with target-scaled = a * source-scaled + b for the target channel (both scalers are linear)."""
    zero, one = source.to_original(np.array([0.0, 1.0]))
    t0, t1 = target.target_scaler.transform(np.array([[zero], [one]]))[:, 0]
    return float(t1 - t0), float(t0)


def fold_model(run: RunFolder, source: Source, fold: Prepared, i: int) -> Forecaster:
    """`source`'s model refitted from scratch on a walk-forward fold's training rows (its best epoch count), saved in
    `uncertainty/models/<name>/fold-<i>/` and reloaded when it was trained from the same model and rows."""
    if source.folder is None:  # the baseline: nothing saved, refit is cheap
        f = dataclasses.replace(source.forecaster) if dataclasses.is_dataclass(source.forecaster) else source.forecaster
        f.fit(fold)
        return f
    folder = run.uncertainty_dir / "models" / source.name / f"fold-{i}"
    trained_from = source.folder / FIT_FILE  # the model's spec, seed, settings and data (else its manifest)
    record = {"fold": i, "bounds": fold.bounds.to_dict(), "model": str(source.folder.relative_to(run.root)),
              "from": read_json(trained_from) if trained_from.is_file() else read_json(source.folder / MANIFEST)["init"]}
    record = json.loads(json.dumps(record, default=str))  # as it reads back from FIT_FILE
    if reusable(folder, record):
        return load(folder)
    (folder / MANIFEST).unlink(missing_ok=True)
    f = load(source.folder)
    f.refit(fold)
    atomic_write_json(folder / FIT_FILE, record)
    f.save(folder)
    return f


def calibration_forecasts(run: RunFolder, source: Source, prepared: Prepared, mode: str, folds: list[Prepared],
                          grid: list[float], seed: int) -> Forecasts:
    """The source's outputs on the calibration windows, in the run's scaling: its validation windows (`val`) or the
    out-of-fold blocks of refits on each fold's prefix (`oof`)."""
    if mode == "val":
        return forecasts_of(source.forecaster, prepared, "val", source.kind, grid, source.n_samples, seed)
    parts = []
    for i, fold in enumerate(folds):
        f = fold_model(run, source, fold, i)
        out = forecasts_of(f, fold, "val", source.kind, grid, source.n_samples, seed)
        parts.append(out.scaled_by(*_linear_map(fold, prepared)))
    return concat(parts)


# ---------------------------------------------------------------- the stage


@dataclass
class Uncertainty:
    """The stage's result: test actuals (n, h), the grid (K,), every entry's test quantiles (n, h, K) and PIT values
    (n, h), scaled units, and the metrics.json document."""

    actual: np.ndarray
    grid: np.ndarray
    quantiles: dict[str, np.ndarray]
    pit: dict[str, np.ndarray]
    metrics: dict
    origins: np.ndarray = field(default_factory=lambda: np.empty(0, int))

    @property
    def entries(self) -> dict[str, dict]:
        """The forecaster/method entries of metrics.json (meta left out)."""
        return {k: v for k, v in self.metrics.items() if k != "meta"}

    def interval(self, key: str, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends (n, h), scaled, of an entry's central interval of `level`."""
        return im.interval(self.quantiles[key], self.grid, level)

    def table(self, units: str = "scaled") -> pd.DataFrame:
        """One row per forecaster/method: coverage (with its block-bootstrap CI) and width per level, joint coverage,
        Winkler score, CRPS and MSIS; `units` `scaled` or `original` (widths, Winkler and CRPS)."""
        return metrics_table(self.metrics, units)


def plan(cfg: Config) -> list[tuple[str, str | None]]:
    """The (base, calibrator) pairs of `uncertainty.method` for the selected model, in order, without repeats:
    base point|quantile|mc_dropout|deepar, calibrator None|conformal|aci (plus the joint bands of `uncertainty.joint`)."""
    pairs: list[tuple[str, str | None]] = []
    for m in cfg.uncertainty.method:
        base, _, cal = str(m).partition("+")
        pair = ("point", base) if base in ("conformal", "aci") else (base, cal or None)
        if pair not in pairs:
            pairs.append(pair)
    if cfg.uncertainty.joint and ("point", "conformal") in pairs:
        pairs.insert(pairs.index(("point", "conformal")) + 1, ("point", JOINT))
    return pairs


def method_name(base: str, calibrator: str | None) -> str:
    """The method part of an entry's key: `conformal`, `aci`, `quantile`, `quantile+conformal`, ..."""
    if base == "point":
        return str(calibrator)
    return base if calibrator is None else f"{base}+{calibrator}"


def run_uncertainty(run: RunFolder, cfg: Config, prepared: Prepared, echo=None) -> Uncertainty:
    """The stage: every `uncertainty.method` on the selected model, conformal and ACI on the seasonal-naive baseline,
    calibrated on data the models did not fit on; metrics on the test windows; saved to the run folder."""
    say = echo or (lambda line: None)
    t_stage = time.perf_counter()
    cfg, _ = resolve_config(cfg, prepared.index)
    u = cfg.uncertainty
    grid = [round(float(g), 10) for g in u.grid()]
    levels = [float(v) for v in u.levels]
    selected = load_selected(run)
    selected_path = run.root / read_selected(run)["path"]
    prepared = prepared.with_lookback(selected.lookback_)
    mode = calibration_mode(cfg)
    folds = cv_folds(prepared, u.folds) if mode == "oof" else []
    period = cfg.evaluation.seasonal_period
    baseline = SeasonalNaive(period)
    baseline.fit(prepared)

    sources: dict[str, Source] = {"point": Source(selected.name, selected, "point", "point", selected_path)}
    skipped: dict[str, str] = {}
    times: dict[str, float] = {}
    pairs = plan(cfg)
    for base in dict.fromkeys(b for b, _ in pairs if b != "point"):
        t0 = time.perf_counter()
        try:
            if base == "quantile":
                sources[base] = quantile_source(run, cfg, prepared, selected, selected_path, grid, say)
            elif base == "mc_dropout":
                reason = mc_dropout_reason(selected)
                if reason:
                    raise ForecasterError(reason)
                sources[base] = Source(selected.name, selected, "samples", "mc_dropout", selected_path, u.mc_samples,
                                       note=f"{u.mc_samples} dropout samples per window")
            elif base == "deepar":
                sources[base] = deepar_source(run, cfg, prepared, say)
        except (ForecasterError, ValueError, NotImplementedError) as err:  # ConfigError is a ValueError
            skipped[base] = str(err)
            say(f"{base}: skipped ({err})")
        times[f"{base} model"] = time.perf_counter() - t0

    # the test windows, and every source's outputs on them and on its calibration windows
    test: dict[str, Forecasts] = {}
    cal: dict[str, Forecasts] = {}
    for base, src in sources.items():
        t0 = time.perf_counter()
        test[base] = forecasts_of(src.forecaster, prepared, "test", src.kind, grid, src.n_samples, cfg.seed,
                                  with_scores=True)
        if any(b == base and c is not None for b, c in pairs):
            cal[base] = calibration_forecasts(run, src, prepared, mode, folds, grid, cfg.seed)
        times[f"{base} forecasts"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bsrc = Source(BASELINE, baseline, "point", "point", None)
    test[BASELINE] = forecasts_of(baseline, prepared, "test", "point", grid)
    cal[BASELINE] = calibration_forecasts(run, bsrc, prepared, mode, folds, grid, cfg.seed)
    times[f"{BASELINE} forecasts"] = time.perf_counter() - t0

    y = test["point"].y
    scales = mase_scales(prepared, period)
    target_scale = float(np.diff(prepared.to_original(np.array([0.0, 1.0])))[0])
    entries: list[tuple[str, str, np.ndarray, Forecasts | None, float]] = []  # key, base, q, raw outputs, seconds
    for base, calibrator in pairs:
        if base in skipped:
            continue
        src = sources[base]
        method = method_name(base, calibrator)
        t0 = time.perf_counter()
        if calibrator is None:
            q = test[base].quantiles
        elif calibrator == "aci":
            q = adaptive_conformal(base, grid, cal[base], test[base], u.aci_gamma)
        else:
            q = split_conformal(base, grid, cal[base], test[base], joint=calibrator == JOINT)
        seconds = time.perf_counter() - t0 + times[f"{base} forecasts"] + times.get(f"{base} model", 0.0)
        times[f"{src.name}/{method}"] = seconds  # its model (trained or loaded), forecasts and calibration
        entries.append((f"{src.name}/{method}", base, q, test[base] if calibrator is None else None, seconds))
    for method in ("conformal", "aci"):
        t0 = time.perf_counter()
        q = (split_conformal("point", grid, cal[BASELINE], test[BASELINE]) if method == "conformal" else
             adaptive_conformal("point", grid, cal[BASELINE], test[BASELINE], u.aci_gamma))
        times[f"{BASELINE}/{method}"] = time.perf_counter() - t0 + times[f"{BASELINE} forecasts"]
        entries.append((f"{BASELINE}/{method}", "point", q, None, times[f"{BASELINE}/{method}"]))

    doc: dict = {}
    quantiles: dict[str, np.ndarray] = {}
    pits: dict[str, np.ndarray] = {}
    for key, base, q, raw, seconds in entries:
        q = np.asarray(q, dtype=float)
        report = im.report(y, q, np.asarray(grid), levels, msis_scale=scales["scaled"], target_scale=target_scale,
                           bootstrap=u.bootstrap, block=prepared.horizon, seed=cfg.seed)
        if raw is not None and raw.crps is not None:  # sample paths: also the ensemble CRPS of the samples themselves
            report["crps_samples"] = raw.crps
            report.setdefault("original", {})["crps_samples"] = raw.crps * abs(target_scale)
            report["crps_samples_estimator"] = (f"{im.CRPS_SAMPLE_ESTIMATOR}, {sources[base].n_samples} samples per "
                                                "window")
            pits[key] = raw.pit
        else:
            pits[key] = np.asarray(im.pit(y, q, np.asarray(grid), seed=cfg.seed), dtype=float).reshape(y.shape)
        report["seconds"] = seconds
        doc[key] = report
        quantiles[key] = q

    origins = prepared.origins("test")
    doc["meta"] = {
        "calibration": mode, "calibration_text": calibration_sentence(mode, cfg, prepared, folds),
        "calibration_windows": {b: int(len(c.y)) for b, c in cal.items()},
        "grid": grid, "levels": levels, "headline_level": level_label(headline_level(levels)),
        "windows": int(len(y)), "horizon": prepared.horizon, "lookback": prepared.lookback,
        "selected": {"model": selected.name, "seed": int(getattr(selected, "seed", 0))},
        "baseline": BASELINE, "seasonal_period": period,
        "sources": {b: {"forecaster": s.name, "note": s.note,
                        "path": str(s.folder.relative_to(run.root)) if s.folder is not None else None}
                    for b, s in sources.items()},
        "skipped": skipped, "aci_gamma": u.aci_gamma, "joint": u.joint, "bootstrap": u.bootstrap,
        "block": prepared.horizon, "msis_scale": scales["scaled"], "target_scale": target_scale,
        "units": cfg.data.units, "target": prepared.target,
        "first_origin": str(prepared.index[origins[0]]), "last_origin": str(prepared.index[origins[-1]]),
        "crps": im.CRPS_QUANTILE_ESTIMATOR.format(k=len(grid)) + " for every entry (one estimator, so the entries "
                "compare); sample-path methods also give their samples' own CRPS as crps_samples"
                "says the samples' ensemble CRPS",
        "times": times, "seconds": time.perf_counter() - t_stage,
    }
    result = Uncertainty(y, np.asarray(grid), quantiles, pits, doc, origins)
    save_uncertainty(result, run)
    return result


def headline_level(levels: list[float]) -> float:
    """The level the chapter's headline and width figure use: 0.9 when reported, else the middle one."""
    return 0.9 if 0.9 in levels else sorted(levels)[len(levels) // 2]


def _npz_name(key: str) -> str:
    """An entry key as an npz array name (no slash)."""
    return key.replace("/", "__")


def save_uncertainty(result: Uncertainty, run: RunFolder) -> None:
    """Write uncertainty/metrics.json and quantiles.npz (test quantiles per entry, PIT, grid, actuals, origins)."""
    atomic_write_json(run.uncertainty_metrics_file, result.metrics)
    arrays = {f"q__{_npz_name(k)}": v.astype(np.float32) for k, v in result.quantiles.items()}
    arrays |= {f"pit__{_npz_name(k)}": v.astype(np.float32) for k, v in result.pit.items() if v is not None}
    with atomic_path(run.quantiles_file) as tmp:
        np.savez(tmp, grid=result.grid, actual=result.actual, origins=result.origins,
                 keys=np.array(list(result.quantiles)), **arrays)


def load_uncertainty(run: RunFolder) -> Uncertainty:
    """Read back what the stage saved."""
    metrics = read_json(run.require(run.uncertainty_metrics_file, STAGE))
    with np.load(run.require(run.quantiles_file, STAGE)) as data:
        keys = [str(k) for k in data["keys"]]
        q = {k: data[f"q__{_npz_name(k)}"].astype(float) for k in keys}
        pit = {k: data[f"pit__{_npz_name(k)}"].astype(float) for k in keys if f"pit__{_npz_name(k)}" in data.files}
        return Uncertainty(data["actual"], data["grid"], q, pit, metrics, data["origins"])


# ---------------------------------------------------------------- for the chapter


def fmt(value, spec: str = ".4g") -> str:
    """A number for a table or sentence; a dash where it is missing or not finite (metrics.json stores those as null:
    infinite bands when the calibration windows are too few for a level)."""
    return format(float(value), spec) if value is not None and np.isfinite(value) else "–"


def metrics_table(metrics: dict, units: str = "scaled") -> pd.DataFrame:
    """metrics.json as a table, one row per forecaster/method (see Uncertainty.table)."""
    rows = {}
    levels = metrics["meta"]["levels"]
    for key, m in metrics.items():
        if key == "meta":
            continue
        orig = m.get("original", {}) if units == "original" else {}
        row = {"forecaster": key.split("/")[0], "method": key.split("/", 1)[1]}
        for lv in map(level_label, levels):
            ci = (m.get("coverage_ci") or {}).get(lv) or [np.nan, np.nan]
            row[f"coverage {lv}"] = m["coverage"][lv]
            row[f"coverage {lv} CI"] = "–" if None in ci else f"{fmt(ci[0], '.3f')}–{fmt(ci[1], '.3f')}"
            row[f"joint {lv}"] = (m.get("joint_coverage") or {}).get(lv, np.nan)
            row[f"width {lv}"] = (orig.get("width") or m["width"])[lv] if units == "original" else m["width"][lv]
        wk = metrics["meta"]["headline_level"]
        winkler = (orig.get("winkler") or m.get("winkler") or {}) if units == "original" else (m.get("winkler") or {})
        row[f"Winkler {wk}"] = winkler.get(wk, np.nan)
        row["CRPS"] = orig.get("crps", m["crps"]) if units == "original" else m["crps"]
        row["MSIS"] = m.get("msis", np.nan)
        row["seconds"] = m.get("seconds", np.nan)
        rows[key] = row
    table = pd.DataFrame(rows).T.fillna(np.nan)  # null (not finite) -> NaN
    table.index.name = "forecaster/method"
    return table
