"""The evaluation chapter's tables and words: the comparison of every model with the baselines for reading,
the summary of who beats whom, and the report's headline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstmkit.stages.evaluation import model_entries, selected_name


def _mean_sd(mean: float, sd: float) -> str:
    """`mean ± sd` to 4 significant digits (the mean alone when sd is missing)."""
    return f"{mean:.4g}" if not np.isfinite(sd) else f"{mean:.4g} ± {sd:.2g}"


def comparison_display(table: pd.DataFrame, units: str = "original units") -> pd.DataFrame:
    """The comparison table for reading: mean ± sd over seeds, counts as integers, missing values as a dash."""
    def num(v: float, fmt: str) -> str:
        return "–" if not np.isfinite(v) else format(v, fmt)

    out = pd.DataFrame(index=table.index)
    out["kind"] = table["kind"]
    for metric in ("mse", "mae"):
        for src, label in (("scaled", "scaled"), ("original", units)):
            out[f"test {metric.upper()} ({label})"] = [_mean_sd(m, s) for m, s in
                                                      zip(table[f"{metric} {src}"], table[f"{metric} {src} sd"])]
    out["seeds"] = [num(v, ".0f") for v in table["seeds"]]
    out["parameters"] = [num(v, ",.0f") for v in table["parameters"]]
    out["training s"] = ["<0.01" if np.isfinite(v) and v < 0.01 else num(v, ".3g") for v in table["fit seconds"]]
    out["val loss"] = [num(v, ".4g") for v in table["val loss"]]
    out["DM stat"] = [num(v, ".2f") for v in table["dm statistic"]]
    out["DM p-value"] = [num(v, ".3g") for v in table["dm p-value"]]
    return out


def headline(metrics: dict, units: str) -> str:
    """One paragraph (Markdown) saying how the selected model's test RMSE compares with the best baseline and the
    noise floor."""
    meta = metrics["meta"]
    seed = (meta.get("selected") or {}).get("seed")
    who = (f"selected model ({selected_name(metrics)}" + (f", seed {seed})" if seed is not None else ")")
           if "selected" in meta else "model")
    rmse = metrics["model"]["original"]["rmse"]
    baseline_rmse = {k: v["original"]["rmse"] for k, v in metrics["baselines"].items()}
    best = min(baseline_rmse, key=baseline_rmse.get)
    if baseline_rmse[best] == 0:  # e.g. an exactly periodic series under seasonal naive
        return (f"On {meta['windows']:,} test windows the best baseline ({best}) forecasts every value exactly (RMSE 0): "
                f"the test span repeats what came before, so no forecaster can beat it. The RMSE of the {who} is "
                f"**{rmse:.4g} {units}**.")
    ratio = rmse / baseline_rmse[best]
    text = (f"On {meta['windows']:,} test windows the RMSE of the {who} is **{rmse:.4g} {units}**, {ratio:.2f} times that "
            f"of the best baseline ({best}, {baseline_rmse[best]:.4g} {units}): it "
            f"**{'beats' if ratio < 1 else 'does not beat'}** every baseline.")
    if "rmse_to_noise_floor" in meta:
        text += (f" The generator's noise has standard deviation {meta['noise_std']:.3g} {units}, the floor below which "
                 f"no forecaster's RMSE can go on average: the RMSE of the {who} is **{meta['rmse_to_noise_floor']:.2f} "
                 f"times the noise floor**.")
    return text


def comparison_summary(metrics: dict) -> str:
    """Markdown naming the selected model (best validation loss), the model that did best on test, and which
    baselines each model beats on test MSE (with the Diebold–Mariano p-value against the best baseline)."""
    entries = model_entries(metrics)
    baseline_mse = {k: v["scaled"]["mse"] for k, v in metrics["baselines"].items()}
    meta = metrics.get("meta", {})
    chosen = selected_name(metrics)
    best_test = meta.get("best_on_test") or min(entries, key=lambda k: entries[k]["scaled"]["mse"])
    best_baseline = meta.get("best_baseline") or min(baseline_mse, key=baseline_mse.get)
    seed = (meta.get("selected") or {}).get("seed")
    lines = [f"The **selected model** is **{chosen}**" + (f" (seed {seed})" if seed is not None else "")
             + ": the lowest validation loss, chosen before the test split was looked at. "
             + (f"The model that did best on test (lowest test MSE) is **{best_test}**"
                + (", the selected one." if best_test == chosen else
                   "; the selection does not use the test, so it may differ from it.")),
             "", "Test MSE beside the baselines (the Diebold–Mariano test is against the best baseline, "
             f"{best_baseline}; a p-value below 0.05 makes the difference significant at 5%):", ""]
    for name, m in entries.items():
        mse = m["scaled"]["mse"]
        beaten = [b for b, v in baseline_mse.items() if mse < v]
        missed = [b for b in baseline_mse if b not in beaten]
        dm = m.get("dm") or {}
        what = ("beats every baseline" if not missed else "beats no baseline" if not beaten else
                f"beats {', '.join(beaten)}; not {', '.join(missed)}")
        stat = "∞ (a constant loss difference)" if dm.get("statistic") is None else f"{dm['statistic']:.2f}"
        p = (f" (against {dm['against']}: DM statistic {stat}, p = {dm['p_value']:.3g})"
             if dm.get("p_value") is not None else "")
        label = f"**{name}**" + (" (selected)" if name == chosen else "")
        lines.append(f"- {label}: {what}{p}.")
    return "\n".join(lines)


def styled(table: pd.DataFrame, selected: str | None = None):
    """A metrics table for display: 4 significant digits, the best value of each metric highlighted, the selected
    model's name in bold."""
    style = (table.style.format("{:.4g}").highlight_min(axis=0, props="font-weight: bold; background-color: #d4f4d4")
             .set_table_styles([{"selector": "th, td", "props": "padding: 2px 12px; text-align: right"}]))
    if selected is not None:
        style = style.map_index(lambda v: "font-weight: bold" if v == selected else "", axis=0)
    return style
