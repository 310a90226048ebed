"""Conformal calibration of multi-step forecasts around any forecaster (numpy only).

Every method returns quantile forecasts `q` (m windows, horizon, K) at the ascending quantile levels `grid` (K,), which
holds 0.5 and, for each central interval of level L, both ends (1-L)/2 and (1+L)/2; the output is non-decreasing
along K, so every method feeds the same metrics (`lstmkit.probabilistic.interval_metrics`).

Scores (Vovk et al. 2005; Angelopoulos & Bates 2023), computed on calibration windows the model was NOT fitted on:

- `absolute`: |y - point|; the band of level L is point -/+ Q_L (symmetric; column 0.5 is the point forecast).
- `normalized`: |y - point| / spread with a positive spread per window and step (e.g. the MC-dropout standard
  deviation); the band is point -/+ Q_L * spread, so it is wide where the model is unsure.
- `cqr` (conformalised quantile regression, Romano et al. 2019): max(lo_L - y, y - hi_L) for the base's quantiles
  lo_L, hi_L at the ends of level L; the band is [lo_L - Q_L, hi_L + Q_L] (Q_L < 0 narrows an over-wide base).

Q_L is the finite-sample conformal quantile: the ceil((n+1)L)-th smallest of the n calibration scores (+inf when that
exceeds n), so that a new exchangeable window is covered with probability at least L. Per horizon step (default) each
step has its own scores and Q; `joint=True` gives whole-path bands: each calibration window has ONE score, the largest
over the steps of its score divided by a per-step scale (the mean calibration score of that step), and the band of
step h is Q_L times that scale, so that a share L of whole paths lies inside (the per-step scales are estimated on the
same calibration windows: the guarantee then holds up to O(1/n)).

Bands of different levels are computed independently and can cross (CQR, ACI); they are made nested by widening
only (each lower end is the minimum of itself and the lower ends of the narrower levels and the median, each upper end
likewise the maximum), which keeps every interval's coverage guarantee and makes the output non-decreasing along K.

`adaptive` is adaptive conformal inference (ACI, Gibbs & Candes 2021): walking the test windows in time order, the
working miscoverage of each level and step follows the misses, alpha <- alpha + gamma (alpha_nominal - miss), with
DELAYED feedback: the step-h outcome of window t is observed only at window t + h (consecutive origins), so window t's
band uses the misses of windows <= t - h at step h only."""

from __future__ import annotations

import math

import numpy as np

SCORES = ("absolute", "normalized", "cqr")
TINY = 1e-12  # floor of spreads and per-step scales (a zero spread would make a normalised score infinite)


def conformal_quantile(scores: np.ndarray, level: float, axis: int = 0) -> float | np.ndarray:
    """Finite-sample conformal quantile of n scores along `axis`: the ceil((n+1)L)-th smallest, +inf when that exceeds n.

    scores: (n,) or (n, ...) array; returns a float for 1-D scores, else an array without `axis` (k is at least 1, so
    level 0 gives the smallest score).
    """
    s = np.asarray(scores, dtype=float)
    if not 0 <= level < 1:
        raise ValueError(f"conformal_quantile: level must be in [0, 1), got {level}")
    if s.shape[axis] == 0:
        raise ValueError("conformal_quantile: no calibration scores")
    if np.isnan(s).any():
        raise ValueError("conformal_quantile: the calibration scores hold NaN")
    n = s.shape[axis]
    k = max(math.ceil((n + 1) * level - 1e-9), 1)  # tolerance: (n+1)L computed in floats may land just above an integer
    if k > n:
        out = np.full(np.delete(s.shape, axis), np.inf)
    else:
        out = np.take(np.partition(s, k - 1, axis=axis), k - 1, axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def _grid_levels(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Central levels L (nL,) of an ascending grid, the level index of each grid column (-1 for 0.5) and 0.5's column."""
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or len(grid) == 0 or np.any(np.diff(grid) <= 0) or grid[0] <= 0 or grid[-1] >= 1:
        raise ValueError(f"grid must hold strictly ascending quantile levels in (0, 1), got {grid.tolist()}")
    centre = np.flatnonzero(np.isclose(grid, 0.5, atol=1e-9))
    if len(centre) != 1:
        raise ValueError(f"grid must hold the median 0.5 (the point forecast), got {grid.tolist()}")
    widths = np.round(np.abs(2 * grid - 1), 9)
    levels = np.unique(widths[widths > 0])
    index = np.where(widths > 0, np.searchsorted(levels, widths), -1)
    return levels, index, int(centre[0])


def _as2d(name: str, a: np.ndarray | None, shape: tuple | None = None) -> np.ndarray:
    """An (n, horizon) float array, checked finite and, when given, of the expected shape."""
    if a is None:
        raise ValueError(f"{name} is required by this score")
    a = np.asarray(a, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"{name} must be (windows, horizon), got shape {a.shape}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


def nest(q: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Quantiles (m, h, K) made non-decreasing along K by widening only: outward running min/max from the median."""
    _, _, c = _grid_levels(grid)
    out = np.array(q, dtype=float)
    out[..., : c + 1] = np.minimum.accumulate(out[..., c::-1], axis=-1)[..., ::-1]
    out[..., c:] = np.maximum.accumulate(out[..., c:], axis=-1)
    return out


def sample_quantiles(samples: np.ndarray, grid: list | np.ndarray) -> np.ndarray:
    """Quantile forecasts (n, h, K) at the grid levels from sample forecasts (n, S, h) (numpy's linear interpolation)."""
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 3:
        raise ValueError(f"samples must be (windows, samples, horizon), got shape {samples.shape}")
    return np.moveaxis(np.quantile(samples, np.asarray(grid, dtype=float), axis=1), 0, -1)


class SplitConformal:
    """Split conformal bands per horizon step (or whole-path with `joint`), as quantile forecasts on a grid.

    grid: ascending quantile levels (K,) holding 0.5 and both ends of each central level; score: `absolute`,
    `normalized` (needs `spread`) or `cqr` (needs `quantiles` (n, h, K) at the same grid). After `fit`: `levels_`
    (nL,) the central levels, `q_` (h, nL) the conformal quantile of each step and level (scaled by the per-step
    scale when joint), `scale_` (h, nL) the per-step scales (ones unless joint), `n_` the calibration windows.
    """

    def __init__(self, grid: list | np.ndarray, score: str = "absolute", joint: bool = False):
        """Set the grid, the score and per-step or joint bands."""
        if score not in SCORES:
            raise ValueError(f"SplitConformal: score must be one of {SCORES}, got {score!r}")
        self.grid = np.asarray(grid, dtype=float)
        self.levels_, self._index, self._centre = _grid_levels(self.grid)
        if score == "cqr":
            for lv in self.levels_:
                sides = {round(float(t), 9) for t in self.grid[np.isclose(np.abs(2 * self.grid - 1), lv, atol=1e-9)]}
                if len(sides) != 2:
                    raise ValueError(f"SplitConformal(cqr): level {lv} needs both quantiles {(1 - lv) / 2:g} and "
                                     f"{(1 + lv) / 2:g} in the grid {self.grid.tolist()}")
        self.score, self.joint = score, bool(joint)

    def _check_quantiles(self, quantiles: np.ndarray | None, shape: tuple | None) -> np.ndarray:
        """The base quantiles (n, h, K) of CQR, checked against the grid."""
        if quantiles is None:
            raise ValueError("SplitConformal(cqr): quantiles (windows, horizon, K) are required")
        q = np.asarray(quantiles, dtype=float)
        if q.ndim != 3 or q.shape[-1] != len(self.grid) or (shape is not None and q.shape[:2] != tuple(shape)):
            raise ValueError(f"SplitConformal(cqr): quantiles must be (windows, horizon, {len(self.grid)}) "
                             f"matching the grid{'' if shape is None else f' and y {tuple(shape)}'}, got {q.shape}")
        if not np.isfinite(q).all():
            raise ValueError("SplitConformal(cqr): quantiles hold NaN or infinite values")
        return q

    def _ends(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper base quantiles (n, h, nL) of each central level from the grid columns of q (n, h, K)."""
        lower = np.stack([q[..., np.flatnonzero((self._index == i) & (self.grid < 0.5))[0]]
                          for i in range(len(self.levels_))], axis=-1)
        upper = np.stack([q[..., np.flatnonzero((self._index == i) & (self.grid > 0.5))[0]]
                          for i in range(len(self.levels_))], axis=-1)
        return lower, upper

    def scores(self, y: np.ndarray, point: np.ndarray | None = None, spread: np.ndarray | None = None,
               quantiles: np.ndarray | None = None) -> np.ndarray:
        """Conformity scores (n, h, S) of windows: S = 1 for absolute/normalized (shared by the levels), nL for cqr."""
        y = _as2d("y", y)
        if self.score == "cqr":
            lower, upper = self._ends(self._check_quantiles(quantiles, y.shape))
            return np.maximum(lower - y[..., None], y[..., None] - upper)
        r = np.abs(y - _as2d("point", point, y.shape))
        if self.score == "normalized":
            s = _as2d("spread", spread, y.shape)
            if (s < 0).any():
                raise ValueError("SplitConformal(normalized): spread holds negative values")
            r = r / np.maximum(s, TINY)
        return r[..., None]

    def _standardise(self, scores: np.ndarray) -> np.ndarray:
        """Joint scores (n, nL): per window the largest over steps of score / per-step scale."""
        return (scores / self.scale_[None, :, : scores.shape[-1]]).max(axis=1) * np.ones(len(self.levels_))

    def fit(self, y: np.ndarray, point: np.ndarray | None = None, spread: np.ndarray | None = None,
            quantiles: np.ndarray | None = None) -> SplitConformal:
        """Calibrate on windows the model was not fitted on: y, point, spread (n, h); quantiles (n, h, K)."""
        s = self.scores(y, point, spread, quantiles)
        n, h, _ = s.shape
        self.n_, self.horizon_ = n, h
        self.cal_scores_ = s
        nl = len(self.levels_)
        if self.joint:
            self.scale_ = np.maximum(np.abs(s).mean(axis=0), TINY) * np.ones((h, nl))
            joint = self._standardise(s)
            self.joint_q_ = np.array([conformal_quantile(joint[:, i], lv) for i, lv in enumerate(self.levels_)])
            self.q_ = self.joint_q_[None, :] * self.scale_
        else:
            self.scale_ = np.ones((h, nl))
            self.q_ = np.stack([conformal_quantile(s[:, :, min(i, s.shape[-1] - 1)], lv, axis=0)
                                for i, lv in enumerate(self.levels_)], axis=-1)
        return self

    def bands(self, q_levels: np.ndarray, point: np.ndarray | None = None, spread: np.ndarray | None = None,
              quantiles: np.ndarray | None = None) -> np.ndarray:
        """Quantile forecasts (m, h, K) from conformal quantiles q_levels ((h, nL) or (m, h, nL)), nested along K."""
        if not hasattr(self, "q_"):
            raise ValueError("SplitConformal: call fit(...) on calibration windows before predict(...)")
        if self.score == "cqr":
            base = self._check_quantiles(quantiles, None)
            m = base.shape[0]
            lower, upper = self._ends(base)
            centre = base[..., self._centre]
            s = np.ones(base.shape[:2])
        else:
            centre = _as2d("point", point)
            m = len(centre)
            lower = upper = centre[..., None]
            s = _as2d("spread", spread, centre.shape) if self.score == "normalized" else np.ones(centre.shape)
            s = np.maximum(s, TINY)
        if centre.shape[1] != self.horizon_:
            raise ValueError(f"SplitConformal: forecasts of horizon {centre.shape[1]}, calibrated on {self.horizon_}")
        ql = np.broadcast_to(q_levels, (m, self.horizon_, len(self.levels_)))
        lo = lower - ql * s[..., None]
        hi = upper + ql * s[..., None]
        out = np.empty((m, self.horizon_, len(self.grid)))
        for k, t in enumerate(self.grid):
            i = self._index[k]
            out[..., k] = centre if i < 0 else (lo[..., i] if t < 0.5 else hi[..., i])
        return nest(out, self.grid)

    def predict(self, point: np.ndarray | None = None, spread: np.ndarray | None = None,
                quantiles: np.ndarray | None = None) -> np.ndarray:
        """Calibrated quantile forecasts (m, h, K) of new windows: point/spread (m, h) or base quantiles (m, h, K)."""
        if not hasattr(self, "q_"):
            raise ValueError("SplitConformal: call fit(...) on calibration windows before predict(...)")
        return self.bands(self.q_, point, spread, quantiles)


class _RankedSets:
    """Growing/shrinking multisets of scores, one per row, drawn from values known in advance (R rows x N values).

    Each row is a Fenwick tree of counts over the ranks of its N values, so that adding or removing a value and finding
    the k-th smallest take O(log N) vectorised numpy steps across all rows at once.
    """

    def __init__(self, values: np.ndarray, present: np.ndarray):
        """values (R, N) every score a row may ever hold; present (N,) bool: the values held at the start."""
        self.R, self.N = values.shape
        order = np.argsort(values, axis=1, kind="stable")
        self.sorted = np.take_along_axis(values, order, axis=1)
        self.rank = np.empty_like(order)
        np.put_along_axis(self.rank, order, np.broadcast_to(np.arange(self.N), values.shape), axis=1)
        self.tree = np.zeros((self.R, self.N + 1), dtype=np.int64)
        rows = np.repeat(np.arange(self.R), int(present.sum()))
        self.tree[rows, self.rank[:, present].ravel() + 1] = 1
        for i in range(1, self.N + 1):  # linear-time Fenwick construction from the counts
            parent = i + (i & -i)
            if parent <= self.N:
                self.tree[:, parent] += self.tree[:, i]
        self.count = np.full(self.R, int(present.sum()), dtype=np.int64)
        self.top = 1 << max(self.N.bit_length() - 1, 0)

    def add(self, rows: np.ndarray, index: np.ndarray, delta: int) -> None:
        """Add (delta 1) or remove (-1) the value number `index` of each of the distinct `rows`."""
        self.count[rows] += delta
        i = self.rank[rows, index] + 1
        while len(rows):
            self.tree[rows, i] += delta
            i = i + (i & -i)
            keep = i <= self.N
            rows, i = rows[keep], i[keep]

    def kth(self, rows: np.ndarray, k: np.ndarray) -> np.ndarray:
        """The k-th smallest (1-based, 1 <= k <= count) value held by each row (rows may repeat)."""
        pos = np.zeros(len(rows), dtype=np.int64)
        k = np.asarray(k, dtype=np.int64).copy()
        step = self.top
        while step:
            nxt = pos + step
            ok = nxt <= self.N
            t = np.where(ok, self.tree[rows, np.minimum(nxt, self.N)], 0)
            go = ok & (t < k)
            pos, k = np.where(go, nxt, pos), np.where(go, k - t, k)
            step >>= 1
        return self.sorted[rows, pos]


def adaptive(conformal: SplitConformal, y: np.ndarray, point: np.ndarray | None = None,
             spread: np.ndarray | None = None, quantiles: np.ndarray | None = None, *, gamma: float = 0.005,
             window: int | None = None, refresh: bool = True, infinite: bool = False, stride: int = 1,
             return_alpha: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Adaptive conformal inference (Gibbs & Candes 2021) over the test windows in time order, with delayed feedback.

    conformal: a SplitConformal fitted on calibration windows (its score, grid and per-step/joint choice are used);
    y, point, spread (m, h) and quantiles (m, h, K) of the m test windows, consecutive origins `stride` rows apart.
    Window t's band uses only outcomes observed by its origin: the step-h outcome of window t' is revealed at window
    t' + ceil(h / stride) (joint: the whole path at t' + ceil(horizon / stride)). For each step and level the working
    miscoverage starts at 1 - L and moves by gamma (1 - L - miss) per revealed outcome, a miss being the outcome outside
    that level's band before nesting (nesting only widens, so the issued bands cover at least as often). Each band is the
    conformal quantile at 1 - alpha of the score set: the calibration scores plus, with `refresh`, every test score
    already revealed (`window`: only the latest that many). A level beyond the set (alpha < 1/(n+1)) gives Gibbs &
    Candes' infinite band with `infinite`; by default it takes the set's largest score, so that bands (and widths,
    CRPS) stay finite: with `refresh` the set soon holds the new regime's scores, but with fixed calibration scores
    (refresh=False) a shift beyond the largest of them then caps the coverage. Returns quantiles (m, h, K) and, with
    `return_alpha`, the working miscoverage used by each window, (m, h, nL) (joint: (m, 1, nL)).
    """
    if not hasattr(conformal, "q_"):
        raise ValueError("adaptive: the SplitConformal must be fitted on calibration windows first")
    if not gamma > 0:
        raise ValueError(f"adaptive: gamma must be positive, got {gamma}")
    if stride < 1 or (window is not None and window < 1):
        raise ValueError(f"adaptive: stride and window must be positive, got {stride} and {window}")
    test = conformal.scores(y, point, spread, quantiles)  # (m, h, S)
    m, h, ns = test.shape
    if h != conformal.horizon_:
        raise ValueError(f"adaptive: test windows of horizon {h}, calibrated on {conformal.horizon_}")
    levels = conformal.levels_
    nl = len(levels)
    cal = conformal.cal_scores_
    if conformal.joint:
        test, cal = conformal._standardise(test)[:, None, :], conformal._standardise(cal)[:, None, :]
        ns, steps, delays = nl, 1, np.array([math.ceil(h / stride)])
    else:
        steps, delays = h, np.array([math.ceil((j + 1) / stride) for j in range(h)])
    n = len(cal)
    # one multiset per (step, score column): its calibration scores then the test scores in the order revealed
    values = np.concatenate([cal, test], axis=0).transpose(1, 2, 0).reshape(steps * ns, n + m)
    present = np.zeros(n + m, dtype=bool)
    oldest = max(n - window, 0) if window else 0
    present[oldest:n] = True
    sets = _RankedSets(values, present)
    first = np.full(steps * ns, oldest)  # the oldest value still held by each row (rolling window)
    column = np.minimum(np.arange(nl), ns - 1)  # score column of each level
    rows_of = (np.arange(steps)[:, None] * ns + column[None, :]).ravel()  # multiset of each (step, level)
    target = 1 - levels
    alpha = np.tile(target, (steps, 1))
    alphas = np.empty((m, steps, nl))
    qs = np.empty((m, steps, nl))
    step_index = np.arange(steps)
    for t in range(m):
        r = t - delays  # the window whose outcome at each step is revealed now
        seen = r >= 0
        if seen.any():
            j, rr = step_index[seen], r[seen]
            miss = test[rr[:, None], j[:, None], column[None, :]] > qs[rr, j]
            alpha[j] += gamma * (target - miss)
            if refresh:
                rows = (j[:, None] * ns + np.arange(ns)[None, :]).ravel()
                sets.add(rows, np.repeat(n + rr, ns), 1)
                if window:
                    over = rows[sets.count[rows] > window]
                    sets.add(over, first[over], -1)
                    first[over] += 1
        alphas[t] = alpha
        count = sets.count[rows_of]
        k = np.ceil((count + 1) * (1 - alpha.ravel()) - 1e-9).astype(np.int64)
        beyond = k > count
        value = sets.kth(rows_of, np.clip(k, 1, count))
        qs[t] = np.where(beyond & infinite, np.inf, value).reshape(steps, nl)
    q_levels = qs * conformal.scale_[None] if conformal.joint else qs
    out = conformal.bands(q_levels, point, spread, quantiles)
    return (out, alphas) if return_alpha else out
