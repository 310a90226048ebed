"""The data chapter's words: why the seasonal-naive baseline and MASE use the period they use."""

from __future__ import annotations

from lstmkit.data.seasonality import Seasonality


def period_sentence(period: int, s: Seasonality, train_rows: int | None = None) -> str:
    """Why the seasonal-naive baseline and MASE use `period` steps, in words (for the chapters and the report)."""
    if s.periods and period == s.main:
        return (f"{period} steps, a {s.cycles[0]}: the shortest cycle that the series' `{s.step}` time step holds "
                f"(`evaluation.seasonal_period: auto`)")
    if period == 1 and not s.periods:
        return (f"1 step (seasonal naive is persistence): the series' `{s.step}` time step holds no day, week or "
                f"year cycle")
    if period == 1 and train_rows is not None and train_rows <= s.main:
        return (f"1 step (seasonal naive is persistence, MASE uses the one-step naive scale): the series' season of "
                f"{s.main} steps (a {s.cycles[0]}) needs a training split of more than {s.main} rows, and it has "
                f"{train_rows}")
    main = f"{s.main} steps (a {s.cycles[0]})" if s.periods else "none"
    return f"{period} steps, set by `evaluation.seasonal_period` (the series' own main cycle: {main})"
