"""The Optuna backend: a TPE sampler with a median pruner on per-epoch validation loss, over the run's search space
(conditional architecture settings sampled only where active); the study lives in an SQLite file under the run's
tuning/ folder, so that a search resumes where it stopped and counts the trials it already has."""

from __future__ import annotations

import math
import time

import pandas as pd

from lstmkit.config import Config
from lstmkit.core.progress import SearchProgress
from lstmkit.data.windows import Prepared
from lstmkit.runs.folder import RunFolder
from lstmkit.tuning import objective
from lstmkit.tuning.objective import TrialResult, project_name
from lstmkit.tuning.space import Param, SearchSpace
from lstmkit.tuning.trials import _hyperparameters, _table

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

    def optimise(trial):
        values = _sample(trial, space)

        def report(step: int, val_loss: float) -> None:
            trial.report(val_loss, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")

        result: TrialResult = objective.train_trial(values, prepared, cfg, cfg.tuning.epochs, report=report)
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
        study.optimize(optimise, n_trials=1, catch=(Exception,), callbacks=[show])
    if remaining > 1:
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is None or timeout > 0:
            study.optimize(optimise, n_trials=remaining - 1, timeout=timeout, catch=(Exception,), callbacks=[show])
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
