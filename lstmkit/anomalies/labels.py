"""Anomaly labels: NAB-style label windows read from a JSON file and checked (`read_labels`, LabelsError naming the
file and the entry), turned into one flag per observation (`point_labels`), and the resolution at which they were
labelled (`label_resolution`: the typical length of a labelled event, in observations)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lstmkit.anomalies.metrics import events
from lstmkit.core.errors import LabelsError

# ------------------------------------------------------------------ labels


def read_labels(path: str | Path, name: str) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The label windows of series `name` in a `{name: [[start, end], ...]}` JSON file, as (start, end) timestamps."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"{path}: labels file not found (anomalies.labels)")
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LabelsError(f"{path}: cannot be read as JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(content, dict):
        raise LabelsError(f"{path}: expected an object {{file name: [[start, end], ...]}}, got a "
                          f"{type(content).__name__}")
    if name not in content:
        raise LabelsError(f"{path}: no labels for '{name}'; the file labels: "
                          f"{', '.join(map(repr, content)) or 'nothing'}")
    entries = content[name]
    if not isinstance(entries, list):
        raise LabelsError(f"{path}: the labels of '{name}' must be a list of [start, end] pairs")
    windows = []
    for i, entry in enumerate(entries):
        if not (isinstance(entry, list) and len(entry) == 2):
            raise LabelsError(f"{path}: '{name}' entry {i} is {entry!r}, not a [start, end] pair")
        try:
            start, end = (pd.Timestamp(v) for v in entry)
        except (ValueError, TypeError):
            raise LabelsError(f"{path}: '{name}' entry {i} {entry!r} does not hold two timestamps") from None
        if pd.isna(start) or pd.isna(end):
            raise LabelsError(f"{path}: '{name}' entry {i} {entry!r} does not hold two timestamps")
        if end < start:
            raise LabelsError(f"{path}: '{name}' entry {i} ends ({end}) before it starts ({start})")
        windows.append((start, end))
    return windows


def point_labels(index: pd.DatetimeIndex, windows: list[tuple[pd.Timestamp, pd.Timestamp]]) -> np.ndarray:
    """(n,) bool: whether each timestamp lies inside a label window (both ends included)."""
    out = np.zeros(len(index), dtype=bool)
    for a, b in windows:
        out |= (index >= a) & (index <= b)
    return out


def label_resolution(labels: np.ndarray) -> int:
    """The labels' resolution in observations: the median length of the label windows (1 without any)."""
    found = events(labels)
    return int(np.median([b - a + 1 for a, b in found])) if found else 1
