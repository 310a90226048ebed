"""The `lstmkit` command: `run`, `tune`, `report`, `export`, `serve`, `kernel`, `config`.

Each command imports what it needs when it runs (TensorFlow, papermill, Jupyter Book and uvicorn take seconds to
load), so `lstmkit --help` and a refused command answer at once. An `LstmkitError` is printed on one line
(`error: ...`) and exits with its `exit_code` (2: the input cannot be used; 1: an operation failed; 3: the run
folder is locked); any other exception is a bug and prints its traceback (exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from pathlib import Path

import yaml

from lstmkit.config import RAY_STRATEGIES, ConfigError, from_dict, parse_override
from lstmkit.core import progress
from lstmkit.core.errors import LstmkitError
from lstmkit.runs.folder import RunFolder, open_run
from lstmkit.runs.notebooks import project_root

DEFAULT_CONFIG = "configs/default.yaml"


def _overrides(items: list[str]) -> dict:
    """Dotted KEY=VALUE pairs from repeated --set options."""
    return dict(parse_override(s) for s in items or [])


@contextlib.contextmanager
def tensorflow_quiet():
    """Load TensorFlow (with Keras) in this process without its C++ start-up lines on the terminal (they go straight
    to file descriptor 2, whatever TF_CPP_MIN_LOG_LEVEL the process sets); Python's own errors still show."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                import keras  # noqa: F401 - TensorFlow's start-up happens here, while its lines go nowhere

                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def default_run_dir(config_path: str | None) -> Path:
    """runs/<profile name>, e.g. runs/quick for configs/quick.yaml."""
    return Path("runs") / (Path(config_path).stem if config_path else "default")


def cmd_run(args: argparse.Namespace) -> int:
    """Run the notebook series (or resume it) into a run folder."""
    with tensorflow_quiet():  # papermill, and TensorFlow through the checks of the architectures
        from lstmkit.cli.pipeline import run_pipeline
        from lstmkit.report.book import publish
        from lstmkit.stages.checks import check_config, load_checked

    overrides = _overrides(args.set)
    config_path = args.config
    if config_path is None and not args.resume_from:
        config_path = str(project_root() / DEFAULT_CONFIG)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.config or DEFAULT_CONFIG)
    run = RunFolder(run_dir.resolve())
    if args.resume_from and config_path is None:
        if not run.config_file.exists():
            raise ConfigError(f"cannot resume: {run.root} has no config.yaml (run without --from first)")
        cfg = check_config(from_dict(run.config().to_dict(), overrides))
    else:
        cfg = load_checked(config_path, overrides)
    live = None if args.quiet or args.progress else sys.stdout  # papermill's bar and the live line would collide
    with run.lock("lstmkit run", create=True):  # refused at once if another command is writing this folder
        print(f"lstmkit run -> {run.root}", flush=True)
        run_pipeline(run, cfg, start=args.resume_from, stop=args.to, progress=args.progress, live=live)
        if args.to is None:
            publish(run)
            print(f"done. Metrics: {run.metrics_file}\nBuild the report with: lstmkit report --run-dir {run_dir}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Run or resume the tuning search of a run folder (here, with local workers, or as a chief/worker process)."""
    with tensorflow_quiet():  # TensorFlow and the search backends
        from lstmkit.stages.preprocessing import load_prepared
        from lstmkit.tuning import results, search
        from lstmkit.tuning.backends import distributed

    role = distributed.role()
    folder = RunFolder(Path(args.run_dir or _latest_run_dir()).resolve())
    # a chief or worker process of a distributed search works for the command that holds the lock: it does not lock
    with contextlib.nullcontext() if role else folder.lock("lstmkit tune"):
        overrides = _overrides(args.set) | ({} if args.ray_address is None else {"tuning.ray_address": args.ray_address})
        run, cfg = open_run(folder.root, overrides)
        prepared = load_prepared(run)
        workers = 0 if role else (cfg.tuning.workers if args.workers is None else args.workers)
        where = f"as {os.environ['KERASTUNER_TUNER_ID']} of a distributed search" if role else \
            (f"on the Ray cluster at {cfg.tuning.ray_address}" if cfg.tuning.ray_address else "on a local Ray instance")\
            if cfg.tuning.strategy in RAY_STRATEGIES else \
            f"with a chief and {workers} workers" if workers else "in one process"
        print(f"lstmkit tune -> {run.root}: {cfg.tuning.strategy} search {where}", flush=True)
        # here: a live progress line (the chief, if any, reports to it); in a chief or worker: Keras Tuner's log
        display = contextlib.nullcontext() if role else progress.Live(run.progress_file, sys.stdout)
        with display:
            spec, table = search.tune(prepared, cfg, run, workers=workers, verbose=bool(role))
    if spec is not None:
        best = results.read_best(run)
        print(f"{len(table)} trials; best val_loss {best['val_loss']:.5g} (trial {best['trial']}): "
              + ", ".join(f"{k}={v}" for k, v in spec.to_dict().items()))
        print(f"Train with it: lstmkit run --run-dir {args.run_dir or run.root} --from training")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Build the HTML report of a run folder."""
    from lstmkit.report.book import report  # Jupyter Book

    run = RunFolder(Path(args.run_dir or _latest_run_dir()).resolve())
    with run.lock("lstmkit report"):  # not while a run or a search is writing the folder
        index = report(run, strict=not args.no_strict)
    print(f"report built: {index}")
    return 0


def _latest_run_dir() -> Path:
    """The most recently modified run folder under runs/."""
    candidates = [p.parent for p in Path("runs").glob("*/config.yaml")]
    if not candidates:
        raise ConfigError("no run folder under runs/: run `lstmkit run` first or pass --run-dir")
    return max(candidates, key=lambda p: (p / "config.yaml").stat().st_mtime)


def cmd_export(args: argparse.Namespace) -> int:
    """Write the inference bundle of a finished run folder (stages through evaluation)."""
    with tensorflow_quiet():
        from lstmkit.bundle.runtime import load_bundle
        from lstmkit.stages.export import export_bundle

    run = RunFolder(Path(args.run_dir).resolve())
    if not run.root.is_dir():
        raise ConfigError(f"{args.run_dir}: no such run folder")
    with run.lock("lstmkit export"):  # not while a run is writing the folder
        path = export_bundle(run, Path(args.out))
    bundle = load_bundle(path)  # verifies what was written
    s = bundle.manifest.get("summary", {})
    print(f"bundle written: {path}\nversion {bundle.version}: {s.get('model', bundle.forecaster.name)}, look-back "
          f"{bundle.lookback}, horizon {bundle.horizon}, step {bundle.freq}, trained up to {bundle.cutoff}")

    def fmt(v) -> str:
        return "n/a" if v is None else f"{v:.4g}"
    if "test_mse" in s:
        print(f"test MSE {fmt(s.get('test_mse'))}, MAE {fmt(s.get('test_mae'))} ({bundle.units}); best baseline "
              f"{s.get('best_baseline')}: MSE {fmt(s.get('baseline_test_mse'))}, MAE {fmt(s.get('baseline_test_mae'))}")
    coverage = s.get("coverage") or {}
    levels = ", ".join(f"{k}% -> {v:.1%}" for k, v in coverage.items() if v is not None)
    print(f"intervals: split conformal on {s.get('calibration_windows')} {s.get('calibration')} windows"
          + (f"; test coverage {levels}" if levels else ""))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve forecasts of an inference bundle over HTTP (FastAPI on uvicorn, one worker process)."""
    import uvicorn

    from lstmkit.core.errors import BundleError

    with tensorflow_quiet():
        from lstmkit.bundle.runtime import load_bundle
        from lstmkit.service.app import API_KEY_ENV, create_app, resolve_places, safe_url

    key = os.environ.get(API_KEY_ENV)
    if not key:
        print(f"error: the environment variable {API_KEY_ENV} is not set: it holds the API key clients send in the "
              f"X-API-Key header of every POST (e.g. export {API_KEY_ENV}=$(openssl rand -hex 16))", file=sys.stderr)
        return 2
    overrides = _overrides(args.set)
    others = [k for k in overrides if not k.startswith("serve.")]
    if others:
        raise ConfigError(f"--set: lstmkit serve takes serve.* keys only, got {', '.join(others)}")
    folder = Path(args.bundle).resolve()
    try:
        bundle = load_bundle(folder)
    except BundleError as e:
        print(f"error: the bundle is refused: {e}", file=sys.stderr)
        return 2
    settings = from_dict(bundle.config.to_dict(), overrides).serve
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    state, url = resolve_places(folder, settings, args.db, args.state)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"lstmkit serve: bundle {folder} (version {bundle.version}, look-back {bundle.lookback}, horizon "
          f"{bundle.horizon}, step {bundle.freq})\n  state folder: {state}\n  database: {safe_url(url)}\n"
          f"  listening on http://{host}:{port} (OpenAPI at /docs)", flush=True)
    del bundle
    app = create_app(folder, settings, key, db_url=url, state=state)
    uvicorn.run(app, host=host, port=port, workers=1, access_log=args.access_log, log_level="info",
                timeout_graceful_shutdown=10)
    return 0


def cmd_kernel(args: argparse.Namespace) -> int:
    """Register the `lstmkit` Jupyter kernel for this Python."""
    from lstmkit.cli.pipeline import ensure_kernel  # jupyter_client and ipykernel

    print(f"kernel '{ensure_kernel()}' -> {sys.executable}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Print every configuration key with its default, or the resolved configuration of a file."""
    with tensorflow_quiet():  # the architectures' own settings: TensorFlow
        from lstmkit.stages.checks import config_reference, load_checked

    if args.file:
        print(yaml.safe_dump(load_checked(args.file, _overrides(args.set)).to_dict(), sort_keys=False), end="")
        return 0
    for row in config_reference():
        print(f"{row['key']:<28} {str(row['default']):<24} {row['help']}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of the `lstmkit` command."""
    p = argparse.ArgumentParser(prog="lstmkit", description="Reproducible, explainable LSTM forecasting: notebooks run by papermill, published with Jupyter Book.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the notebook series into a run folder")
    r.add_argument("--config", help=f"YAML profile (default: {DEFAULT_CONFIG}; with --from: the run folder's own config)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. --set training.epochs=5 (repeatable)")
    r.add_argument("--run-dir", help="run folder (default: runs/<profile name>)")
    r.add_argument("--from", dest="resume_from", metavar="STAGE", help="resume at a stage (name or number), reusing earlier outputs")
    r.add_argument("--to", metavar="STAGE", help="stop after this stage")
    r.add_argument("--progress", action="store_true", help="show papermill's per-cell progress bar (instead of the live progress line)")
    r.add_argument("--quiet", action="store_true", help="no live progress (trials, epochs, explained windows) under each stage's line")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("tune", help="run or resume the tuning search of a run folder, optionally with parallel workers",
                       description="Run or resume the search of a run folder whose data and preprocessing stages have run. "
                                   "With KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set, this "
                                   "process is the chief (TUNER_ID=chief) or a worker of a distributed Keras Tuner search.")
    t.add_argument("--run-dir", help="run folder (default: the most recent one under runs/)")
    t.add_argument("--workers", type=int, help="start a chief and this many worker processes here (default: tuning.workers)")
    t.add_argument("--ray-address", metavar="ADDR", help="pbt/asha: join the Ray cluster at ADDR (host:port or `auto`; "
                   "default: tuning.ray_address, empty = a local Ray instance)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (recorded in the run folder)")
    t.set_defaults(func=cmd_tune)

    b = sub.add_parser("report", help="build the Jupyter Book report of a run into _build/html")
    b.add_argument("--run-dir", help="run folder (default: the most recent one under runs/)")
    b.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    b.set_defaults(func=cmd_report)

    e = sub.add_parser("export", help="write the inference bundle of a finished run (model, scalers, calibration, metrics)")
    e.add_argument("--run-dir", required=True, help="run folder whose stages through evaluation have run")
    e.add_argument("--out", required=True, help="bundle folder to write (an existing bundle there is replaced)")
    e.set_defaults(func=cmd_export)

    v = sub.add_parser("serve", help="serve forecasts of an inference bundle over HTTP (needs LSTMKIT_API_KEY)",
                       description="Run the forecasting service (FastAPI on uvicorn) over a bundle written by "
                                   "`lstmkit export`. POST requests need the header X-API-Key equal to the environment "
                                   "variable LSTMKIT_API_KEY.")
    v.add_argument("bundle", metavar="DIR", help="bundle folder (lstmkit export --out DIR)")
    v.add_argument("--host", help="address to listen on (default: serve.host, the loopback)")
    v.add_argument("--port", type=int, help="TCP port (default: serve.port)")
    v.add_argument("--db", metavar="URL", help="SQLAlchemy database URL (default: serve.db, else SQLite in the state folder)")
    v.add_argument("--state", metavar="DIR", help="state folder: model versions, SQLite file, job logs (default: serve.state, else DIR-service)")
    v.add_argument("--set", action="append", metavar="serve.KEY=VALUE", help="override a serve.* key, e.g. --set serve.batch_max=32 (repeatable)")
    v.add_argument("--access-log", action="store_true", help="log every request (off by default: it costs time under load)")
    v.set_defaults(func=cmd_serve)

    k = sub.add_parser("kernel", help="register the 'lstmkit' Jupyter kernel for this Python")
    k.set_defaults(func=cmd_kernel)

    c = sub.add_parser("config", help="list every config key, or print a profile with overrides applied")
    c.add_argument("file", nargs="?", help="a YAML profile to resolve")
    c.add_argument("--set", action="append", metavar="KEY=VALUE")
    c.set_defaults(func=cmd_config)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lstmkit` command."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except LstmkitError as e:
        if os.environ.get("LSTMKIT_TRACEBACK"):  # where the error was raised, for a developer
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished stages are kept; resume with --from STAGE", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
