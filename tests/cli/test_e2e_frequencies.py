"""End to end at three time steps and the minimum viable length: each series runs, builds its report strictly, and
its chapters name the seasonal periods of its time step; one row fewer is refused before anything is written. The
cases cover a season that fits the training rows (hourly, daily) and one that does not (weekly); the periods of the
other time steps (15 minutes, monthly, yearly, ...) are checked in tests/data/test_seasonality.py."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmkit.config import ConfigError, load_config
from lstmkit.data.splits import check_splits
from lstmkit.stages.checks import check_folds_fit
from lstmkit.tuning.space import check_space_fits, longest_lookback
from tests.cli.project import copy_project, lstmkit
from tests.paths import REPO

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Case:
    """One series: its time step, the seasonal periods its chapters must name, and how the run is set up."""

    name: str
    freq: str
    periods: str          # the data chapter's words for the series' seasonal periods
    season: int           # the series' main seasonal period
    features: tuple = ()  # exogenous columns besides the target
    tune: bool = False    # keep the quick profile's own 2-fold tuning (exercises the fold check)


CASES = [
    Case("hourly", "h", "24 steps (a day) and 168 steps (a week)", 24, tune=True),
    Case("daily", "D", "7 steps (a week) and 365 steps (a year)", 7, features=("temperature",)),
    Case("weekly", "W", "52 steps (a year)", 52),
]


def settings(case: Case, path: Path) -> list[str]:
    """`--set` options of a case: the CSV, its columns, one training epoch, tuning off unless the case tunes."""
    sets = {"data.source": "csv", "data.path": str(path), "data.date_column": "timestamp", "data.target": "load",
            "data.features": "[" + ", ".join(case.features) + "]", "training.epochs": "1"}
    if not case.tune:
        sets["tuning.strategy"] = "none"
    return [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]


def minimum_rows(case: Case) -> int:
    """The shortest series the quick profile's windows allow: every split holds a window and, when tuning, the
    longest searched look-back fits and the first walk-forward fold holds a training window."""
    overrides = {"data.source": "csv", "data.path": "x.csv"} | ({} if case.tune else {"tuning.strategy": "none"})
    cfg = load_config(str(REPO / "configs" / "quick.yaml"), overrides)
    for n in range(2, 1000):
        try:
            bounds = check_splits(n, cfg)
            if cfg.tuning.strategy != "none":
                check_space_fits(bounds, cfg.window.horizon, cfg)
                check_folds_fit(bounds, longest_lookback(cfg), cfg.window.horizon, cfg.tuning.cv_folds)
            return n
        except ConfigError:
            continue
    raise AssertionError("no length fits")


def write_series(case: Case, path: Path, rows: int) -> None:
    """A seasonal signal (main period of the time step) plus a trend and noise, with a timestamp column."""
    rng = np.random.default_rng(3)
    t = np.arange(rows, dtype=float)
    index = pd.date_range("2021-01-04", periods=rows, freq=case.freq)
    frame = pd.DataFrame({"timestamp": index.strftime("%Y-%m-%d %H:%M:%S"),
                          "load": 10 + 0.02 * t + 2 * np.sin(2 * np.pi * t / case.season) + rng.normal(0, 0.2, rows)})
    for f in case.features:
        frame[f] = np.cos(2 * np.pi * t / case.season) + rng.normal(0, 0.3, rows)
    frame.to_csv(path, index=False)


def outputs_text(notebook: Path) -> str:
    """Every Markdown and plain-text output of an executed notebook, joined."""
    cells = json.loads(notebook.read_text())["cells"]
    out = []
    for cell in cells:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            out.append("".join(data.get("text/markdown", data.get("text/plain", ""))) + "".join(o.get("text", "")))
    return "\n".join(out)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project, so that runs and builds stay out of the checkout."""
    return copy_project(tmp_path_factory.mktemp("frequencies"))


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def run(request, project: Path) -> dict:
    """One case: refused one row short of its minimum, run end to end at its minimum, report built strictly."""
    case: Case = request.param
    rows = minimum_rows(case)
    short, csv = project / f"{case.name}_short.csv", project / f"{case.name}.csv"
    write_series(case, short, rows - 1)
    write_series(case, csv, rows)
    refused = lstmkit(project, "run", "--config", "configs/quick.yaml", "--run-dir", f"runs/{case.name}_short",
                      *settings(case, short), check=False)
    lstmkit(project, "run", "--config", "configs/quick.yaml", "--run-dir", f"runs/{case.name}", *settings(case, csv))
    lstmkit(project, "report", "--run-dir", f"runs/{case.name}")  # strict: a Sphinx warning fails the build
    html = project / "_build" / "html" / "book"
    return {"case": case, "rows": rows, "refused": refused, "short_dir": project / "runs" / f"{case.name}_short",
            "run_dir": project / "runs" / case.name,
            "pages": {p.stem: p.read_text() for p in html.glob("*.html")}}  # the next case's build replaces them


def test_minimum_viable_length_of_the_quick_profile():
    # quick: split 0.7/0.15/0.15, look-back 24, horizon 4: 28 training rows (40 x 0.7) hold the first window;
    # with its two walk-forward folds the first fold needs 28 training rows: 50 rows (42 - 2 x 7 = 28)
    assert minimum_rows(CASES[2]) == 40
    assert minimum_rows(CASES[0]) == 50


def test_one_row_fewer_is_refused_before_anything_is_written(run: dict):
    refused = run["refused"]
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "too short" in refused.stderr or "tuning.cv_folds" in refused.stderr, refused.stderr
    written = [p.name for p in run["short_dir"].iterdir() if not p.name.startswith(".")] if run["short_dir"].exists() else []
    assert written == []  # at most the folder and its lock: no config.yaml, notebook or data


def test_every_stage_ran_and_the_report_has_every_chapter(run: dict):
    for nb in ("01_data", "02_preprocessing", "03_tuning", "04_training", "05_evaluation", "06_explainability"):
        assert nb in run["pages"], f"{nb} missing from the report"
        assert "Traceback" not in run["pages"][nb], nb
    assert json.loads((run["run_dir"] / "evaluation" / "metrics.json").read_text())["meta"]["windows"] >= 1


def test_chapters_name_the_periods_of_the_time_step(run: dict):
    case, run_dir = run["case"], run["run_dir"]
    data_text = outputs_text(run_dir / "notebooks" / "01_data.ipynb")
    assert f"Seasonal periods of this series: {case.periods}" in data_text
    if run["rows"] > 2 * case.season:  # MSTL needs more than two cycles
        assert f"MSTL decomposed all {run['rows']} rows with seasonal period(s) of {case.season} " in data_text
    else:
        assert "No seasonal decomposition" in data_text
    train = json.loads((run_dir / "preprocessing" / "splits.json").read_text())["rows"]["train"]
    used = case.season if train[1] - train[0] > case.season else 1  # a season longer than the training rows: 1
    meta = json.loads((run_dir / "evaluation" / "metrics.json").read_text())["meta"]
    assert meta["seasonal_period"] == used
    assert re.search(rf"seasonal_period: {used}\b", (run_dir / "config.yaml").read_text())
    evaluation_text = outputs_text(run_dir / "notebooks" / "05_evaluation.ipynb")
    if used == case.season:
        assert f"{case.season} steps, a " in evaluation_text
    else:
        assert f"the series' season of {case.season} steps" in evaluation_text
        assert f"needs a training split of more than {case.season} rows" in evaluation_text
    intro = re.sub(r"<[^>]+>", "", run["pages"]["intro"])
    assert re.search(rf"with a seasonal period of\s+{used} step", intro)


def test_metrics_are_finite_at_the_minimum_length(run: dict):
    metrics = json.loads((run["run_dir"] / "evaluation" / "metrics.json").read_text())
    for name, m in [("model", metrics["model"]), *metrics["baselines"].items()]:
        assert np.isfinite(m["original"]["mase"]) and np.isfinite(m["scaled"]["rmse"]), name
