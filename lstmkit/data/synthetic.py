"""The synthetic series with known ground truth: drivers at planted lags, a distractor, noise of known size, and
anomalies injected into the test span on request."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from lstmkit.core.errors import DataError


@dataclass
class Driver:
    """One lagged input that drives the target: target[t] gets coef * f(feature[t - lag])."""

    feature: str
    lag: int
    coef: float
    form: str  # "linear", "tanh" or "interaction with <feature>@<lag>"


@dataclass
class GroundTruth:
    """What generated the synthetic target: the driving feature/lag pairs and the noise floor."""

    drivers: list[Driver]
    noise_std: float
    distractors: list[str] = field(default_factory=list)
    daily_period: int = 24
    weekly_period: int = 168

    def driving_pairs(self) -> list[tuple[str, int]]:
        """Distinct (feature, lag) pairs the target depends on."""
        seen: list[tuple[str, int]] = []
        for d in self.drivers:
            if (d.feature, d.lag) not in seen:
                seen.append((d.feature, d.lag))
        return seen

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GroundTruth:
        """Inverse of to_dict."""
        return cls(**{**d, "drivers": [Driver(**x) for x in d["drivers"]]})


LAG_X1 = 6
LAG_X2 = 12


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    """Stationary AR(1) noise."""
    e = rng.normal(0.0, sigma, n)
    out = np.empty(n)
    out[0] = e[0] / np.sqrt(1 - phi**2)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + e[i]
    return out


def _lagged(x: np.ndarray, lag: int) -> np.ndarray:
    """x shifted forward by lag steps; the first lag values repeat x[0]."""
    return np.concatenate([np.full(lag, x[0]), x[:-lag]])


def make_synthetic(length: int = 5040, noise_std: float = 0.3, seed: int = 42,
                   start: str = "2023-01-02") -> tuple[pd.DataFrame, GroundTruth]:
    """Hourly series with two driving inputs, one distractor and a target with known lagged dependencies.

    target[t] = level + trend + daily + weekly (modulated) seasonality
                + 1.2 x1[t-6] + 1.0 tanh(1.5 x2[t-12]) + 0.8 x1[t-6] x2[t-12] + noise
    """
    if length < 200:
        raise DataError(f"data.length: the synthetic series needs at least 200 rows, got {length}")
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=float)
    daily = 2 * np.pi * t / 24
    weekly = 2 * np.pi * t / 168
    x1 = np.sin(daily - 1.0) + _ar1(rng, length, 0.8, 0.5)
    x2 = 0.7 * np.sin(weekly) + 0.5 * np.cos(daily) + _ar1(rng, length, 0.9, 0.35)
    x3 = 0.6 * np.sin(daily + 2.0) + _ar1(rng, length, 0.7, 0.6)  # correlated with the cycle, no effect
    x1_l, x2_l = _lagged(x1, LAG_X1), _lagged(x2, LAG_X2)
    signal = (
        50.0 + 0.0003 * t
        + (1.5 + 0.5 * np.sin(weekly)) * np.sin(daily)  # daily cycle whose amplitude varies over the week
        + 0.8 * np.sin(weekly + 0.5)
        + 1.2 * x1_l + 1.0 * np.tanh(1.5 * x2_l) + 0.8 * x1_l * x2_l
    )
    target = signal + rng.normal(0.0, noise_std, length)
    index = pd.date_range(start, periods=length, freq="h", name="date")
    frame = pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "target": target}, index=index)
    truth = GroundTruth(
        drivers=[
            Driver("x1", LAG_X1, 1.2, "linear"),
            Driver("x2", LAG_X2, 1.0, "tanh"),
            Driver("x1", LAG_X1, 0.8, f"interaction with x2@{LAG_X2}"),
        ],
        noise_std=noise_std,
        distractors=["x3"],
    )
    return frame, truth


ANOMALY_KINDS = ("spike", "level_shift", "variance")  # injected in turn by inject_anomalies
ANOMALY_STEPS = {"spike": 1, "level_shift": 6, "variance": 16}  # rows each kind lasts
ANOMALY_SIZE = {"spike": 12.0, "level_shift": 8.0, "variance": 4.0}  # in noise standard deviations (variance: the
# noise's standard deviation is multiplied by this)
ANOMALY_LABELS_KEY = "synthetic"  # the name the injected anomalies are filed under in the labels file


def inject_anomalies(frame: pd.DataFrame, column: str, count: int, rows: tuple[int, int], noise_std: float,
                     seed: int) -> tuple[pd.DataFrame, list[dict]]:
    """Add `count` anomalies to one column inside rows [start, stop): spikes, level shifts and variance changes in
    turn, evenly spaced, each of a random sign; returns a copy of the frame and one record per anomaly (kind, first
    and last timestamp, first and last row, size in the column's units).

    Sizes are multiples of `noise_std` (ANOMALY_SIZE; at least 0.1 of the column's standard deviation is used as the
    unit when the noise is smaller): a spike of 10 noise sd on one row, a level shift of 5 noise sd for 8 rows, and
    the noise's standard deviation multiplied by 4 for 16 rows.
    """
    start, stop = rows
    frame = frame.copy()
    if count <= 0:
        return frame, []
    longest = max(ANOMALY_STEPS.values())
    if stop - start < count * (longest + 1):
        raise DataError(f"data.anomalies: {count} anomalies need at least {count * (longest + 1)} rows of the test "
                        f"span, which has {stop - start}; inject fewer or lengthen data.length")
    rng = np.random.default_rng(seed + 7919)  # its own stream: the series itself does not change
    values = frame[column].to_numpy(dtype=float).copy()
    unit = max(float(noise_std), 0.1 * float(np.std(values)))
    slot = (stop - start) / count
    events = []
    for i in range(count):
        kind = ANOMALY_KINDS[i % len(ANOMALY_KINDS)]
        steps = ANOMALY_STEPS[kind]
        a = start + int(slot * i + (slot - steps) / 2)
        sign = rng.choice([-1.0, 1.0])
        if kind == "spike":
            size = sign * ANOMALY_SIZE[kind] * unit
            values[a] += size
        elif kind == "level_shift":
            size = sign * ANOMALY_SIZE[kind] * unit
            values[a:a + steps] += size
        else:
            size = ANOMALY_SIZE[kind] * unit  # the noise sd inside the span (extra noise of sd unit * sqrt(k^2 - 1))
            values[a:a + steps] += rng.normal(0.0, unit * np.sqrt(ANOMALY_SIZE[kind] ** 2 - 1), steps)
        events.append({"kind": kind, "start": str(frame.index[a]), "end": str(frame.index[a + steps - 1]),
                       "first_row": a, "last_row": a + steps - 1, "size": float(size)})
    frame[column] = values.astype(frame[column].dtype)
    return frame, events


def anomaly_labels(events: list[dict], name: str = ANOMALY_LABELS_KEY) -> dict:
    """Injected anomalies in the labels format of `anomalies.labels`: {name: [[start, end], ...]}."""
    return {name: [[e["start"], e["end"]] for e in events]}
