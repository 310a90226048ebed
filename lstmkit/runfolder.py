"""The run folder: the one place that knows where each stage reads and writes its artifacts."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lstmkit.config import Config, ConfigError, from_dict, load_config


@dataclass(frozen=True)
class RunFolder:
    """Paths of every artifact of one run; stages use these names and nothing else."""

    root: Path

    # --- configuration
    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    # --- 01 data
    @property
    def series_file(self) -> Path:
        return self.root / "data" / "series.parquet"

    @property
    def filled_file(self) -> Path:
        """Timestamps of the rows whose values were filled or inserted by a repair (absent when none were)."""
        return self.root / "data" / "filled.parquet"

    @property
    def ground_truth_file(self) -> Path:
        return self.root / "data" / "ground_truth.json"

    # --- 02 preprocessing
    @property
    def scaler_file(self) -> Path:
        return self.root / "preprocessing" / "scaler.joblib"

    @property
    def splits_file(self) -> Path:
        return self.root / "preprocessing" / "splits.json"

    # --- 03 tuning
    @property
    def tuning_dir(self) -> Path:
        return self.root / "tuning"

    @property
    def best_hyperparameters_file(self) -> Path:
        return self.root / "tuning" / "best_hyperparameters.json"

    @property
    def trials_file(self) -> Path:
        return self.root / "tuning" / "trials.csv"

    @property
    def lineage_file(self) -> Path:
        """Ray searches (pbt, asha): one row per trial and epoch, with its hyperparameters and whom it copied."""
        return self.root / "tuning" / "lineage.csv"

    # --- 04 training
    @property
    def models_dir(self) -> Path:
        """Every trained model, one saved forecaster folder per architecture and seed."""
        return self.root / "training" / "models"

    def model_dir(self, name: str, seed: int) -> Path:
        """The saved forecaster of one model (architecture name) and seed."""
        return self.models_dir / name / f"seed-{seed}"

    @property
    def selected_file(self) -> Path:
        """Which model is the run's selected one (best validation loss), and where it is saved."""
        return self.root / "training" / "selected.json"

    # --- 05 evaluation
    @property
    def metrics_file(self) -> Path:
        return self.root / "evaluation" / "metrics.json"

    @property
    def predictions_file(self) -> Path:
        return self.root / "evaluation" / "predictions.npz"

    # --- 06 explainability
    @property
    def attributions_file(self) -> Path:
        return self.root / "explainability" / "attributions.npz"

    @property
    def explanation_file(self) -> Path:
        return self.root / "explainability" / "summary.json"

    # --- 07 uncertainty
    @property
    def uncertainty_dir(self) -> Path:
        """Quantile-head and DeepAR models trained for the chapter, and its forecasts."""
        return self.root / "uncertainty"

    @property
    def uncertainty_metrics_file(self) -> Path:
        """`{forecaster/method: {coverage, coverage_per_step, joint_coverage, width, crps, msis, ...}}` on test windows."""
        return self.root / "uncertainty" / "metrics.json"

    @property
    def quantiles_file(self) -> Path:
        """Test-window quantile forecasts of every forecaster/method (scaled units), with the grid of levels."""
        return self.root / "uncertainty" / "quantiles.npz"

    # --- 08 anomalies
    @property
    def anomaly_labels_file(self) -> Path:
        """Injected anomalies of a synthetic run, in the labels format `{name: [[start, end], ...]}`."""
        return self.root / "data" / "anomaly_labels.json"

    @property
    def anomalies_dir(self) -> Path:
        return self.root / "anomalies"

    @property
    def anomaly_metrics_file(self) -> Path:
        """Detection metrics against the labels, with the random-score baseline (when there are labels)."""
        return self.root / "anomalies" / "metrics.json"

    @property
    def anomaly_scores_file(self) -> Path:
        """Per observation: timestamp, value, forecast, score, p-value, flag, alarm, label."""
        return self.root / "anomalies" / "scores.parquet"

    # --- 09 deployment
    @property
    def deployment_dir(self) -> Path:
        return self.root / "deployment"

    @property
    def bundle_dir(self) -> Path:
        """The inference bundle the deployment chapter exports and serves (`lstmkit export` writes the same)."""
        return self.root / "deployment" / "bundle"

    @property
    def deployment_metrics_file(self) -> Path:
        """Per policy: rolling error, retrain events, latency percentiles of the replay (with the baselines)."""
        return self.root / "deployment" / "metrics.json"

    @property
    def replay_file(self) -> Path:
        """Per policy and replayed step: timestamp, actual, forecast (step 1), model version, latency."""
        return self.root / "deployment" / "replay.parquet"

    # --- executed notebooks and figures
    @property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    @property
    def lock_file(self) -> Path:
        """The lock that keeps a second `lstmkit run`, `tune` or `report` out while one is writing (see RunLock)."""
        return self.root / ".lock"

    @property
    def progress_file(self) -> Path:
        """Where a running stage's kernel leaves its latest progress for the command line (see lstmkit.progress)."""
        return self.root / "logs" / "progress.json"

    def lock(self, command: str, create: bool = False) -> RunLock:
        """Context manager holding this run folder's lock for `command` (e.g. `lstmkit run`); see RunLock."""
        return RunLock(self, command, create)

    def log_file(self, stage: str) -> Path:
        """Where the kernel's own log lines (TensorFlow start-up messages and the like) of a stage go."""
        return self.root / "logs" / f"{stage}.log"

    def figure_file(self, name: str) -> Path:
        """Where a named figure of the report is saved as PNG."""
        return self.figures_dir / f"{name}.png"

    def require(self, path: Path, stage: str) -> Path:
        """Return path, or fail clearly naming the stage that should have produced it."""
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run the {stage} stage for run folder {self.root} first")
        return path

    def config(self) -> Config:
        """The configuration recorded in this run folder."""
        self.require(self.config_file, "data (01_data)")
        return load_config(self.config_file)


class RunFolderLocked(RuntimeError):
    """Another process holds the run folder's lock; the message names it (PID, command, start time)."""


LOCK_ENV = "LSTMKIT_RUN_LOCK"  # the lock file held by an ancestor process: its children (tuning workers) pass


class RunLock:
    """One command at a time per run folder: an exclusive `flock` on RUN/.lock for as long as the command runs.

    The holder writes its PID, command and start time into the file; a second command is refused at once with a
    message naming them. The kernel releases a flock when its holder dies, so a lock left by a killed process is
    simply taken over (with a line saying so). Child processes of the holder (papermill kernels, tuning workers)
    inherit LSTMKIT_RUN_LOCK naming the file and do not lock again. With `create`, the run folder is created.
    """

    def __init__(self, run: RunFolder, command: str, create: bool = False, notice=None):
        self.run, self.command, self.create = run, command, create
        self.notice = notice or (lambda line: print(line, file=sys.stderr, flush=True))
        self.fd: int | None = None
        self.took_over: int | None = None  # PID of the dead process whose lock was taken over
        self._saved_env: str | None = None
        self._created: list[Path] = []  # folders made for the lock, removed again if nothing else was written

    def acquire(self) -> RunLock:
        """Take the lock, or raise RunFolderLocked naming the process that holds it."""
        import fcntl

        path = self.run.lock_file
        if os.environ.get(LOCK_ENV) == str(path):
            return self  # a child of the holder (e.g. a tuning worker started for this run)
        if self.create:
            self._created = [p for p in (self.run.root, *self.run.root.parents) if not p.exists()]
            self.run.root.mkdir(parents=True, exist_ok=True)
        elif not self.run.root.is_dir():
            return self  # nothing to protect; the command itself says the folder is missing
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderLocked(self._refusal()) from None
        previous = _lock_holder(os.pread(fd, 4096, 0))
        info = {"pid": os.getpid(), "command": self.command, "since": datetime.now().isoformat(timespec="seconds"),
                "host": socket.gethostname()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self.fd = fd
        self._saved_env = os.environ.get(LOCK_ENV)
        os.environ[LOCK_ENV] = str(path)
        pid = previous.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and not pid_running(pid):
            self.took_over = pid
            self.notice(f"took over the lock of {_display(self.run.root)} left by PID {pid} "
                        f"({previous.get('command', 'unknown command')}), which is no longer running")
        return self

    def release(self) -> None:
        """Empty the lock file and release it (the file stays: removing it would race with a newcomer)."""
        import fcntl

        if self.fd is None:
            return
        if self._saved_env is None:
            os.environ.pop(LOCK_ENV, None)
        else:
            os.environ[LOCK_ENV] = self._saved_env
        try:
            os.ftruncate(self.fd, 0)
            if self._created and os.listdir(self.run.root) == [self.run.lock_file.name]:
                self.run.lock_file.unlink()  # a command refused before writing anything leaves no folder behind
                for folder in self._created:
                    folder.rmdir()
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def _refusal(self, attempts: int = 20) -> str:
        """The message for a refused command, naming the holder (waits briefly for a new holder to write its PID)."""
        info: dict = {}
        for _ in range(attempts):
            info = _lock_holder(self.run.lock_file.read_bytes() if self.run.lock_file.exists() else b"")
            if isinstance(info.get("pid"), int) and pid_running(info["pid"]):
                break
            time.sleep(0.05)
        pid = info.get("pid")
        since = info.get("since", "")
        try:
            started = datetime.fromisoformat(since)
            since = started.strftime("%H:%M:%S" if started.date() == datetime.now().date() else "%Y-%m-%d %H:%M:%S")
        except ValueError:
            pass
        who = f"PID {pid}" if pid else "another process (PID not recorded)"
        detail = ", ".join(x for x in (info.get("command"), f"since {since}" if since else "",
                                       f"on {info['host']}" if info.get("host") not in (None, socket.gethostname()) else "") if x)
        return (f"run folder {_display(self.run.root)} is locked by {who}" + (f" ({detail})" if detail else "")
                + "; wait for it or stop it")

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_holder(raw: bytes) -> dict:
    """The holder recorded in a lock file ({} when empty or unreadable)."""
    try:
        info = json.loads(raw.decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def pid_running(pid: int) -> bool:
    """Whether a process with this PID runs on this machine (a zombie, killed but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _display(path: Path) -> str:
    """A path relative to the working directory when it lies below it, else absolute."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def start_run(run_dir: str | Path, cfg: Config) -> RunFolder:
    """Create (or reuse) a run folder and record the configuration it runs with."""
    run = RunFolder(Path(run_dir).resolve())
    run.root.mkdir(parents=True, exist_ok=True)
    cfg.save(run.config_file)
    return run


def open_run(run_dir: str | Path, overrides: dict | None = None) -> tuple[RunFolder, Config]:
    """Open an existing run folder; overrides are applied and recorded in its config."""
    run = RunFolder(Path(run_dir).resolve())
    if not run.config_file.exists():
        raise ConfigError(f"{run.root} is not a run folder (no config.yaml): run the 01_data notebook or `lstmkit run` first")
    cfg = run.config()
    if overrides:
        cfg = from_dict(cfg.to_dict(), overrides)
        cfg.save(run.config_file)
    return run, cfg
