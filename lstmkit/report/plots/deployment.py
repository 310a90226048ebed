"""Figures of the deployment chapter (09): the replayed stream per policy, rolling error, forecast latency."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lstmkit.report.plots.style import _save

__all__ = ["deployment_timeline", "deployment_rolling_error", "deployment_latency"]

POLICY_COLOURS = {"static": "tab:blue", "periodic": "tab:green", "drift": "tab:orange"}
BASELINE_STYLES = {"seasonal_naive": {"color": "grey", "ls": "--"}, "persistence": {"color": "grey", "ls": ":"}}


def _colour(policy: str, i: int) -> str:
    """The colour of a policy in every figure of the chapter."""
    return POLICY_COLOURS.get(policy, f"C{i + 3}")


def _band_level(columns, prefer: str = "80") -> str | None:
    """The interval level drawn as the band: `prefer` when served, else the narrowest served level."""
    levels = [c[len("lower_"):] for c in columns if c.startswith("lower_")]
    if not levels:
        return None
    return prefer if prefer in levels else sorted(levels, key=float)[0]


def deployment_timeline(replay: pd.DataFrame, events: list[dict], units: str = "a.u.", path=None) -> plt.Figure:
    """One panel per policy over the replayed span: the actual values, the served step-1 forecast with its interval
    band, and a vertical line at every retrain job (labelled with its outcome). `replay`: the stage's replay frame
    (policy, step, timestamp, actual, mean, lower_*/upper_*); `events`: the retrain events."""
    policies = list(dict.fromkeys(replay["policy"]))
    fig, axes = plt.subplots(len(policies), 1, figsize=(12, 2.6 * len(policies) + 0.6), sharex=True, squeeze=False)
    level = _band_level(replay.columns)
    for i, (ax, policy) in enumerate(zip(axes[:, 0], policies)):
        s1 = replay[(replay["policy"] == policy) & (replay["step"] == 1)].sort_values("timestamp")
        t = pd.DatetimeIndex(s1["timestamp"])
        if level is not None:
            ax.fill_between(t, s1[f"lower_{level}"], s1[f"upper_{level}"], color=_colour(policy, i), alpha=0.2, lw=0,
                            label=f"{level}% interval")
        ax.plot(t, s1["actual"], color="black", lw=0.8, label="actual")
        ax.plot(t, s1["mean"], color=_colour(policy, i), lw=0.9, label="served step-1 forecast")
        mine = [e for e in events if e["policy"] == policy]
        for e in mine:
            kind = ("promoted" if e.get("promoted") else "not awaited" if e.get("status") == "not awaited"
                    else "failed" if e.get("status") == "failed" else "champion kept")
            colour = {"promoted": "tab:red", "champion kept": "tab:purple"}.get(kind, "grey")
            ax.axvline(pd.Timestamp(e["timestamp"]), color=colour, ls="--", lw=1, label=f"retrain: {kind}")
            text = str(e.get("to_version") or "")[:6] if kind == "promoted" else kind.split()[0]
            ax.annotate(text, (pd.Timestamp(e["timestamp"]), 1), xycoords=("data", "axes fraction"), xytext=(2, -10),
                        textcoords="offset points", fontsize=7, color=colour)
        ax.set_ylabel(f"value ({units})")
        ax.set_title(f"{policy}: {len(mine)} retrain job(s)", fontsize=10, loc="left")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), loc="upper right", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("time (observation timestamp)")
    fig.suptitle("Replayed stream: actual values and the service's step-1 forecasts per policy, retrains marked")
    return _save(fig, path)


def deployment_rolling_error(metrics: dict, units: str = "a.u.", path=None) -> plt.Figure:
    """The rolling step-1 MAE over the replay of every policy beside the seasonal-naive and persistence forecasts at
    the same origins (trailing window of `metrics['meta']['rolling_window']` observations), retrains marked."""
    rolling = metrics["rolling"]
    t = pd.DatetimeIndex(pd.to_datetime(rolling["timestamp"]))
    fig, ax = plt.subplots(figsize=(12, 4))
    drawn: dict[str, list] = {}
    for i, policy in enumerate(metrics["policies"]):  # later policies thinner: a policy that never retrained draws
        values = rolling[policy][:len(t)]             # the same line as static, and both stay visible
        same = next((p for p, v in drawn.items() if np.allclose(v, values, equal_nan=True)), None)
        ax.plot(t, values, color=_colour(policy, i), lw=max(2.4 - 0.7 * i, 0.8),
                label=f"{policy} (same as {same})" if same else policy)
        drawn[policy] = values
        for e in metrics["policies"][policy]["retrains"]:
            ax.axvline(pd.Timestamp(e["timestamp"]), color=_colour(policy, i), ls="--", lw=0.8, alpha=0.7)
    for name, style in BASELINE_STYLES.items():
        if name in rolling:
            ax.plot(t, rolling[name][:len(t)], lw=1, label=f"{name} (baseline)", **style)
    window = metrics["meta"]["rolling_window"]
    ax.set_title(f"Rolling step-1 MAE over the last {window} observations (dashed verticals: retrain jobs)")
    ax.set_xlabel("time (observation timestamp)")
    ax.set_ylabel(f"MAE ({units})")
    ax.legend(loc="upper left", fontsize=8, ncol=5)
    return _save(fig, path)


def deployment_latency(latency: pd.DataFrame, path=None) -> plt.Figure:
    """Histogram (left) and empirical CDF (right) of the timed single-window forecast latencies per policy, with p50
    and p99 marked. `latency`: policy, latency_ms."""
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(12, 4))
    policies = list(dict.fromkeys(latency["policy"]))
    values = latency["latency_ms"].to_numpy(dtype=float)
    bins = np.linspace(values.min(), np.percentile(values, 99.5), 40) if len(values) else 10
    for i, policy in enumerate(policies):
        ms = np.sort(latency.loc[latency["policy"] == policy, "latency_ms"].to_numpy(dtype=float))
        c = _colour(policy, i)
        hist.hist(ms, bins=bins, color=c, alpha=0.45, label=policy)
        cdf.step(ms, np.arange(1, len(ms) + 1) / len(ms), where="post", color=c, label=policy)
        for q, ls in ((50, "-"), (99, "--")):
            v = float(np.percentile(ms, q))
            for ax in (hist, cdf):
                ax.axvline(v, color=c, ls=ls, lw=0.9, label=f"{policy} p{q} = {v:.1f} ms")
    hist.set_title("Single-window forecast latency (client side, loopback)")
    hist.set_xlabel("latency (ms)")
    hist.set_ylabel("requests")
    hist.legend(fontsize=7)
    cdf.set_title("Empirical CDF (solid: p50, dashed: p99)")
    cdf.set_xlabel("latency (ms)")
    cdf.set_ylabel("share of requests at most this fast")
    cdf.set_ylim(0, 1.02)
    if len(values) and values.max() > 20 * max(values.min(), 1e-9):
        cdf.set_xscale("log")
        cdf.set_xlabel("latency (ms, log scale)")
    cdf.legend(fontsize=7, loc="lower right")
    return _save(fig, path)
