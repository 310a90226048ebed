"""Tuning stage: search the network's architecture and hyperparameters, scored on the validation split or on
walk-forward folds.

The strategies (Keras Tuner's random, grid, bayesian and hyperband; Optuna's TPE with a median pruner) live in
`lstmkit.tuning.backends.keras_tuner`; chief/worker processes in `lstmkit.tuning.backends.distributed`. This module is what they share: the objective
(one trial trained and scored), the run folder's results, and the stage's entry point `tune`."""

from __future__ import annotations

import time

import pandas as pd

from lstmkit.config import RAY_STRATEGIES, Config, ConfigError
from lstmkit.data.windows import Prepared, cv_folds
from lstmkit.models.neural.spec import ModelSpec
from lstmkit.runs.folder import RunFolder
from lstmkit.tuning import search as tuners_search
from lstmkit.tuning.backends import distributed
from lstmkit.tuning.backends.keras_tuner import keras_search
from lstmkit.tuning.backends.optuna import optuna_search
from lstmkit.tuning.backends.ray import ray_search
from lstmkit.tuning.objective import KERAS_STRATEGIES, spec_from_values
from lstmkit.tuning.results import read_best, read_trials, save_results
from lstmkit.tuning.space import SearchSpace, check_space_fits, search_space

# ---------------------------------------------------------------- the stage


def tune(prepared: Prepared, cfg: Config, run: RunFolder, workers: int | None = None,
         verbose: bool = False) -> tuple[ModelSpec, pd.DataFrame]:
    """Run or resume the configured search; save and return the best configuration and every trial.

    With workers > 0 (default: `tuning.workers`) a Keras Tuner chief and that many worker processes on this
    machine do the search; otherwise it runs here. Re-running the same configuration resumes its search.
    `verbose` prints Keras Tuner's per-trial progress (the CLI and worker logs use it).
    """
    if cfg.tuning.strategy == "none":
        raise ConfigError("tuning.strategy is none: there is nothing to tune")
    space = search_space(cfg)
    check_space_fits(prepared.bounds, prepared.horizon, cfg)
    cv_folds(prepared, cfg.tuning.cv_folds)  # fails early when the folds do not fit
    workers = cfg.tuning.workers if workers is None else workers
    if cfg.tuning.strategy in RAY_STRATEGIES:  # Ray schedules its own workers (tuning.workers: trials at once)
        workers = 0
    if workers and distributed.role() is None:
        distributed.run_local(run, cfg, workers)
        return spec_from_values(read_best(run), cfg), read_trials(run)
    table = tuners_search.search(prepared, cfg, run, space, verbose)
    if table is None:  # a worker: the chief keeps the results
        return None, None
    return save_results(run, cfg, table), table


def search(prepared: Prepared, cfg: Config, run: RunFolder, space: SearchSpace, verbose: bool = False) -> pd.DataFrame | None:
    """Run or resume the configured search in this process; None when this process is a distributed worker."""
    deadline = time.monotonic() + 60 * cfg.tuning.max_minutes if cfg.tuning.max_minutes else None
    if cfg.tuning.strategy in KERAS_STRATEGIES:
        return keras_search(prepared, cfg, run, space, deadline, verbose)
    if cfg.tuning.strategy == "optuna":
        return optuna_search(prepared, cfg, run, space, deadline)
    if cfg.tuning.strategy in RAY_STRATEGIES:
        return ray_search(prepared, cfg, run, space, deadline, verbose)
    raise ValueError(f"tuning.strategy {cfg.tuning.strategy!r} has no search")
