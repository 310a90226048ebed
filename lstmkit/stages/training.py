"""Training stage: fit every model of the comparison through the forecaster contract and save them in the run folder.

The models are `compare.architectures` (empty: the one `model.architecture`), each trained with `compare.seeds` seeds
(seed, seed + 1, ...) on the same prepared windows. Each trained model is a saved forecaster folder
`training/models/<name>/seed-<seed>/`; `training/selected.json` lists them and names the run's selected model: the
architecture with the best validation loss (mean over its seeds) and, of it, the seed with the best validation loss.
The test split plays no part in the choice. A model folder that is complete and matches its hyperparameters and the
configuration is loaded instead of trained again, so an interrupted stage resumes where it stopped.

When the tuning stage's best configuration carries a `schedule` (population-based training: the winner's learning
rate, dropout and batch size changed along its training), the model of that architecture replays the schedule segment
by segment instead of training with the final values and early stopping (`schedule_for_run`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lstmkit.config import Config, ConfigError
from lstmkit.core.atomic import atomic_write_json, read_json
from lstmkit.core.errors import ForecasterError
from lstmkit.data.windows import Prepared
from lstmkit.models.base import MANIFEST
from lstmkit.models.neural.forecaster import check_schedule, fit_forecaster
from lstmkit.models.neural.spec import ModelSpec
from lstmkit.models.registry import load
from lstmkit.runs.folder import RunFolder
from lstmkit.stages.preprocessing import load_prepared

if TYPE_CHECKING:
    from lstmkit.models.neural.forecaster import NeuralForecaster


STAGE = "training (04_training)"
CHECKPOINT = "checkpoint.keras"  # in a model folder: its best weights so far while it trains
FIT_FILE = "fit.json"  # beside a model's forecaster.json: what it was trained from (spec, settings, data)
REPLAYED = "tuning (PBT schedule replayed)"  # the hyperparameters' source of a model that replays a PBT schedule


def tuned_best(run: RunFolder, cfg: Config) -> dict | None:
    """The tuning stage's best configuration when training uses it (training.use_tuned and a search ran), else None."""
    if cfg.training.use_tuned and cfg.tuning.strategy != "none" and run.best_hyperparameters_file.exists():
        return read_json(run.best_hyperparameters_file)
    return None


def spec_for_run(run: RunFolder, cfg: Config, architecture: str | None = None) -> tuple[ModelSpec, str]:
    """Hyperparameters to train `architecture` (default: `model_names`' first) with, and where they came from.

    The tuning stage's best configuration is used when it is of this architecture; otherwise the config's.
    """
    arch = architecture or model_names(cfg, run)[0]
    tuned = tuned_best(run, cfg)
    if tuned is not None:
        if tuned.get("architecture", cfg.model.architecture) == arch:
            tuned = {k: v for k, v in tuned.items() if v is not None}
            return ModelSpec.from_config(cfg, arch, tuned), "tuning"
    return ModelSpec.from_config(cfg, arch), "config"


def schedule_for_run(run: RunFolder, cfg: Config, architecture: str | None = None) -> list[dict] | None:
    """The tuned hyperparameter schedule (population-based training's winner) to replay for `architecture` (default:
    `model_names`' first), or None: when training uses the tuned result, it is of this architecture and it has a
    `schedule`. ConfigError naming the file when the schedule is malformed, its epochs do not add up to the file's
    `best_epoch`, or its last segment's values differ from the file's final (top-level) ones."""
    arch = architecture or model_names(cfg, run)[0]
    tuned = tuned_best(run, cfg)
    if tuned is None or tuned.get("schedule") is None or tuned.get("architecture", cfg.model.architecture) != arch:
        return None

    where = run.best_hyperparameters_file
    try:
        schedule = check_schedule(tuned["schedule"])
    except ForecasterError as err:
        raise ConfigError(f"{where}: {err}") from None
    total = sum(segment["epochs"] for segment in schedule)
    if tuned.get("best_epoch") is not None and total != int(tuned["best_epoch"]):
        raise ConfigError(f"{where}: the schedule's epochs add up to {total} ("
                          f"{' + '.join(str(s['epochs']) for s in schedule)}), but best_epoch is {tuned['best_epoch']}")
    last = schedule[-1]
    differ = [k for k in last if k != "epochs" and tuned.get(k) is not None and not np.isclose(last[k], tuned[k])]
    if differ:
        raise ConfigError(f"{where}: the schedule's last segment has " + ", ".join(
            f"{k} = {last[k]}" for k in differ) + ", but the final values are " + ", ".join(
            f"{k} = {tuned[k]}" for k in differ) + " (the last segment must hold the final values)")
    return schedule


def model_names(cfg: Config, run: RunFolder | None = None) -> list[str]:
    """The architectures compared in this run: `compare.architectures`, else the architecture the tuner chose (when it
    searched `tuning.space.architecture` and training uses its result), else `model.architecture`."""
    if cfg.compare.architectures:
        return list(cfg.compare.architectures)
    tuned = tuned_best(run, cfg) if run is not None else None
    return [tuned.get("architecture", cfg.model.architecture) if tuned else cfg.model.architecture]


def model_seeds(cfg: Config) -> list[int]:
    """The seeds each architecture is trained with: seed, seed + 1, ... (`compare.seeds` of them)."""
    return [cfg.seed + i for i in range(cfg.compare.seeds)]


def select_model(val_losses: dict[str, dict[int, float]]) -> tuple[str, int]:
    """The selected (name, seed): the model with the lowest mean validation loss over its seeds, then its best seed.

    `val_losses`: {name: {seed: validation loss}}; ties go to the first listed. Non-finite losses rank last.
    """
    if not val_losses or not all(val_losses.values()):
        raise ValueError("no trained model to select from")

    def finite(v: float | None) -> float:
        return float(v) if v is not None and np.isfinite(v) else np.inf

    means = {name: float(np.mean([finite(v) for v in seeds.values()])) for name, seeds in val_losses.items()}
    name = min(means, key=means.get)
    seeds = val_losses[name]
    return name, min(seeds, key=lambda s: finite(seeds[s]))


def fit_record(spec: ModelSpec, cfg: Config, seed: int, prepared: Prepared, schedule: list[dict] | None = None) -> dict:
    """What a model folder was trained from (JSON-ready): its spec, seed, training settings, the data's windows and,
    when it replays one, its hyperparameter schedule.

    A saved model whose record equals this one is reused on resume instead of trained again.
    """
    training = cfg.training.model_dump(exclude={"verbose"})
    data = {section: getattr(cfg, section).model_dump() for section in ("data", "split", "scaling", "window")}
    shape = {"rows": len(prepared.scaled), "channels": list(prepared.columns), "target": prepared.target,
             "horizon": prepared.horizon, "bounds": prepared.bounds.to_dict()}
    replay = {} if schedule is None else {"schedule": schedule}
    return json.loads(json.dumps({"spec": spec.to_dict(), "seed": int(seed), "training": training, "data": data,
                                  "series": shape} | replay, default=str))


def reusable(folder, record: dict) -> bool:
    """Whether a model folder holds a complete saved forecaster trained from exactly `record`."""
    try:
        return (folder / MANIFEST).is_file() and read_json(folder / FIT_FILE) == record
    except (OSError, ValueError):
        return False


@dataclass
class TrainedModel:
    """One trained (or reloaded) model of the comparison."""

    name: str
    seed: int
    forecaster: NeuralForecaster
    source: str           # where its hyperparameters came from: `tuning`, `config` or REPLAYED (a PBT schedule)
    path: str             # its folder, relative to the run folder
    resumed: bool         # loaded from an earlier run of the stage instead of trained

    def row(self) -> dict:
        """Its line of the training table."""
        f = self.forecaster
        return {"model": self.name, "seed": self.seed, "best epoch": int(f.best_epoch_),
                "epochs run": len(f.history_) if f.history_ is not None else None,
                "val loss": float(f.val_loss_), "parameters": int(f.parameter_count()),
                "training seconds": float(f.fit_seconds_), "hyperparameters": self.source,
                "resumed": self.resumed, "path": self.path}


@dataclass
class Training:
    """The training stage's result: every model (architecture x seed) and the selected one."""

    models: list[TrainedModel]
    selected: TrainedModel

    def table(self) -> pd.DataFrame:
        """One row per model and seed: best epoch, validation loss (scaled MSE), parameters, training seconds."""
        table = pd.DataFrame([m.row() for m in self.models]).set_index(["model", "seed"])
        return table.drop(columns="path")

    def by_name(self) -> dict[str, list[TrainedModel]]:
        """The models grouped by name (architecture), seeds in order."""
        groups: dict[str, list[TrainedModel]] = {}
        for m in self.models:
            groups.setdefault(m.name, []).append(m)
        return groups

    @property
    def history(self) -> pd.DataFrame:
        """Per-epoch history of the selected model."""
        return self.selected.forecaster.history_


def train_run(run: RunFolder, cfg: Config, prepared: Prepared, echo=None) -> Training:
    """The training stage: train (or reload, when already complete) every architecture x seed, select by validation
    loss and write `training/selected.json`. `echo`, when given, is called with one line per model."""
    models = []
    for name in model_names(cfg, run):
        spec, source = spec_for_run(run, cfg, name)
        schedule = schedule_for_run(run, cfg, name)
        source = REPLAYED if schedule is not None else source
        for seed in model_seeds(cfg):
            folder = run.model_dir(name, seed)
            record = fit_record(spec, cfg, seed, prepared, schedule)
            resumed = reusable(folder, record)
            if resumed:
                forecaster = load(folder)
            else:
                (folder / MANIFEST).unlink(missing_ok=True)  # incomplete until save() writes the manifest last
                forecaster = fit_forecaster(prepared, spec, cfg, seed, name, checkpoint=run.model_dir(name, seed) / CHECKPOINT,
                                            schedule=schedule)
                atomic_write_json(folder / FIT_FILE, record)
                forecaster.save(folder)
            models.append(TrainedModel(name, seed, forecaster, source, str(folder.relative_to(run.root)), resumed))
            if echo is not None:
                echo(f"{name} seed {seed}: {'loaded (already trained)' if resumed else 'trained'}, "
                     f"validation loss {forecaster.val_loss_:.4g}")
    name, seed = select_model({n: {m.seed: m.forecaster.val_loss_ for m in group}
                               for n, group in Training(models, models[0]).by_name().items()})
    selected = next(m for m in models if (m.name, m.seed) == (name, seed))
    write_selected(run, cfg, models, selected)
    return Training(models, selected)


def write_selected(run: RunFolder, cfg: Config, models: list[TrainedModel], selected: TrainedModel) -> None:
    """Write training/selected.json: the selected model (as before) and the list of every trained model; a model that
    replayed a PBT schedule carries it (`schedule`), in its entry and, when selected, at the top."""
    f = selected.forecaster
    means = {}
    for m in models:
        means.setdefault(m.name, []).append(m.forecaster.val_loss_)

    def replayed(m: TrainedModel) -> dict:
        """{"schedule": [...]} for a model that replayed one, else {} (the entry is then as before)."""
        schedule = getattr(m.forecaster, "schedule", None)
        return {} if schedule is None else {"schedule": schedule}

    atomic_write_json(run.selected_file, {
        "model": selected.name, "seed": selected.seed, "path": selected.path, "source": selected.source,
        "fit_on": cfg.training.fit_on, "best_epoch": f.best_epoch_, "val_loss": f.val_loss_,
        "criterion": "lowest validation loss (mean over seeds), then the seed with the lowest validation loss",
        "val_loss_mean": {n: float(np.mean(v)) for n, v in means.items()},
        "models": [{"model": m.name, "seed": m.seed, "path": m.path, "source": m.source,
                    "val_loss": m.forecaster.val_loss_, "best_epoch": m.forecaster.best_epoch_} | replayed(m)
                   for m in models],
    } | replayed(selected))


def read_selected(run: RunFolder) -> dict:
    """training/selected.json (which model is selected, and every trained model)."""
    return read_json(run.require(run.selected_file, STAGE))


def load_selected(run: RunFolder) -> NeuralForecaster:
    """The run's selected forecaster, as saved by the training stage."""
    return load(run.root / read_selected(run)["path"])


def load_trained(run: RunFolder) -> tuple[NeuralForecaster, Prepared]:
    """The run's selected forecaster and its prepared series, cut at the look-back the model was trained with."""
    forecaster = load_selected(run)
    return forecaster, load_prepared(run).with_lookback(forecaster.lookback_)


def load_models(run: RunFolder) -> dict[str, list[NeuralForecaster]]:
    """Every model the training stage trained, {name: [forecaster per seed]}, in training order."""
    selected = read_selected(run)
    entries = selected.get("models") or [{"model": selected["model"], "seed": selected["seed"], "path": selected["path"]}]
    models: dict[str, list] = {}
    for entry in entries:
        models.setdefault(entry["model"], []).append(load(run.root / entry["path"]))
    return models


def read_history(run: RunFolder) -> pd.DataFrame:
    """Per-epoch training history of the selected model."""
    return load_selected(run).history_
