"""The explainability chapter's words: how the model is named, what the planted lags say about the
attributions, how the explanation methods agree, and what the attention weights say beside Integrated Gradients."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstmkit.explain.attention import ATTENTION, IG, VARIABLES, AttentionAnalysis, RankAgreement, attention_architectures
from lstmkit.stages.explainability import ModelAttention


def _names(names: list[str]) -> str:
    """`a`, `a` and `b`, `a`, `b` and `c`."""
    quoted = [f"`{n}`" for n in names]
    return " and ".join(quoted) if len(quoted) < 3 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def no_attention_text(forecaster, models: list[str] | None = None) -> str:
    """One sentence (Markdown): this model (and, given the names of the run's `models`, no other model of the run)
    exposes no attention weights, and which architectures do."""
    archs = attention_architectures()
    others = [m for m in models or [] if m != getattr(forecaster, "name", None)]
    where = "`model.architecture`" + (", or `compare.architectures` to train them beside the others" if others else "")
    return (f"The selected model, {describe_model(forecaster)}, exposes no attention weights"
            + (f", nor does {'the other model' if len(others) == 1 else 'any other model'} of this run "
               f"({_names(others)})" if others else "")
            + ", so there is no attention to set beside IG; "
            + (f"the {'architecture that does is' if len(archs) == 1 else 'architectures that do are'} {_names(archs)}"
               f" ({where})." if archs else "no architecture written so far does."))


def _ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _agreement_words(a: RankAgreement, level: str) -> str:
    """`a Spearman correlation of 0.62 over the 24 lags (p = 0.001); 3 of their 5 ...` as words."""
    if not np.isfinite(a.spearman):
        return f"no rank correlation over the {a.entries} {level}s (one profile is flat)"
    text = f"a Spearman rank correlation of {a.spearman:.2f} over the {a.entries} {level}s"
    if a.entries >= 10:  # with fewer entries the p-value says little
        text += f" ({'p < 0.001' if a.p_value < 0.001 else f'p = {a.p_value:.2g}'})"
    if a.top_k < a.entries:  # sharing all of them would say nothing
        text += f"; they share {round(a.overlap * a.top_k)} of their {a.top_k} most weighted {level}s"
    return text


def time_summary(analysis: AttentionAnalysis, unit: str = "steps") -> str:
    """A few sentences (Markdown): where the attention looks, how its ranking of lags agrees with IG's, and, with a
    ground truth, how each ranks the planted lags."""
    t, a = analysis.time, analysis.time_agreement
    top_att, top_ig, even = int(t[ATTENTION].idxmax()), int(t[IG].idxmax()), 1.0 / len(t)
    if t[ATTENTION].max() < 1.5 * even:
        text = (f"The attention is spread almost evenly over the look-back window: its mean weights range from "
                f"{t[ATTENTION].min():.1%} to {t[ATTENTION].max():.1%} (lag {top_att}), against an even {even:.1%} per "
                f"lag, while IG puts {t[IG].max():.0%} of its attribution on lag {top_ig} ({unit}).")
    else:
        text = (f"The attention puts {t[ATTENTION].max():.0%} of its weight on lag {top_att} ({unit}), IG "
                f"{t[IG].max():.0%} of its attribution on lag {top_ig}.")
    text += f" Over lags the two have {_agreement_words(a, 'lag')}."
    finite = analysis.window_spearman[np.isfinite(analysis.window_spearman)]
    if finite.size:
        text += (f" Window by window the correlation has a median of {np.median(finite):.2f} "
                 f"(from {finite.min():.2f} to {finite.max():.2f}).")
    if analysis.lag_scores is not None and len(analysis.lag_scores):
        lags = len(t)
        for pair, r in analysis.lag_scores.iterrows():
            text += (f" At the planted `{pair}` the attention ranks the lag {_ordinal(int(r[f'{ATTENTION} rank']))} of "
                     f"{lags} ({r[f'{ATTENTION} share']:.1%} of its weight), IG {_ordinal(int(r[f'{IG} rank']))} "
                     f"({r[f'{IG} share']:.1%}); an even spread would give each lag {r['uniform']:.1%}.")
    return text


def variable_summary(analysis: AttentionAnalysis) -> str:
    """A few sentences (Markdown) on the variable-selection weights beside IG's channel shares and, with a ground
    truth, where each puts the drivers and the distractors."""
    if analysis.variables is None:
        archs = attention_architectures("variable_selection")
        return (f"The `{analysis.architecture or analysis.model}` architecture weighs time steps but not input channels:"
                " it has no variable-selection weights" + (f" (those come with {_names(archs)})." if archs else "."))
    v, a = analysis.variables, analysis.variable_agreement
    if len(v) == 1:
        return (f"With one input channel (`{v.index[0]}`) variable selection has nothing to choose between: it gives "
                "that channel all its weight.")
    text = (f"Variable selection gives `{v[VARIABLES].idxmax()}` the most weight ({v[VARIABLES].max():.0%}), IG "
            f"`{v[IG].idxmax()}` ({v[IG].max():.0%}); over channels they have {_agreement_words(a, 'channel')}.")
    scores = analysis.channel_scores
    if scores is not None:
        for role in ("driver", "distractor"):
            chosen = scores[scores["role"] == role]
            for channel, r in chosen.iterrows():
                text += (f" The {role} `{channel}` gets {r[f'{VARIABLES} share']:.1%} of the selection weight (rank "
                         f"{int(r[f'{VARIABLES} rank'])} of {len(scores)}) and {r[f'{IG} share']:.1%} of IG's "
                         f"attribution (rank {int(r[f'{IG} rank'])}).")
    return text


def model_intro(model: ModelAttention) -> str:
    """A heading and a sentence (Markdown) introducing one attention model's analysis: which seed, whether it is the
    selected model, how its IG was computed, and what to see in the figures below."""
    f, a = model.forecaster, model.attribution
    loss = getattr(f, "val_loss_", None)
    loss_words = f" (validation loss {loss:.4g})" if isinstance(loss, (int, float)) and np.isfinite(loss) else ""
    role = ("This is the run's selected model: its IG is the one shown above." if model.selected else
            f"Trained in the same run but not selected, this is its seed with the best validation loss{loss_words}; its"
            f" IG is computed here for the same {len(a.values)} test windows with the same settings (completeness gap "
            f"{a.relative_gap():.2%}).")
    variables = (" The bars after the profiles set its variable-selection weight of each input channel beside IG's "
                 "share of that channel." if model.analysis.variables is not None and len(model.analysis.variables) > 1
                 else "")
    return (f"### {describe_model(f)}, seed {model.seed}\n\n"
            f"{role} Where its attention curve follows IG's, the "
            "lags it attends to are the ones the forecast depends on; lags far from the diagonal of the right panel "
            f"are weighted very differently by the two.{variables}")


def agreement_summary(matrix: pd.DataFrame, level: str, window_normalised: bool = False) -> str:
    """One sentence (Markdown) on how well the other methods' rankings agree with IG's, naming the least agreeing."""
    others = matrix["ig"].drop("ig").dropna()
    if others.empty:
        return f"There is only one {level}: no ranking to compare."
    worst = others.idxmin()
    text = (f"Over {level}s, IG's ranking has a Spearman correlation of {others.min():.2f} to {others.max():.2f} with the "
            f"other methods; it agrees least with **{worst}** ({others[worst]:.2f}).")
    if others[worst] < 0.5:
        text += (" A low value means the methods credit different inputs: IG integrates along the path from the baseline "
                 "to the window, saliency looks only at local slopes, and permutation importance at what the model "
                 "needs on average.")
        if window_normalised:
            text += (" This model normalises each window by its own statistics, so the window's level, which the "
                     "baseline lacks, is credited by IG to the inputs that set it (the last value for `last`).")
    return text


def describe_model(forecaster) -> str:
    """The forecaster's name in Markdown, with its architecture when the name does not already say it."""
    name = getattr(forecaster, "name", type(forecaster).__name__)
    arch = getattr(getattr(forecaster, "spec", None), "architecture", None)
    return f"`{name}`" + (f" (architecture `{arch}`)" if arch and arch != name else "")


def ground_truth_summary(scores: pd.DataFrame, shares: pd.Series, truth, first_lag: int = 1) -> str:
    """A few sentences (Markdown) on how many planted pairs IG puts first in their feature, and what the distractors get.

    `first_lag` is the lag of each window's last input (the explained horizon step): a driver's effect on that last
    target value shows up that many lags after the planted lag.
    """
    hits = scores[scores["top lag"] == scores["lag"]]
    text = (f"IG puts the most attribution exactly at the planted lag for {len(hits)} of {len(scores)} driving pairs"
            f" ({', '.join(f'`{h}`' for h in hits.index) or 'none'}).")
    echoes = hits[hits["next lag"] == hits["lag"] + first_lag]
    if len(echoes):
        pairs = ", ".join(f"`{r.feature} @ lag {r.lag + first_lag}`" for r in echoes.itertuples())
        text += (f" The runner-up lag of {'that input' if len(echoes) == 1 else 'those inputs'} comes {first_lag} "
                 f"step{'s' if first_lag > 1 else ''} later ({pairs}): the target's last observed value contains the "
                 "driver's effect at that lag, and a forecast that builds on the last value uses the driver there to "
                 "take that effect out again.")
    misses = scores[scores["top lag"] != scores["lag"]]
    for pair, r in misses.iterrows():
        top, place = int(r["top lag"]), _ordinal(int(r["rank within feature"]))
        text += (f" `{pair}` comes {place} among {r['feature']}'s lags, behind lag {top}"
                 + ("; when an input is autocorrelated its neighbouring lags carry nearly the same information, and a"
                    " model trained on more data, closer to the noise floor, tends to separate them."
                    if abs(top - int(r["lag"])) <= 2 else "."))
    for d in truth.distractors:
        if d in shares:
            text += f" The distractor `{d}`, which has no effect on the target, carries {shares[d]:.1%} of all attribution."
    return text
