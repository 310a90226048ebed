"""End to end: the quick profile comparing every architecture (one seed each), tuned by population-based training;
its report (the comparison table, the PBT lineage) and resuming its training. The spread over seeds (mean ± sd) is
checked on the ETTh2 comparison (tests/cli/test_e2e_etth2.py), which trains three architectures over two seeds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from lstmkit.models.neural import architectures
from tests.cli.project import copy_project, lstmkit

pytestmark = pytest.mark.e2e

ZOO = list(architectures.names())  # the quick profile runs with every architecture, side by side
# tuned by a tiny population-based training search (3 trials, 2 epochs, exploit/explore after each): the report shows
# its lineage and the lstm replays the winner's schedule
PBT = ["--set", "tuning.strategy=pbt", "--set", "tuning.cv_folds=1", "--set", "tuning.max_trials=3",
       "--set", "tuning.epochs=2", "--set", "tuning.perturbation_interval=1"]
COMPARE = ["--set", f"compare.architectures=[{','.join(ZOO)}]", "--set", "compare.seeds=1", "--set", "training.epochs=1",
           *PBT, "--set", "explain.windows=4", "--set", "explain.steps=8"]


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory) -> Path:
    """The quick profile tuned by a tiny PBT search, comparing every architecture with one seed each (tiny epochs),
    its report built strictly (in a project copy of its own, so that the quick run's report stays as built)."""
    project = copy_project(tmp_path_factory.mktemp("compare"))
    lstmkit(project, "run", "--config", "configs/quick.yaml", "--run-dir", "runs/compare", *COMPARE)
    lstmkit(project, "report", "--run-dir", "runs/compare")
    return project / "runs" / "compare"


def test_comparison_run_trains_every_model_and_selects_on_validation(compare_run: Path):
    selected = json.loads((compare_run / "training" / "selected.json").read_text())
    assert [(m["model"], m["seed"]) for m in selected["models"]] == [(a, 7) for a in ZOO]
    for m in selected["models"]:
        assert (compare_run / m["path"] / "forecaster.json").is_file()
    means = selected["val_loss_mean"]
    assert selected["model"] == min(means, key=means.get)  # by validation loss, never test
    metrics = json.loads((compare_run / "evaluation" / "metrics.json").read_text())
    assert list(metrics["models"]) == [*ZOO, "ensemble"]
    assert metrics["meta"]["selected"] == {"model": selected["model"], "seed": selected["seed"],
                                           "criterion": "validation loss"}
    for name in ZOO:
        m = metrics["models"][name]
        assert m["seeds"] == [7] and m["sd"] is None and m["parameters"] > 0 and m["fit_seconds"] > 0
        assert 0 <= m["dm"]["p_value"] <= 1
        assert len(m["per_horizon"]["original"]["rmse"]) == metrics["meta"]["horizon"]
    assert metrics["models"]["ensemble"]["members"] == ZOO  # compare.ensemble: mean (of every model)

    with np.load(compare_run / "evaluation" / "predictions.npz") as predictions:
        assert {"actual", *ZOO, "ensemble", "persistence", "linear"} <= set(predictions.files)
        np.testing.assert_allclose(predictions["ensemble"], np.mean([predictions[a] for a in ZOO], axis=0))


def test_comparison_report_shows_the_comparison_table(compare_run: Path):
    html = compare_run.parent.parent / "_build" / "html" / "book"
    evaluation = (html / "05_evaluation.html").read_text()
    for text in ("test MSE (scaled)", "test MAE (scaled)", "DM p-value", "parameters", "training s",
                 *ZOO, "ensemble", "Error by horizon step"):
        assert text in evaluation, text
    assert len(re.findall(r"<img", evaluation)) == 4  # comparison bars, forecasts, per-horizon errors, residuals
    intro = (html / "intro.html").read_text()
    metrics = json.loads((compare_run / "evaluation" / "metrics.json").read_text())
    assert f"is <strong>{metrics['meta']['selected']['model']}</strong>" in intro
    assert f"lowest test MSE) is <strong>{metrics['meta']['best_on_test']}</strong>" in intro
    assert "test MSE (scaled)" in intro
    training = (html / "04_training.html").read_text()
    assert "training seconds" in training and len(re.findall(r"<img", training)) == 2


def test_comparison_run_tuned_by_pbt_shows_its_lineage_and_replays_its_schedule(compare_run: Path):
    from lstmkit.stages.training import REPLAYED

    best = json.loads((compare_run / "tuning" / "best_hyperparameters.json").read_text())
    assert best["strategy"] == "pbt" and best["architecture"] == "lstm"
    assert sum(s["epochs"] for s in best["schedule"]) == best["best_epoch"]
    lineage = (compare_run / "tuning" / "lineage.csv").read_text().splitlines()
    assert lineage[0].startswith("trial,epoch,val_loss,") and len(lineage) == 1 + 3 * 2  # 3 trials x 2 epochs
    assert (compare_run / "figures" / "pbt_lineage.png").is_file()
    html = compare_run.parent.parent / "_build" / "html" / "book"
    tuning = (html / "03_tuning.html").read_text()
    after = tuning.split("horizontal track is one trial", 1)  # the lineage figure's caption, then the figure
    assert len(after) == 2 and "<img" in after[1].split("The winner (trial", 1)[0]
    for text in ("until epoch", "learning_rate", "dropout", "batch_size", "replays it"):  # the winner's schedule table
        assert text in after[1], text
    training = (html / "04_training.html").read_text()
    assert f"<strong>lstm</strong>, hyperparameters from {REPLAYED}" in training
    selected = json.loads((compare_run / "training" / "selected.json").read_text())
    for m in selected["models"]:
        assert ("schedule" in m) == (m["model"] == "lstm"), m["model"]
        if m["model"] == "lstm":
            assert m["schedule"] == best["schedule"] and m["source"] == REPLAYED


def test_resuming_training_reuses_the_trained_models(compare_run: Path):
    project = compare_run.parent.parent
    stamps = {p: p.stat().st_mtime_ns for p in (compare_run / "training" / "models").glob("*/seed-*/model.keras")}
    before = json.loads((compare_run / "evaluation" / "metrics.json").read_text())
    lstmkit(project, "run", "--from", "training", "--to", "evaluation", "--run-dir", "runs/compare")
    assert len(stamps) == len(ZOO) and all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # loaded, not retrained
    executed = (compare_run / "notebooks" / "04_training.ipynb").read_text()
    assert executed.count("loaded (already trained)") == len(ZOO)
    after = json.loads((compare_run / "evaluation" / "metrics.json").read_text())
    assert after["models"]["gru"]["scaled"] == before["models"]["gru"]["scaled"]
