"""What is checked before a run starts, so that nothing is written for a run that cannot finish.

`check_config` completes the configuration's own checks with those of the layers that own a part of it: the
architectures (`model.architecture`, `compare.architectures`, `model.<architecture>.*`), the search space
(`tuning.space`) and the named datasets (`data.source`); it returns the configuration written out in full, as the
run's config.yaml records it. `check_inputs` loads the configured series and checks that every stage fits it.
`config_reference` lists every key, the architectures' own included (`lstmkit config`, the report's reference).
"""

from __future__ import annotations

from pathlib import Path

from lstmkit.config import Config, ConfigError, describe_keys, from_dict, load_config
from lstmkit.data.datasets import REGISTRY
from lstmkit.data.seasonality import resolve_config
from lstmkit.data.series import load_series
from lstmkit.data.splits import check_splits
from lstmkit.models.neural import architectures
from lstmkit.tuning import space
from lstmkit.tuning.space import check_space_fits, longest_lookback

SOURCES = ("synthetic", "csv")  # besides the named datasets


def check_config(cfg: Config) -> Config:
    """The configuration checked by every layer that owns a part of it, and written out in full (ConfigError naming
    the first bad key)."""
    sources = (*SOURCES, *REGISTRY)
    if cfg.data.source not in sources:
        raise ConfigError(f"data.source: {cfg.data.source!r} is not one of {', '.join(sources)}")
    return space.check(architectures.check(cfg))


def load_checked(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """A YAML profile with overrides, checked by every layer (see check_config); the file named in an error."""
    cfg = load_config(path, overrides)
    try:
        return check_config(cfg)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path is not None else str(e)) from None


def checked(values: dict | None, overrides: dict | None = None) -> Config:
    """`from_dict` followed by `check_config`."""
    return check_config(from_dict(values, overrides))


def config_reference() -> list[dict]:
    """Every configuration key with default, allowed values and help text: the architectures' own keys after the `model`
    section's, and the default search space as the default of `tuning.space`."""
    rows = [row | ({"default": space.merge_space({})} if row["key"] == "tuning.space" else {}) for row in describe_keys()]
    last_model = max(i for i, row in enumerate(rows) if row["key"].startswith("model."))
    return rows[:last_model + 1] + architectures.option_rows() + rows[last_model + 1:]


def absolute_paths(cfg: Config) -> Config:
    """The configuration with `data.path` and `anomalies.labels` made absolute against the working directory (the
    notebooks run in notebooks/, where a relative path would name another file)."""
    data, anomalies = cfg.data, cfg.anomalies
    if data.path and not Path(data.path).is_absolute():
        data = data.model_copy(update={"path": str(Path(data.path).resolve())})
    if anomalies.labels and not Path(anomalies.labels).is_absolute():
        anomalies = anomalies.model_copy(update={"labels": str(Path(anomalies.labels).resolve())})
    return cfg.model_copy(update={"data": data, "anomalies": anomalies})


def check_inputs(cfg: Config) -> None:
    """Load and validate the configured data and splits before anything is written (raises DataError/ConfigError).

    Covers every stage's needs from the row counts alone: a window in every split, the seasonal period's MASE scale
    on the training rows, and, when tuning, the longest searched look-back and the walk-forward folds. What only
    serves a figure (decomposition, zoomed views) and the explained windows degrade in their chapters instead.
    """
    frame = load_series(cfg).frame
    cfg, _ = resolve_config(cfg, frame.index)
    bounds = check_splits(len(frame), cfg)
    check_season_fits(bounds, cfg.evaluation.seasonal_period)
    if cfg.tuning.strategy != "none":
        check_space_fits(bounds, cfg.window.horizon, cfg)
        check_folds_fit(bounds, longest_lookback(cfg), cfg.window.horizon, cfg.tuning.cv_folds)


def check_season_fits(bounds, period: int) -> None:
    """ConfigError if the training split holds no season plus one step, which the MASE scale needs (an explicit
    `evaluation.seasonal_period`; `auto` falls back to 1 by itself, see seasonality.resolve_config)."""
    a, b = bounds.train
    if b - a <= period:
        raise ConfigError(f"evaluation.seasonal_period: {period} needs a training split of more than {period} rows "
                          f"(the MASE scale compares each training row with the one a season earlier), but it has "
                          f"{b - a} (rows {a}-{b - 1}); set a shorter period (1 = persistence) or `auto`, or use a "
                          f"longer series")


def check_folds_fit(bounds, lookback: int, horizon: int, k: int) -> None:
    """ConfigError if the first of k walk-forward tuning folds (tuning.cv_folds) cannot hold one training window of
    the longest look-back searched; each fold validates on a block as long as the validation split."""
    if k <= 1:
        return
    end, val_rows = bounds.val[1], bounds.val[1] - bounds.val[0]
    first_train = end - k * val_rows
    if first_train < lookback + horizon:
        most = max(1, (end - lookback - horizon) // max(val_rows, 1))
        raise ConfigError(f"tuning.cv_folds: {k} walk-forward folds of {val_rows} validation rows leave the first "
                          f"fold {max(first_train, 0)} training rows, fewer than the longest look-back searched + "
                          f"window.horizon = {lookback + horizon}; use at most {most} fold(s), a shorter look-back, "
                          f"or a longer series")
