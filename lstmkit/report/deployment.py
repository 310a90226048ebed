"""The deployment chapter's tables and words: errors beside the baselines, coverage, retrain events, latency,
and the report's one-paragraph headline of the replay."""

from __future__ import annotations

import pandas as pd

from lstmkit.stages.deployment import PERCENTILES


def errors_table(metrics: dict, units: str = "original") -> pd.DataFrame:
    """Policies beside the baselines: MAE and RMSE overall and at step 1 and the last step, in `units`."""
    rows = {}
    for name, m in [*metrics["policies"].items(), *metrics["baselines"].items()]:
        e = m[units]
        rows[name] = {"kind": "policy" if name in metrics["policies"] else "baseline", "MAE": e["mae"],
                      "RMSE": e["rmse"], "MAE step 1": e["mae_per_step"][0], "MAE last step": e["mae_per_step"][-1]}
    return pd.DataFrame.from_dict(rows, orient="index")


def headline(metrics: dict, units: str) -> str:
    """One paragraph: each policy's MAE over every scored forecast beside the best baseline's, and its retrains."""
    meta = metrics["meta"]
    best = min(metrics["baselines"], key=lambda b: metrics["baselines"][b]["original"]["mae"])
    base = metrics["baselines"][best]["original"]["mae"]
    parts = []
    for policy, m in metrics["policies"].items():
        mae = m["original"]["mae"]
        promoted = sum(1 for e in m["retrains"] if e.get("promoted"))
        parts.append(f"**{policy}** {mae:.4g} {units} ({(mae / base - 1) * 100:+.1f}% against {best}; "
                     f"{len(m['retrains'])} retrain job(s), {promoted} promoted)")
    winner = min(metrics["policies"], key=lambda p: metrics["policies"][p]["original"]["mae"])
    return (f"Mean absolute error over the {meta['steps']} replayed observations, all {meta['horizon']} horizon steps: "
            + "; ".join(parts) + f". The best baseline, {best}, has {base:.4g} {units}; the lowest error is the "
            f"{winner} policy's.")


def coverage_table(metrics: dict) -> pd.DataFrame:
    """Per policy and interval level: the share of actuals inside the served intervals (all steps and step 1) and
    the mean width (original units)."""
    rows = {}
    for policy, m in metrics["policies"].items():
        for level in m["coverage"]:
            rows[(policy, f"{level}%")] = {"coverage": m["coverage"][level], "coverage step 1": m["coverage_step1"][level],
                                          "nominal": float(level) / 100, "mean width": m["width"][level]}
    return pd.DataFrame.from_dict(rows, orient="index")


def events_table(metrics: dict) -> pd.DataFrame:
    """Every retrain event of every policy: policy, observation, timestamp, reason, status, decision, versions."""
    events = [e for m in metrics["policies"].values() for e in m["retrains"]]
    columns = ["policy", "observation", "timestamp", "reason", "status", "decision", "promoted", "from_version",
               "to_version", "wait_s"]
    return pd.DataFrame([{c: e.get(c) for c in columns} for e in events], columns=columns)


def latency_table(metrics: dict) -> pd.DataFrame:
    """Latency percentiles (ms) per policy: the timed single-window requests and the stream's forecasts."""
    rows = {}
    for policy, m in metrics["policies"].items():
        for kind, key in (("single window", "latency_ms"), ("stored series (stream)", "stream_latency_ms")):
            s = m[key]
            rows[(policy, kind)] = {"requests": s.get("n", 0), **{f"p{q}": s.get(f"p{q}") for q in PERCENTILES},
                                    "mean": s.get("mean")}
    return pd.DataFrame.from_dict(rows, orient="index")
