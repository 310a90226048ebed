"""Temporal attention analysis: an attention model's own weights set beside its Integrated Gradients attributions.

Forecasters with the `attention` tag give `attention(windows)`: `time`, (windows, lookback) weights over the look-back
steps, and, with the `variable_selection` tag (the TFT), `variables`, (windows, channels) weights over the input
channels; every row sums to 1. This module turns them into mean profiles over lags and channels, sets them beside IG's
profiles of the same windows (mean |attribution| per lag summed over channels, or per channel, normalised to sum to
1), measures how well the rankings agree (Spearman's rank correlation and the overlap of the top-k entries) and, on
synthetic data, scores both against the generator's planted lags and driving inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from lstmkit.core.errors import ForecasterError
from lstmkit.core.jsonable import jsonable
from lstmkit.explain.integrated_gradients import Attribution, lag_labels
from lstmkit.models.neural import architectures

ATTENTION, VARIABLES, IG = "attention", "variable selection", "ig"  # profile column names


def attention_architectures(tag: str = "attention") -> list[str]:
    """The architectures whose module declares the capability `tag` (e.g. attention)."""
    return [name for name, module in architectures.modules().items() if getattr(module, "TAGS", {}).get(tag, False)]


def _weights(values: np.ndarray, what: str, shape: tuple[int, int]) -> np.ndarray:
    """Validated attention weights of the expected (windows, k) shape: finite, non-negative, rows summing to 1."""
    w = np.asarray(values, dtype=float)
    if w.shape != shape:
        raise ValueError(f"{what} weights have shape {w.shape}, expected {shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{what} weights must be finite and non-negative")
    if len(w) and not np.allclose(w.sum(axis=1), 1.0, atol=1e-3):
        bad = int(np.argmax(np.abs(w.sum(axis=1) - 1.0)))
        raise ValueError(f"{what} weights of window {bad} sum to {w[bad].sum():.4f}, not 1")
    return w


def _normalised(mass: np.ndarray) -> np.ndarray:
    """mass / mass.sum() (uniform when all mass is zero)."""
    total = float(mass.sum())
    return mass / total if total > 0 else np.full(len(mass), 1.0 / len(mass))


def time_profile(weights: np.ndarray, horizon_step: int = 1) -> pd.Series:
    """Mean attention weight per lag over the windows: (windows, lookback) -> shares summing to 1, indexed by lag
    (steps before the explained target; the last input is lag `horizon_step`), in ascending lag order."""
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or not len(w):
        raise ValueError(f"attention over time must have shape (windows, lookback) with windows > 0, got {w.shape}")
    index = pd.Index(lag_labels(w.shape[1], horizon_step), name="lag")
    return pd.Series(_normalised(w.mean(axis=0)), index=index, name=ATTENTION).sort_index()


def ig_time_profile(values: np.ndarray, horizon_step: int = 1) -> pd.Series:
    """IG's profile over lags: mean |attribution| per lag summed over channels, (windows, lookback, channels) ->
    shares summing to 1, indexed by lag like `time_profile`."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 3:
        raise ValueError(f"attributions must have shape (windows, lookback, channels), got {v.shape}")
    index = pd.Index(lag_labels(v.shape[1], horizon_step), name="lag")
    return pd.Series(_normalised(np.abs(v).mean(axis=0).sum(axis=1)), index=index, name=IG).sort_index()


def variable_profile(weights: np.ndarray, columns: list[str]) -> pd.Series:
    """Mean variable-selection weight per input channel over the windows, (windows, channels) -> shares summing to 1."""
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape[1] != len(columns) or not len(w):
        raise ValueError(f"variable-selection weights must have shape (windows, {len(columns)}), got {w.shape}")
    return pd.Series(_normalised(w.mean(axis=0)), index=pd.Index(list(columns), name="channel"), name=VARIABLES)


def ig_variable_profile(values: np.ndarray, columns: list[str]) -> pd.Series:
    """IG's share of each channel: mean |attribution| per channel, (windows, lookback, channels) -> shares summing to 1."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 3 or v.shape[2] != len(columns):
        raise ValueError(f"attributions must have shape (windows, lookback, {len(columns)}), got {v.shape}")
    return pd.Series(_normalised(np.abs(v).mean(axis=(0, 1))), index=pd.Index(list(columns), name="channel"), name=IG)


@dataclass(frozen=True)
class RankAgreement:
    """How well two importance profiles over the same entries (lags or channels) rank them alike."""

    spearman: float      # Spearman's rank correlation over the entries (NaN when a profile is constant)
    p_value: float       # its two-sided p-value (scipy.stats.spearmanr)
    top_k: int           # how many of each profile's most important entries are compared
    overlap: float       # shared entries among the two top-k sets, as a fraction of k
    first: list          # the first profile's top-k entries, most important first
    second: list         # the second profile's top-k entries, most important first
    entries: int         # number of entries ranked

    def to_dict(self) -> dict:
        """JSON-ready form (NaN as None)."""
        def number(v: float) -> float | None:
            return None if not np.isfinite(v) else float(v)
        return {"spearman": number(self.spearman), "p_value": number(self.p_value), "top_k": self.top_k,
                "top_k_overlap": self.overlap, "entries": self.entries,
                "top_first": [jsonable(e) for e in self.first], "top_second": [jsonable(e) for e in self.second]}


def _top(profile: pd.Series, k: int) -> list:
    """The k largest entries' labels, ties broken by the profile's order."""
    return list(profile.sort_values(ascending=False, kind="stable").index[:k])


def rank_agreement(first: pd.Series, second: pd.Series, top_k: int = 5) -> RankAgreement:
    """Spearman's rank correlation of two profiles aligned on their index, and the overlap of their top-k entries."""
    if top_k < 1:
        raise ValueError(f"explain.attention_top_k: must be at least 1, got {top_k}")
    joined = pd.concat([first.rename("first"), second.rename("second")], axis=1, join="inner").astype(float)
    if joined.isna().any().any():
        raise ValueError("the profiles to compare hold missing values")
    n, k = len(joined), min(top_k, len(joined))
    if n < 2 or joined["first"].nunique() < 2 or joined["second"].nunique() < 2:
        rho, p = np.nan, np.nan  # nothing to rank
    else:
        result = stats.spearmanr(joined["first"], joined["second"])
        rho, p = float(result.statistic), float(result.pvalue)
    a, b = _top(joined["first"], k), _top(joined["second"], k)
    return RankAgreement(rho, p, k, len(set(a) & set(b)) / k if k else np.nan, a, b, n)


def window_spearman(time_weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per window, Spearman's correlation between its attention over the look-back steps (windows, lookback) and its
    |IG attribution| per step summed over channels (windows, lookback, channels); NaN for a constant row."""
    w = np.asarray(time_weights, dtype=float)
    mass = np.abs(np.asarray(values, dtype=float)).sum(axis=2)
    if w.shape != mass.shape:
        raise ValueError(f"attention {w.shape} and attributions {np.shape(values)} do not cover the same windows and steps")
    ra, rb = stats.rankdata(w, axis=1), stats.rankdata(mass, axis=1)  # Spearman = Pearson of the (average) ranks
    ra, rb = ra - ra.mean(axis=1, keepdims=True), rb - rb.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (ra * rb).sum(axis=1) / denominator, np.nan)


def planted_lag_scores(profiles: pd.DataFrame, truth) -> pd.DataFrame:
    """Each profile's weight on the generator's planted lags, scored as IG is scored on the (feature, lag) cells.

    `profiles`: shares over lags (index: lag), one column per method. One row per planted (feature, lag) pair: for
    each method, the lag's rank among all lags (1 = most weight) and its share, and the uniform share 1 / lags. The
    time profiles mix every channel, so a lag's weight is all channels' weight at that lag.
    """
    rows = {}
    for feature, lag in truth.driving_pairs():
        if lag not in profiles.index:
            continue
        row: dict = {"feature": feature, "lag": int(lag)}
        for method in profiles.columns:
            column = profiles[method]
            row[f"{method} rank"] = int((column > column.loc[lag]).sum()) + 1
            row[f"{method} share"] = float(column.loc[lag])
        row["uniform"] = 1.0 / len(profiles)
        rows[f"{feature} @ lag {lag}"] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def channel_roles(columns: list[str], truth, target: str) -> dict[str, str]:
    """What each input channel is to the generator: `driver`, `distractor`, `target` or `other`."""
    drivers = {feature for feature, _ in truth.driving_pairs()}
    return {c: "target" if c == target else "driver" if c in drivers else "distractor" if c in truth.distractors
            else "other" for c in columns}


def driver_scores(profiles: pd.DataFrame, roles: dict[str, str]) -> pd.DataFrame:
    """Each channel's role with each method's share and rank among the channels (1 = most weight)."""
    table = pd.DataFrame({"role": pd.Series(roles).reindex(profiles.index)})
    for method in profiles.columns:
        table[f"{method} share"] = profiles[method]
        table[f"{method} rank"] = profiles[method].rank(ascending=False, method="min").astype(int)
    return table


@dataclass
class AttentionAnalysis:
    """An attention model's weights over the explained windows, beside IG's attributions of the same windows."""

    model: str
    architecture: str | None
    time: pd.DataFrame                       # index: lag; columns attention, ig (each sums to 1)
    time_agreement: RankAgreement
    window_spearman: np.ndarray              # (windows,) Spearman per window, NaN where a row is constant
    variables: pd.DataFrame | None = None    # index: channel; columns `variable selection`, ig (each sums to 1)
    variable_agreement: RankAgreement | None = None
    lag_scores: pd.DataFrame | None = None   # planted lags (synthetic data)
    channel_scores: pd.DataFrame | None = None  # roles of the channels (synthetic data, variable selection only)

    def to_dict(self) -> dict:
        """JSON-ready summary for explainability/summary.json."""
        finite = self.window_spearman[np.isfinite(self.window_spearman)]

        def records(table: pd.DataFrame | None, label: str) -> list | None:
            return None if table is None else table.reset_index(names=label).to_dict(orient="records")

        out = {"model": self.model, "architecture": self.architecture,
               "time": {"lags": [int(v) for v in self.time.index],
                        **{c: [float(v) for v in self.time[c]] for c in self.time.columns}},
               "time_agreement": self.time_agreement.to_dict(),
               "window_spearman_median": float(np.median(finite)) if finite.size else None,
               "windows": len(self.window_spearman),
               "planted_lags": records(self.lag_scores, "pair")}
        if self.variables is not None:
            out["variables"] = {c: {str(k): float(v) for k, v in self.variables[c].items()} for c in self.variables}
            out["variable_agreement"] = self.variable_agreement.to_dict()
            out["channel_roles"] = records(self.channel_scores, "channel")
        return out


def analyse(forecaster, windows: np.ndarray, attr: Attribution, horizon_step: int = 1, truth=None,
            target: str | None = None, top_k: int = 5) -> AttentionAnalysis:
    """Attention of `forecaster` (tag `attention`) over `windows` (n, lookback, channels), beside IG's `attr` of the
    same windows; with the generator's `truth` (synthetic data), both scored against the planted lags and drivers.

    `horizon_step` labels the lags as IG's heatmap does (the last input is lag `horizon_step`); `top_k` is the number
    of most weighted lags (or channels) whose overlap is reported.
    """
    if not forecaster.get_tag("attention"):
        raise ForecasterError(f"{getattr(forecaster, 'name', forecaster)} exposes no attention weights")
    windows = np.asarray(windows, dtype=np.float32)
    if attr.values.shape != windows.shape:
        raise ValueError(f"attributions of shape {attr.values.shape} do not belong to windows of shape {windows.shape}")
    n, lookback, channels = windows.shape
    weights = forecaster.attention(windows)
    if "time" not in weights:
        raise ValueError(f"{forecaster.name}: attention() gave no `time` weights (keys: {sorted(weights)})")
    time_w = _weights(weights["time"], "attention over time", (n, lookback))
    time = pd.concat([time_profile(time_w, horizon_step), ig_time_profile(attr.values, horizon_step)], axis=1)
    analysis = AttentionAnalysis(getattr(forecaster, "name", type(forecaster).__name__),
                                 getattr(getattr(forecaster, "spec", None), "architecture", None), time,
                                 rank_agreement(time[ATTENTION], time[IG], top_k),
                                 window_spearman(time_w, attr.values))
    features = attr.feature_names
    if forecaster.get_tag("variable_selection"):
        if "variables" not in weights:
            raise ValueError(f"{forecaster.name} has the variable_selection tag but attention() gave no "
                             "`variables` weights")
        var_w = _weights(weights["variables"], "variable-selection", (n, channels))
        analysis.variables = pd.concat([variable_profile(var_w, features), ig_variable_profile(attr.values, features)],
                                       axis=1)
        analysis.variable_agreement = rank_agreement(analysis.variables[VARIABLES], analysis.variables[IG],
                                                     min(top_k, max(1, channels // 2)))  # k of n channels: k < n
    if truth is not None:
        analysis.lag_scores = planted_lag_scores(time, truth)
        if analysis.variables is not None:
            analysis.channel_scores = driver_scores(analysis.variables, channel_roles(features, truth, target))
    return analysis
