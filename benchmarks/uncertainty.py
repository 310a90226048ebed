"""Probabilistic forecasts and anomaly flags, measured: every uncertainty method of lstmkit on ETTh2 and the anomaly
detector on the labelled NAB series.

ETTh2 part (configs/etth2.yaml: mode S, look-back 336, horizon 96, rows [0, 8640) train, [8640, 11520) validate,
[11520, 14400) test, every test window): for each architecture of `--architectures` (default: lstm, deepar, patchtst)
a run folder under `--results` is trained by the training stage (`lstmkit.stages.training.train_run`) and the uncertainty
stage (`lstmkit.stages.uncertainty.run_uncertainty`) computes each method on it, calibrated on the validation windows,
beside the conformalised seasonal-naive baseline of the same run. Printed per forecaster/method: coverage of the 80%,
90% and 95% intervals over every window and step, the worst horizon step's, whole-path (joint) coverage, mean width,
CRPS, MSIS at 95%, and seconds (model trained or loaded, forecasts and calibration). Then the issue's targets:
adaptive conformal at 90% within 0.87-0.93 at every horizon step, its CRPS at least 20% below the conformalised
seasonal naive's; and 100 Monte Carlo dropout samples over the whole test set timed on their own.

NAB part: each labelled NAB series of `--nab` (configs/nab_*.yaml) runs the data, training and anomaly stages; printed
are the detection metrics beside the random-score baseline (point-wise, and the AUCs at the labels' resolution:
"pooled") and the false-alarm rate achieved against the chosen one.

Models are saved in the run folders, so a second call reloads them and only recomputes the metrics. Run from the
repository root:

    python benchmarks/uncertainty.py [--architectures lstm deepar patchtst] [--nab ...] [--skip-ett] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import REPO, format_table, import_tensorflow  # noqa: E402 (benchmarks/ is on sys.path)

import_tensorflow()

from lstmkit.config import ARCHITECTURES, load_config, parse_override  # noqa: E402
from lstmkit.data.seasonality import resolve_config  # noqa: E402
from lstmkit.data.series import load_series, save_filled  # noqa: E402
from lstmkit.data.windows import prepare  # noqa: E402
from lstmkit.runs.folder import RunFolder  # noqa: E402
from lstmkit.stages.training import load_selected, train_run  # noqa: E402

LEVELS = [0.8, 0.9, 0.95]
# Per architecture: settings that differ from configs/etth2.yaml, and the methods applied. The LSTM gets dropout 0.2
# (etth2.yaml's own is 0: MC dropout needs dropout layers); PatchTST keeps the paper's settings (dropout 0.3, BatchNorm:
# MC dropout must sample its dropout layers only).
SETTINGS: dict[str, dict] = {
    "lstm": {"model.dropout": 0.2},
    "deepar": {"model.dropout": 0.0},
    "patchtst": {"model.normalization": "revin", "model.dropout": 0.3, "model.batch_size": 128,
                 "model.learning_rate": 1e-4, "training.epochs": 30, "training.patience": 5},
}
METHODS: dict[str, list[str]] = {
    "deepar": ["conformal", "aci", "deepar", "deepar+conformal", "deepar+aci"],
}
DEFAULT_METHODS = ["conformal", "aci", "quantile", "quantile+conformal", "quantile+aci", "mc_dropout",
                   "mc_dropout+conformal", "mc_dropout+aci"]
NAB_CONFIGS = sorted((REPO / "configs").glob("nab_*.yaml"))


def ett_config(arch: str, overrides: dict):
    """configs/etth2.yaml with the architecture, its settings and methods, and the user's overrides."""
    return load_config(REPO / "configs" / "etth2.yaml", {
        **SETTINGS.get(arch, {}), "model.architecture": arch, "compare.architectures": [arch], "training.verbose": 0,
        "uncertainty.method": METHODS.get(arch, DEFAULT_METHODS), "uncertainty.levels": LEVELS, **overrides})


def run_arch(arch: str, results: Path, overrides: dict) -> dict:
    """Train (or reload) one architecture in its run folder and run the uncertainty stage; its metrics.json dict."""
    from lstmkit.stages.uncertainty import run_uncertainty

    cfg = ett_config(arch, overrides)
    frame = load_series(cfg).frame
    cfg, _ = resolve_config(cfg, frame.index)
    prepared = prepare(frame, cfg)
    run = RunFolder(results / arch)
    run.root.mkdir(parents=True, exist_ok=True)
    cfg.save(run.config_file)
    t0 = time.perf_counter()
    train_run(run, cfg, prepared, echo=print)
    print(f"{arch}: training stage {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    metrics = run_uncertainty(run, cfg, prepared, echo=print).metrics
    print(f"{arch}: uncertainty stage {time.perf_counter() - t0:.0f} s")
    return metrics


def mc_dropout_time(results: Path, overrides: dict, samples: int = 100) -> tuple[float, int]:
    """Seconds for `samples` MC-dropout samples of every test window of the LSTM's run, and the window count."""
    cfg = ett_config("lstm", overrides)
    frame = load_series(cfg).frame
    cfg, _ = resolve_config(cfg, frame.index)
    prepared = prepare(frame, cfg)
    f = load_selected(RunFolder(results / "lstm"))
    x, _ = prepared.with_lookback(f.lookback_).arrays("test")
    f.predict_samples(x[:64], samples, seed=0)  # trace once
    t0 = time.perf_counter()
    out = f.predict_samples(x, samples, seed=1)
    seconds = time.perf_counter() - t0
    assert out.shape == (len(x), samples, prepared.horizon)
    return seconds, len(x)


def pct(v: float | None) -> str:
    """A share as a percentage with one decimal."""
    return "n/a" if v is None else f"{100 * v:.1f}%"


def ett_table(all_metrics: dict[str, dict]) -> str:
    """One row per forecaster/method of every run, the baseline rows once per run."""
    rows = [("forecaster/method", "cov 80", "cov 90", "cov 95", "worst step 90", "joint 90", "width 90", "CRPS",
             "MSIS 95", "seconds")]
    for arch, metrics in all_metrics.items():
        for key, m in metrics.items():
            if key == "meta":
                continue
            per = m["coverage_per_step"]["0.9"]
            worst = max(per, key=lambda v: abs(v - 0.9))
            rows.append((f"[{arch}] {key}", pct(m["coverage"]["0.8"]), pct(m["coverage"]["0.9"]),
                         pct(m["coverage"]["0.95"]), pct(worst), pct(m["joint_coverage"]["0.9"]),
                         f"{m['width']['0.9']:.3f}", f"{m['crps']:.4f}", f"{msis_at(m, 0.95):.2f}",
                         f"{m.get('seconds', float('nan')):.0f}"))
    return format_table(rows)


def msis_at(m: dict, level: float) -> float:
    """MSIS at a level (the report's per-level figure when it has one, else its single MSIS)."""
    by_level = m.get("msis_by_level") or {}
    return float(by_level.get(str(float(level)), m["msis"]))


def targets(all_metrics: dict[str, dict]) -> list[str]:
    """The issue's targets, checked on each run's ACI entries and its conformalised seasonal-naive baseline."""
    lines = []
    for arch, metrics in all_metrics.items():
        base = metrics.get("seasonal_naive/conformal")
        for key, m in metrics.items():
            if key == "meta" or not key.endswith("/aci") or key.startswith("seasonal_naive"):
                continue
            per = np.asarray(m["coverage_per_step"]["0.9"])
            inside = bool(((per >= 0.87) & (per <= 0.93)).all())
            gain = 1 - m["crps"] / base["crps"]
            lines.append(f"[{arch}] {key}: 90% coverage per step {per.min():.3f}-{per.max():.3f} "
                         f"({'within' if inside else 'NOT within'} 0.87-0.93); CRPS {m['crps']:.4f} vs conformalised "
                         f"seasonal naive {base['crps']:.4f}: {100 * gain:.0f}% lower (target: at least 20%)")
    return lines


def nab_rows(configs: list[Path], results: Path, overrides: dict) -> list[tuple[str, ...]]:
    """Train each NAB profile's model and run the anomaly stage; one row per series and one for its random baseline."""
    from lstmkit.stages.anomalies import run_anomalies

    rows = [("series", "scores", "AUC-ROC", "AUC-ROC pooled", "AUC-PR", "AUC-PR pooled", "precision", "recall", "F1",
             "event F1", "false alarms", "chosen")]
    for path in configs:
        cfg = load_config(path, {"training.verbose": 0, **overrides})
        series = load_series(cfg)
        cfg, _ = resolve_config(cfg, series.frame.index)
        prepared = prepare(series.frame, cfg)
        run = RunFolder(results / path.stem)
        run.root.mkdir(parents=True, exist_ok=True)
        cfg.save(run.config_file)
        save_filled(series.frame.index, series.filled, run.filled_file)  # filled values are not scored (chapter 8)
        train_run(run, cfg, prepared, echo=print)
        m = run_anomalies(run, cfg, load_selected(run), prepared).metrics
        for label, d in ((path.stem, m), ("  random scores", m["random_baseline"])):
            rows.append((label, "forecast" if d is m else "random", f"{d['auc_roc']:.3f}", f"{d['auc_roc_pooled']:.3f}",
                         f"{d['auc_pr']:.3f}", f"{d['auc_pr_pooled']:.3f}",
                         f"{d['precision']:.3f}", f"{d['recall']:.3f}", f"{d['f1']:.3f}", f"{d['event_f1']:.3f}",
                         pct(d.get("false_alarm_rate")), pct(cfg.anomalies.false_alarm_rate)))
    return rows


def main() -> None:
    """Run the ETTh2 and NAB parts and print their tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--architectures", nargs="+", default=["lstm", "deepar", "patchtst"], choices=ARCHITECTURES)
    p.add_argument("--nab", nargs="*", type=Path, default=NAB_CONFIGS, help="NAB profiles (default: configs/nab_*.yaml)")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "uncertainty")
    p.add_argument("--skip-ett", action="store_true", help="only the NAB part")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    args = p.parse_args()
    overrides = dict(parse_override(s) for s in args.set)
    if not args.skip_ett:
        all_metrics = {arch: run_arch(arch, args.results, overrides) for arch in args.architectures}
        (args.results / "ett_metrics.json").write_text(json.dumps(all_metrics, indent=1))
        print("\nETTh2 S, H=96, look-back 336: test windows, scaled units (CRPS, width), calibrated on validation")
        print(ett_table(all_metrics))
        print("\n".join(targets(all_metrics)))
        if "lstm" in args.architectures:
            seconds, n = mc_dropout_time(args.results, overrides)
            print(f"MC dropout, 100 samples x {n:,} test windows (LSTM): {seconds:.1f} s (target: under 60 s)")
    if args.nab:
        print("\nNAB labelled series: anomaly flags from forecast residuals, beside random scores")
        print(format_table(nab_rows(args.nab, args.results, overrides)))


if __name__ == "__main__":
    main()
