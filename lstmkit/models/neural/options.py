"""An architecture's own settings checked against its `Options` section, with errors naming `model.<name>.<key>`."""

from __future__ import annotations

from pydantic import ValidationError

from lstmkit.config import ConfigError, Section, format_error


def validated(cls: type[Section], given: dict | None, name: str) -> dict:
    """`given` laid over the defaults of `cls` (architecture `name`'s Options), checked: a plain dict of every setting."""
    try:
        return cls.model_validate(dict(given or {})).model_dump()
    except ValidationError as e:
        valid = [f"model.{name}.{key}" for key in cls.model_fields]
        raise ConfigError(format_error(e.errors()[0], f"model.{name}", valid)) from None
