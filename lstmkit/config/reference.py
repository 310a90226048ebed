"""The configuration's own reference: every dotted key with its default, allowed values and meaning, and the message
for a key that does not exist (the closest key, then every valid one)."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel

from lstmkit.config.settings import Config
from lstmkit.config.types import choices_of

MAPPINGS = ("tuning.space",)  # settings that are mappings of their own: dotted overrides reach inside them


def _section(annotation: Any) -> type[BaseModel] | None:
    """The section class of a field, or None for a leaf setting."""
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def describe_keys(cls: type[BaseModel] = Config, prefix: str = "") -> list[dict]:
    """Every key with its default, allowed values and help text, in declaration order (for `lstmkit config`)."""
    rows = []
    defaults = cls()
    for name, field in cls.model_fields.items():
        section = _section(field.annotation)
        if section is not None:
            rows += describe_keys(section, f"{prefix}{name}.")
        else:
            rows.append({"key": f"{prefix}{name}", "default": getattr(defaults, name), "choices": choices_of(field),
                         "help": field.description or ""})
    return rows


def config_keys() -> list[str]:
    """Every valid dotted key, e.g. `window.lookback` (an architecture's own keys are `model.<architecture>.<key>`)."""
    return [row["key"] for row in describe_keys()]


def unknown_key(key: str, valid: list[str] | None = None) -> str:
    """The message for a key that does not exist: the closest valid key, if one is close, then every valid key."""
    valid = config_keys() if valid is None else valid
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.75)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown config key '{key}'{hint}. Valid keys: " + ", ".join(valid)
