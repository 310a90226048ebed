"""End to end on the bundled ETTh2 profile, in one run: offline, with the published baseline figures of the literature,
comparing the LSTM, the attention LSTM and the TFT, whose report analyses their attention."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.project import copy_project, lstmkit, render_in_browser

pytestmark = pytest.mark.e2e

ETTH2 = ["--set", "compare.architectures=[lstm, attention_lstm, tft]", "--set", "compare.seeds=2",
         "--set", "window.lookback=48", "--set", "model.units=8", "--set", "training.epochs=1",
         "--set", "explain.windows=4", "--set", "explain.steps=16", "--set", "explain.auto_steps=false",
         "--set", "deployment.steps=24", "--set", "deployment.retrain_every=16", "--set", "deployment.latency_requests=10",
         "--set", "uncertainty.bootstrap=50"]


@pytest.fixture(scope="module")
def etth2_run(tmp_path_factory) -> Path:
    """The bundled ETTh2 profile (its protocol: horizon 96, every test window; its three deployment policies), shrunk
    (look-back 48, 8 units, one epoch, 4 windows explained with 16 steps, 50 bootstrap draws) and comparing the LSTM,
    the attention LSTM and the TFT over two seeds each; its report built strictly."""
    project = copy_project(tmp_path_factory.mktemp("etth2"))
    lstmkit(project, "run", "--config", "configs/etth2.yaml", *ETTH2)
    lstmkit(project, "report", "--run-dir", "runs/etth2")
    return project / "runs" / "etth2"


def test_bundled_etth2_profile_runs_offline_with_published_figures(etth2_run: Path):
    run = etth2_run
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert metrics["meta"]["windows"] == 2785  # every test window of the protocol at horizon 96
    assert metrics["baselines"]["persistence"]["scaled"]["mse"] == pytest.approx(0.2955, abs=5e-5)
    assert metrics["baselines"]["persistence"]["scaled"]["mae"] == pytest.approx(0.4232, abs=5e-5)
    html = run.parent.parent / "_build" / "html" / "book"
    evaluation = (html / "05_evaluation.html").read_text()
    assert "NLinear (published)" in evaluation and "Zeng et al." in evaluation
    assert "CC BY-ND 4.0" in (html / "01_data.html").read_text() and "CC BY-ND 4.0" in (html / "intro.html").read_text()
    explainability = (html / "06_explainability.html").read_text()  # one channel, window-normalised, no ground truth
    selected = explainability.split('<h3 class="rubric"', 1)[0]  # the selected model's part, before the attention
    # completeness, heatmap, lag profile, four windows, one window's story, lag-block agreement (one channel: no bars)
    assert len(re.findall(r"<img", selected)) == 6
    for text in ("Real data has no known ground truth", "carries all the attribution; the lags below tell more",
                 "no ranking of inputs", "Spearman correlation"):
        assert text in selected, text
    deployment = json.loads((run / "deployment" / "metrics.json").read_text())
    assert list(deployment["policies"]) == ["static", "periodic", "drift"] and deployment["meta"]["steps"] == 24


def table_rows(page: str, header: str) -> dict[str, list[str]]:
    """The body rows of the first HTML table of a page whose text contains `header`: {first cell: the row's cells}."""
    from bs4 import BeautifulSoup

    table = next(t for t in BeautifulSoup(page, "html.parser").find_all("table") if header in t.get_text())
    rows = [[c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"])] for tr in table.find("tbody").find_all("tr")]
    return {cells[0]: cells for cells in rows if cells}


def test_etth2_comparison_report_analyses_the_attention_of_every_attention_model(etth2_run: Path):
    run = etth2_run
    html = run.parent.parent / "_build" / "html"
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    rows = table_rows((html / "book" / "05_evaluation.html").read_text(), "test MSE (scaled)")
    for name in ("lstm", "attention_lstm", "tft"):  # mean ± sd over the two seeds
        assert rows[name][1] == "model" and "±" in rows[name][2], rows[name]
    assert rows["ensemble"][1] == "ensemble" and rows["ensemble"][2] == f"{metrics['models']['ensemble']['scaled']['mse']:.4g}"
    assert metrics["models"]["ensemble"]["members"] == ["lstm", "attention_lstm", "tft"]
    intro = (html / "book" / "intro.html").read_text()
    assert "test MSE (scaled)" in intro and "±" in intro  # the first page's comparison: mean ± sd over the seeds
    for name in ("lstm", "attention_lstm", "tft"):
        assert set(metrics["models"][name]["sd"]["scaled"]) >= {"mse", "mae"}, name

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
