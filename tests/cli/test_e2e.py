"""End to end: the quick profile through papermill and the CLI, the Jupyter Book report, and the built HTML."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmkit.bundle.runtime import load_bundle
from lstmkit.data.series import read_series
from tests.cli.project import copy_project, lstmkit, render_in_browser

pytestmark = pytest.mark.e2e

STAGE_NOTEBOOKS = ["01_data", "02_preprocessing", "03_tuning", "04_training", "05_evaluation", "06_explainability", "07_uncertainty",
                   "08_anomalies", "09_deployment"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project, so that runs and builds stay out of the checkout."""
    return copy_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def quick_run(project: Path) -> Path:
    """The quick profile run end to end with one training epoch, then its report built."""
    proc = lstmkit(project, "run", "--config", "configs/quick.yaml", "--set", "training.epochs=1")
    assert "[9/9] deployment" in proc.stdout
    lstmkit(project, "report", "--run-dir", "runs/quick")
    return project / "runs" / "quick"


def test_run_writes_every_stage_output(quick_run: Path):
    for nb in STAGE_NOTEBOOKS:
        executed = json.loads((quick_run / "notebooks" / f"{nb}.ipynb").read_text())
        code = [c for c in executed["cells"] if c["cell_type"] == "code"]
        assert all(c.get("execution_count") for c in code), f"{nb}: not every cell ran"
        assert any("injected-parameters" in c["metadata"].get("tags", []) for c in code), f"{nb}: parameters not injected"
    for artifact in ("config.yaml", "data/series.parquet", "data/ground_truth.json", "preprocessing/scaler.joblib",
                     "tuning/best_hyperparameters.json", "tuning/trials.csv", "training/selected.json",
                     "training/models/lstm/seed-7/forecaster.json", "training/models/lstm/seed-7/model.keras",
                     "training/models/lstm/seed-7/history.csv", "evaluation/predictions.npz",
                     "explainability/attributions.npz",
                     "explainability/summary.json"):
        assert (quick_run / artifact).is_file(), artifact
    assert "epochs: 1" in (quick_run / "config.yaml").read_text()  # the --set override was recorded


def test_metrics_json_follows_the_schema(quick_run: Path):
    metrics = json.loads((quick_run / "evaluation" / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"persistence", "seasonal_naive", "linear", "nlinear", "autoreg"}
    horizon = metrics["meta"]["horizon"]
    for name, m in [("model", metrics["model"]), *metrics["baselines"].items()]:
        for units in ("scaled", "original"):
            assert {"mse", "rmse", "mae", "mape", "smape", "mase"} <= set(m[units]), name
            assert m[units]["rmse"] == pytest.approx(m[units]["mse"] ** 0.5)
            assert len(m["per_horizon"][units]["rmse"]) == horizon
    assert metrics["meta"]["rmse_to_noise_floor"] == pytest.approx(metrics["model"]["original"]["rmse"] / 0.3)
    # the default run: one model, one seed, no ensemble; `models` holds it with the same figures as `model`
    assert list(metrics["models"]) == ["lstm"] and metrics["meta"]["selected"]["model"] == "lstm"
    assert metrics["models"]["lstm"]["original"] == pytest.approx(metrics["model"]["original"])
    assert metrics["models"]["lstm"]["seeds"] == [7] and metrics["models"]["lstm"]["sd"] is None


def test_report_has_every_chapter_with_metrics_and_figures(quick_run: Path):
    html = quick_run.parent.parent / "_build" / "html"
    assert "book/intro.html" in (html / "index.html").read_text()  # Jupyter Book's index redirects to the root page
    intro = (html / "book" / "intro.html").read_text()
    metrics = json.loads((quick_run / "evaluation" / "metrics.json").read_text())
    for name in ("lstm", "persistence", "seasonal_naive", "linear"):
        assert name in intro
    assert f"{metrics['model']['original']['rmse']:.4g}" in intro  # the table shows this run's numbers
    assert "noise floor" in intro
    for nb in STAGE_NOTEBOOKS:
        assert f"{nb}.html" in intro, f"{nb} missing from the navigation"
        page = (html / "book" / f"{nb}.html").read_text()
        assert "Traceback" not in page and "cuda_platform" not in page, nb
        images = re.findall(r'<img[^>]+src="([^"]+)"', page)
        assert images, f"{nb} has no figure"
        for src in images:
            assert (html / "book" / src).resolve().is_file(), f"{nb}: missing image {src}"
    assert "window.lookback" in (html / "book" / "configuration.html").read_text()
    tuning = (html / "book" / "03_tuning.html").read_text()  # quick: 3 trials, 2 walk-forward folds
    assert len(re.findall(r"<img", tuning)) == 5  # trials, effects, importance, parallel coordinates, folds
    for heading in ("Walk-forward folds", "Effect of each hyperparameter", "Parallel coordinates", "Per-fold losses"):
        assert heading in tuning
    explainability = (html / "book" / "06_explainability.html").read_text()
    # completeness, heatmap, channel shares, lag profiles, ground-truth ranks, four windows, one window's story,
    # agreement over inputs and over lag blocks
    assert len(re.findall(r"<img", explainability)) == 9
    for text in ("Attributions against the ground truth", "driving pairs", "x1 @ lag 6", "Cross-checks", "Spearman correlation"):
        assert text in explainability, text


def test_uncertainty_and_anomaly_chapters_report_calibrated_intervals_and_injected_anomalies(quick_run: Path):
    unc = json.loads((quick_run / "uncertainty" / "metrics.json").read_text())
    # every configured method on the selected model, beside the conformalised seasonal-naive baseline
    # MC dropout needs the tuned dropout to be positive; otherwise the chapter says why it was skipped
    assert ("lstm/mc_dropout" in unc) != ("mc_dropout" in unc["meta"]["skipped"])
    for key in ("lstm/conformal", "lstm/aci", "lstm-quantile/quantile", "seasonal_naive/conformal", "seasonal_naive/aci"):
        m = unc[key]
        assert set(m["coverage"]) == {"80", "90", "95"}, key  # level labels: percentages (lstmkit.core.labels)
        assert len(m["coverage_per_step"]["90"]) == unc["meta"]["horizon"]
        assert m["crps"] > 0 and m["width"]["95"] >= m["width"]["80"], key
    assert unc["meta"]["calibration"] == "val"
    anomalies = json.loads((quick_run / "anomalies" / "metrics.json").read_text())
    for k in ("auc_roc", "auc_pr", "precision", "recall", "f1", "event_f1", "false_alarm_rate", "random_baseline"):
        assert k in anomalies, k
    labels = json.loads((quick_run / "data" / "anomaly_labels.json").read_text())
    assert len(next(iter(labels.values()))) == 3  # quick.yaml injects three anomalies
    html = quick_run.parent.parent / "_build" / "html" / "book"
    uncertainty_page = (html / "07_uncertainty.html").read_text()
    for text in ("seasonal_naive", "aci", "validation"):
        assert text in uncertainty_page, text
    assert len(re.findall(r"<img", uncertainty_page)) >= 4  # fan chart, reliability, PIT, width over time
    assert "random" in (html / "08_anomalies.html").read_text()  # every detection metric beside random scores


def test_deployment_chapter_replays_the_test_span_against_the_service(quick_run: Path):
    deployment = json.loads((quick_run / "deployment" / "metrics.json").read_text())
    assert (quick_run / "deployment" / "bundle" / "manifest.json").is_file()  # the exported bundle it served
    assert list(deployment["policies"]) == ["static", "periodic", "drift"] and deployment["meta"]["steps"] == 40
    assert deployment["policies"]["static"]["retrains"] == []
    periodic = deployment["policies"]["periodic"]["retrains"]  # quick.yaml: retrain after 25 of 40 observations
    assert [e["observation"] for e in periodic] == [25] and periodic[0]["status"] == "succeeded", periodic
    for name, m in [*deployment["policies"].items(), *deployment["baselines"].items()]:
        assert m["original"]["mae"] > 0 and len(m["original"]["mae_per_step"]) == deployment["meta"]["horizon"], name
    for m in deployment["policies"].values():
        assert m["latency_ms"]["n"] == 50 and 0 < m["latency_ms"]["p50"] <= m["latency_ms"]["p99"]
        assert set(m["coverage"]) == {"80", "90", "95"}
    page = (quick_run.parent.parent / "_build" / "html" / "book" / "09_deployment.html").read_text()
    assert len(re.findall(r"<img", page)) == 3  # timeline, rolling error, latency
    for text in ("seasonal_naive", "persistence", "lstmkit serve", "X-API-Key", "p99", "every 25 observations"):
        assert text in page, text


def test_a_finished_run_exports_a_bundle_that_forecasts(quick_run: Path):
    project = quick_run.parent.parent
    out = lstmkit(project, "export", "--run-dir", "runs/quick", "--out", "exported")
    bundle = load_bundle(project / "exported")
    assert bundle.version in out.stdout
    forecast = bundle.predict(read_series(quick_run / "data" / "series.parquet"))
    assert len(forecast) == bundle.horizon and np.isfinite(forecast.to_numpy()).all()


def test_plain_jupyter_book_build_works_after_a_run(quick_run: Path):
    project = quick_run.parent.parent
    exe = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(exe), "build", ".", "-W"], cwd=project, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_resume_from_training_reproduces_the_metrics(quick_run: Path):
    project = quick_run.parent.parent
    before = json.loads((quick_run / "evaluation" / "metrics.json").read_text())
    first_data = (quick_run / "notebooks" / "01_data.ipynb").stat().st_mtime
    proc = lstmkit(project, "run", "--from", "training", "--to", "evaluation", "--run-dir", "runs/quick")
    assert "[1/9]" not in proc.stdout and "[4/9] training" in proc.stdout and "[6/9]" not in proc.stdout
    assert (quick_run / "notebooks" / "01_data.ipynb").stat().st_mtime == first_data
    after = json.loads((quick_run / "evaluation" / "metrics.json").read_text())
    assert after["model"] == before["model"]  # same config and seed: the same model and the same test metrics


def test_notebooks_run_directly_with_papermill_and_their_default_parameters(project: Path):
    """As in JupyterLab: no injected parameters, working directory notebooks/, defaults point at runs/interactive."""
    import papermill as pm

    out = project / "executed"
    out.mkdir()
    for nb in ("01_data", "02_preprocessing"):
        pm.execute_notebook(str(project / "notebooks" / f"{nb}.ipynb"), str(out / f"{nb}.ipynb"),
                            kernel_name="lstmkit", cwd=str(project / "notebooks"), progress_bar=False)
    run = project / "runs" / "interactive"
    assert "length: 1200" in (run / "config.yaml").read_text()  # the quick profile, the notebooks' default
    assert (run / "data" / "series.parquet").is_file() and (run / "preprocessing" / "splits.json").is_file()


def test_failing_cell_names_notebook_and_cell_and_keeps_partial_output(quick_run: Path):
    project = quick_run.parent.parent
    broken = project / "runs" / "broken"
    shutil.copytree(quick_run, broken)
    (broken / "training" / "selected.json").unlink()  # the evaluation notebook's input is gone
    explained = (broken / "notebooks" / "06_explainability.ipynb").stat().st_mtime_ns
    proc = lstmkit(project, "run", "--from", "evaluation", "--run-dir", "runs/broken", check=False)
    assert proc.returncode == 1
    assert re.search(r"stage 'evaluation' failed in notebook 05_evaluation\.ipynb, cell \d+", proc.stderr), proc.stderr
    assert "selected.json is missing: run the training (04_training) stage" in proc.stderr
    partial = json.loads((broken / "notebooks" / "05_evaluation.ipynb").read_text())
    errors = [o for c in partial["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "ArtifactMissing"  # the partly executed notebook, with the error
    assert (broken / "notebooks" / "06_explainability.ipynb").stat().st_mtime_ns == explained  # later stages not run


def test_bad_config_key_lists_valid_keys(project: Path):
    proc = lstmkit(project, "run", "--config", "configs/quick.yaml", "--set", "training.epoch=1", check=False)
    assert proc.returncode == 2
    assert "unknown config key 'training.epoch'" in proc.stderr and "training.epochs" in proc.stderr


def test_report_renders_in_headless_chromium(quick_run: Path):
    html = quick_run.parent.parent / "_build" / "html"
    render_in_browser(html, ["book/intro.html", *[f"book/{nb}.html" for nb in STAGE_NOTEBOOKS], "book/configuration.html"])
