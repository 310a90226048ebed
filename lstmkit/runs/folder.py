"""The run folder: the one place that knows where each stage reads and writes its artifacts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstmkit.config import Config, ConfigError, from_dict, load_config
from lstmkit.core.errors import ArtifactMissing
from lstmkit.runs.lock import RunLock


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
        """Where a running stage's kernel leaves its latest progress for the command line (see lstmkit.core.progress)."""
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
            raise ArtifactMissing(f"{path} is missing: run the {stage} stage for run folder {self.root} first")
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
