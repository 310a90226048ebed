"""The one JSON sanitiser: any value lstmkit writes as JSON (artifacts, manifests, progress, database rows, answers).

Strict JSON has no NaN or infinity and knows no numpy, timestamps or paths: `jsonable` turns numpy scalars and arrays
into Python numbers and lists, timestamps and dates into ISO-8601 text, paths into text, tuples into lists, mapping keys
into text, and non-finite floats into null. Anything else that JSON cannot hold is a TypeError naming its type, never
a silent `str()`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import PurePath
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data (dict, list, str, int, float, bool, None), non-finite floats as None, recursively."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date)):  # pandas' Timestamp is a datetime
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def finite(value: float) -> float | None:
    """A number as a finite float, or None where it is infinite or undefined (a metric of too few windows)."""
    value = float(value)
    return value if math.isfinite(value) else None


def dumps(value: Any, indent: int | None = None) -> str:
    """`value` as strict JSON text (see `jsonable`)."""
    return json.dumps(jsonable(value), indent=indent, allow_nan=False)
