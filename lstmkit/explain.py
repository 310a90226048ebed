"""Explainability stage: Integrated Gradients over (time step, feature) for any Keras forecaster."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow as tf


@dataclass
class Attribution:
    """IG attributions of a batch of windows, with the completeness check of each window."""

    values: np.ndarray        # (windows, lookback, channels)
    prediction: np.ndarray    # f(x) for the explained output, (windows,)
    baseline_prediction: np.ndarray  # f(baseline), (windows,)

    @property
    def delta(self) -> np.ndarray:
        """f(x) - f(baseline): what the attributions of each window should add up to."""
        return self.prediction - self.baseline_prediction

    @property
    def completeness_gap(self) -> np.ndarray:
        """|sum of attributions - (f(x) - f(baseline))| per window."""
        return np.abs(self.values.sum(axis=(1, 2)) - self.delta)

    def relative_gap(self) -> float:
        """Total completeness gap as a fraction of the total |f(x) - f(baseline)|."""
        return float(self.completeness_gap.sum() / max(np.abs(self.delta).sum(), 1e-12))


def _output(model, x: tf.Tensor, output_index: int) -> tf.Tensor:
    """The explained scalar output of the model for each row of x."""
    return model(x, training=False)[:, output_index]


def integrated_gradients(model, x: np.ndarray, baseline: np.ndarray | None = None, steps: int = 64,
                         output_index: int = 0, batch_size: int = 4096) -> Attribution:
    """Integrated Gradients (midpoint Riemann sum) of one model output, all steps batched together.

    Windows are processed in chunks so that at most `batch_size` interpolated inputs are differentiated at once.
    """
    x = np.asarray(x, dtype=np.float32)
    base = np.zeros_like(x) if baseline is None else np.broadcast_to(np.asarray(baseline, np.float32), x.shape)
    alphas = tf.constant((np.arange(steps, dtype=np.float32) + 0.5) / steps)[None, :, None, None]
    per_chunk = max(1, batch_size // steps)
    attributions, preds, base_preds = [], [], []
    for i in range(0, len(x), per_chunk):
        xc, bc = tf.constant(x[i:i + per_chunk]), tf.constant(base[i:i + per_chunk])
        path = bc[:, None] + alphas * (xc - bc)[:, None]            # (chunk, steps, lookback, channels)
        flat = tf.reshape(path, (-1, *x.shape[1:]))
        with tf.GradientTape() as tape:
            tape.watch(flat)
            out = _output(model, flat, output_index)
        grads = tf.reshape(tape.gradient(out, flat), path.shape)
        attributions.append(((xc - bc) * tf.reduce_mean(grads, axis=1)).numpy())
        ends = _output(model, tf.concat([xc, bc], axis=0), output_index).numpy()
        preds.append(ends[:len(xc)])
        base_preds.append(ends[len(xc):])
    return Attribution(np.concatenate(attributions), np.concatenate(preds), np.concatenate(base_preds))


def integrated_gradients_loop(model, x: np.ndarray, steps: int = 64, output_index: int = 0) -> np.ndarray:
    """Reference IG with one gradient call per window and step (slow; for checks and benchmarks)."""
    out = np.zeros_like(x, dtype=np.float32)
    for w in range(len(x)):
        xw = tf.constant(x[w:w + 1], tf.float32)
        total = tf.zeros_like(xw)
        for k in range(steps):
            z = ((k + 0.5) / steps) * xw
            with tf.GradientTape() as tape:
                tape.watch(z)
                y = _output(model, z, output_index)
            total += tape.gradient(y, z)
        out[w] = (xw * total / steps).numpy()[0]
    return out


def sample_windows(n_windows: int, k: int) -> np.ndarray:
    """k window positions spread evenly over n_windows (all of them when k >= n)."""
    if k >= n_windows:
        return np.arange(n_windows)
    return np.unique(np.linspace(0, n_windows - 1, k).round().astype(int))


def lag_labels(lookback: int, horizon_step: int) -> np.ndarray:
    """For each window position, the lag between that input and the explained target (position -1 -> horizon_step)."""
    return np.arange(lookback, 0, -1) - 1 + horizon_step


def importance_heatmap(attr: Attribution, columns: list[str], horizon_step: int) -> pd.DataFrame:
    """Mean |attribution| per (lag, feature) over the explained windows; rows ordered by lag."""
    mean_abs = np.abs(attr.values).mean(axis=0)
    df = pd.DataFrame(mean_abs, columns=columns, index=pd.Index(lag_labels(mean_abs.shape[0], horizon_step), name="lag"))
    return df.sort_index()


def feature_importance(heatmap: pd.DataFrame) -> pd.Series:
    """Share of the total attribution mass carried by each feature."""
    total = heatmap.sum()
    return (total / total.sum()).sort_values(ascending=False).rename("share of |attribution|")


def lag_importance(heatmap: pd.DataFrame) -> pd.Series:
    """Share of the total attribution mass at each lag (all features together)."""
    total = heatmap.sum(axis=1)
    return (total / total.sum()).rename("share of |attribution|")


def ground_truth_table(heatmap: pd.DataFrame, truth, target: str) -> pd.DataFrame:
    """For each exogenous feature: the lag IG finds most important beside the generator's true lag."""
    true_lags = {}
    for feature, lag in truth.driving_pairs():
        true_lags.setdefault(feature, lag)
    rows = []
    for feature in heatmap.columns:
        if feature == target:
            continue
        col = heatmap[feature]
        true_lag = true_lags.get(feature)
        rank = None
        if true_lag is not None and true_lag in col.index:
            rank = int((col > col.loc[true_lag]).sum()) + 1
        rows.append({"feature": feature, "true lag": true_lag if true_lag is not None else "none (distractor)",
                     "IG top lag": int(col.idxmax()), "rank of true lag": rank if rank else "-",
                     "share of feature mass at true lag": round(float(col.loc[true_lag] / col.sum()), 4) if rank else "-"})
    return pd.DataFrame(rows).set_index("feature")


def ground_truth_summary(table: pd.DataFrame, shares: pd.Series, truth) -> str:
    """One sentence (Markdown) on how many driving inputs IG locates at their true lag, and what the distractors get."""
    driving = table[table["rank of true lag"] != "-"]
    hits = [f for f, row in driving.iterrows() if row["IG top lag"] == row["true lag"]]
    text = (f"IG puts the most attribution exactly at the true lag for {len(hits)} of {len(driving)} driving inputs"
            f" ({', '.join(f'`{h}`' for h in hits) or 'none'}).")
    for d in truth.distractors:
        if d in shares:
            text += f" The distractor `{d}`, which has no effect on the target, carries {shares[d]:.1%} of all attribution."
    return text


def explain_test_windows(model, prepared, cfg) -> tuple[np.ndarray, Attribution]:
    """IG of the configured horizon step for an even sample of test windows, against the all-zero (training mean) baseline."""
    x, _ = prepared.arrays("test")
    positions = sample_windows(len(x), cfg.explain.windows)
    attr = integrated_gradients(model, x[positions], steps=cfg.explain.steps,
                                output_index=cfg.explain.horizon_step - 1, batch_size=cfg.explain.batch_size)
    return positions, attr


def completeness_table(attr: Attribution) -> pd.DataFrame:
    """Summary of the per-window completeness check."""
    gap, delta = attr.completeness_gap, np.abs(attr.delta)
    rel = gap / np.maximum(delta, 1e-12)
    return pd.DataFrame({"value": [len(gap), float(delta.mean()), float(gap.mean()), float(gap.max()),
                                   float(np.median(rel)), attr.relative_gap()]},
                        index=pd.Index(["windows explained", "mean |f(x) - f(baseline)|", "mean gap", "largest gap",
                                        "median relative gap", "total gap / total |f(x) - f(baseline)|"], name="check"))


def save_explanation(run, positions: np.ndarray, attr: Attribution, heatmap: pd.DataFrame, columns: list[str],
                     truth_table: pd.DataFrame | None = None) -> None:
    """Write the raw attributions (npz) and a JSON summary of the explanation atomically."""
    from lstmkit.runfolder import atomic_write_json

    path = run.attributions_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".attributions.tmp.npz")
    np.savez(tmp, window=positions, attributions=attr.values, prediction=attr.prediction,
             baseline_prediction=attr.baseline_prediction, lags=heatmap.index.to_numpy()[::-1], columns=np.array(columns))
    tmp.replace(path)
    summary = {"windows": len(positions), "relative_completeness_gap": attr.relative_gap(),
               "mean_completeness_gap": float(attr.completeness_gap.mean()),
               "feature_share": feature_importance(heatmap).to_dict(),
               "top_lag_per_feature": {c: int(heatmap[c].idxmax()) for c in heatmap.columns}}
    if truth_table is not None:
        summary["ground_truth"] = truth_table.reset_index().to_dict(orient="records")
    atomic_write_json(run.explanation_file, summary)
