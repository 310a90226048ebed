"""Resuming a run at a later stage with a profile: `auto` settings are resolved against the stored series."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstmkit.cli import pipeline
from lstmkit.config import from_dict
from lstmkit.data.series import save_series
from lstmkit.report.evaluation import headline
from lstmkit.runs.folder import RunFolder


def test_resume_with_a_profile_records_the_numbers_auto_stands_for(tmp_path, monkeypatch):
    run = RunFolder(tmp_path / "run")
    index = pd.date_range("2000-01-01", periods=600, freq="W-SAT", name="date")
    save_series(pd.DataFrame({"y": np.sin(np.arange(600) / 8.3) + np.arange(600) / 100}, index=index), run.series_file)
    for stage in pipeline.STAGES:
        (run.notebooks_dir / stage.notebook).parent.mkdir(parents=True, exist_ok=True)
        (run.notebooks_dir / stage.notebook).write_text("{}")
    seen = []
    monkeypatch.setattr(pipeline, "ensure_kernel", lambda: "lstmkit")
    monkeypatch.setattr(pipeline, "run_stage", lambda stage, run, *a, **k: seen.append(run.config()) or run.root)
    cfg = from_dict({"data": {"target": "y", "features": []}, "window": {"lookback": "auto", "horizon": 4}})
    pipeline.run_pipeline(run, cfg, start="training", stop="training", echo=lambda *a, **k: None)
    assert seen[0].window.lookback == 104 and seen[0].evaluation.seasonal_period == 52  # two years of weeks; a year


def test_headline_when_a_baseline_is_exact():
    metrics = {"meta": {"windows": 10}, "model": {"original": {"rmse": 0.5}},
               "baselines": {"persistence": {"original": {"rmse": 1.0}}, "seasonal_naive": {"original": {"rmse": 0.0}}}}
    text = headline(metrics, "kW")
    assert "seasonal_naive" in text and "exactly" in text and "0.5 kW" in text


def test_headline_names_the_selected_model_whatever_its_architecture():
    metrics = {"meta": {"windows": 10, "selected": {"model": "tcn", "seed": 3}}, "model": {"original": {"rmse": 0.5}},
               "baselines": {"persistence": {"original": {"rmse": 1.0}}}}
    text = headline(metrics, "kW")
    assert "selected model (tcn, seed 3)" in text and "0.5 kW" in text and "**beats** every baseline" in text
    assert "lstm" not in text.lower()
