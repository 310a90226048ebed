"""Report publishing: how executed notebooks are prepared for the book."""

from __future__ import annotations

import nbformat
import numpy as np

from lstmkit.report.book import _publish_notebook


def test_published_chapters_fold_code_and_drop_default_parameters(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Chapter"),
                nbformat.v4.new_code_cell("run_dir = 'x'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("run_dir = 'runs/y'", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("plot()")]
    source, target = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    _publish_notebook(source, target)
    tags = [c.metadata.get("tags", []) for c in nbformat.read(target, as_version=4).cells]
    assert tags == [[], ["parameters", "remove-cell"], ["injected-parameters", "hide-input"], ["hide-input"]]
    assert nbformat.read(source, as_version=4).cells[3].metadata.get("tags") is None  # the run's own copy is untouched


def test_intro_page_names_the_selected_model_the_best_on_test_and_what_each_beats(row_prepared, tmp_path):
    import warnings

    from lstmkit.config import from_dict
    from lstmkit.core.atomic import atomic_write_json
    from lstmkit.report.book import intro_page
    from lstmkit.runs.folder import start_run
    from lstmkit.stages.evaluation import evaluate
    from tests.stages.test_evaluation import Offset

    p = row_prepared(lookback=8, horizon=3, feature_values=np.sin(np.arange(100)))
    cfg = from_dict({"window": {"lookback": 8, "horizon": 3}, "evaluation": {"seasonal_period": 4},
                     "compare": {"architectures": ["lstm", "gru"], "seeds": 2}})
    models = {"gru": [Offset(3.0, "gru", 42, 0.1).fit(p), Offset(3.0, "gru", 43, 0.12).fit(p)],  # best validation
              "lstm": [Offset(1.5, "lstm", 42, 0.5).fit(p), Offset(1.0, "lstm", 43, 0.6).fit(p)]}  # best test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = evaluate(models, p, from_dict(cfg.to_dict(), {"compare.ensemble": "none"}))
    run = start_run(tmp_path / "run", cfg)
    atomic_write_json(run.metrics_file, ev.metrics)
    page = intro_page(run)
    assert "**selected model:** gru" in page and "The **selected model** is **gru** (seed 42)" in page
    assert "did best on test (lowest test MSE) is **lstm**" in page
    assert "- **gru** (selected): beats " in page and "- **lstm**: beats " in page
    assert "| **gru** | model |" in page and "| lstm | model |" in page  # the selected model's row in bold
    assert "test MSE (scaled)" in page and " ± " in page and "DM p-value" in page
    assert "**models:** gru, lstm (2 seeds each)" in page
