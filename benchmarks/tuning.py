"""Tuning speed: trials per minute of one process vs a chief + local workers, and the cost of the walk-forward objective.

Every search is ``lstmkit.tuning.search.tune`` on the same profile data, seed and small fixed space (layers 1, units U/2 and U,
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

Two more comparisons, each chosen by its flag, on ETTh2 (configs/etth2.yaml: mode S, horizon 96; look-back
``--lookback``, default 96) with small defaults (units 16/32, 4 epochs per trial):

3. ``--compare-strategies``: random, bayesian, hyperband (Keras Tuner), optuna (Optuna) and asha, pbt (Ray Tune),
   each with the same wall-time budget (``tuning.max_minutes`` = ``--minutes``) over the same space, each in a fresh
   run folder. Every epoch's validation loss is timed from the search's start: for the in-process strategies by
   wrapping ``lstmkit.tuning.objective.train_trial`` (its per-epoch ``report`` hook), for the Ray ones from the run's
   ``tuning/lineage.csv`` (``seconds`` since the search started, shifted by the time from this script's clock start
   to the search's recorded start). It prints per strategy the trials finished, the epochs trained, the wall seconds,
   the best validation loss reached within the budget and when it was first reached, and writes the best-so-far
   curves as CSV and PNG (``--out``).

       python benchmarks/tuning.py --compare-strategies [--minutes 2] [--strategies random ... pbt] [--population 4]

4. ``--ray-nodes``: trials (and epochs) per minute of an ASHA search on a private local Ray limited to one trial at a
   time (one CPU, like the head), then of the same search on a Ray cluster on the loopback: its head alone (started
   here with ``ray start --head --port P --num-cpus 1``), then the head and a second node (``ray start --address
   127.0.0.1:P --num-cpus 1``), joined with ``tuning.ray_address=127.0.0.1:P``. The two ``ray start`` processes run with ``--block`` in their own
   process sessions and are stopped by signalling them (not ``ray stop``, which would stop every Ray instance on the
   machine, other users' included).

       python benchmarks/tuning.py --ray-nodes [--trials 8] [--epochs 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from common import REPO, base_parser, format_table, import_tensorflow  # noqa: E402 (benchmarks/ is on sys.path)

import_tensorflow()

from lstmkit.config import RAY_STRATEGIES, Config, ConfigError, from_dict, load_config  # noqa: E402
from lstmkit.core.errors import TuningError  # noqa: E402
from lstmkit.data.series import load_series, save_series  # noqa: E402
from lstmkit.data.windows import (
    cv_folds,  # noqa: E402
    prepare,  # noqa: E402
)
from lstmkit.runs.folder import start_run  # noqa: E402
from lstmkit.stages.preprocessing import save_prepared  # noqa: E402
from lstmkit.tuning.search import tune  # noqa: E402
from lstmkit.tuning.space import search_space  # noqa: E402

STRATEGIES = ("random", "bayesian", "hyperband", "optuna", "asha", "pbt")
ETTH2 = REPO / "configs" / "etth2.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = base_parser(__doc__.split("\n\n")[0])
    p.set_defaults(config=None, units=None)
    next(a for a in p._actions if a.dest == "config").help = ("YAML profile giving the data and windows (default: "
                                                             "configs/default.yaml; with --compare-strategies or "
                                                             "--ray-nodes configs/etth2.yaml)")
    next(a for a in p._actions if a.dest == "units").help = ("the space's units choices are units/2 and units (default: "
                                                            "64; with --compare-strategies or --ray-nodes 32)")
    p.add_argument("--trials", type=int, default=None, help="trials per search (default: 8; --compare-strategies: "
                   "100, the budget ends the search first; --ray-nodes: 8)")
    p.add_argument("--epochs", type=int, default=None, help="most epochs per trial (default: 10; --compare-strategies "
                   "and --ray-nodes: 4)")
    p.add_argument("--workers", type=int, default=2, help="worker processes beside the chief (default: 2)")
    p.add_argument("--folds", type=int, default=3, help="walk-forward folds of the cross-validated objective (default: 3)")
    p.add_argument("--strategy", default="random", choices=("random", "bayesian"), help="search strategy (default: random)")
    p.add_argument("--layers", type=int, default=1, help="LSTM layers, fixed (default: 1)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size, fixed (default: 64)")
    p.add_argument("--optimizer", default="adam", choices=("adam", "rmsprop", "sgd"), help="optimizer, fixed (default: adam)")
    p.add_argument("--lr", type=float, nargs=2, default=(1e-4, 1e-2), metavar=("MIN", "MAX"),
                   help="learning-rate range, log scale (default: 1e-4 1e-2)")
    p.add_argument("--max-dropout", type=float, default=0.2, help="dropout searched from 0 to this, step 0.1 (default: 0.2)")
    g = p.add_argument_group("strategies on a wall-time budget (--compare-strategies) and Ray nodes (--ray-nodes)")
    g.add_argument("--compare-strategies", action="store_true", help="best validation loss against wall time per "
                   "strategy, the same budget each")
    g.add_argument("--ray-nodes", action="store_true", help="trials per minute of Ray local vs a head and a second "
                   "node on 127.0.0.1")
    g.add_argument("--minutes", type=float, default=2.0, help="wall-time budget of each strategy (tuning.max_minutes; "
                   "default: 2)")
    g.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES,
                   help="strategies compared (default: all six)")
    g.add_argument("--population", type=int, default=4, help="pbt: trials in the population (default: 4)")
    g.add_argument("--pbt-epochs", type=int, default=None, help="pbt: epochs per trial (default: twice --epochs: a "
                   "population trains longer instead of trying more configurations)")
    g.add_argument("--lookback", type=int, default=96, help="look-back steps, fixed (default: 96; 336 is the ETT "
                   "protocol's)")
    g.add_argument("--ray-workers", type=int, default=0, help="asha/pbt: most trials at once (tuning.workers; "
                   "default 0: one per CPU)")
    g.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder of the best-so-far CSV and "
                   "figure (default: benchmarks/results)")
    args = p.parse_args(argv)
    small = args.compare_strategies or args.ray_nodes
    if args.compare_strategies and args.ray_nodes:
        p.error("--compare-strategies and --ray-nodes are separate benchmarks: give one")
    for name, usual, other in (("config", "configs/default.yaml", str(ETTH2)), ("units", 64, 32), ("epochs", 10, 4),
                               ("trials", 8, 100 if args.compare_strategies else 8)):
        if getattr(args, name) is None:
            setattr(args, name, other if small else usual)
    if args.pbt_epochs is None:
        args.pbt_epochs = 2 * args.epochs
    if small and (args.minutes <= 0 or args.population < 2 or args.pbt_epochs < 1 or args.lookback < 1):
        p.error("--minutes must be positive, --population at least 2, --pbt-epochs and --lookback at least 1")
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
    """Run the benchmark chosen by the flags (by default the four searches of parts 1 and 2)."""
    args = parse_args(argv)
    try:
        if args.compare_strategies:
            return compare_strategies(args)
        if args.ray_nodes:
            return ray_nodes(args)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return speed(args)


def speed(args: argparse.Namespace) -> int:
    """Run the four searches of parts 1 and 2 and print the two tables with a sentence each."""
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


# ---------------------------------------------------------------- 3. strategies on the same wall-time budget


def small_config(args: argparse.Namespace, strategy: str, **tuning) -> Config:
    """The ETTh2 profile with the small search of parts 3 and 4 (fixed look-back, units u/2 and u, log learning rate,
    dropout, one batch size and optimizer, last-value normalisation) and the given tuning.* values."""
    space = {"architecture": "lstm", "layers": args.layers, "units": [args.units // 2, args.units],
             "batch_size": args.batch_size, "optimizer": args.optimizer, "normalization": "last",
             "learning_rate": {"min": args.lr[0], "max": args.lr[1], "log": True},
             "dropout": {"min": 0.0, "max": args.max_dropout, "step": 0.1}, "lookback": None}
    ray = strategy in RAY_STRATEGIES
    values = {"strategy": strategy, "max_trials": args.trials, "epochs": args.epochs, "max_minutes": args.minutes,
              "cv_folds": 1, "workers": args.ray_workers if ray else 0, "space": space} | tuning
    if strategy == "pbt":
        values |= {"max_trials": args.population, "epochs": args.pbt_epochs,
                   "perturbation_interval": max(1, min(2, args.pbt_epochs // 4))}
    return load_config(args.config, {"window.lookback": args.lookback, "training.verbose": 0}
                       | {f"tuning.{k}": v for k, v in values.items()})


@dataclass
class Curve:
    """One strategy's search: (seconds since its start, validation loss) of every epoch, its wall time and trials."""

    strategy: str
    wall: float
    budget: float  # seconds (inf: none)
    points: list[tuple[float, float]] = field(default_factory=list)
    table: pd.DataFrame | None = None
    error: str = ""

    def within(self) -> list[tuple[float, float]]:
        """The finite points reached within the budget, in time order."""
        return sorted((t, v) for t, v in self.points if t <= self.budget and np.isfinite(v))

    @property
    def best(self) -> tuple[float, float]:
        """(best validation loss within the budget, seconds when it was first reached); NaNs when none."""
        pts = self.within()
        if not pts:
            return float("nan"), float("nan")
        best = min(v for _, v in pts)
        return best, next(t for t, v in pts if v == best)

    @property
    def finished(self) -> int | None:
        """Trials that ended with a validation loss (completed, or stopped early by the scheduler/pruner), if the table
        is known (trials a time budget stopped before their first epoch have none)."""
        if self.table is None:
            return None
        ended = self.table["status"].isin(["COMPLETED", "PRUNED"]) & np.isfinite(self.table["val_loss"].astype(float))
        return int(ended.sum())


@contextlib.contextmanager
def epoch_clock(points: list[tuple[float, float]], t0: float) -> Iterator[None]:
    """While inside, every epoch of a trial trained in this process (Keras Tuner, Optuna) appends (seconds since t0,
    validation loss) to `points`, through lstmkit.tuning.objective.train_trial's per-epoch `report` hook."""
    from lstmkit.tuning import objective

    original = objective.train_trial

    def timed(values, prepared, cfg, epochs, report=None):
        def both(step: int, val_loss: float) -> None:
            points.append((time.perf_counter() - t0, val_loss))
            if report is not None:
                report(step, val_loss)  # may raise optuna.TrialPruned: the epoch is recorded first

        return original(values, prepared, cfg, epochs, report=both)

    objective.train_trial = timed
    try:
        yield
    finally:
        objective.train_trial = original


def ray_points(run, cfg: Config, epoch0: float) -> list[tuple[float, float]]:
    """(seconds since epoch0, validation loss) of every epoch in the run's lineage.csv (Ray strategies): its seconds
    count from the search's recorded start (tuning/<project>.started.json), which this shifts to epoch0."""
    from lstmkit.tuning.objective import project_name

    if not run.lineage_file.exists():
        return []
    lineage = pd.read_csv(run.lineage_file)
    started = run.tuning_dir / f"{project_name(cfg)}.started.json"
    shift = json.loads(started.read_text())["started"] - epoch0 if started.exists() else 0.0
    return [(shift + float(t), float(v)) for t, v in zip(lineage["seconds"], lineage["val_loss"], strict=True)]


def budget_search(frame: pd.DataFrame, cfg: Config) -> Curve:
    """One strategy's search on a fresh run folder, every epoch's validation loss timed from the search's start."""
    curve = Curve(cfg.tuning.strategy, 0.0, 60 * cfg.tuning.max_minutes if cfg.tuning.max_minutes else np.inf)
    with tempfile.TemporaryDirectory(prefix="lstmkit-bench-strategies-") as tmp:
        run = start_run(tmp, cfg)
        save_series(frame, run.series_file)
        prepared = prepare(frame, cfg)
        save_prepared(prepared, run)
        t0, epoch0 = time.perf_counter(), time.time()
        try:
            with epoch_clock(curve.points, t0):
                _, curve.table = tune(prepared, cfg, run)
        except (TuningError, ConfigError) as e:
            curve.error = str(e).strip().splitlines()[0][:200]
        curve.wall = time.perf_counter() - t0
        if cfg.tuning.strategy in RAY_STRATEGIES:
            curve.points = ray_points(run, cfg, epoch0)
    return curve


def best_so_far(curves: list[Curve]) -> pd.DataFrame:
    """Long table strategy, seconds, val_loss, best_so_far: every timed epoch of every search (beyond the budget too)."""
    rows = []
    for c in curves:
        best = np.inf
        for t, v in sorted(c.points):
            best = min(best, v) if np.isfinite(v) else best
            rows.append({"strategy": c.strategy, "seconds": round(t, 3), "val_loss": v, "best_so_far": best})
    return pd.DataFrame(rows, columns=["strategy", "seconds", "val_loss", "best_so_far"])


def save_curves(table: pd.DataFrame, budget: float, out: Path, title: str) -> list[Path]:
    """Write the best-so-far table as CSV and a step plot as PNG into `out`; the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lstmkit.core.atomic import atomic_path, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    csv, png = out / "tuning_strategies.csv", out / "tuning_strategies.png"
    atomic_write_text(csv, table.to_csv(index=False))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, part in table.groupby("strategy", sort=False):
        part = part[np.isfinite(part["best_so_far"])]
        if len(part):
            ax.step(part["seconds"], part["best_so_far"], where="post", label=name, marker=".")
    ax.axvline(budget, color="grey", linestyle="--", linewidth=1, label="budget")
    ax.set(title=title, xlabel="wall time since the search started (s)",
           ylabel="best validation loss so far (scaled MSE)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return [csv, png]


def compare_strategies(args: argparse.Namespace) -> int:
    """Part 3: every strategy on the same wall-time budget; the table, a sentence, the CSV and the figure."""
    cfg0 = small_config(args, "random")
    frame = load_series(cfg0).frame
    prepared = prepare(frame, cfg0)
    print(f"config {Path(args.config).name}: {prepared.n_windows('train')} training windows (lookback "
          f"{cfg0.window.lookback}, horizon {cfg0.window.horizon}, {len(prepared.columns)} channel(s)); budget "
          f"{args.minutes:g} min per strategy; space: layers {args.layers}, units {args.units // 2}/{args.units}, "
          f"lr {args.lr[0]:g}-{args.lr[1]:g} log, dropout 0-{args.max_dropout:g}, batch {args.batch_size}; "
          f"{args.epochs} epochs per trial (pbt: population {args.population} x {args.pbt_epochs} epochs); "
          f"ray trials at once: {args.ray_workers or 'one per CPU'}; {os.cpu_count()} CPU cores", flush=True)
    timed_search(frame, with_tuning(small_config(args, "random"), max_trials=1, epochs=1, max_minutes=0))  # warm-up
    curves = []
    for strategy in args.strategies:
        curve = budget_search(frame, small_config(args, strategy))
        curves.append(curve)
        best, when = curve.best
        print(f"  {strategy}: {curve.wall:.0f} s, best {best:.4f} at {when:.0f} s {curve.error}", flush=True)

    rows = [("strategy", "trials finished", "epochs trained", "wall s", "best val_loss", "reached at s")]
    for c in curves:
        best, when = c.best
        rows.append((c.strategy, "?" if c.finished is None else str(c.finished), str(len(c.within())),
                     f"{c.wall:.1f}", "-" if np.isnan(best) else f"{best:.4f}",
                     "-" if np.isnan(when) else f"{when:.1f}"))
    print("\nBest validation loss (scaled MSE) reached within the budget of " f"{args.minutes:g} min, "
          "epochs counted within it\n")
    print(format_table(rows))
    for c in curves:
        if c.error:
            print(f"{c.strategy}: {c.error}")
    scores = {c.strategy: c.best[0] for c in curves if np.isfinite(c.best[0])}
    keras_side = {k: v for k, v in scores.items() if k not in RAY_STRATEGIES}
    ray_side = {k: v for k, v in scores.items() if k in RAY_STRATEGIES}
    if keras_side and ray_side:
        kt, kv = min(keras_side.items(), key=lambda kv: kv[1])
        rt, rv = min(ray_side.items(), key=lambda kv: kv[1])
        print(f"\nbest Ray strategy {rt} {rv:.4f} vs best Keras Tuner/Optuna strategy {kt} {kv:.4f}: the target "
              f"(PBT or ASHA at least as good on the same budget) is {'MET' if rv <= kv else 'NOT met'}.")
    paths = save_curves(best_so_far(curves), 60 * args.minutes, Path(args.out),
                        f"Tuning strategies on {Path(args.config).stem}, {args.minutes:g} min each")
    print("best-so-far curves: " + ", ".join(str(p) for p in paths))
    return 0


# ---------------------------------------------------------------- 4. Ray local vs two nodes on the loopback


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a `ray start --block` process and what it started: SIGTERM to its own process group, SIGKILL if needed."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
            return


class LoopbackCluster:
    """A Ray cluster on 127.0.0.1 started with `ray start --block` (head first, then `add_node`), each node of `cpus`
    CPUs in its own process session, so that `close` stops exactly these processes."""

    def __init__(self, cpus: int = 1, timeout: float = 120) -> None:
        self.cpus, self.timeout, self.procs = cpus, timeout, []
        self.ray_bin = str(Path(sys.executable).with_name("ray"))
        self.address = f"127.0.0.1:{free_port()}"
        self.temp = tempfile.mkdtemp(prefix="rb-", dir="/tmp")  # short: Ray's socket paths are limited in length
        self.logs = Path(self.temp) / "start-logs"
        self.logs.mkdir()
        self.common = [f"--num-cpus={cpus}", "--num-gpus=0", "--node-ip-address=127.0.0.1", "--block",
                       "--disable-usage-stats"]

    def _start(self, args: list[str], name: str) -> None:
        """Start one `ray start --block` process, its output in logs/<name>.log."""
        with open(self.logs / f"{name}.log", "w") as log:
            self.procs.append(subprocess.Popen([self.ray_bin, "start", *args, *self.common], start_new_session=True,
                                               stdout=log, stderr=subprocess.STDOUT))

    def _wait(self, nodes: int) -> None:
        """Connect, wait until `nodes` nodes are alive, disconnect (the search connects by itself)."""
        import ray

        deadline = time.monotonic() + self.timeout
        try:
            while True:
                try:
                    if not ray.is_initialized():
                        ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
                    if sum(n["Alive"] for n in ray.nodes()) >= nodes:
                        return
                except (ConnectionError, RuntimeError, ValueError):
                    pass
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                    raise RuntimeError(f"the Ray cluster at {self.address} did not reach {nodes} node(s): see {self.logs}")
                time.sleep(1)
        finally:
            ray.shutdown()

    def start_head(self) -> None:
        """Start the head (`ray start --head --port P --num-cpus N --include-dashboard=false`) and wait for it."""
        port = self.address.rsplit(":", 1)[1]
        self._start(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={self.temp}"], "head")
        self._wait(1)

    def add_node(self) -> None:
        """Start one more node (`ray start --address 127.0.0.1:P --num-cpus N`) and wait until it is alive."""
        self._start([f"--address={self.address}"], f"node{len(self.procs)}")
        self._wait(len(self.procs))

    def close(self) -> None:
        """Stop every process started here, newest first."""
        for proc in reversed(self.procs):
            stop_process(proc)
        self.procs.clear()
        shutil.rmtree(self.temp, ignore_errors=True)


def ray_nodes(args: argparse.Namespace) -> int:
    """Part 4: the same ASHA search on a private local Ray one trial at a time, on a loopback cluster's head alone
    (1 CPU), and on the head plus a second node (1 CPU each)."""
    args.minutes = 0
    local_cfg = small_config(args, "asha", workers=1, max_minutes=0)
    frame = load_series(local_cfg).frame
    print(f"config {Path(args.config).name}, lookback {args.lookback}: asha search of {args.trials} trials x at most "
          f"{args.epochs} epochs (units {args.units // 2}/{args.units}); {os.cpu_count()} CPU cores", flush=True)
    searches = [("local Ray (private, 1 trial at a time)", "1 x 1", budget_search(frame, local_cfg))]
    print(f"  {searches[-1][0]}: {searches[-1][2].wall:.0f} s {searches[-1][2].error}", flush=True)
    cluster = LoopbackCluster(cpus=1)
    try:
        cluster.start_head()
        on_cluster = small_config(args, "asha", workers=0, max_minutes=0, ray_address=cluster.address)
        searches.append((f"head alone ({cluster.address})", "1 x 1", budget_search(frame, on_cluster)))
        print(f"  {searches[-1][0]}: {searches[-1][2].wall:.0f} s {searches[-1][2].error}", flush=True)
        cluster.add_node()
        searches.append(("head + second node on 127.0.0.1", "2 x 1", budget_search(frame, on_cluster)))
        print(f"  {searches[-1][0]}: {searches[-1][2].wall:.0f} s {searches[-1][2].error}", flush=True)
    finally:
        cluster.close()

    rows = [("Ray", "nodes x CPUs", "wall s", "first epoch at s", "trials finished", "trials/min", "epochs",
             "epochs/min", "epochs/min vs local")]
    base = None
    for name, nodes, c in searches:
        epochs, first = len(c.points), min((t for t, _ in c.points), default=float("nan"))
        per_min = 60 * epochs / c.wall
        base = per_min if base is None else base
        rows.append((name, nodes, f"{c.wall:.1f}", f"{first:.1f}", "?" if c.finished is None else str(c.finished),
                     f"{60 * (c.finished or 0) / c.wall:.2f}", str(epochs), f"{per_min:.2f}",
                     f"{per_min / base:.2f}x" if base else "-"))
    print("\n" + format_table(rows))
    for name, _, c in searches:
        if c.error:
            print(f"{name}: {c.error}")
    print("\nWall time counts from the tune() call: the private local Ray starts inside it (see 'first epoch at'), the "
          "cluster was started before. ASHA stops poor trials at its rungs, so the searches need not train the same "
          "number of epochs: epochs/min is the fairer throughput figure.")
    return 0

if __name__ == "__main__":
    sys.exit(main())
