"""Pipeline: run the numbered notebooks in order with papermill, each writing into the run folder."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from lstmkit.config import Config
from lstmkit.runfolder import RunFolder

KERNEL_NAME = "lstmkit"


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline and the notebook that carries it out."""

    name: str
    notebook: str
    title: str


STAGES = (
    Stage("data", "01_data.ipynb", "Data"),
    Stage("preprocessing", "02_preprocessing.ipynb", "Preprocessing"),
    Stage("tuning", "03_tuning.ipynb", "Tuning"),
    Stage("training", "04_training.ipynb", "Training"),
    Stage("evaluation", "05_evaluation.ipynb", "Evaluation"),
    Stage("explainability", "06_explainability.ipynb", "Explainability"),
    Stage("uncertainty", "07_uncertainty.ipynb", "Uncertainty"),
    Stage("anomalies", "08_anomalies.ipynb", "Anomalies"),
    Stage("deployment", "09_deployment.ipynb", "Deployment"),
)


class StageFailed(RuntimeError):
    """A notebook cell raised: names the notebook, the cell and the error."""


def project_root() -> Path:
    """The folder holding notebooks/ and configs/: the working directory if it has them, else the source checkout."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (candidate / "notebooks").is_dir() and (candidate / "_toc.yml").is_file():
            return candidate
    raise FileNotFoundError("cannot find the lstmkit project folder (with notebooks/ and _toc.yml): run from the repository root")


def stage_index(name: str) -> int:
    """Position of a stage given by name (`training`) or number (`4`, `04`)."""
    for i, s in enumerate(STAGES):
        if name in (s.name, s.notebook, s.notebook.split("_")[0], str(i + 1)):
            return i
    raise ValueError(f"unknown stage {name!r}; stages: {', '.join(s.name for s in STAGES)}")


def ensure_kernel() -> str:
    """Register a Jupyter kernel named `lstmkit` that runs this Python, so papermill finds it anywhere."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    try:
        spec = ksm.get_kernel_spec(KERNEL_NAME)
        if Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (lstmkit)", prefix=sys.prefix)
    spec = ksm.get_kernel_spec(KERNEL_NAME)
    if Path(spec.argv[0]).resolve() != Path(sys.executable).resolve():
        install(user=True, kernel_name=KERNEL_NAME, display_name="Python (lstmkit)")  # a user-level spec shadows sys.prefix
    return KERNEL_NAME


def _failure_message(stage: Stage, output: Path, err) -> str:
    """One paragraph naming the notebook, the cell and the error."""
    cell = getattr(err, "cell_index", None)
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    where = f"cell {cell}" if cell is not None else "a cell"
    source = getattr(err, "source", "")
    first = source.strip().splitlines()[0] if source.strip() else ""
    return (f"stage '{stage.name}' failed in notebook {stage.notebook}, {where}"
            + (f" (`{first}`)" if first else "") + f": {ename}: {evalue}\n"
            f"The partly executed notebook is kept at {output}")


@contextlib.contextmanager
def kernel_stderr_to(path: Path):
    """Send the stderr of kernel processes started inside the block to a log file, keeping ours on the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    ours = os.fdopen(os.dup(saved), "w", buffering=1)
    previous = sys.stderr
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
        sys.stderr = ours
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sys.stderr = previous
            ours.close()


def run_stage(stage: Stage, run: RunFolder, root: Path, kernel: str, parameters: dict, progress: bool = False) -> Path:
    """Execute one notebook with papermill into the run folder; raise StageFailed naming the cell on error."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    output = run.notebooks_dir / stage.notebook
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with kernel_stderr_to(run.log_file(stage.name)):
            pm.execute_notebook(str(root / "notebooks" / stage.notebook), str(output), parameters=parameters,
                                kernel_name=kernel, cwd=str(root / "notebooks"), progress_bar=progress,
                                request_save_on_cell_execute=True)
    except PapermillExecutionError as err:
        raise StageFailed(_failure_message(stage, output, err)) from None
    return output


def absolute_paths(cfg: Config) -> Config:
    """The configuration with `data.path` and `anomalies.labels` made absolute against the working directory (the
    notebooks run in notebooks/, where a relative path would name another file)."""
    import dataclasses

    data, labels = cfg.data, cfg.anomalies.labels
    if data.path and not Path(data.path).is_absolute():
        data = dataclasses.replace(data, path=str(Path(data.path).resolve()))
    if labels and not Path(labels).is_absolute():
        labels = str(Path(labels).resolve())
    return dataclasses.replace(cfg, data=data, anomalies=dataclasses.replace(cfg.anomalies, labels=labels))


def check_inputs(cfg: Config) -> None:
    """Load and validate the configured data and splits before anything is written (raises DataError/ConfigError).

    Covers every stage's needs from the row counts alone: a window in every split, the seasonal period's MASE scale
    on the training rows, and, when tuning, the longest searched look-back and the walk-forward folds. What only
    serves a figure (decomposition, zoomed views) and the explained windows degrade in their chapters instead.
    """
    from lstmkit.data import load_series
    from lstmkit.preprocessing import check_splits
    from lstmkit.search_space import check_space_fits, longest_lookback
    from lstmkit.seasonality import resolve_config

    frame = load_series(cfg).frame
    cfg, _ = resolve_config(cfg, frame.index)
    bounds = check_splits(len(frame), cfg)
    check_season_fits(bounds, cfg.evaluation.seasonal_period)
    if cfg.tuning.strategy != "none":
        check_space_fits(bounds, cfg.window.horizon, cfg)
        check_folds_fit(bounds, longest_lookback(cfg), cfg.window.horizon, cfg.tuning.cv_folds)


def check_season_fits(bounds, period: int) -> None:
    """ConfigError if the training split holds no season plus one step, which the MASE scale needs (an explicit
    `evaluation.seasonal_period`; `auto` falls back to 1 by itself, see seasonality.resolve_config)."""
    from lstmkit.config import ConfigError

    a, b = bounds.train
    if b - a <= period:
        raise ConfigError(f"evaluation.seasonal_period: {period} needs a training split of more than {period} rows "
                          f"(the MASE scale compares each training row with the one a season earlier), but it has "
                          f"{b - a} (rows {a}-{b - 1}); set a shorter period (1 = persistence) or `auto`, or use a "
                          f"longer series")


def check_folds_fit(bounds, lookback: int, horizon: int, k: int) -> None:
    """ConfigError if the first of k walk-forward tuning folds (tuning.cv_folds) cannot hold one training window of
    the longest look-back searched; each fold validates on a block as long as the validation split."""
    from lstmkit.config import ConfigError

    if k <= 1:
        return
    end, val_rows = bounds.val[1], bounds.val[1] - bounds.val[0]
    first_train = end - k * val_rows
    if first_train < lookback + horizon:
        most = max(1, (end - lookback - horizon) // max(val_rows, 1))
        raise ConfigError(f"tuning.cv_folds: {k} walk-forward folds of {val_rows} validation rows leave the first "
                          f"fold {max(first_train, 0)} training rows, fewer than the longest look-back searched + "
                          f"window.horizon = {lookback + horizon}; use at most {most} fold(s), a shorter look-back, "
                          f"or a longer series")


def run_pipeline(run: RunFolder, cfg: Config, start: str | None = None, stop: str | None = None,
                 echo=print, progress: bool = False, live: TextIO | None = None) -> list[Path]:
    """Run the stages from `start` (default: the first) to `stop` (default: the last); return the executed notebooks.

    With `live` (a stream, e.g. sys.stdout), each stage's progress (trials, epochs, explained windows) is shown on it
    as the stage runs, read from the run folder's progress file that the kernel writes (lstmkit.progress).
    """
    from lstmkit import progress as live_progress
    root = project_root()
    kernel = ensure_kernel()
    first = stage_index(start) if start else 0
    last = stage_index(stop) if stop else len(STAGES) - 1
    if first > 0:
        missing = [s.notebook for s in STAGES[:first] if not (run.notebooks_dir / s.notebook).exists()]
        if missing:
            raise StageFailed(f"cannot resume at '{STAGES[first].name}': earlier stages have not run in {run.root} "
                              f"({', '.join(missing)} missing)")
        from lstmkit.data import read_series
        from lstmkit.seasonality import resolve_config

        # a profile given with --from may say `auto`: resolve it against the series the data stage stored
        cfg, _ = resolve_config(cfg, read_series(run.require(run.series_file, "data (01_data)")).index)
    cfg = absolute_paths(cfg)  # the stages run in notebooks/: files named relative to the working directory
    if first == 0:
        check_inputs(cfg)
    cfg.save(run.config_file)
    outputs = []
    for i in range(first, last + 1):
        stage = STAGES[i]
        header = f"[{i + 1}/{len(STAGES)}] {stage.name:<15} {stage.notebook} ..."
        echo(header, end="", flush=True)
        t0 = time.perf_counter()
        params = {"run_dir": str(run.root)}
        if i == 0:
            params |= {"config": str(run.config_file), "overrides": {}}
        display = live_progress.Live(run.progress_file, live, header) if live is not None else contextlib.nullcontext()
        try:
            with display:  # the kernel inherits LSTMKIT_PROGRESS_FILE from this process
                outputs.append(run_stage(stage, run, root, kernel, params, progress))
        except StageFailed:
            echo(("    " if getattr(display, "lines", 0) else " ") + "failed")
            raise
        echo(("    " if getattr(display, "lines", 0) else " ") + f"done in {time.perf_counter() - t0:.1f} s")
    return outputs
