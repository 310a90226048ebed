"""The run folder: the one place that knows where each stage reads and writes its artifacts."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmkit.config import Config, ConfigError, from_dict, load_config


def atomic_write_text(path: Path, text: str) -> None:
    """Write text so that readers see either the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, pretty-printed."""
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    """Serialise numpy scalars and arrays."""
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: Path) -> Any:
    """Read a JSON artifact."""
    return json.loads(Path(path).read_text())


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

    # --- 04 training
    @property
    def model_file(self) -> Path:
        return self.root / "training" / "model.keras"

    @property
    def checkpoint_file(self) -> Path:
        return self.root / "training" / "checkpoint.keras"

    @property
    def history_file(self) -> Path:
        return self.root / "training" / "history.json"

    @property
    def hyperparameters_file(self) -> Path:
        return self.root / "training" / "hyperparameters.json"

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

    # --- executed notebooks and figures
    @property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

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
