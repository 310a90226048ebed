"""The architectures: every module of `lstmkit.models.neural` that builds a network is one, named by its file.

An architecture's file defines `build(spec, lookback, channels, horizon, target_index)` -> an uncompiled Keras model
`(batch, lookback, channels) -> (batch, horizon)`, its capability `TAGS`, and, when it has settings of its own,
`Options`: a configuration section (`lstmkit.config.Section`) whose fields are the keys `model.<name>.<key>` (and
the tunables `<name>.<key>` of `tuning.space`). Adding an architecture is adding its file (and its tests): this
module finds it, the configuration accepts its settings, the reference lists them and the tuner can search them.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import pkgutil
from types import ModuleType

from lstmkit.config import Config, ConfigError, ModelConfig, Section
from lstmkit.config.types import choices_of
from lstmkit.models.neural.options import validated

COMMON = tuple(k for k in ModelConfig.model_fields if k != "architecture")
SHARED = frozenset({"architectures", "forecaster", "heads", "layers", "mc_dropout", "options", "spec"})  # not architectures


@functools.cache
def modules() -> dict[str, ModuleType]:
    """Every architecture's module by name, in alphabetical order."""
    package = importlib.import_module("lstmkit.models.neural")
    found = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name in SHARED:
            continue
        module = importlib.import_module(f"lstmkit.models.neural.{info.name}")
        if callable(getattr(module, "build", None)):
            found[info.name] = module
    return found


def names() -> tuple[str, ...]:
    """The architectures' names, e.g. ('attention_lstm', 'bilstm', ..., 'tft')."""
    return tuple(modules())


def module(name: str) -> ModuleType:
    """An architecture's module (its `build`, `TAGS`, `Options` and, for attention models, `attention`)."""
    found = modules()
    if name not in found:
        raise ConfigError(f"model.architecture: {name!r} is not one of {', '.join(found)}")
    return found[name]


def options_class(name: str) -> type[Section] | None:
    """An architecture's `Options` section, or None when it has no settings of its own."""
    return getattr(module(name), "Options", None)


def options(name: str, given: dict | None = None) -> dict:
    """An architecture's own settings: its Options' defaults with `given` laid over them, checked (ConfigError naming
    `model.<name>.<key>`); empty for an architecture without settings (given ones are then an error)."""
    cls, given = options_class(name), dict(given or {})
    if cls is None:
        if given:
            raise ConfigError(f"model.{name}: {name} has no settings of its own, got {', '.join(given)}")
        return {}
    return validated(cls, given, name)


def config_options(cfg: Config, name: str) -> dict:
    """The configuration's settings of an architecture (`model.<name>`), defaults filled in, checked."""
    return options(name, cfg.model.section(name))


def check(cfg: Config) -> Config:
    """The configuration with its architectures checked: `model.architecture`, `compare.architectures` and every
    `model.<name>` section, each section completed with its defaults (so that the run's config.yaml lists them)."""
    module(cfg.model.architecture)
    for arch in cfg.compare.architectures:
        if arch not in modules():
            raise ConfigError(f"compare.architectures: {arch!r} is not one of {', '.join(names())}")
    for name in cfg.model.sections():
        if name not in modules():
            close = difflib.get_close_matches(name, names(), n=1, cutoff=0.6)
            hint = f"; did you mean model.{close[0]}?" if close else ""
            raise ConfigError(f"model.{name}: no architecture is named {name!r}{hint} (architectures: "
                              f"{', '.join(names())}; the common settings are model.{', model.'.join(COMMON)})")
    complete = {name: config_options(cfg, name) for name in names() if options_class(name) is not None}
    model = cfg.model.model_dump() | complete
    return cfg.model_copy(update={"model": type(cfg.model).model_validate(model)})


def option_rows() -> list[dict]:
    """Every architecture's own keys (`model.<name>.<key>`) with default, allowed values and help text."""
    rows = []
    for name in names():
        cls = options_class(name)
        if cls is None:
            continue
        defaults = cls()
        for key, field in cls.model_fields.items():
            rows.append({"key": f"model.{name}.{key}", "default": getattr(defaults, key), "choices": choices_of(field),
                         "help": field.description or ""})
    return rows
