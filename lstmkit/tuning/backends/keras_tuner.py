"""The Keras Tuner backend: random, grid, bayesian (Gaussian process) and hyperband searches over the run's search
space, stored under the run's tuning/ folder and resumed from it; an oracle guarded against trials that fail
(`_SafeOracle`) and the trials table read from the tuner's state."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd

from lstmkit.config import Config
from lstmkit.core.atomic import atomic_write_json
from lstmkit.core.progress import SearchProgress
from lstmkit.data.windows import Prepared
from lstmkit.runs.folder import RunFolder
from lstmkit.tuning import objective
from lstmkit.tuning.backends import distributed
from lstmkit.tuning.objective import project_name
from lstmkit.tuning.space import SearchSpace
from lstmkit.tuning.trials import _hyperparameters, _table

# ---------------------------------------------------------------- Keras Tuner


def _declare(space: SearchSpace, hp) -> None:
    """Declare every tuned parameter on a keras_tuner.HyperParameters; an architecture's own settings inside
    `conditional_scope("architecture", [arch])` when the architecture is searched (active only in its trials)."""
    import contextlib

    for p in space.params:
        scoped = p.architecture is not None and space.searches_architecture
        with hp.conditional_scope("architecture", [p.architecture]) if scoped else contextlib.nullcontext():
            if not p.is_range:
                hp.Choice(p.name, list(p.choices))
            elif p.type is int:
                hp.Int(p.name, int(p.min), int(p.max), step=None if p.log else int(p.step or 1),
                       sampling="log" if p.log else "linear")
            else:
                hp.Float(p.name, p.min, p.max, step=p.step, sampling="log" if p.log else "linear")


def _active(hp) -> dict:
    """The values of a trial's keras_tuner.HyperParameters that are active (conditions met), `tuner/*` included."""
    return {k: v for k, v in hp.values.items() if k.startswith("tuner/") or hp.is_active(k)}


class _SafeOracle:
    """Oracle mixin: a time budget, state files written atomically (a kill never leaves half a file), live progress."""

    deadline: float | None = None
    started_here: int = 0
    progress: SearchProgress | None = None

    def create_trial(self, tuner_id):
        trial = super().create_trial(tuner_id)
        self._report_progress()
        return trial

    def end_trial(self, trial):
        super().end_trial(trial)
        self._report_progress()

    def _report_progress(self) -> None:
        """Trials ended and under way, and the best score so far (the chief's view in a distributed search)."""
        if self.progress is not None:
            best = [t.score for t in self.get_best_trials(1) if str(t.status) == "COMPLETED"]
            self.progress.update(len(self.end_order), len(self.ongoing_trials), best[0] if best else None)

    def populate_space(self, trial_id):
        if self.deadline is not None and self.started_here and time.monotonic() > self.deadline:
            return {"status": "STOPPED", "values": None}
        response = super().populate_space(trial_id)
        if response.get("status") == "RUNNING":
            self.started_here += 1
        return response

    def save(self):
        atomic_write_json(Path(self._get_oracle_fname()), self.get_state())

    def _save_trial(self, trial):
        atomic_write_json(Path(self._get_trial_dir(trial.trial_id)) / "trial.json", trial.get_state())


def _oracle(cfg: Config, space: SearchSpace, deadline: float | None):
    """The configured Keras Tuner oracle over the declared space."""
    import keras_tuner as kt

    hp = kt.HyperParameters()
    _declare(space, hp)
    t = cfg.tuning
    common = dict(objective=kt.Objective("val_loss", "min"), hyperparameters=hp, seed=cfg.seed,
                  max_consecutive_failed_trials=max(3, t.max_trials))
    classes = {"random": kt.oracles.RandomSearchOracle, "grid": kt.oracles.GridSearchOracle,
               "bayesian": kt.oracles.BayesianOptimizationOracle, "hyperband": kt.oracles.HyperbandOracle}
    cls = type(f"Safe{classes[t.strategy].__name__}", (_SafeOracle, classes[t.strategy]), {})
    if t.strategy == "hyperband":
        oracle = cls(max_epochs=t.epochs, factor=3, **common)
    elif t.strategy == "bayesian":
        oracle = cls(max_trials=t.max_trials, num_initial_points=max(2, t.max_trials // 3), **common)
    else:
        oracle = cls(max_trials=t.max_trials, **common)
    oracle.deadline = deadline
    oracle.progress = SearchProgress(None if t.strategy == "hyperband" else t.max_trials, t.max_minutes)
    return oracle


def keras_tuner(prepared: Prepared, cfg: Config, run: RunFolder, space: SearchSpace, deadline: float | None = None):
    """The Keras Tuner tuner of this run's search; it reloads the search's earlier state from disk."""
    import keras_tuner as kt

    class ForecasterTuner(kt.Tuner):
        """Runs each trial with lstmkit's objective (single split or walk-forward folds), any architecture."""

        def run_trial(self, trial, *args, **kwargs):
            values = _active(trial.hyperparameters)
            epochs = int(values.get("tuner/epochs", cfg.tuning.epochs))
            return objective.train_trial(values, prepared, cfg, epochs).metrics()

        def save(self):
            if not self._is_worker():
                self.oracle.save()
            atomic_write_json(Path(self._get_tuner_fname()), self.get_state())

    return ForecasterTuner(oracle=_oracle(cfg, space, deadline), directory=str(run.tuning_dir),
                     project_name=project_name(cfg), overwrite=False)


def keras_trials(tuner, space: SearchSpace) -> pd.DataFrame:
    """The trials table of a Keras Tuner search."""
    rows = []
    for trial in tuner.oracle.trials.values():
        values = _active(trial.hyperparameters)
        metrics = {name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics}
        row = _hyperparameters(int(trial.trial_id), values, space)
        if "tuner/epochs" in values:
            row["budget_epochs"] = int(values["tuner/epochs"])
        row |= {"val_loss": metrics.get("val_loss", math.nan), "best_epoch": metrics.get("best_epoch"),
                "seconds": metrics.get("seconds")}
        row |= {k: v for k, v in sorted(metrics.items()) if k.startswith("fold_")}
        row |= {"status": str(trial.status), "message": trial.message}
        rows.append(row)
    return _table(rows)


def keras_search(prepared: Prepared, cfg: Config, run: RunFolder, space: SearchSpace, deadline: float | None,
                 verbose: bool = False) -> pd.DataFrame | None:
    """Run or resume a Keras Tuner search (in the chief/worker role the KERASTUNER_* variables give, if any)."""
    tuner = keras_tuner(prepared, cfg, run, space, deadline)
    if distributed.role() == "chief":
        tuner.oracle.verbose = int(verbose)
        tuner.save()
        distributed.serve(tuner.oracle)
    else:
        tuner.search(verbose=int(verbose))
    if distributed.role() == "worker":
        return None
    return keras_trials(tuner, space)
