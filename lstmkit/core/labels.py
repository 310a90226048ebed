"""The one naming convention of interval and quantile levels: a percentage without trailing zeros.

`level_label(0.9)` is `"90"` everywhere: the keys of `uncertainty/metrics.json` (`coverage["90"]`, `pinball["2.5"]`),
the interval columns of a bundle's forecast (`lower_90`, `upper_90`) and of the service's answers.
"""

from __future__ import annotations


def level_label(level: float) -> str:
    """A level in (0, 1) as a percentage without trailing zeros: 0.8 -> '80', 0.975 -> '97.5', 0.025 -> '2.5'."""
    return f"{round(float(level) * 100, 6):g}"


def label_level(label: str) -> float:
    """The level a label names: '80' -> 0.8, '97.5' -> 0.975 (the inverse of `level_label`)."""
    return round(float(label) / 100, 10)
