"""The notebooks a run executes, in order, and where the project that holds them is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstmkit.core.errors import ArtifactMissing, ConfigError


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


def project_root() -> Path:
    """The folder holding notebooks/ and configs/: the working directory if it has them, else the source checkout."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (candidate / "notebooks").is_dir() and (candidate / "_toc.yml").is_file():
            return candidate
    raise ArtifactMissing("cannot find the lstmkit project folder (with notebooks/ and _toc.yml): run from the repository root")


def stage_index(name: str) -> int:
    """Position of a stage given by name (`training`) or number (`4`, `04`)."""
    for i, s in enumerate(STAGES):
        if name in (s.name, s.notebook, s.notebook.split("_")[0], str(i + 1)):
            return i
    raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(s.name for s in STAGES)}")
