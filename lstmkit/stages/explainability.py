"""Explainability stage: Integrated Gradients over (time step, feature) of any neural forecaster or Keras model.

Every function that differentiates a model takes either a forecaster of the contract (`lstmkit.models`) with the
`neural` tag, whose `network` (the Keras model) is differentiated, or a Keras model itself."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lstmkit.core.atomic import atomic_path, atomic_write_json, read_json
from lstmkit.core.errors import ForecasterError
from lstmkit.explain.attention import AttentionAnalysis, analyse
from lstmkit.explain.integrated_gradients import Attribution, feature_importance, integrated_gradients, network_of, sample_windows
from lstmkit.models.base import MANIFEST
from lstmkit.models.registry import load
from lstmkit.stages.training import read_selected, select_model


def explain_target(cfg) -> int | str:
    """The explained output of the configured run: a 0-based horizon index or `mean`."""
    return "mean" if cfg.explain.target == "mean" else cfg.explain.horizon_step - 1


def explain_test_windows(forecaster, prepared, cfg) -> tuple[np.ndarray, Attribution]:
    """IG of the configured target for an even sample of test windows, with the configured baseline and rule.

    `forecaster`: the run's selected (neural) forecaster, or a Keras model; returns the window positions in the test
    split, (windows,), and their attributions, (windows, lookback, channels).
    """
    positions = sample_windows(prepared.n_windows("test"), cfg.explain.windows)
    return positions, explain_windows(forecaster, prepared, cfg, positions)


def explain_windows(forecaster, prepared, cfg, positions: np.ndarray) -> Attribution:
    """IG of the configured target (explain.baseline, method, steps) for the test windows at `positions` (0 = the
    test split's first window of `prepared`): attributions (windows, lookback, channels) of a neural forecaster or
    Keras model whose look-back is `prepared`'s."""
    model = network_of(forecaster)
    if model.input_shape[1] is not None and model.input_shape[1] != prepared.lookback:
        raise ForecasterError(f"the model reads windows of {model.input_shape[1]} steps, the prepared series is cut "
                              f"into windows of {prepared.lookback}: pass prepared.with_lookback({model.input_shape[1]})")
    x, _ = prepared.windows("test", positions)  # only the explained windows are gathered
    e = cfg.explain
    train = prepared.scaled[slice(*prepared.bounds.train)]
    return integrated_gradients(model, x, baseline=e.baseline, steps="auto" if e.auto_steps else e.steps,
                                method=e.method, target=explain_target(cfg), batch_size=e.batch_size,
                                tolerance=e.tolerance, max_steps=e.steps, mean=train.mean(axis=0),
                                samples=e.noise_samples, noise_std=e.noise_std, seed=cfg.seed,
                                features=list(prepared.columns))


def save_explanation(run, positions: np.ndarray, attr: Attribution, heatmap: pd.DataFrame, columns: list[str],
                     truth_scores: pd.DataFrame | None = None, check=None, forecaster=None,
                     attention: dict | None = None) -> None:
    """Write the raw attributions (npz) and a JSON summary of the explanation atomically.

    `forecaster`: the explained model (its name and architecture are recorded); `attention`: the attention analysis
    of every attention model of the run, {name: summary} (`lstmkit.stages.explainability.attention_summary`), or None when the
    run has no model with attention weights.
    """
    with atomic_path(run.attributions_file) as tmp:
        np.savez(tmp, window=positions, attributions=attr.values, prediction=attr.prediction,
                 baseline_prediction=attr.baseline_prediction, lags=heatmap.index.to_numpy()[::-1],
                 columns=np.array(columns))
    summary = {"windows": len(positions), "baseline": attr.baseline, "method": attr.method,
               "steps": None if attr.steps is None else [int(attr.steps.min()), int(attr.steps.max())],
               "relative_completeness_gap": attr.relative_gap(),
               "mean_completeness_gap": float(attr.completeness_gap.mean()),
               "feature_share": feature_importance(heatmap).to_dict(),
               "top_lag_per_feature": {c: int(heatmap[c].idxmax()) for c in heatmap.columns}}
    if forecaster is not None:
        summary["model"] = {"name": getattr(forecaster, "name", type(forecaster).__name__),
                            "architecture": getattr(getattr(forecaster, "spec", None), "architecture", None)}
    summary["attention"] = attention or None
    if truth_scores is not None:
        summary["ground_truth_scores"] = truth_scores.reset_index(names="pair").to_dict(orient="records")
    if check is not None:
        tables = {"features": check.features, "lags": check.lags.rename(index=str),
                  "feature_agreement": check.feature_agreement, "lag_agreement": check.lag_agreement}
        # one input channel leaves nothing to rank: its correlations are NaN, written as null
        summary["cross_check"] = {k: t.astype(object).where(t.notna(), None).to_dict() for k, t in tables.items()}
    atomic_write_json(run.explanation_file, summary)


# ------------------------------------------------------------------ every attention model of a run


def trained_names(run) -> list[str]:
    """The names of the models the run's training stage trained (training/selected.json), in training order."""
    selected = read_selected(run)
    return list(dict.fromkeys(e["model"] for e in selected.get("models") or [selected]))


def _tagged(run, entry: dict, tag: str) -> bool:
    """Whether the saved model of a training/selected.json entry has `tag`: from its manifest's summary, or, for a
    manifest without one, from the loaded forecaster."""
    folder = run.root / entry["path"]
    try:
        return bool(read_json(folder / MANIFEST)["summary"]["tags"][tag])
    except (OSError, ValueError, KeyError, TypeError):
        return load(folder).get_tag(tag)


def attention_entries(run, tag: str = "attention") -> list[dict]:
    """The training/selected.json entries to analyse: for each model of the run whose saved forecasters have `tag`,
    its seed with the best validation loss (the selected seed for the selected model), in training order."""
    selected = read_selected(run)
    groups: dict[str, list[dict]] = {}
    for entry in selected.get("models") or [selected]:
        groups.setdefault(entry["model"], []).append(entry)
    chosen = []
    for name, group in groups.items():
        if not _tagged(run, group[0], tag):
            continue
        seed = selected["seed"] if name == selected["model"] else select_model(
            {name: {e["seed"]: e.get("val_loss") for e in group}})[1]
        chosen.append(next(e for e in group if e["seed"] == seed))
    return chosen


def same_windows(prepared, positions: np.ndarray, lookback: int):
    """`prepared` cut at another look-back, and the positions in its test split of the windows with the same
    forecast origins as `positions` in `prepared`'s (those it has): (prepared, positions (k,))."""
    other = prepared.with_lookback(lookback)
    if other is prepared:
        return prepared, np.asarray(positions)
    theirs = prepared.origins("test")[positions] - other.origins("test")[0]
    return other, theirs[(theirs >= 0) & (theirs < other.n_windows("test"))]


@dataclass
class ModelAttention:
    """One attention model of the run: which one, its IG of the explained test windows and the attention analysis."""

    name: str
    seed: int
    selected: bool                # the run's selected model (whose IG the rest of the chapter shows)
    forecaster: object
    attribution: Attribution      # IG of this model, (windows, lookback, channels)
    analysis: AttentionAnalysis

    def to_dict(self) -> dict:
        """JSON-ready summary: the analysis, the seed, whether it is the selected model, and its IG's completeness gap."""
        return {**self.analysis.to_dict(), "seed": self.seed, "selected": self.selected,
                "relative_completeness_gap": self.attribution.relative_gap()}


def analyse_run(run, cfg, selected, prepared, positions: np.ndarray, attr: Attribution, truth=None,
                horizon_step: int = 1) -> list[ModelAttention]:
    """The attention analysis of every attention model of the run (each model's best-validation seed), each beside
    its own Integrated Gradients of the selected model's explained test windows (`explain.*` settings).

    `selected`, `prepared`, `positions`, `attr`: the run's selected forecaster, its prepared series, the positions of
    the explained windows in its test split, and its IG of them (reused when the selected model has attention).
    """
    choice = read_selected(run)
    found = []
    for entry in attention_entries(run):
        is_selected = (entry["model"], entry["seed"]) == (choice["model"], choice["seed"])
        if is_selected:
            forecaster, p, pos, a = selected, prepared, np.asarray(positions), attr
        else:
            forecaster = load(run.root / entry["path"])
            p, pos = same_windows(prepared, positions, forecaster.lookback_)
            a = explain_windows(forecaster, p, cfg, pos)
        x, _ = p.windows("test", pos)
        analysis = analyse(forecaster, x, a, horizon_step, truth, p.target, cfg.explain.attention_top_k)
        found.append(ModelAttention(entry["model"], int(entry["seed"]), is_selected, forecaster, a, analysis))
    return found


def attention_summary(models: list[ModelAttention]) -> dict | None:
    """{name: summary} of the run's attention models for explainability/summary.json; None when there are none."""
    return {m.name: m.to_dict() for m in models} or None
