"""The value types of configuration keys, as pydantic v2 annotated types, and `Section`, the base of every section.

Each type says in its error what it expects and what it got, e.g. `expected an integer, got 'abc'`; the loader puts
the dotted key in front (`window.lookback: expected an integer, got 'abc'`). YAML gives typed values, so the types are
strict where a silent conversion would hide a mistake: `true` is no integer, `3` no text, `yes` no boolean. Numbers
written as `1e-3` (which YAML 1.1 reads as text) are numbers; a whole float (`12.0`) is an integer; a number setting
keeps an integer an integer (split sizes: an integer is a row count, a fraction a share).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

AUTO = "auto"  # a setting derived from the loaded series (see lstmkit.data.seasonality.resolve_config)
EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def number_text(value: Any) -> Any:
    """A string in exponent notation (`1e-3`, read as text by YAML 1.1) as a float; anything else unchanged."""
    if isinstance(value, str) and EXPONENT.fullmatch(value.strip()):
        return float(value)
    return value


def _as_int(value: Any) -> int:
    """An integer: ints, and floats with no fraction; never booleans, text or non-finite numbers."""
    value = number_text(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or float(value) != int(value):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _as_number(value: Any) -> int | float:
    """A finite number, kept as given (an integer stays an integer)."""
    value = number_text(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _as_bool(value: Any) -> bool:
    """A YAML boolean (`true`/`false`) only."""
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _as_str(value: Any) -> str:
    """Text; nothing (`--set data.date_column=`) is the empty setting."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _as_optional_str(value: Any) -> str | None:
    """Text, or nothing (None)."""
    if value is None or value == "":
        return None
    return _as_str(value)


def _as_list(value: Any) -> list:
    """A list; nothing is the empty list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {value!r}")
    return value


def _as_dict(value: Any) -> dict:
    """A mapping; nothing is the empty mapping."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping, got {value!r}")
    return value


def _as_int_or_auto(value: Any) -> int | str:
    """An integer or `auto`."""
    if isinstance(value, str) and not EXPONENT.fullmatch(value.strip()):
        if value.strip() != AUTO:
            raise ValueError(f"expected an integer or {AUTO!r}, got {value!r}")
        return AUTO
    return _as_int(value)


Int = Annotated[int, BeforeValidator(_as_int)]
Number = Annotated[int | float, BeforeValidator(_as_number)]
Bool = Annotated[bool, BeforeValidator(_as_bool)]
Str = Annotated[str, BeforeValidator(_as_str)]
OptStr = Annotated[str | None, BeforeValidator(_as_optional_str)]
List = Annotated[list, BeforeValidator(_as_list)]
Dict = Annotated[dict, BeforeValidator(_as_dict)]
IntOrAuto = Annotated[int | str, BeforeValidator(_as_int_or_auto)]


def Choice(values: tuple, kind: type = str) -> Any:  # noqa: N802 - reads as a type in annotations
    """One of `values` (text, or integers with kind=int); the error lists them all."""
    convert: Callable[[Any], Any] = _as_int if kind is int else _as_str

    def check(value: Any) -> Any:
        """The value, when it is one of the choices."""
        value = convert(value)
        if value not in values:
            raise ValueError(f"{value!r} is not one of {', '.join(map(str, values))}")
        return value

    return Annotated[kind, BeforeValidator(check), Field(json_schema_extra={"choices": list(values)})]


def opt(default: Any, help: str, **bounds: Any) -> Any:
    """A configuration key: its default and what it means (shown by `lstmkit config` and the report's reference);
    `bounds` are pydantic's numeric constraints (`ge=1`: at least 1)."""
    if isinstance(default, (list, dict)):
        return Field(default_factory=lambda d=default: _copy(d), description=help, **bounds)
    return Field(default=default, description=help, **bounds)


def _copy(value: Any) -> Any:
    """A deep copy of plain data (lists and mappings), so that no two configurations share a default."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def choices_of(field: Any) -> tuple | None:
    """The allowed values a field declares (None when any value of its type is allowed)."""
    extra = field.json_schema_extra
    return tuple(extra["choices"]) if isinstance(extra, dict) and "choices" in extra else None


class Section(BaseModel):
    """A section of the configuration: known keys only, every value checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=False)
