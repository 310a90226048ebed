"""The default profile on public real series: does the tuned LSTM beat persistence, seasonal naive and the linear baseline?

For each series it runs what `lstmkit run` runs with configs/default.yaml pointed at a CSV (`data.source=csv`,
`data.target=value`, `data.features=[]`): the data stage's loading and repairs, `resolve_config` (`auto` look-back
and seasonal period from the time step), the preprocessing split and scaling, the default search (`lstmkit.tuning.search.tune`),
the training stage's fit with the best hyperparameters (`lstmkit.models.neural.forecaster.fit_forecaster`), and the evaluation stage's baselines
(`lstmkit.models.baselines.baselines`), and prints scaled MSE and MAE of the model and of every baseline on the validation
windows (where the defaults were chosen) and on the test windows (stride 1, all of them), with `beats` marking the
forecasters the model beats on MSE. The series, all offline (statsmodels' bundled data sets and the shared folder):

- co2_weekly: Mauna Loa CO2 (statsmodels `co2`), weekly, 2,284 rows, gaps interpolated; trend and a yearly season.
- elnino_monthly: El Nino sea-surface temperature (statsmodels `elnino`, one row per year reshaped to months), 732 rows.
- nab_ambient_hourly: NAB `ambient_temperature_system_failure.csv`, hourly, 621 missing hours inserted and interpolated.
- etth2_daily: ETTh2's oil temperature (OT) averaged per day (the hourly file aggregated), 726 rows.
- synthetic_hourly (on request): the profile's own synthetic series, to check the defaults keep it healthy.

Run from the repository root (about 10 minutes a series with the default search on 2 cores):

    python benchmarks/real_defaults.py [--series co2_weekly ...] [--config configs/default.yaml] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import DEFAULT_CONFIG, REPO, format_table, import_tensorflow  # noqa: E402 (benchmarks/ is on sys.path)

import_tensorflow()

from sklearn.metrics import mean_absolute_error, mean_squared_error  # noqa: E402

from lstmkit.config import load_config, parse_override  # noqa: E402
from lstmkit.data.seasonality import resolve_config  # noqa: E402
from lstmkit.data.series import load_series  # noqa: E402
from lstmkit.data.windows import prepare  # noqa: E402
from lstmkit.models.baselines import baselines  # noqa: E402
from lstmkit.models.neural.forecaster import fit_forecaster  # noqa: E402
from lstmkit.models.neural.spec import ModelSpec  # noqa: E402
from lstmkit.runs.folder import RunFolder  # noqa: E402
from lstmkit.tuning.search import tune  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
COMPARED = ("persistence", "seasonal_naive", "linear")  # the baselines the defaults must beat


def co2_weekly() -> pd.DataFrame:
    """Mauna Loa weekly CO2 (ppm), with its missing weeks left empty for the data stage to interpolate."""
    import statsmodels.api as sm

    s = sm.datasets.co2.load_pandas().data["co2"]
    return s.rename("value").rename_axis("date").to_frame()


def elnino_monthly() -> pd.DataFrame:
    """Monthly El Nino sea-surface temperature (deg C), one row per month from the one-row-per-year table."""
    import statsmodels.api as sm

    wide = sm.datasets.elnino.load_pandas().data
    long = wide.melt(id_vars="YEAR", value_vars=list(MONTHS), var_name="month", value_name="value")
    long["date"] = pd.to_datetime({"year": long["YEAR"].astype(int), "month": long["month"].map(MONTHS.index) + 1, "day": 1})
    return long.set_index("date")[["value"]].sort_index()


def nab_ambient_hourly() -> pd.DataFrame:
    """NAB ambient temperature (deg F) as recorded: hourly with gaps, which the data stage repairs."""
    raw = pd.read_csv(SHARED / "nab" / "ambient_temperature_system_failure.csv", parse_dates=["timestamp"])
    return raw.rename(columns={"timestamp": "date"}).set_index("date")


def etth2_daily() -> pd.DataFrame:
    """ETTh2 oil temperature (deg C) averaged per calendar day."""
    path = REPO / "lstmkit" / "bundled" / "ETTh2.csv"
    hourly = pd.read_csv(path if path.exists() else SHARED / "ETTh2.csv", parse_dates=["date"]).set_index("date")["OT"]
    return hourly.resample("D").mean().rename("value").to_frame()


# name -> (the series as a frame with a `value` column, or None for the profile's own data; its frequency)
SERIES = {"co2_weekly": (co2_weekly, "weekly"), "elnino_monthly": (elnino_monthly, "monthly"),
          "nab_ambient_hourly": (nab_ambient_hourly, "hourly"), "etth2_daily": (etth2_daily, "daily"),
          "synthetic_hourly": (None, "hourly")}
REAL = [name for name, (make, _) in SERIES.items() if make is not None]


def run_series(name: str, folder: Path, config: str, overrides: dict) -> tuple[list[tuple[str, ...]], dict]:
    """The default profile on one series: table rows (split, forecaster, mse, mae, beaten) and facts about the run."""
    make, frequency = SERIES[name]
    data = {}
    if make is not None:
        path = folder / f"{name}.csv"
        make().to_csv(path)
        data = {"data.source": "csv", "data.path": str(path), "data.target": "value", "data.features": [],
                "data.fill_missing": "interpolate", "data.on_gaps": "resample"}
    cfg = load_config(config, {**data, "training.verbose": 0, **overrides})
    t0 = time.perf_counter()
    frame = load_series(cfg).frame
    cfg, _ = resolve_config(cfg, frame.index)
    prepared = prepare(frame, cfg)
    if cfg.tuning.strategy != "none":
        spec, _ = tune(prepared, cfg, RunFolder(folder / name))
    else:
        spec = ModelSpec.from_config(cfg)
    forecaster = fit_forecaster(prepared, spec, cfg)
    history = forecaster.history_
    prepared = prepared.with_lookback(spec.lookback)
    fitted = [b.fit(prepared) for b in baselines(cfg) if b.name != "autoreg"]
    rows, scores = [], {}
    for split in ("val", "test"):
        _, actual = prepared.arrays(split)
        forecasts = {"lstm": forecaster.predict_split(prepared, split)} | {b.name: b.predict_split(prepared, split) for b in fitted}
        for forecaster, f in forecasts.items():
            scores[split, forecaster] = (mean_squared_error(actual.ravel(), f.ravel()), mean_absolute_error(actual.ravel(), f.ravel()))
        for forecaster, (mse, mae) in scores.items():
            if forecaster[0] == split:
                beaten = "" if forecaster[1] == "lstm" else ("yes" if scores[split, "lstm"][0] < mse else "NO")
                rows.append((name, frequency, str(len(frame)), split, forecaster[1], f"{mse:.4f}", f"{mae:.4f}", beaten))
    facts = {"series": name, "seconds": time.perf_counter() - t0, "period": cfg.evaluation.seasonal_period,
             "lookback": spec.lookback, "spec": spec, "epochs": len(history),
             "wins": all(scores["test", "lstm"][0] < scores["test", b][0] for b in COMPARED)}
    return rows, facts


def main() -> None:
    """Run the default profile on each requested series and print the table and a summary line per series."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--series", nargs="+", default=REAL, choices=list(SERIES),
                   help="series to run (default: the four real ones; synthetic_hourly = the profile's own data)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="profile (default: configs/default.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    args = p.parse_args()
    overrides = dict(parse_override(s) for s in args.set)
    header = ("series", "frequency", "rows", "split", "forecaster", "mse", "mae", "lstm beats it")
    table, summaries = [header], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.series:
            rows, facts = run_series(name, Path(tmp), args.config, overrides)
            table += rows
            s = facts["spec"]
            summaries.append(f"{name}: period {facts['period']}, look-back {facts['lookback']}, {s.layers}x{s.units} "
                             f"{s.normalization} lr {s.learning_rate:.2g} {s.optimizer} batch {s.batch_size}, "
                             f"{facts['epochs']} epochs, {facts['seconds']:.0f} s; beats persistence, seasonal naive "
                             f"and linear on test: {'yes' if facts['wins'] else 'NO'}")
            print(format_table(table), *summaries, sep="\n", flush=True)  # the table so far, after every series


if __name__ == "__main__":
    main()
