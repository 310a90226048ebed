"""The papermill pipeline: the numbered notebooks executed in order into a run folder.

The stages of one `lstmkit run` share one kernel (`StageKernel`): Python, lstmkit and TensorFlow start once instead
of once per notebook, and each notebook still begins as a fresh one would: an empty namespace, execution counts from
1, no figure left open, the kernel's stderr in the stage's own log. A notebook run by hand or by papermill alone starts
its own kernel, so nothing a notebook needs can come from an earlier one unnoticed (the tests run them one by one).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from jupyter_client.manager import KernelManager

from lstmkit.config import Config
from lstmkit.core import progress as live_progress
from lstmkit.core.errors import StageFailed
from lstmkit.data.seasonality import resolve_config
from lstmkit.data.series import read_series
from lstmkit.runs.folder import RunFolder
from lstmkit.runs.notebooks import STAGES, Stage, project_root, stage_index
from lstmkit.stages.checks import absolute_paths, check_inputs

KERNEL_NAME = "lstmkit"
KERNEL_START_TIMEOUT_S = 120
PROLOGUE = """\
get_ipython().run_line_magic("reset", "-f")
import os as _os, sys as _sys
_fd = _os.open({log!r}, _os.O_WRONLY | _os.O_CREAT | _os.O_APPEND, 0o644)
_os.dup2(_fd, 2)
_os.close(_fd)
if {progress!r} is None:
    _os.environ.pop({env!r}, None)
else:
    _os.environ[{env!r}] = {progress!r}
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
del _os, _sys, _fd
get_ipython().execution_count = 1
"""  # run in the shared kernel before each stage's notebook (see StageKernel.prepare)


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


class StageKernel:
    """One IPython kernel that executes a run's notebooks one after the other (see the module docstring)."""

    def __init__(self, kernel_name: str, cwd: Path):
        """A kernel of the named spec, started on first use in `cwd` (the notebooks' folder)."""
        self.manager = KernelManager(kernel_name=kernel_name)
        self.cwd = cwd

    def prepare(self, log: Path) -> KernelManager:
        """Start the kernel if it is not running (its start-up lines go to `log`), then give the next notebook a clean
        namespace, its stderr in `log` and this process's progress variable; returns the kernel's manager."""
        if not self.manager.has_kernel or not self.manager.is_alive():
            with kernel_stderr_to(log):
                self.manager.start_kernel(cwd=str(self.cwd))
        client = self.manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=KERNEL_START_TIMEOUT_S)
            code = PROLOGUE.format(log=str(log), env=live_progress.ENV, progress=os.environ.get(live_progress.ENV))
            reply = client.execute_interactive(code, store_history=False, timeout=KERNEL_START_TIMEOUT_S,
                                               output_hook=lambda msg: None)
        finally:
            client.stop_channels()
        if reply["content"]["status"] != "ok":
            raise StageFailed(f"the kernel could not be prepared for the next stage: {reply['content'].get('ename')}: "
                              f"{reply['content'].get('evalue')}")
        return self.manager

    def shutdown(self) -> None:
        """Stop the kernel, if it runs."""
        if self.manager.has_kernel:
            self.manager.shutdown_kernel(now=False)


def run_stage(stage: Stage, run: RunFolder, root: Path, kernel: str, parameters: dict, progress: bool = False,
              shared: StageKernel | None = None) -> Path:
    """Execute one notebook with papermill into the run folder (in `shared`'s kernel when given, else in a kernel of
    its own); raise StageFailed naming the cell on error."""
    import papermill as pm  # papermill loads nbformat, nbclient and their schemas: only when a notebook runs
    from papermill.exceptions import PapermillExecutionError

    output = run.notebooks_dir / stage.notebook
    output.parent.mkdir(parents=True, exist_ok=True)
    log = run.log_file(stage.name)
    try:
        km = shared.prepare(log) if shared is not None else None  # the shared kernel sends its stderr to log itself
        with kernel_stderr_to(log) if km is None else contextlib.nullcontext():
            pm.execute_notebook(str(root / "notebooks" / stage.notebook), str(output), parameters=parameters,
                                kernel_name=kernel, cwd=str(root / "notebooks"), progress_bar=progress,
                                request_save_on_cell_execute=True, **({"km": km} if km is not None else {}))
    except PapermillExecutionError as err:
        raise StageFailed(_failure_message(stage, output, err)) from None
    return output


def run_pipeline(run: RunFolder, cfg: Config, start: str | None = None, stop: str | None = None,
                 echo=print, progress: bool = False, live: TextIO | None = None) -> list[Path]:
    """Run the stages from `start` (default: the first) to `stop` (default: the last); return the executed notebooks.

    With `live` (a stream, e.g. sys.stdout), each stage's progress (trials, epochs, explained windows) is shown on it
    as the stage runs, read from the run folder's progress file that the kernel writes (lstmkit.core.progress).
    """
    root = project_root()
    kernel = ensure_kernel()
    first = stage_index(start) if start else 0
    last = stage_index(stop) if stop else len(STAGES) - 1
    if first > 0:
        missing = [s.notebook for s in STAGES[:first] if not (run.notebooks_dir / s.notebook).exists()]
        if missing:
            raise StageFailed(f"cannot resume at '{STAGES[first].name}': earlier stages have not run in {run.root} "
                              f"({', '.join(missing)} missing)")
        # a profile given with --from may say `auto`: resolve it against the series the data stage stored
        cfg, _ = resolve_config(cfg, read_series(run.require(run.series_file, "data (01_data)")).index)
    cfg = absolute_paths(cfg)  # the stages run in notebooks/: files named relative to the working directory
    if first == 0:
        check_inputs(cfg)
    cfg.save(run.config_file)
    outputs = []
    shared = StageKernel(kernel, root / "notebooks")
    try:  # the stages share one kernel (the module docstring says how each still starts afresh)
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
                with display:  # sets LSTMKIT_PROGRESS_FILE here, which StageKernel.prepare passes on
                    outputs.append(run_stage(stage, run, root, kernel, params, progress, shared))
            except StageFailed:
                echo(("    " if getattr(display, "lines", 0) else " ") + "failed")
                raise
            echo(("    " if getattr(display, "lines", 0) else " ") + f"done in {time.perf_counter() - t0:.1f} s")
    finally:
        shared.shutdown()
    return outputs
