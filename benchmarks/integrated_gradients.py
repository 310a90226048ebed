"""Integrated Gradients speed: lstmkit's batched implementation vs the per-step Python loop reference.

Times ``lstmkit.explain.integrated_gradients.integrated_gradients`` (all integration steps of a chunk of windows differentiated in one
gradient call) and ``lstmkit.explain.integrated_gradients.integrated_gradients_loop`` (one eager gradient call per window and step) on the
same test windows of a profile's synthetic series, explaining the first forecast step of a 1x64 LSTM built with
``lstmkit.models.neural.forecaster.build_network`` (architecture lstm). The model is trained for ``--train-epochs`` epochs first (default 1; 0 = untrained):
the timing does not depend on the weights, training only makes the completeness figures realistic.

The loop is slow, so by default it runs on a subset of the windows (``--loop-windows``) and its time is extrapolated
linearly to the full count (its cost is exactly proportional to windows x steps). Both functions get one untimed
warm-up call. Run from the repository root:

    python benchmarks/integrated_gradients.py [--windows 256] [--steps 64] [--loop-windows 16] [--config configs/default.yaml]

With ``--all`` it also explains every test window of the profile in one call and reports the time and the peak
memory the call added (resident set size sampled every 10 ms), e.g. the full ETTh2 test set:

    python benchmarks/integrated_gradients.py --config configs/etth2.yaml --units 32 --all
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import base_parser, format_table, import_tensorflow, prepare_data  # noqa: E402 (benchmarks/ is on sys.path)

import_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from lstmkit.config import ConfigError
from lstmkit.data.windows import Prepared
from lstmkit.explain.integrated_gradients import integrated_gradients, integrated_gradients_loop, sample_windows
from lstmkit.models.neural.forecaster import build_network, set_seed
from lstmkit.models.neural.spec import ModelSpec


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--windows", type=int, default=256, help="test windows explained, evenly spaced over the test span (default: 256)")
    p.add_argument("--steps", type=int, default=64, help="integration steps (default: 64)")
    p.add_argument("--loop-windows", type=int, default=16,
                   help="windows the loop reference is actually timed on, extrapolated linearly to --windows "
                        "(default: 16; 0 or >= --windows times it on all of them)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="interpolated inputs per gradient call of the batched IG (default: the profile's explain.batch_size)")
    p.add_argument("--train-epochs", type=int, default=1, help="epochs of training before timing (default: 1; 0 = untrained)")
    p.add_argument("--all", action="store_true", help="also explain every test window in one call: time and peak memory")
    args = p.parse_args(argv)
    if args.windows < 1 or args.steps < 1 or args.units < 1 or args.loop_windows < 0 or args.train_epochs < 0:
        p.error("--windows, --steps and --units must be at least 1; --loop-windows and --train-epochs at least 0")
    if args.batch_size is not None and args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    return args


def trained_model(prepared: Prepared, units: int, epochs: int, seed: int) -> keras.Model:
    """A 1-layer LSTM built by lstmkit, trained for `epochs` epochs on the training windows (untrained if 0)."""
    set_seed(seed)
    spec = ModelSpec(layers=1, units=units)
    model = build_network(spec, prepared.lookback, len(prepared.columns), prepared.horizon)
    if epochs:
        model.fit(prepared.dataset("train", spec.batch_size, shuffle=True, seed=seed), epochs=epochs, verbose=0, shuffle=False)
    return model


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(fn: Callable[[], object]) -> tuple[int, object]:
    """Peak resident memory added while fn runs (sampled every 10 ms), and its result."""
    import threading

    start, peak, done = rss_bytes(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.01)

    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        out = fn()
    finally:
        done.set()
        watcher.join()
    return max(peak[0], rss_bytes()) - start, out


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall seconds of one call, and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    """Time both implementations and print seconds, windows/s, the speed-up and the completeness gap."""
    args = parse_args(argv)
    try:
        cfg, prepared = prepare_data(args.config)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    batch_size = args.batch_size or cfg.explain.batch_size
    x_test, _ = prepared.arrays("test")
    x = x_test[sample_windows(len(x_test), args.windows)]
    n = len(x)
    n_loop = n if args.loop_windows == 0 else min(args.loop_windows, n)
    model = trained_model(prepared, args.units, args.train_epochs, cfg.seed)
    trained = f"trained {args.train_epochs} epoch{'s' if args.train_epochs != 1 else ''}" if args.train_epochs else "untrained"
    print(f"config {Path(args.config).name}: {n} test windows of shape {x.shape[1:]} (lookback x channels) "
          f"out of {len(x_test)}{' (fewer than asked: all of them)' if n < args.windows else ''}; "
          f"IG of forecast step 1, {args.steps} steps, zero baseline")
    print(f"model: LSTM 1x{args.units} ({trained}); batched IG chunks of {batch_size} interpolated inputs "
          f"({max(1, batch_size // args.steps)} windows); TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores visible")

    # warm-up: first-call costs (kernel selection, allocations) of both code paths
    integrated_gradients(model, x[:2], steps=args.steps, batch_size=batch_size)
    integrated_gradients_loop(model, x[:1], steps=2)

    t_vec, attr = timed(lambda: integrated_gradients(model, x, steps=args.steps, batch_size=batch_size))
    t_loop_measured, loop_values = timed(lambda: integrated_gradients_loop(model, x[:n_loop], steps=args.steps))
    t_loop = t_loop_measured * n / n_loop
    extrapolated = n_loop < n

    loop_label = f"loop ({'extrapolated' if extrapolated else 'measured'})"
    rows = [("implementation", "windows timed", f"seconds for {n}", "windows/s", "speed-up")]
    rows.append(("batched integrated_gradients", str(n), f"{t_vec:.2f}", f"{n / t_vec:,.1f}", f"{t_loop / t_vec:.1f}x"))
    rows.append((f"integrated_gradients_{loop_label}", str(n_loop), f"{t_loop:.2f}" + ("*" if extrapolated else ""),
                 f"{n / t_loop:,.2f}", "1.0x"))
    print()
    print(format_table(rows))
    if extrapolated:
        print(f"* the loop was timed on {n_loop} of the {n} windows ({t_loop_measured:.2f} s) and extrapolated linearly "
              f"x{n / n_loop:g} to {n}")
    gap = attr.completeness_gap
    diff = float(np.abs(attr.values[:n_loop] - loop_values).max())
    print(f"\nbatched IG completeness gap |sum(attr) - (f(x) - f(0))|: mean {gap.mean():.3g}, max {gap.max():.3g} "
          f"(scaled target units; mean |f(x) - f(0)| = {np.abs(attr.delta).mean():.3g}, relative gap {attr.relative_gap():.3g})")
    print(f"max |batched - loop| attribution on the {n_loop} common windows: {diff:.2g}")
    if args.all:
        t0 = time.perf_counter()
        added, full = peak_memory(lambda: integrated_gradients(model, x_test, steps=args.steps, batch_size=batch_size))
        seconds = time.perf_counter() - t0
        inputs = np.prod(x_test.shape) * 4
        print(f"\nevery test window: {len(x_test)} windows of shape {x_test.shape[1:]} in {seconds:.1f} s "
              f"({len(x_test) / seconds:,.1f} windows/s); peak memory added {added / 2**20:,.0f} MiB "
              f"(the windows themselves: {inputs / 2**20:,.1f} MiB; attributions returned: {full.values.nbytes / 2**20:,.1f} MiB); "
              f"relative completeness gap {full.relative_gap():.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
