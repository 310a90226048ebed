"""Ray Tune strategies: population-based training (`pbt`) and asynchronous successive halving (`asha`).

Both run the search space of `lstmkit.tuning.space` (conditional architecture settings included) with trials that train
epoch by epoch, report the validation loss after each epoch and checkpoint their weights and optimizer state:

- `asha` stops poor trials early (rungs at 1, 3, 9, ... epochs, reduction factor 3);
- `pbt` trains `tuning.max_trials` trials in step; every `tuning.perturbation_interval` epochs the worst quarter copy
  the weights of the best quarter and perturb learning rate, dropout and batch size. A trial's checkpoint carries the
  hyperparameter *schedule* its weights were trained with (segments of epochs, see `Segment`), so the winner's
  schedule can be replayed by the training stage.

Ray runs inside this process on this machine's cores unless `tuning.ray_address` names a cluster. The experiment's
state lives under the run's tuning/ folder (`project_name`); rerunning resumes it, finished trials are kept, and a
trial whose node died is retried from its last checkpoint."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import math
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pyarrow
from pyarrow.fs import FSSpecHandler, PyFileSystem
from ray.tune.schedulers import PopulationBasedTraining

from lstmkit.config import Config
from lstmkit.core.atomic import atomic_write_json, atomic_write_text, read_json, sha256_file
from lstmkit.core.errors import TuningError
from lstmkit.core.jsonable import jsonable
from lstmkit.core.progress import SearchProgress
from lstmkit.data.windows import Prepared
from lstmkit.models.neural.forecaster import build_network, set_seed
from lstmkit.runs.folder import RunFolder
from lstmkit.tuning.objective import project_name, spec_from_values
from lstmkit.tuning.space import MUTABLE, Param, SearchSpace
from lstmkit.tuning.trials import _hyperparameters, _table

ASHA_REDUCTION = 3  # ASHA's reduction factor: a third of the trials at each rung go on
PBT_QUANTILE = 0.25  # PBT: the bottom quarter copies the top quarter
CHECKPOINTS_KEPT = 4  # per trial (PBT copies the latest one)
MAX_FAILURES = 3  # retries of a trial from its last checkpoint (a dead node, a killed worker)
STATE_FILE, WEIGHTS_FILE, OPTIMIZER_FILE = "state.json", "model.weights.h5", "optimizer.npz"
FILE_MODE = 0o644  # of the files in Ray's storage folder
EXPERIMENT_STATE = "experiment_state-*.json"  # Ray Tune's saved search (TuneController.CKPT_FILE_TMPL)
LINEAGE_COLUMNS = ["trial", "epoch", "val_loss", "learning_rate", "dropout", "batch_size", "architecture",
                   "copied_from", "seconds"]


# ---------------------------------------------------------------- the search space in Ray's terms


def domain(p: Param):
    """Ray Tune's distribution of one parameter (same range, step, scale or choices as the other strategies)."""
    from ray import tune

    if not p.is_range:
        return tune.choice(list(p.choices))
    if p.type is int:
        return tune.lograndint(int(p.min), int(p.max) + 1) if p.log else tune.qrandint(int(p.min), int(p.max), int(p.step or 1))
    if p.log:
        return tune.loguniform(p.min, p.max)
    return tune.quniform(p.min, p.max, p.step) if p.step else tune.uniform(p.min, p.max)


def initial_configs(space: SearchSpace, n: int, seed: int) -> list[dict]:
    """`n` seeded random configurations: the architecture first (when searched), then the parameters active in it;
    inactive ones (another architecture's settings) are None."""
    rng = np.random.default_rng(seed)
    by_name = {p.name: p for p in space.params}
    out = []
    for _ in range(n):
        values = {name: None for name in space.names}
        arch = space.architectures[0]
        if space.searches_architecture:
            arch = values["architecture"] = _draw(by_name["architecture"], rng)
        for p in space.params_for(arch):
            if p.name != "architecture":
                values[p.name] = _draw(p, rng)
        out.append(values)
    return out


def _draw(p: Param, rng: np.random.Generator):
    """One value of a parameter, drawn with numpy's generator (reproducible for a seed)."""
    grid = p.grid()
    if grid is not None:
        return jsonable(grid[int(rng.integers(len(grid)))])
    if p.log:
        value = float(np.exp(rng.uniform(np.log(p.min), np.log(p.max))))
    else:
        value = float(rng.uniform(p.min, p.max))
    return int(round(value)) if p.type is int else value


def mutations(space: SearchSpace) -> dict:
    """PBT's `hyperparam_mutations`: each tuned parameter of MUTABLE as its grid (neighbours are one step apart)
    or, when continuous, its distribution (perturbed by x0.8 / x1.2, or resampled)."""
    return {p.name: (p.grid() if p.grid() is not None else domain(p)) for p in space.mutable()}


def explore(space: SearchSpace):
    """PBT's `custom_explore_fn`: keep a perturbed value inside its declared range, on its step, in its type."""
    params = {p.name: p for p in space.mutable()}

    def clip(config: dict) -> dict:
        for name, p in params.items():
            if p.is_range and config.get(name) is not None:
                v = min(max(float(config[name]), p.min), p.max)
                if p.step:
                    v = p.min + round((v - p.min) / p.step) * p.step
                config[name] = int(round(v)) if p.type is int else round(float(v), 12)
        return config

    return clip


# ---------------------------------------------------------------- one trial


def trial_number(trial_id: str) -> int:
    """The trial's number in creation order (Ray's trial ids end in `_00003`)."""
    return int(str(trial_id).rsplit("_", 1)[-1])


def _segment(spec) -> dict:
    """The hyperparameters PBT may change, as a schedule segment of no epochs yet."""
    return {"epochs": 0, "learning_rate": float(spec.learning_rate), "dropout": float(spec.dropout),
            "batch_size": int(spec.batch_size)}


def _same_values(a: dict, b: dict) -> bool:
    """Whether two segments train with the same hyperparameters."""
    return all(a[k] == b[k] for k in MUTABLE)


def train_ray_trial(config: dict, prepared: Prepared, cfg: Config, origin: float, storage: str, log: str) -> None:
    """Ray Tune function trainable: train one configuration epoch by epoch, reporting and checkpointing each epoch.

    Restored from a checkpoint with the same hyperparameters (a paused or retried trial) it continues as it was,
    optimizer state included, from its newest whole checkpoint in the experiment folder `storage` whose epoch is in
    the results log `log` when that is newer than the one Ray names (`_resume_from`). Restored from another trial's
    checkpoint with perturbed ones (PBT's exploit step), a new network of the new values takes the checkpoint's
    weights, the optimizer starts afresh and a schedule segment begins.
    """
    import keras
    import ray
    from ray import tune


    _limit_threads()
    node = ray.get_runtime_context().get_node_id()
    number = trial_number(tune.get_context().get_trial_id())
    values = {k: v for k, v in config.items() if v is not None}
    spec = spec_from_values(values, cfg)
    data = prepared.with_lookback(spec.lookback)
    keras.backend.clear_session()
    set_seed(cfg.seed)
    model = build_network(spec, data.lookback, len(data.columns), data.horizon, data.target_index)
    state = {"epoch": 0, "owner": number, "schedule": [_segment(spec) | {"trial": number}]}
    copied_from = -1
    own = Path(storage) / Path(tune.get_context().get_trial_dir()).name  # this trial's folder in the experiment's
    checkpoint = _resume_from(tune.get_checkpoint(), own, number, Path(log))
    if checkpoint is not None:  # the weights fit this network: PBT never perturbs a setting that changes a shape
        with checkpoint.as_directory() as folder:
            state = read_json(Path(folder) / STATE_FILE)
            model.load_weights(Path(folder) / WEIGHTS_FILE)
            if _same_values(state["schedule"][-1], _segment(spec)):  # the same segment goes on, optimizer and all
                _load_optimizer(model, Path(folder) / OPTIMIZER_FILE)
            else:  # perturbed: a new segment with a fresh optimizer
                state["schedule"].append(_segment(spec) | {"trial": number})
        if state["owner"] != number:
            copied_from = int(state["owner"])
            state["owner"] = number
    train = data.dataset("train", spec.batch_size, shuffle=True, seed=cfg.seed + state["epoch"])
    val = data.dataset("val", 1024)
    while state["epoch"] < cfg.tuning.epochs:
        hist = model.fit(train, validation_data=val, epochs=1, verbose=0, shuffle=False)
        state["epoch"] += 1
        state["schedule"][-1]["epochs"] += 1
        val_loss = float(hist.history["val_loss"][-1])
        diverged = not np.isfinite(val_loss)  # reported as the worst score (PBT replaces it, ASHA stops it), then ended
        val_loss = math.inf if diverged else val_loss
        metrics = {"val_loss": val_loss, "loss": float(hist.history["loss"][-1]), "epoch": state["epoch"],
                   **{k: state["schedule"][-1][k] for k in MUTABLE}, "architecture": spec.architecture,
                   "copied_from": copied_from, "seconds": time.time() - origin, "node": node,
                   "schedule": json.dumps(state["schedule"])}
        copied_from = -1
        with _checkpoint_folder() as folder:
            model.save_weights(folder / WEIGHTS_FILE)
            _save_optimizer(model, folder / OPTIMIZER_FILE)
            atomic_write_json(folder / STATE_FILE, state | {"digests": _digests(folder)})
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(folder)))
        if diverged:
            return


def _digests(folder: Path) -> dict[str, str]:
    """SHA-256 of a checkpoint's weights and optimizer files, recorded in its state (a checkpoint copied over an older
    one of the same index by a process killed midway mixes files of both)."""
    return {name: sha256_file(folder / name) for name in (WEIGHTS_FILE, OPTIMIZER_FILE)}


def _whole_state(folder: Path) -> dict | None:
    """The state of the checkpoint in `folder` if every file of it is there and matches the digests; else None."""
    try:
        state = read_json(folder / STATE_FILE)
        return state if state.get("digests") == _digests(folder) else None
    except (OSError, ValueError):
        return None


def _resume_from(checkpoint, own: Path, number: int, log: Path):
    """The checkpoint trial `number` resumes from: Ray's (None: from scratch), or the newest whole one in its own folder
    `own` with a later epoch that the results log `log` holds. Ray logs a result before saving the experiment state
    that names its checkpoint, so after a kill the restored state can be an epoch behind the log; resuming from Ray's
    would train that epoch again. A checkpoint of an epoch never logged (its trial killed before the driver heard of
    it) is trained again, and one of another trial (PBT's exploit) is taken as it is."""
    from ray import tune

    given = 0
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = read_json(Path(folder) / STATE_FILE)
        if state["owner"] != number:
            return checkpoint
        given = state["epoch"]
    results = read_results(log)
    logged = set(results.loc[results["trial"] == number, "epoch"])
    newest = None
    for folder in sorted(own.glob("checkpoint_*")):
        mine = _whole_state(folder)
        if mine and mine["owner"] == number and mine["epoch"] > given and mine["epoch"] in logged:
            given, newest = mine["epoch"], folder
    return checkpoint if newest is None else tune.Checkpoint.from_directory(str(newest))


@contextlib.contextmanager
def _checkpoint_folder():
    """A fresh temporary folder for one checkpoint (Ray copies it into the experiment's storage)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lstmkit-ckpt-") as folder:
        yield Path(folder)


def _save_optimizer(model, path: Path) -> None:
    """The optimizer's variables (step count, moments) as arrays in an .npz file."""
    np.savez(path, *[np.asarray(v.numpy()) for v in model.optimizer.variables])


def _load_optimizer(model, path: Path) -> None:
    """Restore the optimizer's variables saved by `_save_optimizer` (built first; skipped if the layout differs)."""
    model.optimizer.build(model.trainable_variables)
    saved = np.load(path)
    arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    variables = model.optimizer.variables
    if len(arrays) == len(variables) and all(a.shape == tuple(v.shape) for a, v in zip(arrays, variables, strict=True)):
        for a, v in zip(arrays, variables, strict=True):
            v.assign(a)


def _limit_threads() -> None:
    """Let TensorFlow use only the CPUs Ray gave this trial (trials share the machine's cores)."""
    import tensorflow as tf
    from ray import get_runtime_context

    cpus = max(1, int(get_runtime_context().get_assigned_resources().get("CPU", 1)))
    with contextlib.suppress(RuntimeError):  # already initialised: a reused worker
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(cpus)


# ---------------------------------------------------------------- the search


@contextlib.contextmanager
def ray_session(address: str, verbose: bool = False):
    """Ray connected for the search: the cluster at `address`, or a private instance on this machine (shut down after).

    A Ray already initialised in this process (e.g. by a notebook) is used as it is.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore",
                        "TF_FORCE_GPU_ALLOW_GROWTH": "true"}}  # trials sharing a GPU take memory as they need it
    try:
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=verbose, logging_level="ERROR")
        else:
            ray.init(include_dashboard=False, runtime_env=env, log_to_driver=verbose, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at tuning.ray_address {address!r}" if address else "a local Ray instance"
        raise TuningError(f"could not connect to {where}: {str(err).strip().splitlines()[0]}") from None
    try:
        yield
    finally:
        ray.shutdown()


class _WithoutFailed:
    """Ray's trial controller as PBT sees it, less the trials that failed for good (their retries spent)."""

    def __init__(self, controller):
        self._controller = controller

    def __getattr__(self, name):
        return getattr(self._controller, name)

    def get_live_trials(self) -> set:
        """The trials not terminated and not failed."""
        return {t for t in self._controller.get_live_trials() if t.status != "ERROR"}


class SynchronousPBT(PopulationBasedTraining):
    """Ray's PopulationBasedTraining in synchronous mode, which does not wait for a trial that failed for good (Ray
    2.60 counts it as live: the population would wait for it at the next perturbation forever)."""

    def on_trial_result(self, tune_controller, trial, result):
        return super().on_trial_result(_WithoutFailed(tune_controller), trial, result)


def _scheduler(cfg: Config, space: SearchSpace):
    """PBT (synchronous, so that a seeded search repeats) or ASHA over the epochs a trial's weights were trained for."""
    from ray.tune.schedulers import ASHAScheduler

    if cfg.tuning.strategy == "pbt":
        return SynchronousPBT(time_attr="epoch", perturbation_interval=cfg.tuning.perturbation_interval,
                                       hyperparam_mutations=mutations(space), custom_explore_fn=explore(space),
                                       quantile_fraction=PBT_QUANTILE, synch=True, log_config=False)
    return ASHAScheduler(time_attr="epoch", max_t=cfg.tuning.epochs, grace_period=1,
                         reduction_factor=ASHA_REDUCTION)


REPORTED = ("val_loss", "epoch", *MUTABLE, "architecture", "copied_from", "seconds", "schedule", "time_total_s", "node")


class _ReplaceOnClose(io.FileIO):
    """A file written under a hidden temporary name beside `path` and renamed over it when closed, if `whole(content)`
    says the content is whole (else the temporary is dropped and `path` keeps its previous version)."""

    def __init__(self, path: str, whole: Callable[[bytes], bool] | None = None):
        self.target, self.whole = Path(path), whole
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, self.temporary = tempfile.mkstemp(dir=self.target.parent, prefix=f".{self.target.name}.", suffix=".tmp")
        os.fchmod(fd, FILE_MODE)
        super().__init__(fd, "wb")

    def close(self) -> None:
        """Close the file and put it in place, or drop it if it is not whole."""
        if not self.closed:
            super().close()
            if self.whole is None or self.whole(Path(self.temporary).read_bytes()):
                os.replace(self.temporary, self.target)
            else:
                os.unlink(self.temporary)


def _parses(content: bytes) -> bool:
    """Whether `content` is one JSON document."""
    try:
        json.loads(content)
        return True
    except ValueError:
        return False


class _WholeFiles(FSSpecHandler):
    """fsspec's local filesystem, with output files written by `_ReplaceOnClose`; Ray's experiment state only when it
    parses."""

    def open_output_stream(self, path, metadata):
        state = fnmatch.fnmatch(Path(path).name, EXPERIMENT_STATE)
        return pyarrow.PythonFile(_ReplaceOnClose(path, _parses if state else None), mode="w")


def whole_file_storage() -> PyFileSystem:
    """The local disk as a pyarrow filesystem for Ray's storage on which every file appears whole or not at all.

    Ray copies its driver's files to the storage folder in the background; with plain writes a kill mid-copy left an
    empty experiment state, and the rerun could not resume. Ray also rewrites the experiment state in place (truncate,
    then write) while a copy of the previous one may still be reading it, so a copy can be empty or cut short: such a
    copy is dropped, and the storage keeps the last whole state until the next copy."""
    return PyFileSystem(_WholeFiles(fsspec.filesystem("file")))


def _results_callback(cfg: Config, log: Path):
    """A Ray Tune callback on the driver: appends every trial's every epoch to `log` (one JSON line each, flushed to
    disk: the lineage and the trials table are read from it) and feeds lstmkit's live progress line."""
    from ray.tune import Callback

    live = SearchProgress(cfg.tuning.max_trials, cfg.tuning.max_minutes)

    class Results(Callback):
        def __init__(self):
            self.best, self.ended, self.running = None, set(), set()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            record = {"trial": trial_number(trial.trial_id)} | {k: result.get(k) for k in REPORTED}
            with open(log, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
            loss = result.get("val_loss")
            if loss is not None and np.isfinite(loss):
                self.best = loss if self.best is None else min(self.best, loss)
            self.running.add(trial.trial_id)
            live.update(len(self.ended), len(self.running - self.ended), self.best)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.ended.add(trial.trial_id)
            live.update(len(self.ended), len(self.running - self.ended), self.best)

        on_trial_error = on_trial_complete

    return Results()


def read_results(log: Path) -> pd.DataFrame:
    """Every reported epoch of a search's results log, the latest report of each (trial, epoch) (an epoch run again
    after a kill replaces the earlier one); a line cut short by a kill is skipped."""
    records = []
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    table = pd.DataFrame(records, columns=["trial", *REPORTED])
    return table.drop_duplicates(["trial", "epoch"], keep="last").sort_values(["trial", "epoch"], kind="stable")


def experiment_dir(cfg: Config, run: RunFolder) -> Path:
    """Where Ray keeps this search's experiment state, trial results and checkpoints."""
    return run.tuning_dir.resolve() / project_name(cfg)


def results_log(cfg: Config, run: RunFolder) -> Path:
    """This search's log of every trial's every epoch, written by the driver (`_results_callback`)."""
    return run.tuning_dir.resolve() / f"{project_name(cfg)}.results.jsonl"


def ray_search(prepared: Prepared, cfg: Config, run: RunFolder, space: SearchSpace, deadline: float | None = None,
               verbose: bool = False) -> pd.DataFrame:
    """Run or resume a pbt/asha search on Ray Tune; write `run.lineage_file` and return the trials table."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    path = experiment_dir(cfg, run)
    origin_file = run.tuning_dir / f"{project_name(cfg)}.started.json"
    if not origin_file.exists():
        run.tuning_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(origin_file, {"started": time.time()})
    origin = float(read_json(origin_file)["started"])
    t = cfg.tuning
    budget = None if deadline is None else max(1.0, deadline - time.monotonic())
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")  # save the experiment state at every change (default:
    # at most every 10 s, so a trial finished just before a kill would be trained again on resume)
    with _saved_search(path):
        finished = _finished(path, t.max_trials)
    if finished:  # nothing left to run: no Ray needed to read it
        table, lineage = read_experiment(path, results_log(cfg, run), cfg, space)
        atomic_write_text(run.lineage_file, lineage.to_csv(index=False))
        return table
    with ray_session(t.ray_address, verbose):
        trainable = tune.with_resources(tune.with_parameters(train_ray_trial, prepared=prepared, cfg=cfg, origin=origin,
                                                                   storage=str(path), log=str(results_log(cfg, run))),
                                        {"cpu": 1, "gpu": t.gpus_per_trial})
        if tune.Tuner.can_restore(str(path)):
            with _saved_search(path):
                tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True,
                                           storage_filesystem=whole_file_storage())
        else:
            configs = initial_configs(space, t.max_trials, cfg.seed)
            tuner = tune.Tuner(
                trainable, param_space=dict.fromkeys(space.names),
                tune_config=tune.TuneConfig(
                    metric="val_loss", mode="min", num_samples=t.max_trials, scheduler=_scheduler(cfg, space),
                    search_alg=BasicVariantGenerator(points_to_evaluate=configs),
                    max_concurrent_trials=t.workers or None, time_budget_s=budget,
                    reuse_actors=not t.ray_address),  # on a cluster: a node's death is one failure per trial
                run_config=tune.RunConfig(
                    name=project_name(cfg), storage_path=str(run.tuning_dir.resolve()),
                    storage_filesystem=whole_file_storage(), verbose=1 if verbose else 0,
                    callbacks=[_results_callback(cfg, results_log(cfg, run))],
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
                    failure_config=tune.FailureConfig(max_failures=MAX_FAILURES)))
        random.seed(cfg.seed)  # PBT's perturbations draw from these in this process
        np.random.seed(cfg.seed)
        tuner.fit()
    table, lineage = read_experiment(path, results_log(cfg, run), cfg, space)
    atomic_write_text(run.lineage_file, lineage.to_csv(index=False))
    return table


@contextlib.contextmanager
def _saved_search(path: Path):
    """Reading Ray's saved search in `path`: a file of it that cannot be read is a TuningError naming the folder."""
    try:
        yield
    except (ValueError, EOFError, OSError) as err:
        raise TuningError(f"the saved Ray search in {path} cannot be read ({type(err).__name__}: {err}); "
                          "delete that folder to start the search over") from err


def _finished(path: Path, trials: int) -> bool:
    """Whether the experiment at `path` has all its trials and every one of them ended (terminated or failed)."""
    if not path.is_dir() or not any(path.glob(EXPERIMENT_STATE)):
        return False
    from ray.tune import ExperimentAnalysis

    ended = [t for t in ExperimentAnalysis(str(path)).trials if t.status in ("TERMINATED", "ERROR")]
    return len(ended) >= trials


# ---------------------------------------------------------------- results


def read_experiment(path: Path, log: Path, cfg: Config, space: SearchSpace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trials table (the other strategies' columns, plus `schedule` for pbt) and the lineage table of a Ray search:
    trial states from the experiment folder `path`, epochs from the results log `log`; usable after a kill too."""
    from ray.tune import ExperimentAnalysis


    results = read_results(log)
    rows = []
    for trial in ExperimentAnalysis(str(path)).trials:
        number = trial_number(trial.trial_id)
        row = _hyperparameters(number, {k: v for k, v in trial.config.items() if v is not None}, space)
        status = {"ERROR": "FAILED", "TERMINATED": "COMPLETED"}.get(trial.status, "RUNNING")
        mine = results[results["trial"] == number]
        if len(mine):
            last = mine.iloc[-1]
            for k in MUTABLE:  # PBT: the values the trial ended with
                if k in row:
                    row[k] = jsonable(last[k])
            best = mine.iloc[int(np.nanargmin(mine["val_loss"].to_numpy(dtype=float)))]
            row |= {"val_loss": float(best["val_loss"]), "best_epoch": int(best["epoch"]),
                    "seconds": float(last["time_total_s"])}
            if cfg.tuning.strategy == "pbt":
                row["schedule"] = best["schedule"]
            if status == "COMPLETED" and cfg.tuning.strategy == "asha" and int(last["epoch"]) < cfg.tuning.epochs:
                status = "PRUNED"
        elif status != "FAILED":  # never started (the time budget ended the search first): not a trial of it
            continue
        else:
            row |= {"val_loss": math.nan, "best_epoch": None, "seconds": None}
        error = Path(trial.path) / (trial.run_metadata.error_filename or "error.txt")
        message = error.read_text(errors="replace") if status == "FAILED" and error.is_file() else None
        rows.append(row | {"status": status, "message": message})
    lineage = results[LINEAGE_COLUMNS].copy()
    lineage["copied_from"] = lineage["copied_from"].where(lineage["copied_from"] >= 0).astype("Int64")
    return _table(rows), lineage.reset_index(drop=True)
