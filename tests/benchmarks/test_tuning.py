"""benchmarks/tuning.py --compare-strategies: the budget cut, best-so-far curves and per-epoch timing hook."""

from __future__ import annotations

import math
import time

from tests.conftest import BENCHMARKS, load_benchmark

SCRIPT = BENCHMARKS / "tuning.py"


def test_best_within_budget_and_curves():
    """The best loss counts only epochs inside the budget and is dated by its first arrival; the curve never rises."""
    bench = load_benchmark("tuning")
    curve = bench.Curve("random", wall=9.0, budget=5.0,
                        points=[(1.0, 0.5), (2.0, math.nan), (3.0, 0.3), (4.0, 0.3), (6.0, 0.1)])
    assert curve.best == (0.3, 3.0)
    assert len(curve.within()) == 3
    table = bench.best_so_far([curve])
    assert list(table["seconds"]) == [1.0, 2.0, 3.0, 4.0, 6.0]
    assert list(table["best_so_far"]) == [0.5, 0.5, 0.3, 0.3, 0.1]
    assert math.isnan(bench.Curve("pbt", 1.0, 5.0).best[0])


def test_epoch_clock_times_every_epoch_and_restores(monkeypatch):
    """epoch_clock records each epoch reported through train_trial, still calls the strategy's own hook (Optuna's
    pruning), and puts lstmkit.tuning.objective.train_trial back."""
    from lstmkit.tuning import objective as tuners

    bench = load_benchmark("tuning")
    seen = []

    def fake(values, prepared, cfg, epochs, report=None):
        for step, loss in enumerate((0.4, 0.2)):
            report(step, loss)
        return "result"

    monkeypatch.setattr(tuners, "train_trial", fake)
    points = []
    with bench.epoch_clock(points, time.perf_counter()):
        assert tuners.train_trial({}, None, None, 2, report=lambda s, v: seen.append((s, v))) == "result"
        assert tuners.train_trial({}, None, None, 2) == "result"
    assert tuners.train_trial is fake
    assert [v for _, v in points] == [0.4, 0.2, 0.4, 0.2]
    assert all(t >= 0 for t, _ in points) and points == sorted(points, key=lambda p: p[0])
    assert seen == [(0, 0.4), (1, 0.2)]
