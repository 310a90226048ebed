"""End to end: the quick profile through papermill and the CLI, the Jupyter Book report, and the built HTML."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmkit.bundle.runtime import load_bundle
from lstmkit.data.series import read_series
from lstmkit.models.neural import architectures
from tests.cli.project import copy_project, lstmkit

pytestmark = pytest.mark.e2e
# xdist groups: the tests of one run (quick, compare, etth2) stay on the worker that builds it; the runs spread out

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


@pytest.mark.xdist_group("e2e-quick")
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


@pytest.mark.xdist_group("e2e-quick")
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


@pytest.mark.xdist_group("e2e-quick")
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


@pytest.mark.xdist_group("e2e-quick")
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


@pytest.mark.xdist_group("e2e-quick")
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


ZOO = list(architectures.names())  # the quick profile runs with every architecture, side by side
# tuned by a tiny population-based training search (3 trials, 2 epochs, exploit/explore after each): the report shows
# its lineage and the lstm replays the winner's schedule
PBT = ["--set", "tuning.strategy=pbt", "--set", "tuning.cv_folds=1", "--set", "tuning.max_trials=3",
       "--set", "tuning.epochs=2", "--set", "tuning.perturbation_interval=1"]
COMPARE = ["--set", f"compare.architectures=[{','.join(ZOO)}]", "--set", "compare.seeds=2", "--set", "training.epochs=1",
           *PBT, "--set", "explain.windows=4", "--set", "explain.steps=8"]


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory) -> Path:
    """The quick profile tuned by a tiny PBT search, comparing every architecture over two seeds each (tiny epochs),
    its report built strictly (in a project copy of its own, so that the quick run's report stays as built)."""
    project = copy_project(tmp_path_factory.mktemp("compare"))
    lstmkit(project, "run", "--config", "configs/quick.yaml", "--run-dir", "runs/compare", *COMPARE)
    lstmkit(project, "report", "--run-dir", "runs/compare")
    return project / "runs" / "compare"


@pytest.mark.xdist_group("e2e-compare")
def test_comparison_run_trains_every_model_and_selects_on_validation(compare_run: Path):
    selected = json.loads((compare_run / "training" / "selected.json").read_text())
    assert [(m["model"], m["seed"]) for m in selected["models"]] == [(a, s) for a in ZOO for s in (7, 8)]
    for m in selected["models"]:
        assert (compare_run / m["path"] / "forecaster.json").is_file()
    means = selected["val_loss_mean"]
    assert selected["model"] == min(means, key=means.get)  # by validation loss (mean over seeds), never test
    metrics = json.loads((compare_run / "evaluation" / "metrics.json").read_text())
    assert list(metrics["models"]) == [*ZOO, "ensemble"]
    assert metrics["meta"]["selected"] == {"model": selected["model"], "seed": selected["seed"],
                                           "criterion": "validation loss"}
    for name in ZOO:
        m = metrics["models"][name]
        assert m["seeds"] == [7, 8] and m["parameters"] > 0 and m["fit_seconds"] > 0
        assert set(m["sd"]["scaled"]) >= {"mse", "mae"} and 0 <= m["dm"]["p_value"] <= 1
        assert len(m["per_horizon"]["original"]["rmse"]) == metrics["meta"]["horizon"]
    assert metrics["models"]["ensemble"]["members"] == ZOO  # compare.ensemble: mean (of every model)
    import numpy as np

    with np.load(compare_run / "evaluation" / "predictions.npz") as predictions:
        assert {"actual", *ZOO, "ensemble", "persistence", "linear"} <= set(predictions.files)
        np.testing.assert_allclose(predictions["ensemble"], np.mean([predictions[a] for a in ZOO], axis=0))


@pytest.mark.xdist_group("e2e-compare")
def test_comparison_report_shows_the_comparison_table(compare_run: Path):
    html = compare_run.parent.parent / "_build" / "html" / "book"
    evaluation = (html / "05_evaluation.html").read_text()
    for text in ("test MSE (scaled)", "test MAE (scaled)", "DM p-value", "parameters", "training s", "±",
                 *ZOO, "ensemble", "Error by horizon step"):
        assert text in evaluation, text
    assert len(re.findall(r"<img", evaluation)) == 4  # comparison bars, forecasts, per-horizon errors, residuals
    intro = (html / "intro.html").read_text()
    metrics = json.loads((compare_run / "evaluation" / "metrics.json").read_text())
    assert f"is <strong>{metrics['meta']['selected']['model']}</strong>" in intro
    assert f"lowest test MSE) is <strong>{metrics['meta']['best_on_test']}</strong>" in intro
    assert "test MSE (scaled)" in intro and "±" in intro
    training = (html / "04_training.html").read_text()
    assert "training seconds" in training and len(re.findall(r"<img", training)) == 2


@pytest.mark.xdist_group("e2e-compare")
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


@pytest.mark.xdist_group("e2e-compare")
def test_resuming_training_reuses_the_trained_models(compare_run: Path):
    project = compare_run.parent.parent
    stamps = {p: p.stat().st_mtime_ns for p in (compare_run / "training" / "models").glob("*/seed-*/model.keras")}
    before = json.loads((compare_run / "evaluation" / "metrics.json").read_text())
    lstmkit(project, "run", "--from", "training", "--to", "evaluation", "--run-dir", "runs/compare")
    assert len(stamps) == 2 * len(ZOO) and all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # loaded, not retrained
    executed = (compare_run / "notebooks" / "04_training.ipynb").read_text()
    assert executed.count("loaded (already trained)") == 2 * len(ZOO)
    after = json.loads((compare_run / "evaluation" / "metrics.json").read_text())
    assert after["models"]["gru"]["scaled"] == before["models"]["gru"]["scaled"]


def test_quick_profile_tunes_with_asha_from_the_command_line(project: Path):
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from lstmkit.report.plots import tuning as tuning_plots

    lstmkit(project, "run", "--config", "configs/quick.yaml", "--run-dir", "runs/asha", "--to", "preprocessing")
    proc = lstmkit(project, "tune", "--run-dir", "runs/asha", "--set", "tuning.strategy=asha", "--set", "tuning.cv_folds=1")
    assert "asha search on a local Ray instance" in proc.stdout and "3 trials; best val_loss" in proc.stdout
    run = project / "runs" / "asha"
    trials = pd.read_csv(run / "tuning" / "trials.csv", index_col="trial")
    assert list(trials.index) == [0, 1, 2]
    assert list(trials.columns[-4:]) == ["val_loss", "best_epoch", "seconds", "status"] and "architecture" in trials
    assert set(trials["status"]) <= {"COMPLETED", "PRUNED"} and (trials["status"] == "COMPLETED").any()
    best = json.loads((run / "tuning" / "best_hyperparameters.json").read_text())
    assert best["strategy"] == "asha" and "schedule" not in best
    assert best["val_loss"] == pytest.approx(trials.loc[trials["status"] == "COMPLETED", "val_loss"].min())
    lineage = pd.read_csv(run / "tuning" / "lineage.csv")  # the rungs figure's data: every trial's loss by epoch
    assert set(lineage["trial"]) == set(trials.index) and lineage["copied_from"].isna().all()  # ASHA never copies
    epochs = lineage.groupby("trial")["epoch"].max()
    assert (epochs[trials["status"] == "COMPLETED"] == 2).all() and (epochs[trials["status"] == "PRUNED"] < 2).all()
    for trial, rows in lineage.groupby("trial"):
        assert rows["epoch"].tolist() == list(range(1, len(rows) + 1))
        assert rows["val_loss"].min() == pytest.approx(trials.loc[trial, "val_loss"])
    fig = tuning_plots.rungs(lineage, best_trial=best["trial"])
    assert len(fig.axes[0].get_lines()) >= len(trials)  # one line per trial


@pytest.mark.xdist_group("e2e-quick")
def test_a_finished_run_exports_a_bundle_that_forecasts(quick_run: Path):
    project = quick_run.parent.parent
    out = lstmkit(project, "export", "--run-dir", "runs/quick", "--out", "exported")
    bundle = load_bundle(project / "exported")
    assert bundle.version in out.stdout
    forecast = bundle.predict(read_series(quick_run / "data" / "series.parquet"))
    assert len(forecast) == bundle.horizon and np.isfinite(forecast.to_numpy()).all()


@pytest.mark.xdist_group("e2e-quick")
def test_plain_jupyter_book_build_works_after_a_run(quick_run: Path):
    project = quick_run.parent.parent
    exe = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(exe), "build", ".", "-W"], cwd=project, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.xdist_group("e2e-quick")
def test_resume_from_training_reproduces_the_metrics(quick_run: Path):
    project = quick_run.parent.parent
    before = json.loads((quick_run / "evaluation" / "metrics.json").read_text())
    first_data = (quick_run / "notebooks" / "01_data.ipynb").stat().st_mtime
    proc = lstmkit(project, "run", "--from", "training", "--run-dir", "runs/quick")
    assert "[1/9]" not in proc.stdout and "[4/9] training" in proc.stdout
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


@pytest.mark.xdist_group("e2e-quick")
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


@pytest.mark.xdist_group("e2e-etth2-offline")
def test_bundled_etth2_profile_runs_offline_with_published_figures(tmp_path):
    """The real-data profile end to end, shrunk (short look-back, tiny model, one epoch) to keep the suite fast."""
    project = copy_project(tmp_path / "project")
    lstmkit(project, "run", "--config", "configs/etth2.yaml", "--set", "window.lookback=48", "--set", "model.units=8",
            "--set", "training.epochs=1", "--set", "explain.windows=4", "--set", "explain.steps=8",
            "--set", "deployment.steps=24", "--set", "deployment.retrain_every=16", "--set", "deployment.latency_requests=10")
    run = project / "runs" / "etth2"
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert metrics["meta"]["windows"] == 2785  # every test window of the protocol at horizon 96
    assert metrics["baselines"]["persistence"]["scaled"]["mse"] == pytest.approx(0.2955, abs=5e-5)
    assert metrics["baselines"]["persistence"]["scaled"]["mae"] == pytest.approx(0.4232, abs=5e-5)
    lstmkit(project, "report", "--run-dir", "runs/etth2")
    html = project / "_build" / "html" / "book"
    evaluation = (html / "05_evaluation.html").read_text()
    assert "NLinear (published)" in evaluation and "Zeng et al." in evaluation
    assert "CC BY-ND 4.0" in (html / "01_data.html").read_text() and "CC BY-ND 4.0" in (html / "intro.html").read_text()
    explainability = (html / "06_explainability.html").read_text()  # one channel, window-normalised, no ground truth
    # completeness, heatmap, lag profile, four windows, one window's story, lag-block agreement (one channel: no bars)
    assert len(re.findall(r"<img", explainability)) == 6
    for text in ("Real data has no known ground truth", "carries all the attribution; the lags below tell more",
                 "no ranking of inputs", "Spearman correlation"):
        assert text in explainability, text
    render_in_browser(html.parent, ["book/intro.html", "book/06_explainability.html"])


def _browser() -> str | None:
    """Path of a Chromium the browser test can drive, or None."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def render_in_browser(html: Path, pages: list[str]) -> None:
    """Open each page of a built report in headless Chromium: no errors, every image rendered, a title, a figure."""
    browser = _browser()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if browser is None or sync_playwright is None:
        reason = "no Chromium at /usr/bin/chromium" if browser is None else "playwright is not installed"
        if os.environ.get("LSTMKIT_REQUIRE_BROWSER"):
            pytest.fail(f"browser test required but {reason}")
        pytest.skip(f"{reason}: install Debian's chromium and `pip install playwright` to run the browser test")

    from tests.http_server import serve

    with serve(html) as base, sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=browser, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        for path in pages:
            page = chrome.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e, errors=errors: errors.append(f"page error: {e}"))
            page.on("console", lambda m, errors=errors: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("requestfailed", lambda r, errors=errors: errors.append(f"failed request: {r.url}") if r.url.startswith(base) else None)
            response = page.goto(f"{base}/{path}", wait_until="load")
            assert response is not None and response.ok, f"{path}: HTTP {response and response.status}"
            broken = page.evaluate("() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
            assert not broken, f"{path}: images not rendered: {broken}"
            assert page.locator("h1").count() >= 1, f"{path}: no title"
            assert page.locator(".output.traceback, .output.error, .output.stderr").count() == 0, f"{path}: error output"
            assert not errors, f"{path}: {errors}"
            if path.startswith("book/0"):
                assert page.evaluate("() => document.images.length") >= 1, f"{path}: no figure"
            page.close()
        page = chrome.new_page()  # the site's entry point redirects to the first page
        page.goto(f"{base}/index.html")
        page.wait_for_url(re.compile(r".*/book/intro\.html$"))
        assert "lstmkit forecasting report" in page.title()
        chrome.close()


@pytest.mark.xdist_group("e2e-quick")
def test_report_renders_in_headless_chromium(quick_run: Path):
    html = quick_run.parent.parent / "_build" / "html"
    render_in_browser(html, ["book/intro.html", *[f"book/{nb}.html" for nb in STAGE_NOTEBOOKS], "book/configuration.html"])


ETTH2_COMPARE = ["--set", "compare.architectures=[lstm, attention_lstm, tft]", "--set", "compare.seeds=2",
                 "--set", "window.lookback=48", "--set", "window.horizon=24", "--set", "model.units=8",
                 "--set", "training.epochs=1", "--set", "explain.windows=4", "--set", "explain.steps=16",
                 "--set", "explain.auto_steps=false", "--set", "explain.cross_check=false",
                 "--set", "deployment.steps=24", "--set", "deployment.policies=[static]",
                 "--set", "deployment.latency_requests=20"]


@pytest.fixture(scope="module")
def etth2_compare_run(tmp_path_factory) -> Path:
    """The ETTh2 profile comparing the LSTM, the attention LSTM and the TFT over two seeds each, shrunk (look-back 48,
    horizon 24, 8 units, one epoch, 4 explained windows, no cross-checks), its report built strictly."""
    project = copy_project(tmp_path_factory.mktemp("etth2_compare"))
    lstmkit(project, "run", "--config", "configs/etth2.yaml", "--run-dir", "runs/etth2_compare", *ETTH2_COMPARE)
    lstmkit(project, "report", "--run-dir", "runs/etth2_compare")
    return project / "runs" / "etth2_compare"


def table_rows(page: str, header: str) -> dict[str, list[str]]:
    """The body rows of the first HTML table of a page whose text contains `header`: {first cell: the row's cells}."""
    from bs4 import BeautifulSoup

    table = next(t for t in BeautifulSoup(page, "html.parser").find_all("table") if header in t.get_text())
    rows = [[c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"])] for tr in table.find("tbody").find_all("tr")]
    return {cells[0]: cells for cells in rows if cells}


@pytest.mark.xdist_group("e2e-etth2")
def test_etth2_comparison_report_analyses_the_attention_of_every_attention_model(etth2_compare_run: Path):
    run = etth2_compare_run
    html = run.parent.parent / "_build" / "html"
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    rows = table_rows((html / "book" / "05_evaluation.html").read_text(), "test MSE (scaled)")
    for name in ("lstm", "attention_lstm", "tft"):  # mean ± sd over the two seeds
        assert rows[name][1] == "model" and "±" in rows[name][2], rows[name]
    assert rows["ensemble"][1] == "ensemble" and rows["ensemble"][2] == f"{metrics['models']['ensemble']['scaled']['mse']:.4g}"
    assert metrics["models"]["ensemble"]["members"] == ["lstm", "attention_lstm", "tft"]

    selected = json.loads((run / "training" / "selected.json").read_text())
    best = {}  # each architecture's seed with the lowest validation loss
    for m in selected["models"]:
        if m["model"] not in best or m["val_loss"] < best[m["model"]][1]:
            best[m["model"]] = (m["seed"], m["val_loss"])
    summary = json.loads((run / "explainability" / "summary.json").read_text())
    assert list(summary["attention"]) == ["attention_lstm", "tft"]  # whichever model is selected
    for name, analysis in summary["attention"].items():
        assert analysis["seed"] == best[name][0] and analysis["selected"] == (name == selected["model"])
        assert analysis["windows"] == 4 and len(analysis["time"]["lags"]) == 48
        assert analysis["relative_completeness_gap"] < 0.05
        assert (run / "figures" / f"attention_profile_{name}.png").is_file()
    assert "variables" in summary["attention"]["tft"] and "variables" not in summary["attention"]["attention_lstm"]

    page = (html / "book" / "06_explainability.html").read_text()
    headings = re.findall(r'<h3 class="rubric" id="([^"]+)"', page)  # one subsection per attention model
    assert headings == [f"attention-lstm-seed-{best['attention_lstm'][0]}", f"tft-seed-{best['tft'][0]}"]
    attention_lstm, tft = page.split('<h3 class="rubric"')[1:]
    for section in (attention_lstm, tft):  # one channel (mode S): the profiles over lags, no variable-selection bars
        assert len(re.findall(r"<img", section)) == 1 and "over the 48 lags" in section
    assert "weighs time steps but not input channels" in attention_lstm
    assert "variable selection has nothing to choose between" in tft
    unc = json.loads((run / "uncertainty" / "metrics.json").read_text())
    chosen = selected["model"]
    assert {f"{chosen}/conformal", f"{chosen}/aci", "seasonal_naive/conformal", "seasonal_naive/aci"} <= set(unc)
    assert "mc_dropout" in unc["meta"]["skipped"]  # etth2.yaml trains without dropout: said, not an error
    assert "There are no labels for this run" in (html / "book" / "08_anomalies.html").read_text()
    render_in_browser(html, ["book/intro.html", "book/05_evaluation.html", "book/06_explainability.html",
                             "book/07_uncertainty.html", "book/08_anomalies.html", "book/09_deployment.html"])
