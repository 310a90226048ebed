"""The tuning search space: every tunable declared in YAML as a range, a list of choices or a fixed value.

Common tunables (`layers`, `units`, ..., `lookback`) apply to every architecture. `architecture` picks the network
(fixed at `model.architecture` unless searched). An architecture's own settings are tuned as `<arch>.<option>`
(e.g. `tcn.kernel_size`, from the fields of its `model.<arch>` section) and are *conditional*: a trial samples them
only when it trains that architecture."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from lstmkit.config import NORMALIZATIONS, OPTIMIZERS, Config, ConfigError, ModelConfig
from lstmkit.config.types import EXPONENT, choices_of
from lstmkit.data.splits import SplitBounds, window_count
from lstmkit.models.neural import architectures

# The default search space (see `tuning.space`); tunables left out are fixed at model.* / window.lookback.
# Chosen on the validation splits of public real series (benchmarks/real_defaults.py, README "Defaults and why"):
# per-window normalisation is what lets an LSTM follow a level the training rows never reached, and neither `last`
# nor `revin` won on every series, so the search picks one of them per series. `none` is left out: where it won on
# validation (El Nino, by 0.0013) it lost on test by a factor 2, as it does whenever the test level leaves the
# training range; set `tuning.space.normalization: [none, last, revin]` for series without level shifts (the
# synthetic one: drivers that act through their levels). The other ranges are sized for trials of a
# few epochs on small real series: adam or rmsprop at 3e-4 to 1e-2 (sgd, and the ends of the old 1e-4..1e-1 range,
# spend trials that cannot converge in a trial's epochs), at most 2 layers of 128 units, dropout up to 0.3.
DEFAULT_SPACE: dict = {
    "layers": {"min": 1, "max": 2},
    "units": {"min": 32, "max": 128, "step": 32},
    "dropout": {"min": 0.0, "max": 0.3, "step": 0.1},
    "learning_rate": {"min": 3.0e-4, "max": 1.0e-2, "log": True},
    "batch_size": {"choices": [32, 64, 128]},
    "optimizer": {"choices": ["adam", "rmsprop"]},
    "normalization": {"choices": ["last", "revin"]},
}

# What `tuning.strategy: grid` searches when the user gives no grid of their own: the common values of the
# classic LSTM literature, 3 x 3 x 4 x 3 x 3 = 324 points (`tuning.max_trials` bounds how many run). Every other
# tunable of the default space is fixed at its model.* / window.lookback setting in a grid search.
DEFAULT_GRID: dict = {
    "layers": [1, 2, 3],
    "units": [50, 100, 150],
    "dropout": [0.2, 0.3, 0.4, 0.5],
    "learning_rate": [0.001, 0.01, 0.1],
    "batch_size": [32, 64, 128],
}

# name -> (type, check of one value, what the check demands)
TUNABLES: dict[str, tuple[type, Any, str]] = {
    "layers": (int, lambda v: 1 <= v <= 8, "an integer from 1 to 8"),
    "units": (int, lambda v: v >= 1, "an integer of at least 1"),
    "dropout": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "learning_rate": (float, lambda v: 0 < v < 10, "a number in (0, 10)"),
    "batch_size": (int, lambda v: v >= 1, "an integer of at least 1"),
    "optimizer": (str, lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
    "normalization": (str, lambda v: v in NORMALIZATIONS, "one of " + ", ".join(NORMALIZATIONS)),
    "lookback": (int, lambda v: v >= 1, "an integer of at least 1"),
    "architecture": (str, lambda v: v in architectures.names(), "one of the architectures"),
}
CATEGORICAL_FIRST = ("architecture",)
MUTABLE = ("learning_rate", "dropout", "batch_size")  # what `pbt` perturbs (lstmkit.tuning.backends.ray)  # declared before the others: the conditional parameters hang on it


def _option_tunable(name: str) -> tuple[type, Any, str]:
    """(type, check, demand) of an `<arch>.<option>` tunable, or a ConfigError naming the key."""
    where = f"tuning.space.{name}"
    arch, _, option = name.partition(".")
    if arch not in architectures.names():
        raise ConfigError(f"{where}: unknown architecture {arch!r}; architectures are: {', '.join(architectures.names())}")
    section = architectures.options_class(arch)
    if section is None:
        raise ConfigError(f"{where}: {arch} has no settings of its own; tune the common hyperparameters "
                          f"({', '.join(k for k in TUNABLES if k != 'architecture')}) instead")
    fields = section.model_fields
    if option not in fields:
        raise ConfigError(f"{where}: {option!r} is not a setting of {arch}; its settings are: {', '.join(fields)}")
    typ, choices = fields[option].annotation, choices_of(fields[option])
    if choices:
        return str, lambda v: v in choices, "one of " + ", ".join(map(str, choices))
    if typ is int:
        return int, lambda v: v >= 1, "an integer of at least 1"
    if typ in (float, int | float):
        return float, lambda v: math.isfinite(v), "a number"
    if typ is str:
        return str, lambda v: True, "a string"
    raise ConfigError(f"{where}: model.{arch}.{option} is a {getattr(typ, '__name__', typ)} setting, which cannot be "
                      f"tuned; set model.{arch}.{option} instead")


def tunable(name: str) -> tuple[type, Any, str]:
    """(type, check of one value, what the check demands) of any tunable name, or a ConfigError naming the key."""
    if name == "architecture":
        names = architectures.names()
        return str, lambda v: v in names, "one of " + ", ".join(names)
    if name in TUNABLES:
        return TUNABLES[name]
    if "." in name:
        return _option_tunable(name)
    raise ConfigError(f"tuning.space: unknown hyperparameter {name!r}; tunable are: {', '.join(TUNABLES)}, "
                      f"and an architecture's own settings as `<architecture>.<setting>` (e.g. tcn.kernel_size)")


def owner(name: str) -> str | None:
    """The architecture an `<arch>.<option>` tunable belongs to; None for a common tunable."""
    return name.partition(".")[0] if "." in name else None


@dataclass(frozen=True)
class Param:
    """One tuned hyperparameter: a range (min, max, optional step or log scale) or a list of choices."""

    name: str
    type: type
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    log: bool = False

    @property
    def architecture(self) -> str | None:
        """The architecture this parameter belongs to (active only in its trials), None for a common one."""
        return owner(self.name)

    @property
    def is_range(self) -> bool:
        """True for a numeric range, False for a list of choices."""
        return self.choices is None

    def grid(self) -> list | None:
        """Every value this parameter can take, or None when the range is continuous."""
        if not self.is_range:
            return list(self.choices)
        if self.type is int and not self.log:
            return list(range(int(self.min), int(self.max) + 1, int(self.step or 1)))
        if self.step:
            n = int(math.floor((self.max - self.min) / self.step + 1e-9))
            return [round(self.min + i * self.step, 10) for i in range(n + 1)]
        return None

    def describe(self) -> str:
        """Short human-readable form, e.g. `32..160 step 32` or `adam | rmsprop`."""
        if not self.is_range:
            return " | ".join(map(str, self.choices))
        extra = " (log scale)" if self.log else f" step {self.step}" if self.step else ""
        return f"{self.min:g}..{self.max:g}{extra}"


@dataclass(frozen=True)
class SearchSpace:
    """The tuned parameters (`architecture` first when searched) and the fixed values of the rest."""

    params: tuple[Param, ...]
    fixed: dict

    @property
    def names(self) -> list[str]:
        """Names of the tuned parameters, in declaration order."""
        return [p.name for p in self.params]

    @property
    def architectures(self) -> tuple[str, ...]:
        """The architectures the search trains: `architecture`'s choices when searched, else the fixed one."""
        for p in self.params:
            if p.name == "architecture":
                return tuple(p.choices)
        return (self.fixed.get("architecture", ModelConfig.model_fields["architecture"].default),)

    @property
    def searches_architecture(self) -> bool:
        """True when trials choose between several architectures."""
        return "architecture" in self.names

    def mutable(self) -> list[Param]:
        """The tuned parameters population-based training perturbs while a trial trains (they change no weight shape)."""
        return [p for p in self.params if p.name in MUTABLE]

    def params_for(self, architecture: str) -> list[Param]:
        """The tuned parameters active in a trial of `architecture`: the common ones and its own."""
        return [p for p in self.params if p.architecture in (None, architecture)]

    def values(self, sampled: dict) -> dict:
        """Every tunable's value for one trial: the sampled ones over the fixed ones, only those active in the
        trial's architecture (another architecture's `<arch>.<option>` values are dropped)."""
        out = dict(self.fixed)
        out.update({k: v for k, v in sampled.items() if k in TUNABLES or owner(k) in architectures.names()})
        arch = out.get("architecture") or self.architectures[0]
        out = {k: v for k, v in out.items() if owner(k) in (None, arch)}
        if "dropout" in out:
            out["dropout"] = round(float(out["dropout"]), 6)  # stepped floats like 0.30000000000000004
        return out

    def grid_size(self) -> int:
        """Number of points of the full grid: per architecture, the product over its active parameters, summed
        (a ConfigError naming the first continuous range if there is one)."""
        sizes = {}
        for p in self.params:
            values = p.grid()
            if values is None:
                raise ConfigError(f"tuning.strategy grid needs a finite grid, but tuning.space.{p.name} is a continuous "
                                  f"range; give it a `step` or a list of `choices`")
            sizes[p.name] = len(values)
        return sum(math.prod(sizes[p.name] for p in self.params_for(arch) if p.name != "architecture")
                   for arch in self.architectures)

    def table(self) -> list[dict]:
        """One row per tunable: tuned range or choices, or the fixed value (for the report); an architecture's own
        settings say in which trials they apply when the architecture is searched."""
        def when(name: str) -> str:
            return f" (when architecture is {owner(name)})" if owner(name) and self.searches_architecture else ""

        rows = [{"hyperparameter": p.name, "searched": p.describe() + when(p.name)} for p in self.params]
        rows += [{"hyperparameter": k, "searched": f"fixed at {v}{when(k)}"} for k, v in self.fixed.items()]
        return rows


def _flatten(user: dict | None) -> dict:
    """Nested architecture entries (`tcn: {kernel_size: [3, 5]}`, as `--set tuning.space.tcn.kernel_size=...`
    writes them) as flat `tcn.kernel_size` keys; everything else as given."""
    out: dict = {}
    for name, entry in (user or {}).items():
        if name in architectures.names() and isinstance(entry, dict) and not set(entry) & {"choices", "min", "max", "step", "log"}:
            out |= {f"{name}.{option}": value for option, value in entry.items()}
        else:
            out[name] = entry
    return out


def merge_space(user: dict | None, strategy: str | None = None) -> dict:
    """The default space with the user's entries laid over it, one parameter at a time.

    A mapping with `choices` replaces the default entry; one with range keys updates the default range;
    a scalar fixes the parameter; `null` takes it out of the search (fixed at its model/window setting).
    For the `grid` strategy, a parameter the user left out (or left at its default entry) takes its
    DEFAULT_GRID values or, outside the default grid, is fixed at its model/window setting: a grid search
    with no grid of its own searches the common values instead of refusing the continuous default ranges.
    An architecture's own settings may be given flat (`tcn.kernel_size`) or nested (`tcn: {kernel_size: ...}`);
    the merged space holds them flat. Merging a merged space again changes nothing, so a saved run configuration
    reloads as it was.
    """
    merged = copy.deepcopy(DEFAULT_SPACE)
    user = _flatten(user)
    if strategy == "grid":
        given = {k for k, v in (user or {}).items() if k not in DEFAULT_SPACE or v != DEFAULT_SPACE[k]}
        user = {k: v for k, v in (user or {}).items() if k in given}
        for name in set(merged) - given:
            merged[name] = {"choices": list(DEFAULT_GRID[name])} if name in DEFAULT_GRID else None
        for name in set(DEFAULT_GRID) - given - set(merged):
            merged[name] = {"choices": list(DEFAULT_GRID[name])}
    for name, entry in (user or {}).items():
        default = merged.get(name)
        if entry is None:
            merged[name] = None
        elif isinstance(entry, dict) and "choices" not in entry and isinstance(default, dict) and "choices" not in default:
            base = {k: v for k, v in default.items() if not ("step" in entry and k == "log" or entry.get("log") and k == "step")}
            merged[name] = {**base, **entry}
        else:
            merged[name] = copy.deepcopy(entry)
    return merged


def _check_value(name: str, value: Any, where: str) -> Any:
    """One value of a tunable, converted to its type, or a ConfigError saying what is wrong."""
    typ, ok, demand = tunable(name)
    if typ is not str and isinstance(value, str) and EXPONENT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads `1e-3` (no dot) as text
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if typ is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, typ) or isinstance(value, bool) or not ok(value):
        raise ConfigError(f"{where}: {value!r} is not {demand}")
    return value


def _param(name: str, entry: Any) -> Param | Any:
    """A Param for a range or choices entry, or the plain fixed value for a scalar entry."""
    where = f"tuning.space.{name}"
    typ = tunable(name)[0]
    if isinstance(entry, list):
        entry = {"choices": entry}
    if not isinstance(entry, dict):
        return _check_value(name, entry, where)
    unknown = set(entry) - {"choices", "min", "max", "step", "log"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; use `choices`, or `min`, `max` and optional `step` or `log`")
    if "choices" in entry:
        if set(entry) != {"choices"}:
            raise ConfigError(f"{where}: give either `choices` or a `min`/`max` range, not both")
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices: must be a non-empty list, got {choices!r}")
        values = tuple(_check_value(name, v, f"{where}.choices") for v in choices)
        if len(set(values)) != len(values):
            raise ConfigError(f"{where}.choices: {list(choices)} repeats a value")
        return Param(name, typ, choices=values)
    if typ is str:
        raise ConfigError(f"{where}: {name} is categorical; give a list of `choices`")
    missing = [k for k in ("min", "max") if k not in entry]
    if missing:
        raise ConfigError(f"{where}: a range needs `min` and `max` (missing `{missing[0]}`)")
    lo, hi = _check_value(name, entry["min"], f"{where}.min"), _check_value(name, entry["max"], f"{where}.max")
    if lo > hi:
        raise ConfigError(f"{where}: min ({lo}) is greater than max ({hi})")
    step, log = entry.get("step"), entry.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: expected true or false, got {log!r}")
    if isinstance(step, str) and EXPONENT.fullmatch(step.strip()):
        step = float(step)  # YAML 1.1 reads `1e-3` (no dot) as text
    if step is not None:
        if log:
            raise ConfigError(f"{where}: give `step` or `log: true`, not both")
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step < math.inf or (typ is int and step != int(step)):
            raise ConfigError(f"{where}.step: must be a positive {'integer' if typ is int else 'number'}, got {step!r}")
        step = int(step) if typ is int else float(step)
    if log and lo <= 0:
        raise ConfigError(f"{where}: a log-scale range needs min > 0, got {lo}")
    if lo == hi:
        return lo
    return Param(name, typ, min=lo, max=hi, step=step, log=log)


def parse_space(space: dict, cfg: Config | None = None) -> SearchSpace:
    """Validate a merged `tuning.space` mapping into tuned Params and fixed values (fixed defaults from cfg).

    `architecture` is declared first (the conditional `<arch>.<option>` parameters depend on it, in name order, so
    that a configuration searches the same way before and after a save); an option of an
    architecture the search does not train is a ConfigError naming its key.
    """
    if not isinstance(space, dict):
        raise ConfigError(f"tuning.space: expected a mapping of hyperparameter names, got {space!r}")
    for name in space:
        if not isinstance(name, str):
            raise ConfigError(f"tuning.space: unknown hyperparameter {name!r}; tunable are: {', '.join(TUNABLES)}")
        tunable(name)  # a ConfigError naming an unknown name
    params, fixed = [], {}
    if cfg is not None:
        fixed = {"architecture": cfg.model.architecture}
        fixed |= {k: getattr(cfg.model, k) for k in TUNABLES if k != "architecture" and hasattr(cfg.model, k)}
        fixed |= {"lookback": cfg.window.lookback}
    order = [*CATEGORICAL_FIRST, *(k for k in TUNABLES if k not in CATEGORICAL_FIRST), *sorted(k for k in space if owner(k))]  # sorted: as a saved YAML reloads
    for name in order:
        if space.get(name) is None:
            continue
        p = _param(name, space[name])
        if isinstance(p, Param):
            if not p.is_range and len(p.choices) == 1:
                fixed[name] = p.choices[0]
            else:
                params.append(p)
                fixed.pop(name, None)
        else:
            fixed[name] = p
    parsed = SearchSpace(params=tuple(params), fixed=fixed)
    trained = parsed.architectures
    for name in [*parsed.names, *fixed]:
        if owner(name) and owner(name) not in trained:
            source = "tuning.space.architecture" if space.get("architecture") is not None else "model.architecture"
            raise ConfigError(f"tuning.space.{name}: the search trains {', '.join(trained)} only ({source}), not "
                              f"{owner(name)}; add {owner(name)} to tuning.space.architecture or remove this entry")
    return parsed


def search_space(cfg: Config) -> SearchSpace:
    """The run's search space (`tuning.space` laid over the default space), with untuned hyperparameters fixed at their
    model/window settings."""
    return parse_space(merge_space(cfg.tuning.space, cfg.tuning.strategy), cfg)


def check(cfg: Config) -> Config:
    """The configuration with its search space checked (ConfigError naming the key) and written out in full: the
    default space with `tuning.space` laid over it, so that the run's config.yaml records what was searched."""
    merged = merge_space(cfg.tuning.space, cfg.tuning.strategy)
    space = parse_space(merged, cfg)
    if cfg.tuning.strategy == "grid":
        space.grid_size()
    if cfg.tuning.strategy == "pbt" and not space.mutable():
        raise ConfigError("tuning.space: pbt perturbs learning_rate, dropout and batch_size while trials train, but the "
                          "space fixes all three; give at least one of them a range or choices")
    return cfg.model_copy(update={"tuning": cfg.tuning.model_copy(update={"space": merged})})


def longest_lookback(cfg: Config) -> int:
    """The longest look-back any trial of the configured search may use."""
    space = search_space(cfg)
    return max([cfg.window.lookback, space.fixed.get("lookback") or 0]
               + [int(p.max if p.is_range else max(p.choices)) for p in space.params if p.name == "lookback"])


def check_space_fits(bounds: SplitBounds, horizon: int, cfg: Config) -> None:
    """ConfigError if the longest look-back searched leaves no training window."""
    longest = longest_lookback(cfg)
    a, b = bounds.train
    if window_count((a, b), longest, horizon) < 1:
        raise ConfigError(f"tuning.space.lookback: a look-back of {longest} leaves no training window in the "
                          f"{b - a} training rows; lower its maximum")
