"""The standard ETT protocol on the bundled ETTh2: the configured model vs the same run's baselines vs published figures.

For modes S (OT -> OT) and MS (six loads + OT -> OT) at horizons 24 and 96, this trains the model of
configs/etth2.yaml on rows [0, 8640), selects on [8640, 11520) and scores every test window of [11520, 14400)
(stride 1), printing scaled MSE/MAE of the model, each baseline, and the published figures for the same setting,
plus wall time. Run from the repository root:

    python benchmarks/ett.py [--modes S MS] [--horizons 24 96] [--config configs/etth2.yaml] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import time

from common import REPO, import_tensorflow  # noqa: E402 (benchmarks/ is on sys.path)

import_tensorflow()

from lstmkit.config import load_config, parse_override
from lstmkit.data.series import load_series
from lstmkit.data.windows import prepare
from lstmkit.models.neural.forecaster import fit_forecaster
from lstmkit.models.neural.spec import ModelSpec
from lstmkit.report.reference import ETT_LOADS, published_for
from lstmkit.stages.evaluation import evaluate


def run_setting(config: str, mode: str, horizon: int, overrides: dict) -> tuple[list[tuple[str, float, float]], float]:
    """Train and evaluate one (mode, horizon); rows of (forecaster, mse, mae) and the wall time in seconds."""
    features = [] if mode == "S" else list(ETT_LOADS)
    cfg = load_config(config, {**overrides, "window.horizon": horizon, "data.features": features, "training.verbose": 0})
    t0 = time.perf_counter()
    prepared = prepare(load_series(cfg).frame, cfg)
    forecaster = fit_forecaster(prepared, ModelSpec.from_config(cfg), cfg)
    metrics = evaluate(forecaster, prepared, cfg).metrics
    seconds = time.perf_counter() - t0
    rows = [(forecaster.name, metrics["model"]["scaled"]["mse"], metrics["model"]["scaled"]["mae"])]
    rows += [(name, m["scaled"]["mse"], m["scaled"]["mae"]) for name, m in metrics["baselines"].items()]
    rows += [(f"{p.model} (published)", p.mse, p.mae) for p in published_for(cfg)]
    return rows, seconds


def main() -> None:
    """Run every requested setting and print one table per setting."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "etth2.yaml"))
    p.add_argument("--modes", nargs="+", default=["S", "MS"], choices=["S", "MS"])
    p.add_argument("--horizons", nargs="+", type=int, default=[24, 96])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    args = p.parse_args()
    overrides = dict(parse_override(s) for s in args.set)
    for mode in args.modes:
        for horizon in args.horizons:
            rows, seconds = run_setting(args.config, mode, horizon, overrides)
            print(f"\nETTh2 mode {mode}, horizon {horizon}: scaled test MSE/MAE over all test windows ({seconds:.0f} s)")
            print(f"{'forecaster':<24} {'mse':>8} {'mae':>8}")
            for name, mse, mae in sorted(rows, key=lambda r: r[1]):
                print(f"{name:<24} {mse:8.4f} {'' if mae is None else f'{mae:8.4f}':>8}")


if __name__ == "__main__":
    main()
