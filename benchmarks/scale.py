"""Time and peak memory of every pipeline stage on long series: 10^5, 10^6 and 10^7 rows x 7 columns by default.

For each size a synthetic CSV is written (10-minute timestamps from 1900, so that 10^7 rows stay inside pandas'
nanosecond timestamp range; a target `y` and six features `x1`..`x6`, float32
values; numpy + pyarrow in blocks of 10^6 rows) into a temporary folder, and the six stages run through the real
pipeline (`lstmkit.cli.pipeline.run_pipeline`, papermill kernels) with configs/quick.yaml's model settings and these
overrides: the CSV as data, tuning off, one training epoch of at most --steps batches (`training.steps_per_epoch`;
validation, evaluation, baselines and metrics still cover every window), 16 explained windows and 8 cross-checked.

Each stage runs in its own child process (`python benchmarks/scale.py --stage ...`), which starts the stage's
notebook kernel and waits for it; when the stage is over it reports `getrusage(RUSAGE_CHILDREN).ru_maxrss`, the
exact peak resident memory of the kernel (the largest of its waited-for descendants), and its own peak (the papermill
driver). Nothing is polled, so no short peak is missed. The table gives per stage and size the wall time of the child
and the kernel's peak RSS, and the ratio of time per row between the largest and the smallest size (1.0 = linear in
the rows; below 1, fixed costs such as kernel start-up weigh less on the larger run). Run from the repository root:

    python benchmarks/scale.py [--rows 100000 --rows 1000000 --rows 10000000] [--steps 200] [--keep DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # inherited by the notebook kernels; must precede any TF import

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, format_table  # noqa: E402

SIZES = (100_000, 1_000_000, 10_000_000)
FEATURES = [f"x{i}" for i in range(1, 7)]
BLOCK = 1_000_000  # rows generated and written at a time


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """A synthetic 10-minute series of `rows` rows: date, x1..x6 (daily cycles, random walks, noise), y driven by them."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    start = np.datetime64("1900-01-01T00:00", "m")
    level = np.zeros(len(FEATURES) + 1)
    with pacsv.CSVWriter(str(path), pa.schema([("date", pa.timestamp("s"))] + [(c, pa.float32()) for c in FEATURES + ["y"]])) as w:
        for a in range(0, rows, BLOCK):
            n = min(BLOCK, rows - a)
            t = np.arange(a, a + n)
            day = np.sin(2 * np.pi * t / 144)[:, None]  # 144 ten-minute steps a day
            walk = level + np.cumsum(rng.normal(0, 0.01, (n, len(FEATURES) + 1)), axis=0)  # slow random walks
            level = walk[-1]
            x = day * np.linspace(0.5, 1.5, len(FEATURES)) + walk[:, :-1] + rng.normal(0, 0.3, (n, len(FEATURES)))
            y = 10 + 2 * day[:, 0] + x[:, :3].sum(axis=1) + walk[:, -1] + rng.normal(0, 0.2, n)
            columns = [pa.array((start + 10 * t).astype("datetime64[s]"))] + [pa.array(c) for c in np.c_[x, y].astype(np.float32).T]
            w.write_table(pa.Table.from_arrays(columns, names=["date", *FEATURES, "y"]))


def overrides(csv: Path, steps: int) -> dict:
    """Config overrides over configs/quick.yaml for the benchmark run."""
    return {"data.source": "csv", "data.path": str(csv), "data.date_column": "date", "data.target": "y",
            "data.features": FEATURES, "tuning.strategy": "none", "training.epochs": 1, "training.verbose": 0,
            "training.steps_per_epoch": steps, "explain.windows": 16, "explain.steps": 16, "explain.shap_windows": 8}


def run_one_stage(run_dir: str, stage: str, settings: str) -> None:
    """Child process: run one stage (its kernel is our child), then print our and our children's peak RSS as JSON."""
    from lstmkit.cli.pipeline import run_pipeline
    from lstmkit.config import from_dict, load_config
    from lstmkit.runs.folder import RunFolder

    cfg = from_dict(load_config(REPO / "configs" / "quick.yaml").to_dict(), json.loads(settings))
    run = RunFolder(Path(run_dir))
    run.root.mkdir(parents=True, exist_ok=True)
    run_pipeline(run, cfg, start=stage, stop=stage, echo=lambda *a, **k: None)
    kib = 1024 if sys.platform != "darwin" else 1  # ru_maxrss is in KiB on Linux, bytes on macOS
    print(json.dumps({"kernel_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib,
                      "driver_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib}))


def time_size(rows: int, base: Path, steps: int, stages: list[str]) -> dict[str, dict]:
    """Write the CSV of one size and run each stage in a child process; {stage: {seconds, kernel_rss, driver_rss}}."""
    csv = base / f"series-{rows}.csv"
    t0 = time.perf_counter()
    write_csv(csv, rows)
    progress(f"== {rows:,} rows: CSV of {csv.stat().st_size / 2**20:.0f} MiB written in {time.perf_counter() - t0:.1f} s")
    settings = json.dumps(overrides(csv, steps))
    results: dict[str, dict] = {}
    for stage in stages:
        progress(f"   {stage:<15} ...", end="", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--stage", stage, "--run", str(base / f"run-{rows}"),
                               "--settings", settings], capture_output=True, text=True, cwd=REPO)
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            progress(f" failed after {seconds:.1f} s\n{done.stderr[-3000:]}")
            results[stage] = {"seconds": seconds, "failed": True}
            break
        results[stage] = {"seconds": seconds, **json.loads(done.stdout.strip().splitlines()[-1])}
        progress(f" {seconds:.1f} s, kernel peak {results[stage]['kernel_rss'] / 2**20:.0f} MiB")
    csv.unlink()
    return results


def progress(*args: object, **kwargs: object) -> None:
    """Progress lines go to stderr, keeping stdout for the table."""
    print(*args, **kwargs, file=sys.stderr)  # type: ignore[call-overload]


def table(sizes: list[int], results: dict[int, dict[str, dict]], stages: list[str]) -> str:
    """Stages as rows; per size seconds and kernel peak MiB; time-per-row ratio of the largest to the smallest size."""
    small, large = min(sizes), max(sizes)
    header = ("stage", *[f"{n:,} rows: s / peak MiB" for n in sizes]) + ((f"time/row {large:,} vs {small:,}",) if large > small else ())
    rows = [header]

    def ratio(t_small: float | None, t_large: float | None) -> tuple[str, ...]:
        if large == small:
            return ()
        if t_small is None or t_large is None:
            return ("-",)
        return (f"{(t_large / large) / (t_small / small):.2f}",)

    for stage in stages:
        cells = []
        for n in sizes:
            r = results.get(n, {}).get(stage)
            cells.append("-" if r is None else "failed" if r.get("failed") else f"{r['seconds']:.1f} / {r['kernel_rss'] / 2**20:.0f}")
        ok = {n: results[n][stage]["seconds"] for n in sizes if stage in results.get(n, {}) and not results[n][stage].get("failed")}
        rows.append((stage, *cells, *ratio(ok.get(small), ok.get(large))))
    totals = {n: sum(r["seconds"] for r in results.get(n, {}).values()) for n in sizes}
    complete = {n for n in sizes if len(results.get(n, {})) == len(stages) and not any(r.get("failed") for r in results[n].values())}
    peaks = {n: max((r.get("kernel_rss", 0) for r in results.get(n, {}).values()), default=0) for n in sizes}
    rows.append(("total / largest peak", *[f"{totals[n]:.1f} / {peaks[n] / 2**20:.0f}" for n in sizes],
                 *ratio(totals[small] if small in complete else None, totals[large] if large in complete else None)))
    return format_table(rows)


def main(argv: list[str] | None = None) -> int:
    """Time every stage at each size and print one table."""
    from lstmkit.runs.notebooks import STAGES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, action="append", help=f"series length; repeatable (default: {', '.join(map(str, SIZES))})")
    p.add_argument("--steps", type=int, default=200, help="training.steps_per_epoch: batches in the one training epoch (default 200)")
    p.add_argument("--only", action="append", metavar="STAGE", help="run stages up to this one only; repeatable (default: all)")
    p.add_argument("--keep", help="folder for the run folders, kept afterwards (default: a temporary folder, deleted)")
    p.add_argument("--stage", help=argparse.SUPPRESS)
    p.add_argument("--run", help=argparse.SUPPRESS)
    p.add_argument("--settings", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage:
        run_one_stage(args.run, args.stage, args.settings)
        return 0
    from lstmkit.cli.pipeline import ensure_kernel

    ensure_kernel()  # one-time kernel registration, kept out of the timings
    sizes = sorted(set(args.rows or SIZES))
    names = [s.name for s in STAGES]
    stages = names[:max(names.index(s) for s in args.only) + 1] if args.only else names
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lstmkit-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, dict]] = {}
    try:
        for rows in sizes:
            results[rows] = time_size(rows, base, args.steps, stages)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"\nwall time (s) and peak resident memory of the stage's kernel (MiB) per stage; {os.cpu_count()} CPU cores; "
          f"quick model, 1 epoch of at most {args.steps} batches")
    print(table(sizes, results, stages))
    return 1 if any(r.get("failed") for res in results.values() for r in res.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
