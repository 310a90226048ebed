"""Training throughput: lstmkit's lazy tf.data windows vs a bare `model.fit` on materialised numpy windows.

Both sides train the same 1x64 LSTM (lstmkit.models.neural.forecaster.build_network, same seed, same initial weights) on the same
training windows of a profile's synthetic series, with the same batch size and number of epochs:

* pipeline: ``Prepared.dataset("train", batch, shuffle=True, seed)`` fed to ``model.fit`` exactly as
  ``NeuralForecaster.fit`` does (window start positions shuffled, each batch gathered from the series on demand);
* bare: ``Prepared.arrays("train")`` (all windows copied into one array) fed to ``model.fit(x, y, shuffle=True)``.

One ``fit`` call runs the warm-up epochs (graph tracing, first-batch costs) followed by the timed epochs; a callback
times each epoch, and only the timed ones count. No validation data is passed on either side, so the figures are pure
training throughput. Run from the repository root:

    python benchmarks/throughput.py [--epochs 3] [--warmup 1] [--batch-size 256] [--config configs/default.yaml]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from common import base_parser, format_table, import_tensorflow, prepare_data  # noqa: E402 (benchmarks/ is on sys.path)

import_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from lstmkit.config import ConfigError
from lstmkit.data.windows import Prepared
from lstmkit.models.neural.forecaster import build_network, set_seed
from lstmkit.models.neural.spec import ModelSpec


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per side (default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs before them (default: 1)")
    p.add_argument("--batch-size", type=int, default=256, help="training batch size (default: 256)")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.warmup < 0 or args.batch_size < 1 or args.units < 1:
        p.error("--epochs, --batch-size and --units must be at least 1, --warmup at least 0")
    return args


class EpochTimer(keras.callbacks.Callback):
    """Keras callback recording the wall time of every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._t0 = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Start the epoch's clock."""
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Record the epoch's seconds."""
        self.seconds.append(time.perf_counter() - self._t0)


def same_windows(prepared: Prepared, batch_size: int) -> bool:
    """Whether the tf.data pipeline (unshuffled) yields exactly the windows of Prepared.arrays."""
    x, y = prepared.arrays("train")
    xs, ys = zip(*[(a.numpy(), b.numpy()) for a, b in prepared.dataset("train", batch_size)])
    return np.array_equal(np.concatenate(xs), x) and np.array_equal(np.concatenate(ys), y)


def new_model(prepared: Prepared, units: int, batch_size: int, seed: int) -> keras.Model:
    """A freshly initialised 1-layer LSTM built by lstmkit (same seed -> same initial weights)."""
    set_seed(seed)
    return build_network(ModelSpec(layers=1, units=units, batch_size=batch_size), prepared.lookback,
                         len(prepared.columns), prepared.horizon)


def time_pipeline(prepared: Prepared, units: int, batch_size: int, seed: int, warmup: int, epochs: int) -> list[float]:
    """Seconds of each timed epoch when training from Prepared.dataset, as NeuralForecaster.fit does."""
    model = new_model(prepared, units, batch_size, seed)
    train = prepared.dataset("train", batch_size, shuffle=True, seed=seed)
    timer = EpochTimer()
    model.fit(train, epochs=warmup + epochs, verbose=0, shuffle=False, callbacks=[timer])
    return timer.seconds[warmup:]


def time_bare(prepared: Prepared, units: int, batch_size: int, seed: int, warmup: int, epochs: int) -> list[float]:
    """Seconds of each timed epoch when training from all windows materialised as numpy arrays."""
    model = new_model(prepared, units, batch_size, seed)
    x, y = prepared.arrays("train")
    timer = EpochTimer()
    model.fit(x, y, batch_size=batch_size, epochs=warmup + epochs, verbose=0, shuffle=True, callbacks=[timer])
    return timer.seconds[warmup:]


def main(argv: list[str] | None = None) -> int:
    """Run both sides and print windows/s and the pipeline/bare ratio."""
    args = parse_args(argv)
    try:
        cfg, prepared = prepare_data(args.config)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n = prepared.n_windows("train")
    x, _ = prepared.arrays("train")
    print(f"config {Path(args.config).name}: {n} training windows of shape {x.shape[1:]} (lookback x channels), "
          f"horizon {prepared.horizon}; LSTM 1x{args.units}, batch {args.batch_size}, "
          f"{args.warmup} warm-up + {args.epochs} timed epochs, no validation")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores visible")
    print(f"pipeline and arrays yield identical windows: {'yes' if same_windows(prepared, args.batch_size) else 'NO'}")

    results = {}
    for name, fn in (("pipeline", time_pipeline), ("bare", time_bare)):
        secs = fn(prepared, args.units, args.batch_size, cfg.seed, args.warmup, args.epochs)
        results[name] = secs

    rows = [("source", "epochs", "s/epoch (mean)", "s/epoch (min)", "windows/s (mean)", "windows/s (best)")]
    for name, secs in results.items():
        mean = statistics.fmean(secs)
        rows.append((name, str(len(secs)), f"{mean:.3f}", f"{min(secs):.3f}", f"{n / mean:,.0f}", f"{n / min(secs):,.0f}"))
    print()
    print(format_table(rows))
    ratio = statistics.fmean(results["bare"]) / statistics.fmean(results["pipeline"])
    ratio_best = min(results["bare"]) / min(results["pipeline"])
    print(f"\nthroughput ratio pipeline/bare: {ratio:.3f} (mean epochs), {ratio_best:.3f} (best epochs); "
          f">1 means lstmkit's pipeline is faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
