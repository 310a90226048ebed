"""Search strategies behind one interface: Keras Tuner (random, grid, bayesian, hyperband), Optuna (TPE + median pruner)
and Ray Tune (pbt, asha: `lstmkit.tuners_ray`).

Each `search` runs or resumes a search stored under the run's tuning/ folder and returns the trials table:
one row per trial in start order, with its `architecture` and sampled hyperparameters (an architecture's own
`<arch>.<option>` settings are empty in the trials of other architectures: they are sampled only where active),
`val_loss` (the objective), `best_epoch`, `seconds`, the per-fold losses of a cross-validated search, and `status`
(COMPLETED, PRUNED, FAILED, RUNNING).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd

from lstmkit.atomic import atomic_write_json
from lstmkit.config import RAY_STRATEGIES, Config
from lstmkit.preprocessing import Prepared
from lstmkit.progress import SearchProgress
from lstmkit.runfolder import RunFolder
from lstmkit.search_space import Param, SearchSpace
from lstmkit.tuning import KERAS_STRATEGIES, TrialResult, project_name, train_trial


def search(prepared: Prepared, cfg: Config, run: RunFolder, space: SearchSpace, verbose: bool = False) -> pd.DataFrame | None:
    """Run or resume the configured search in this process; None when this process is a distributed worker."""
    deadline = time.monotonic() + 60 * cfg.tuning.max_minutes if cfg.tuning.max_minutes else None
    if cfg.tuning.strategy in KERAS_STRATEGIES:
        return keras_search(prepared, cfg, run, space, deadline, verbose)
    if cfg.tuning.strategy == "optuna":
        return optuna_search(prepared, cfg, run, space, deadline)
    if cfg.tuning.strategy in RAY_STRATEGIES:
        from lstmkit.tuners_ray import ray_search

        return ray_search(prepared, cfg, run, space, deadline, verbose)
    raise ValueError(f"tuning.strategy {cfg.tuning.strategy!r} has no search")


def _hyperparameters(number: int, sampled: dict, space: SearchSpace) -> dict:
    """The start of a trial's row: its number, architecture and the value of every tuned hyperparameter (NaN where
    inactive: another architecture's setting)."""
    values = space.values(sampled)
    return {"trial": int(number), "architecture": values.get("architecture"),
            **{k: values.get(k, math.nan) for k in space.names}}


def _table(rows: list[dict]) -> pd.DataFrame:
    """Trials table from one dict per trial, indexed by trial number."""
    table = pd.DataFrame(rows)
    return table.set_index("trial").sort_index() if not table.empty else table


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
            return train_trial(values, prepared, cfg, epochs).metrics()

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
    from lstmkit import distributed

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


# ---------------------------------------------------------------- Optuna


def _suggest(trial, p: Param):
    """Sample one parameter with Optuna (same name, same distribution in every trial that has it)."""
    if not p.is_range:
        return trial.suggest_categorical(p.name, list(p.choices))
    if p.type is int:
        return trial.suggest_int(p.name, int(p.min), int(p.max), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(p.name, p.min, p.max, step=p.step, log=p.log)


def _sample(trial, space: SearchSpace) -> dict:
    """One Optuna trial's values: the architecture first (when searched), then the parameters active in it only."""
    values = {}
    if space.searches_architecture:
        values["architecture"] = _suggest(trial, next(p for p in space.params if p.name == "architecture"))
    architecture = values.get("architecture") or space.architectures[0]
    for p in space.params_for(architecture):
        if p.name != "architecture":
            values[p.name] = _suggest(trial, p)
    return values


def optuna_study(cfg: Config, run: RunFolder):
    """The Optuna study of this run's search, stored in SQLite under tuning/ (so a rerun resumes it)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run.tuning_dir.mkdir(parents=True, exist_ok=True)
    t = cfg.tuning
    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=max(2, t.max_trials // 3))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=min(2, t.epochs - 1))
    return optuna.create_study(storage=f"sqlite:///{run.tuning_dir / (project_name(cfg) + '.db')}",
                               study_name=project_name(cfg), direction="minimize", load_if_exists=True,
                               sampler=sampler, pruner=pruner)


def optuna_search(prepared: Prepared, cfg: Config, run: RunFolder, space: SearchSpace, deadline: float | None) -> pd.DataFrame:
    """Run or resume an Optuna search: TPE sampling, trials pruned against the median of per-epoch validation loss."""
    import optuna
    from optuna.trial import TrialState

    study = optuna_study(cfg, run)
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # left by a killed process
        study.tell(stale.number, state=TrialState.FAIL)
        study.enqueue_trial(stale.params, user_attrs={"retry_of": stale.number})

    def objective(trial):
        values = _sample(trial, space)

        def report(step: int, val_loss: float) -> None:
            trial.report(val_loss, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")

        result: TrialResult = train_trial(values, prepared, cfg, cfg.tuning.epochs, report=report)
        for k, v in result.metrics().items():
            trial.set_user_attr(k, v)
        return result.val_loss  # NaN (diverged): Optuna records a failed trial

    counted = _optuna_counted(study)
    remaining = cfg.tuning.max_trials - len(counted)
    live = SearchProgress(cfg.tuning.max_trials, cfg.tuning.max_minutes)

    def show(study, trial=None) -> None:
        done = len(_optuna_counted(study))
        best = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        live.update(done, int(done < cfg.tuning.max_trials), min(best) if best else None)

    show(study)
    if remaining > 0:  # the budget never stops the first trial of a run
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[show])
    if remaining > 1:
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is None or timeout > 0:
            study.optimize(objective, n_trials=remaining - 1, timeout=timeout, catch=(Exception,), callbacks=[show])
    return optuna_trials(study, space)


def _optuna_counted(study) -> list:
    """Trials that count towards max_trials: every finished one except those interrupted by a kill (they were rerun)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    interrupted = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            and t.number not in interrupted]


def optuna_trials(study, space: SearchSpace) -> pd.DataFrame:
    """The trials table of an Optuna search (trials interrupted by a kill are left out: they were rerun)."""
    from optuna.trial import TrialState

    names = {TrialState.COMPLETE: "COMPLETED", TrialState.PRUNED: "PRUNED", TrialState.FAIL: "FAILED",
             TrialState.RUNNING: "RUNNING", TrialState.WAITING: "WAITING"}
    counted = {t.number for t in _optuna_counted(study)}
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.number not in counted:
            continue
        attrs = t.user_attrs
        loss = t.value if t.state == TrialState.COMPLETE else min(t.intermediate_values.values(), default=math.nan)
        row = _hyperparameters(t.number, t.params, space)
        row |= {"val_loss": math.nan if loss is None else loss, "best_epoch": attrs.get("best_epoch"),
                "seconds": attrs.get("seconds", t.duration.total_seconds() if t.duration else None)}
        row |= {k: v for k, v in sorted(attrs.items()) if k.startswith("fold_")}
        row |= {"status": names.get(t.state, t.state.name), "message": t.system_attrs.get("fail_reason")}
        rows.append(row)
    return _table(rows)
