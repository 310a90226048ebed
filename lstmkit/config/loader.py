"""Loading a configuration: a YAML profile, dotted `--set KEY=VALUE` overrides laid over it, validated into `Config`.

Every refusal is one ConfigError line naming the dotted key and what it must be: `window.lookback: expected an
integer or 'auto', got 'abc'`, `scaling.method: 'robust' is not one of standard, minmax`, `unknown config key
'training.epoch'; did you mean 'training.epochs'?. Valid keys: ...`; from a file, the file's path comes first.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lstmkit.config.reference import MAPPINGS, config_keys, unknown_key
from lstmkit.config.settings import Config, ModelConfig
from lstmkit.config.types import number_text
from lstmkit.core.errors import ConfigError


def parse_override(text: str) -> tuple[str, Any]:
    """Split a `KEY=VALUE` override; the value is read as YAML (numbers, lists, booleans)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form KEY=VALUE")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    return key.strip(), number_text(value)


def _known(key: str, valid: set[str]) -> bool:
    """Whether a dotted override names a setting: a key, a key inside a mapping setting, or an architecture's own
    setting `model.<architecture>.<key>` (checked by the architecture, see lstmkit.models.neural.architectures)."""
    if key in valid or key.startswith(tuple(f"{m}." for m in MAPPINGS)):
        return True
    parts = key.split(".")
    return len(parts) == 3 and parts[0] == "model" and parts[1] not in ModelConfig.model_fields


def apply_overrides(values: dict, overrides: dict[str, Any]) -> dict:
    """Set dotted keys in a copy of a nested dict, refusing keys that do not exist."""
    valid = set(config_keys())
    out = copy.deepcopy(values)
    for key, value in overrides.items():
        if not _known(key, valid):
            raise ConfigError(unknown_key(key))
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            if node.get(p) is None:  # a section missing or left empty in the file
                node[p] = {}
            node = node[p]
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: parent is not a mapping")
        node[leaf] = value
    return out


def format_error(error: dict, prefix: str = "", valid: list[str] | None = None) -> str:
    """One pydantic error as the line a user reads: the dotted key (after `prefix`) first, then what is wrong;
    an unknown key gets the closest of `valid` (default: every configuration key) and the whole list."""
    loc = ".".join([prefix, *map(str, error["loc"])] if prefix else map(str, error["loc"]))
    kind, given, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "extra_forbidden":
        return unknown_key(loc, valid)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{loc or 'config'}: expected a mapping, got {given!r}"
    bounds = {"greater_than_equal": ("at least", "ge"), "greater_than": ("greater than", "gt"),
              "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}
    if kind in bounds:
        words, name = bounds[kind]
        return f"{loc}: must be {words} {ctx.get(name)}, got {given!r}"
    text = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if text.startswith("unknown config key '"):  # an architecture section that is no mapping (ModelConfig)
        return unknown_key(text.split("'")[1], valid)
    return f"{loc}: {text}" if loc else text


def from_dict(values: dict | None, overrides: dict[str, Any] | None = None) -> Config:
    """A validated Config from a nested dict plus dotted overrides (ConfigError naming the first bad key)."""
    values = apply_overrides(values or {}, overrides or {})
    if not isinstance(values, dict):
        raise ConfigError(f"config: expected a mapping, got {values!r}")
    try:
        return Config.model_validate(values)
    except ValidationError as e:
        raise ConfigError(format_error(e.errors()[0])) from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a YAML profile (the defaults when None) and apply dotted overrides."""
    if path is None:
        return from_dict({}, overrides)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        values = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
    try:
        return from_dict(values, overrides)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


def replace(cfg: Config, overrides: dict[str, Any]) -> Config:
    """A validated copy of `cfg` with dotted overrides applied, e.g. `replace(cfg, {"training.verbose": 0})`."""
    return from_dict(cfg.to_dict(), overrides)
