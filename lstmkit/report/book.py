"""Report: publish a run's executed notebooks as the Jupyter Book at the project root and build it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from lstmkit.core.atomic import atomic_write_text, read_json
from lstmkit.core.errors import ReportError
from lstmkit.data.datasets import describe
from lstmkit.data.seasonality import seasonality
from lstmkit.report.data import period_sentence
from lstmkit.report.evaluation import comparison_display, comparison_summary, headline
from lstmkit.report.uncertainty import headline as interval_headline
from lstmkit.runs.folder import RunFolder
from lstmkit.runs.notebooks import STAGES, project_root
from lstmkit.stages.checks import config_reference
from lstmkit.stages.evaluation import comparison_table, metrics_table, selected_name

BOOK_DIR = "book"  # sources of the book, referenced by _toc.yml; rewritten from a run folder


def _markdown_table(df: pd.DataFrame, floatfmt: str = ".4g", bold: str | None = None) -> str:
    """A pipe table for MyST from a small frame; the row named `bold` (the selected model) in bold."""
    cols = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        cells = [f"{v:{floatfmt}}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join([f"**{idx}**" if idx == bold else str(idx), *cells]) + " |")
    return "\n".join(lines)


def _period_words(run: RunFolder, metrics: dict) -> str:
    """The seasonal period of metrics.json (`meta.seasonal_period`) and why it was used, read from the run folder."""
    import pyarrow.parquet as pq


    period = int(metrics["meta"]["seasonal_period"])
    try:  # the time step the data stage stored with the series, and the training rows of the split
        freq = (pq.read_schema(run.series_file).metadata or {}).get(b"lstmkit.freq", b"").decode()
        train = read_json(run.splits_file)["rows"]["train"]
        return period_sentence(period, seasonality(freq), train[1] - train[0])
    except (OSError, ValueError, KeyError):  # no stored step (irregular series): the number alone
        return f"{period} steps"


def intro_page(run: RunFolder) -> str:
    """The book's first page: what was run, the headline metrics beside the baselines, and the chapters."""
    cfg = run.config()
    metrics = read_json(run.require(run.metrics_file, "evaluation (05_evaluation)"))
    scaled, original = metrics_table(metrics, "scaled"), metrics_table(metrics, "original")
    chosen = selected_name(metrics)
    compared = comparison_display(comparison_table(metrics), cfg.data.units)
    models = [k for k in (metrics.get("models") or {chosen: None}) if k != "ensemble"]
    seeds = len((metrics.get("models") or {}).get(chosen, {}).get("seeds") or [cfg.seed])
    data_note = ""
    if cfg.data.source not in ("synthetic", "csv"):
        info = describe(cfg.data.source)
        data_note = (f"\n**Data:** {info['description']}. Source: <{info['source']}>. Licence: {info['licence']}; "
                     f"{info.get('preparation') or 'used unmodified'}. Cite: {info['citation']}.\n")
    chapters = "\n".join(f"{i + 1}. [{s.title}]({Path(s.notebook).stem}.ipynb)" for i, s in enumerate(STAGES))
    intervals = ""
    if run.uncertainty_metrics_file.exists():  # the uncertainty stage ran: its headline interval beside the baseline

        intervals = f"\n## Intervals\n\n{interval_headline(read_json(run.uncertainty_metrics_file), cfg.data.units)}\n"
    config_yaml = yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip()
    return f"""# lstmkit forecasting report

This report follows one run of the lstmkit pipeline from raw series to explained forecaster. Each chapter is a
notebook executed by papermill; the numbers and figures in it were computed in this run, nothing is typed in.

**Run folder:** `{run.root.name}` · **data:** `{cfg.data.source}` · **target:** `{cfg.data.target}` ·
**look-back:** {metrics["meta"]["lookback"]} steps · **horizon:** {cfg.window.horizon} steps · **seed:** {cfg.seed}
· **models:** {", ".join(models)} ({seeds} seed{"s" if seeds > 1 else ""} each) · **selected model:** {chosen}
· **final model fitted on:** {metrics["meta"].get("fit_on", "train")}
{data_note}
## Headline: test accuracy beside the baselines

All forecasters are scored on the same test windows (stride 1, all of them) of the target column.
{headline(metrics, cfg.data.units)}

{comparison_summary(metrics)}

Comparison: test MSE and MAE as mean ± standard deviation over seeds, training time (seconds, mean over seeds),
parameter count, validation loss (scaled MSE) and the Diebold–Mariano statistic and p-value against the best
baseline (negative: smaller squared errors than it):

{_markdown_table(compared, bold=chosen)}

Every metric, original units (models: means over seeds):

{_markdown_table(original, bold=chosen)}

Scaled units (training z-scores of the target):

{_markdown_table(scaled, bold=chosen)}

MAPE and sMAPE are in percent; MASE divides MAE by the in-sample MAE of the seasonal-naive forecast on the
training rows, with a seasonal period of {_period_words(run, metrics)}.
{intervals}
## Chapters

{chapters}

The [configuration reference](configuration.md) documents every setting.

## Configuration of this run

```yaml
{config_yaml}
```
"""


def configuration_page() -> str:
    """Reference of every configuration key, generated from the typed config."""
    lines = ["# Configuration reference", "",
             "Every setting of a run, as a dotted key usable in a YAML profile under `configs/` or as "
             "`lstmkit run --set KEY=VALUE`. Unknown keys are rejected with the list of valid ones.", "",
             "| key | default | allowed | meaning |", "|---|---|---|---|"]
    for row in config_reference():
        choices = ", ".join(f"`{c}`" for c in row["choices"]) if row["choices"] else ""
        lines.append(f"| `{row['key']}` | `{row['default']}` | {choices} | {row['help']} |")
    return "\n".join(lines) + "\n"


def _publish_notebook(source: Path, target: Path) -> None:
    """Copy an executed notebook for the book: code folded (`hide-input`) so that narrative, tables and figures come
    first, and the default-parameters cell dropped (papermill's injected cell overrides it)."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        fold = "remove-cell" if "parameters" in tags else "hide-input"
        if fold not in tags:
            cell.metadata["tags"] = [*tags, fold]
    nbformat.write(nb, target)


def publish(run: RunFolder, root: Path | None = None) -> Path:
    """Write the book sources (intro, configuration reference, executed notebooks) for a run."""
    root = root or project_root()
    missing = [s.notebook for s in STAGES if not (run.notebooks_dir / s.notebook).exists()]
    if missing:
        raise ReportError(f"{run.root} has no executed {', '.join(missing)}: run `lstmkit run` (or resume with --from) first")
    book = root / BOOK_DIR
    staging = root / f".{BOOK_DIR}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    atomic_write_text(staging / "intro.md", intro_page(run))
    atomic_write_text(staging / "configuration.md", configuration_page())
    for s in STAGES:
        _publish_notebook(run.notebooks_dir / s.notebook, staging / s.notebook)
    shutil.rmtree(book, ignore_errors=True)
    staging.replace(book)
    return book


def build(root: Path | None = None, strict: bool = True) -> Path:
    """Build the Jupyter Book at the project root into _build/html; raise ReportError with Sphinx's output on failure."""
    root = root or project_root()
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root), "--builder", "html"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise ReportError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    return root / "_build" / "html" / "index.html"


def report(run: RunFolder, root: Path | None = None, strict: bool = True) -> Path:
    """Publish a run and build its HTML report; returns the path of index.html."""
    root = root or project_root()
    publish(run, root)
    return build(root, strict)
