"""The model zoo on ETTh2 under the standard protocol: every architecture beside the same run's baselines.

Mode S (OT -> OT), look-back 336, horizons 24 and 96; rows [0, 8640) train, [8640, 11520) validate, [11520, 14400)
test (every window, stride 1). Each architecture trains with its documented defaults (configs/etth2.yaml's `model.*`
and the `model.<architecture>` defaults, plus ARCHITECTURE_SETTINGS below) for each of `--seeds` seeds; the script
prints scaled test MSE and MAE as mean ± sd over seeds, training seconds and parameter count, the ensembles (mean of all
architectures, and of the 3 best by validation loss: never chosen on test), the baselines and the published figures
for the same setting (lstmkit/report/reference.py).

Every fit is appended to a JSON-lines results file (`--results`, default benchmarks/results/zoo.jsonl) with its
test forecasts' metrics, so an interrupted benchmark resumes where it stopped and a later call only prints. Run from
the repository root:

    python benchmarks/zoo.py [--horizons 24 96] [--seeds 3] [--architectures lstm patchtst ...] [--set KEY=VALUE ...]

`--quick` instead times one training of each architecture on the quick profile (configs/quick.yaml: 1,200 synthetic
rows, 3 epochs), each in a fresh process so that every time includes building and tracing its network (target:
under 30 s each on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import REPO, format_table, import_tensorflow  # noqa: E402 (benchmarks/ is on sys.path)

import_tensorflow()

from lstmkit.config import ARCHITECTURES, load_config, parse_override  # noqa: E402
from lstmkit.core.atomic import atomic_path  # noqa: E402
from lstmkit.data.series import load_series  # noqa: E402
from lstmkit.data.windows import prepare  # noqa: E402
from lstmkit.models.baselines import baselines  # noqa: E402
from lstmkit.models.metrics import metric_report  # noqa: E402
from lstmkit.models.neural.forecaster import fit_forecaster  # noqa: E402
from lstmkit.models.neural.spec import ModelSpec  # noqa: E402
from lstmkit.report.reference import published_for  # noqa: E402

# Settings that differ from configs/etth2.yaml's model.* for an architecture: the paper's own where it gives them.
ARCHITECTURE_SETTINGS: dict[str, dict] = {
    "patchtst": {"model.normalization": "revin", "model.dropout": 0.3, "model.batch_size": 128,  # Nie et al. 2023
                 "model.learning_rate": 1e-4, "training.epochs": 60, "training.patience": 10},
}


def _forecasts_file(results: Path, horizon: int, arch: str, seed: int) -> Path:
    """Where one fit's test forecasts are kept (for the ensembles)."""
    return results.parent / "zoo_forecasts" / f"h{horizon}_{arch}_seed{seed}.npy"


def run_fit(config: str, horizon: int, arch: str, seed: int, overrides: dict, results: Path) -> dict:
    """Train one architecture with one seed and score it on the test windows; its record (also saved)."""
    cfg = load_config(config, {**overrides, **ARCHITECTURE_SETTINGS.get(arch, {}), "window.horizon": horizon,
                               "data.features": [], "training.verbose": 0, "model.architecture": arch})
    prepared = prepare(load_series(cfg).frame, cfg)
    t0 = time.perf_counter()
    forecaster = fit_forecaster(prepared, ModelSpec.from_config(cfg), cfg, seed=seed)
    seconds = time.perf_counter() - t0
    forecast = forecaster.predict_split(prepared, "test")
    report = metric_report(prepared.targets("test").astype(float), forecast, prepared, cfg.evaluation.seasonal_period)
    with atomic_path(_forecasts_file(results, horizon, arch, seed)) as tmp:
        np.save(tmp, forecast)
    return {"horizon": horizon, "architecture": arch, "seed": seed, "mse": report["scaled"]["mse"],
            "mae": report["scaled"]["mae"], "val_loss": forecaster.val_loss_, "seconds": seconds,
            "epochs": len(forecaster.history_), "parameters": forecaster.parameter_count(),
            "spec": forecaster.spec.to_dict()}


def baseline_rows(config: str, horizon: int, overrides: dict) -> tuple[list[tuple[str, float, float]], object, object]:
    """(name, mse, mae) of every baseline and the published figures; also the config and prepared series."""
    cfg = load_config(config, {**overrides, "window.horizon": horizon, "data.features": [], "training.verbose": 0})
    prepared = prepare(load_series(cfg).frame, cfg)
    rows = []
    for b in baselines(cfg):
        b.fit(prepared)
        r = metric_report(prepared.targets("test").astype(float), b.predict_split(prepared, "test"), prepared,
                          cfg.evaluation.seasonal_period)
        rows.append((b.name, r["scaled"]["mse"], r["scaled"]["mae"]))
    rows += [(f"{p.model} (published)", p.mse, p.mae) for p in published_for(cfg)]
    return rows, cfg, prepared


def ensemble_row(name: str, members: list[str], records: list[dict], results: Path, horizon: int, cfg, prepared) -> tuple:
    """Test MSE/MAE of the mean forecast of the members (each member: its seeds' mean forecast)."""
    means = []
    for arch in members:
        seeds = [r["seed"] for r in records if r["architecture"] == arch]
        means.append(np.mean([np.load(_forecasts_file(results, horizon, arch, s)) for s in seeds], axis=0))
    r = metric_report(prepared.targets("test").astype(float), np.mean(means, axis=0), prepared,
                      cfg.evaluation.seasonal_period)
    return (f"{name} ({', '.join(members)})", r["scaled"]["mse"], r["scaled"]["mae"])


def quick_fit(arch: str) -> dict:
    """Train one architecture on the quick profile (this process); seconds, epochs, parameters, validation loss."""
    cfg = load_config(REPO / "configs" / "quick.yaml", {"model.architecture": arch, "training.verbose": 0})
    from lstmkit.data.seasonality import resolve_config

    frame = load_series(cfg).frame
    cfg, _ = resolve_config(cfg, frame.index)
    prepared = prepare(frame, cfg)
    t0 = time.perf_counter()
    forecaster = fit_forecaster(prepared, ModelSpec.from_config(cfg), cfg)
    return {"architecture": arch, "seconds": time.perf_counter() - t0, "epochs": len(forecaster.history_),
            "parameters": forecaster.parameter_count(), "val_loss": forecaster.val_loss_,
            "windows": prepared.n_windows("train")}


def quick(architectures: list[str]) -> None:
    """Time each architecture's quick-profile training in a fresh process and print the table."""
    rows = [("architecture", "train s", "epochs", "parameters", "val loss (scaled)", "under 30 s")]
    for arch in architectures:
        out = subprocess.run([sys.executable, __file__, "--quick-one", arch], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((arch, f"{r['seconds']:.1f}", str(r["epochs"]), f"{r['parameters']:,}", f"{r['val_loss']:.4f}",
                     "yes" if r["seconds"] < 30 else "NO"))
    print(f"Quick profile: {r['windows']:,} training windows, one fit per architecture in a fresh process")
    print(format_table(rows))


def main() -> None:
    """Train what is missing, then print one table per horizon."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "etth2.yaml"))
    p.add_argument("--horizons", nargs="+", type=int, default=[24, 96])
    p.add_argument("--seeds", type=int, default=3, help="seeds per architecture: the config's seed, seed + 1, ...")
    p.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "zoo.jsonl")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--quick", action="store_true", help="time each architecture's training on the quick profile")
    p.add_argument("--quick-one", choices=ARCHITECTURES, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick_one:
        print(json.dumps(quick_fit(args.quick_one)))
        return
    if args.quick:
        quick(args.architectures)
        return
    overrides = dict(parse_override(s) for s in args.set)
    base_seed = load_config(args.config, overrides).seed
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in args.results.read_text().splitlines()] if args.results.exists() else []
    for horizon in args.horizons:
        for arch in args.architectures:
            for seed in range(base_seed, base_seed + args.seeds):
                if any(r["horizon"] == horizon and r["architecture"] == arch and r["seed"] == seed for r in done):
                    continue
                record = run_fit(args.config, horizon, arch, seed, overrides, args.results)
                done.append(record)
                with args.results.open("a") as f:  # one complete line per fit: a kill loses at most the fit under way
                    f.write(json.dumps(record) + "\n")
                print(f"h={horizon} {arch} seed {seed}: mse {record['mse']:.4f} mae {record['mae']:.4f} "
                      f"({record['seconds']:.0f} s, {record['epochs']} epochs)", flush=True)
    for horizon in args.horizons:
        records = [r for r in done if r["horizon"] == horizon and r["architecture"] in args.architectures]
        rows, cfg, prepared = baseline_rows(args.config, horizon, overrides)
        table = [("forecaster", "mse (mean ± sd)", "mae (mean ± sd)", "seeds", "train s", "parameters")]
        by_val = {}
        for arch in args.architectures:
            rs = [r for r in records if r["architecture"] == arch]
            if not rs:
                continue
            mse, mae = np.array([r["mse"] for r in rs]), np.array([r["mae"] for r in rs])
            by_val[arch] = float(np.mean([r["val_loss"] for r in rs]))
            table.append((arch, f"{mse.mean():.4f} ± {mse.std(ddof=1) if len(rs) > 1 else 0:.4f}",
                          f"{mae.mean():.4f} ± {mae.std(ddof=1) if len(rs) > 1 else 0:.4f}", str(len(rs)),
                          f"{np.mean([r['seconds'] for r in rs]):.0f}", f"{rs[0]['parameters']:,}"))
        if len(by_val) >= 2:
            top = sorted(by_val, key=by_val.get)[:3]
            for name, members in (("ensemble: mean of all", list(by_val)), ("ensemble: top 3 by validation", top)):
                n, mse, mae = ensemble_row(name, members, records, args.results, horizon, cfg, prepared)
                table.append((n, f"{mse:.4f}", f"{mae:.4f}", "", "", ""))
        table += [(n, f"{mse:.4f}", "" if mae is None else f"{mae:.4f}", "", "", "") for n, mse, mae in rows]
        print(f"\nETTh2 mode S, look-back {cfg.window.lookback}, horizon {horizon}: scaled test MSE/MAE over "
              f"{prepared.n_windows('test'):,} test windows")
        print(format_table(table))


if __name__ == "__main__":
    main()
