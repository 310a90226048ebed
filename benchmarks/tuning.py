"""Tuning speed: trials per minute of one process vs a chief + local workers, and the cost of the walk-forward objective.

Every search is ``lstmkit.tuning.tune`` on the same profile data, seed and small fixed space (layers 1, units U/2 and U,
log learning rate, one batch size, one optimizer, dropout 0-0.2 step 0.1), in a fresh run folder prepared like the data
and preprocessing stages leave it (a temporary directory, so nothing is ever resumed). An untimed one-trial search
first warms this process up (imports, first model build), so in-process searches start on equal terms.

1. parallel: the search in this process (tuning.workers = 0) vs a Keras Tuner chief and N worker processes
   (tuning.workers = N). Wall seconds cover the whole ``tune`` call, worker start-up included (what a user waits for);
   the summed per-trial training seconds (the trials table's ``seconds``) separate training from that overhead, and
   the time the last trial's state was saved (trial.json) separates the search from the wait for ``tune`` to return.
2. objective: the one-process search scored on the run's single validation split (tuning.cv_folds = 1, the search of
   part 1) vs on k walk-forward folds (tuning.cv_folds = k). Run from the repository root:

    python benchmarks/tuning.py [--trials 6] [--epochs 3] [--workers 2] [--folds 3] [--config configs/default.yaml]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from common import base_parser, format_table, import_tensorflow  # noqa: E402 (benchmarks/ is on sys.path)

import_tensorflow()

from lstmkit.config import Config, ConfigError, from_dict, load_config  # noqa: E402
from lstmkit.data import load_series, save_series  # noqa: E402
from lstmkit.preprocessing import prepare, save_prepared  # noqa: E402
from lstmkit.runfolder import start_run  # noqa: E402
from lstmkit.search_space import search_space  # noqa: E402
from lstmkit.tuning import cv_folds, tune  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = base_parser(__doc__.split("\n\n")[0])
    next(a for a in p._actions if a.dest == "units").help = "the space's units choices are units/2 and units (default: 64)"
    p.add_argument("--trials", type=int, default=8, help="trials per search (default: 8)")
    p.add_argument("--epochs", type=int, default=10, help="most epochs per trial (default: 10)")
    p.add_argument("--workers", type=int, default=2, help="worker processes beside the chief (default: 2)")
    p.add_argument("--folds", type=int, default=3, help="walk-forward folds of the cross-validated objective (default: 3)")
    p.add_argument("--strategy", default="random", choices=("random", "bayesian"), help="search strategy (default: random)")
    p.add_argument("--layers", type=int, default=1, help="LSTM layers, fixed (default: 1)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size, fixed (default: 64)")
    p.add_argument("--optimizer", default="adam", choices=("adam", "rmsprop", "sgd"), help="optimizer, fixed (default: adam)")
    p.add_argument("--lr", type=float, nargs=2, default=(1e-4, 1e-2), metavar=("MIN", "MAX"),
                   help="learning-rate range, log scale (default: 1e-4 1e-2)")
    p.add_argument("--max-dropout", type=float, default=0.2, help="dropout searched from 0 to this, step 0.1 (default: 0.2)")
    args = p.parse_args(argv)
    if min(args.trials, args.epochs, args.workers, args.folds - 1, args.layers, args.units // 2, args.batch_size) < 1:
        p.error("--trials, --epochs, --workers, --layers and --batch-size must be at least 1, --folds at least 2, "
                "--units at least 2 (its choices are units/2 and units)")
    return args


def bench_config(args: argparse.Namespace) -> Config:
    """The profile with the benchmark's search laid over it (tuning.workers = 0, cv_folds = 1, silent training)."""
    space = {"layers": args.layers, "units": [args.units // 2, args.units], "batch_size": args.batch_size,
             "optimizer": args.optimizer, "learning_rate": {"min": args.lr[0], "max": args.lr[1], "log": True},
             "dropout": {"min": 0.0, "max": args.max_dropout, "step": 0.1}}
    return load_config(args.config, {"tuning.strategy": args.strategy, "tuning.max_trials": args.trials,
                                     "tuning.epochs": args.epochs, "tuning.max_minutes": 0, "tuning.workers": 0,
                                     "tuning.cv_folds": 1, "tuning.space": space, "training.verbose": 0})


@dataclass
class Search:
    """One timed search: wall seconds of the tune call, seconds until the last trial ended, and its trials table."""

    wall: float
    last_trial: float
    table: pd.DataFrame

    @property
    def completed(self) -> int:
        """Trials that completed."""
        return int((self.table["status"] == "COMPLETED").sum())

    @property
    def trained(self) -> float:
        """Summed training seconds of the trials."""
        return float(self.table["seconds"].astype(float).sum())

    @property
    def per_minute(self) -> float:
        """Completed trials per minute of wall time."""
        return 60 * self.completed / self.wall


def timed_search(frame: pd.DataFrame, cfg: Config) -> Search:
    """Prepare a fresh run folder as the data and preprocessing stages do, then time tune() on it."""
    with tempfile.TemporaryDirectory(prefix="lstmkit-bench-tuning-") as tmp:
        run = start_run(tmp, cfg)
        save_series(frame, run.series_file)
        prepared = prepare(frame, cfg)
        save_prepared(prepared, run)
        t0, epoch0 = time.perf_counter(), time.time()
        _, table = tune(prepared, cfg, run, workers=cfg.tuning.workers)
        wall = time.perf_counter() - t0
        last = max(p.stat().st_mtime for p in run.tuning_dir.rglob("trial.json")) - epoch0
        return Search(wall, last, table)


def with_tuning(cfg: Config, **values) -> Config:
    """A copy of cfg with some tuning.* values changed."""
    return from_dict(cfg.to_dict(), {f"tuning.{k}": v for k, v in values.items()})


def main(argv: list[str] | None = None) -> int:
    """Run the four searches and print the two tables with a sentence each."""
    args = parse_args(argv)
    try:
        cfg = bench_config(args)
        frame = load_series(cfg).frame
        prepared = prepare(frame, cfg)
        cv_folds(prepared, args.folds)  # fails now, not after three searches, when the folds do not fit
        windows = prepared.n_windows("train")
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sp = search_space(cfg)
    space = ", ".join([f"{p.name} {p.describe()}" for p in sp.params] + [f"{k}={v}" for k, v in sp.fixed.items() if k != "lookback"])
    print(f"config {Path(args.config).name}: {windows} training windows (lookback {cfg.window.lookback}, horizon "
          f"{cfg.window.horizon}); {cfg.tuning.strategy} search, {args.trials} trials x {args.epochs} epochs (patience "
          f"{cfg.tuning.patience}), seed {cfg.seed}; space: {space}; {os.cpu_count()} CPU cores", flush=True)

    timed_search(frame, with_tuning(cfg, max_trials=1, epochs=1))  # untimed warm-up of this process
    single = timed_search(frame, cfg)
    parallel = timed_search(frame, with_tuning(cfg, workers=args.workers))
    folded = timed_search(frame, with_tuning(cfg, cv_folds=args.folds))

    same = single.table[sp.names].astype(str).equals(parallel.table[sp.names].astype(str))
    speedup = parallel.per_minute / single.per_minute
    rows = [("search", "wall s", "last trial ended s", "trials", "trials/min", "speed-up", "summed trial s")]
    for name, s in (("1 process", single), (f"chief + {args.workers} workers", parallel)):
        rows.append((name, f"{s.wall:.1f}", f"{s.last_trial:.1f}", str(s.completed), f"{s.per_minute:.2f}",
                     f"{s.per_minute / single.per_minute:.2f}x", f"{s.trained:.1f}"))
    print("\n" + format_table(rows))
    startup, tail = parallel.last_trial - parallel.trained / args.workers, parallel.wall - parallel.last_trial
    print(f"\n{args.workers} workers: {speedup:.2f}x the trials per minute of one process "
          f"({'the same' if same else 'NOT the same'} {len(single.table)} configurations tried); their trials trained "
          f"{parallel.trained / single.trained:.2f}x as long in sum (on {os.cpu_count()} cores); about {startup:.0f} s "
          f"went to start-up and coordination (last trial ended s - summed trial s / workers), and tune() returned "
          f"{tail:.0f} s after the last trial ended (the Keras Tuner chief's shutdown wait).")

    rows = [("objective", "wall s", "trials", "mean trial s", "vs single split")]
    for name, s in (("single split (cv_folds=1)", single), (f"{args.folds} walk-forward folds", folded)):
        rows.append((name, f"{s.wall:.1f}", str(s.completed), f"{s.trained / len(s.table):.2f}",
                     f"{s.wall / single.wall:.2f}x"))
    print("\n" + format_table(rows))
    per_trial = (folded.trained / len(folded.table)) / (single.trained / len(single.table))
    print(f"\n{args.folds}-fold walk-forward objective: {folded.wall / single.wall:.2f}x the wall time of the single "
          f"split ({per_trial:.2f}x per trial: {args.folds} models per trial, the earlier ones trained on fewer rows).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
