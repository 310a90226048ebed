"""Report publishing: how executed notebooks are prepared for the book."""

from __future__ import annotations

import nbformat

from lstmkit.report import _publish_notebook


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
