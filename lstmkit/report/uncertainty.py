"""The uncertainty chapter's tables and words: what each method is, the metrics table for reading, coverage
at the headline level, reliability per horizon step, the figures' inputs, and the report's headline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstmkit.core.labels import label_level, level_label
from lstmkit.data.windows import Prepared
from lstmkit.stages.uncertainty import JOINT, Uncertainty, fmt, metrics_table

METHOD_WORDS = {
    "conformal": "split conformal on the point forecast's absolute errors, per horizon step",
    "aci": "adaptive conformal inference over the test span in time order (delayed feedback)",
    JOINT: "whole-path conformal bands: one score per window (largest standardised error over the horizon)",
    "quantile": "the quantile head's own quantiles (pinball loss)",
    "quantile+conformal": "conformalised quantile regression (CQR) on the quantile head",
    "quantile+aci": "adaptive CQR on the quantile head",
    "mc_dropout": "Monte Carlo dropout sample quantiles",
    "mc_dropout+conformal": "split conformal with scores normalised by the MC-dropout spread",
    "mc_dropout+aci": "adaptive conformal with scores normalised by the MC-dropout spread",
    "deepar": "DeepAR's likelihood sample quantiles",
    "deepar+conformal": "CQR on DeepAR's sample quantiles",
    "deepar+aci": "adaptive CQR on DeepAR's sample quantiles",
}


def sources_text(metrics: dict) -> str:
    """Markdown: the forecasters and methods of the run, and a sentence per method that did not apply."""
    meta = metrics["meta"]
    lines = [f"The run's selected model is **{meta['selected']['model']}** (seed {meta['selected']['seed']}). "
             f"Entries (forecaster/method) scored on the {meta['windows']:,} test windows:", ""]
    for key in metrics:
        if key == "meta":
            continue
        name, method = key.split("/", 1)
        lines.append(f"- `{key}`: {METHOD_WORDS.get(method, method)}"
                     + (" (the baseline every entry is set beside)" if name == meta["baseline"] else "") + ".")
    notes = [f"`{b}` model: {s['forecaster']}, {s['note']}." for b, s in meta["sources"].items()
             if b != "point" and s.get("note")]
    if notes:
        lines += ["", "Models behind the probabilistic bases: " + " ".join(notes)]
    for base, reason in meta.get("skipped", {}).items():
        lines += ["", f"**`{base}` was skipped:** {reason}."]
    return "\n".join(lines)


def display_table(metrics: dict, units: str = "scaled", label: str = "scaled") -> pd.DataFrame:
    """The metrics table for reading: coverage with its CI, width, joint coverage, Winkler, CRPS, MSIS as text."""
    table = metrics_table(metrics, "original" if units == "original" else "scaled")
    out = pd.DataFrame(index=table.index)
    for lv in map(level_label, metrics["meta"]["levels"]):
        out[f"coverage {label_level(lv):.0%} [95% CI]"] = [f"{fmt(c, '.3f')} [{ci}]" for c, ci in
                                                     zip(table[f"coverage {lv}"], table[f"coverage {lv} CI"])]
        out[f"joint {label_level(lv):.0%}"] = [fmt(v, ".3f") for v in table[f"joint {lv}"].astype(float)]
        out[f"width {label_level(lv):.0%} ({label})"] = [fmt(v) for v in table[f"width {lv}"].astype(float)]
    wk = metrics["meta"]["headline_level"]
    out[f"Winkler {label_level(wk):.0%} ({label})"] = [fmt(v) for v in table[f"Winkler {wk}"].astype(float)]
    out[f"CRPS ({label})"] = [fmt(v) for v in table["CRPS"].astype(float)]
    out["MSIS (unitless)"] = [fmt(v) for v in table["MSIS"].astype(float)]
    out["seconds"] = [fmt(v, ".3g") for v in table["seconds"].astype(float)]
    return out


def summary_text(metrics: dict) -> str:
    """Markdown: each entry's coverage at the headline level and CRPS beside the conformalised seasonal naive's."""
    meta = metrics["meta"]
    lv = meta["headline_level"]
    base_key = f"{meta['baseline']}/conformal"
    base = metrics[base_key]
    lines = [f"At the nominal **{label_level(lv):.0%}** level (block-bootstrap 95% CI of the coverage in brackets; overlapping "
             f"windows share errors, so the CI is wider than a count of {meta['windows']:,} windows suggests):", ""]
    for key, m in metrics.items():
        if key == "meta":
            continue
        cov, ci = m["coverage"][lv], m["coverage_ci"][lv]
        holds = None not in ci and ci[0] <= label_level(lv) <= ci[1]
        crps = m["crps"] / base["crps"] - 1 if m["crps"] is not None and base["crps"] else None
        lines.append(f"- `{key}`: coverage {fmt(cov, '.3f')} [{fmt(ci[0], '.3f')}, {fmt(ci[1], '.3f')}] "
                     f"({'nominal within the CI' if holds else 'nominal outside the CI'}), width {fmt(m['width'][lv])}"
                     + ("" if key == base_key else f", CRPS {fmt(crps, '+.0%')} against `{base_key}`") + ".")
    return "\n".join(lines)


def figure_keys(metrics: dict, limit: int = 9) -> list[str]:
    """The entries the figures show: the selected model's (configured order) then the conformalised baseline."""
    meta = metrics["meta"]
    keys = [k for k in metrics if k != "meta" and not k.startswith(meta["baseline"] + "/")]
    return keys[:limit - 1] + [f"{meta['baseline']}/conformal"]


def _finite(values: np.ndarray) -> np.ndarray:
    """Values with infinite ones (bands of a level the calibration windows are too few for) as NaN: not drawn."""
    return np.where(np.isfinite(values), values, np.nan)


def fan_inputs(result: Uncertainty, prepared: Prepared, keys: list[str], step: int, windows: int | None = None):
    """(times (n,), actual (n,), {key: quantiles (n, K)}), original units, of the first `windows` test windows at
    horizon step `step`, for plots.fan_chart."""
    n = len(result.actual) if windows is None else min(windows, len(result.actual))
    rows = prepared.with_lookback(result.metrics["meta"]["lookback"]).target_rows("test")[:n, step - 1]
    q = {k: prepared.to_original(_finite(result.quantiles[k][:n, step - 1, :])) for k in keys}
    return prepared.index[rows], prepared.to_original(result.actual[:n, step - 1]), q


def reliability_inputs(metrics: dict, keys: list[str]) -> dict:
    """{key: {level: (coverage per step, CI low, CI high)}} from metrics.json, for plots.reliability."""
    out = {}
    for k in keys:
        m = metrics[k]
        out[k] = {label_level(lv): (np.asarray(m["coverage_per_step"][lv], float),
                              *(np.asarray(v, float) for v in m["coverage_per_step_ci"][lv]))
                  for lv in m["coverage_per_step"]}
    return out


def width_inputs(result: Uncertainty, prepared: Prepared, keys: list[str], level: float, step: int):
    """(times, {key: width (n,)}, {forecast: error (n,)}), original units, for plots.width_over_time: each entry's
    `level` interval width at `step`, and the errors of the medians of the selected model's first entry and of the
    baseline."""
    rows = prepared.with_lookback(result.metrics["meta"]["lookback"]).target_rows("test")[:, step - 1]
    scale = abs(result.metrics["meta"]["target_scale"])
    widths, errors = {}, {}
    median = [round(float(g), 10) for g in result.grid].index(0.5)
    for k in keys:
        lo, hi = result.interval(k, level)
        widths[k] = _finite(hi[:, step - 1] - lo[:, step - 1]) * scale
    for k in (keys[0], keys[-1]):
        errors[f"{k} (median)"] = (result.actual[:, step - 1] - result.quantiles[k][:, step - 1, median]) * scale
    return prepared.index[rows], widths, errors


def headline(metrics: dict, units: str) -> str:
    """One paragraph (Markdown) for the report's first page: the selected model's best calibrated entry at the
    headline level (nominal coverage inside its CI, then the lowest CRPS; the lowest CRPS when none covers) beside the
    conformalised seasonal naive."""
    meta = metrics["meta"]
    lv = meta["headline_level"]
    base_key = f"{meta['baseline']}/conformal"
    own = {k: m for k, m in metrics.items() if k != "meta" and not k.startswith(meta["baseline"] + "/")}
    if not own:
        return ""

    def covers(m: dict) -> bool:
        ci = m["coverage_ci"][lv]
        return None not in ci and ci[0] <= label_level(lv) <= ci[1]

    pool = {k: m for k, m in own.items() if covers(m)} or own
    key = min(pool, key=lambda k: np.inf if pool[k]["crps"] is None else pool[k]["crps"])
    m, b = metrics[key], metrics[base_key]

    def width(e: dict) -> float:
        return (e.get("original") or {}).get("width", e["width"])[lv]

    ci = m["coverage_ci"][lv]
    which = ("of the selected model's entries whose coverage CI holds the nominal level, the one with the lowest test "
             "CRPS" if covers(m) else "no entry of the selected model has the nominal level inside its coverage CI; "
             "the one with the lowest test CRPS")
    return (f"Nominal {label_level(lv):.0%} intervals on the {meta['windows']:,} test windows ({meta['calibration']} calibration; "
            f"[chapter 7](07_uncertainty.ipynb)); {which}, `{key}`, covers **{fmt(m['coverage'][lv], '.3f')}** of the "
            f"actuals (block-bootstrap 95% CI {fmt(ci[0], '.3f')}–{fmt(ci[1], '.3f')}), whole paths "
            f"{fmt(m['joint_coverage'][lv], '.3f')}, with a mean width of **{fmt(width(m))} {units}** and CRPS "
            f"{fmt(m['crps'])} (scaled); the conformalised seasonal naive covers {fmt(b['coverage'][lv], '.3f')} with "
            f"a width of {fmt(width(b))} {units} and CRPS {fmt(b['crps'])}.")


def reliability_text(metrics: dict, keys: list[str]) -> str:
    """Markdown: for each entry, at how many horizon steps the nominal level lies outside the coverage CI, and where
    coverage falls furthest below nominal."""
    meta = metrics["meta"]
    lv = meta["headline_level"]
    lines = [f"At the nominal {label_level(lv):.0%} level, horizon steps whose coverage CI misses the nominal level:", ""]
    for k in keys:
        cov = np.asarray(metrics[k]["coverage_per_step"][lv], float)
        lo, hi = (np.asarray(v, float) for v in metrics[k]["coverage_per_step_ci"][lv])
        below, above = int(np.sum(hi < label_level(lv))), int(np.sum(lo > label_level(lv)))
        worst = int(np.nanargmin(cov)) + 1
        lines.append(f"- `{k}`: {below} of {len(cov)} steps below (intervals too narrow), {above} above (too wide); "
                     f"lowest coverage {fmt(cov[worst - 1], '.3f')} at step {worst}"
                     + (" (whole-path bands are wider than per-step ones by design)." if k.endswith(JOINT) else "."))
    return "\n".join(lines)
