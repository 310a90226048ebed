"""Deployment stage: the replay against a real `lstmkit serve` subprocess, its scoring, policies and resume."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmkit.config import from_dict
from lstmkit.core import errors
from lstmkit.data.series import save_series
from lstmkit.data.splits import split_bounds
from lstmkit.runs.folder import RunFolder
from lstmkit.stages import deployment

STEPS, EVERY = 10, 5  # replayed observations; the periodic policy retrains after observation 5 (and 10, the last)
POISON = 1e6          # the values of every row after the replayed span: a forecast that read one would show it


def tiny_run(root: Path, series: pd.DataFrame, bundle: Path, **deployment_settings) -> tuple[RunFolder, object]:
    """A run folder holding the series (data stage's file) and the tiny bundle (as the stage would have exported it)."""
    from tests.conftest import tiny_config

    cfg = from_dict(tiny_config().to_dict(), {f"deployment.{k}": v for k, v in deployment_settings.items()})
    run = RunFolder(root)
    run.root.mkdir(parents=True, exist_ok=True)
    cfg.save(run.config_file)
    save_series(series, run.series_file)
    shutil.copytree(bundle, run.bundle_dir)
    return run, cfg


def poisoned(series: pd.DataFrame, end: int) -> pd.DataFrame:
    """The series with every value of the rows from `end` on replaced by POISON."""
    out = series.copy()
    out.iloc[end:] = POISON
    return out


class LongReplays:
    """The `time` module as the deployment stage sees it, except that each policy's replay appears to take longer
    than a service's start-up timeout (as replaying a test span of thousands of steps does on a real profile)."""

    def __init__(self):
        """Real time, with no jump yet."""
        self.offset, self.jumps = 0.0, 0

    def monotonic(self) -> float:
        """Real monotonic seconds plus the jumps so far."""
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        """Real sleep."""
        time.sleep(seconds)

    def perf_counter(self) -> float:
        """Real performance counter (latencies stay real)."""
        return time.perf_counter()

    def after_replay(self, replay):
        """`replay` followed by a jump of twice the start-up timeout."""
        def replay_and_jump(*args, **kwargs):
            out = replay(*args, **kwargs)
            self.offset += 2 * deployment.STARTUP_TIMEOUT_S
            self.jumps += 1
            return out
        return replay_and_jump


@pytest.fixture(scope="module")
def replayed(tmp_path_factory, tiny_series, tiny_bundle):
    """The three policies replayed over STEPS observations of a series poisoned after them, each replay seeming to
    last longer than a service's start-up timeout."""
    start = split_bounds(len(tiny_series), 0.7, 0.15, 0.15).test[0]
    run, cfg = tiny_run(tmp_path_factory.mktemp("deploy") / "run", poisoned(tiny_series, start + STEPS), tiny_bundle,
                        steps=STEPS, retrain_every=EVERY, latency_requests=8)
    clock = LongReplays()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(deployment, "time", clock)
        mp.setattr(deployment, "replay_policy", clock.after_replay(deployment.replay_policy))
        dep = deployment.run_deployment(run, cfg)
    assert clock.jumps == 3
    return run, cfg, dep, start


def test_later_policies_start_although_the_earlier_replays_outlast_the_start_up_timeout(replayed):
    run, cfg, dep, start = replayed  # each replay jumped the clock by twice the timeout (a long test span)
    assert set(dep.replay["policy"]) == {"static", "periodic", "drift"}
    assert all(dep.metrics["policies"][p]["latency_ms"]["n"] == 8 for p in dep.policies)


def test_replay_writes_its_outputs_for_every_policy(replayed):
    run, cfg, dep, start = replayed
    assert run.replay_file.is_file() and run.deployment_metrics_file.is_file()
    assert dep.policies == ["static", "periodic", "drift"]
    horizon = dep.metrics["meta"]["horizon"]
    for policy in dep.policies:
        rows = dep.replay[dep.replay["policy"] == policy]
        assert len(rows) == STEPS * horizon  # a forecast before the first observation and after each but the last
        m = dep.metrics["policies"][policy]
        assert np.isfinite(m["original"]["mae"]) and len(m["original"]["mae_per_step"]) == horizon
        assert m["scaled"]["mae"] == pytest.approx(m["original"]["mae"] / dep.metrics["meta"]["scale"])
        assert m["coverage"] and all(0 <= c <= 1 for c in m["coverage"].values())
        assert m["latency_ms"]["n"] == 8 and m["latency_ms"]["p50"] <= m["latency_ms"]["p99"]
    assert set(dep.metrics["baselines"]) == {"persistence", "seasonal_naive"}
    assert (run.deployment_dir / "static" / "service.log").is_file()


def test_static_never_retrains_and_periodic_retrains_every_k_observations(replayed):
    _, _, dep, _ = replayed
    assert dep.metrics["policies"]["static"]["retrains"] == []
    assert len(set(dep.replay.loc[dep.replay["policy"] == "static", "model_version"])) == 1
    events = dep.metrics["policies"]["periodic"]["retrains"]
    assert [e["observation"] for e in events] == [EVERY, 2 * EVERY]
    first, last = events
    assert first["status"] == "succeeded" and first["decision"] in ("promoted", "rejected"), first
    later = dep.replay[(dep.replay["policy"] == "periodic") & (dep.replay["index"] >= EVERY)]
    assert set(later["model_version"]) == {first["to_version"]}  # the version serving after the job answers the rest
    earlier = dep.replay[(dep.replay["policy"] == "periodic") & (dep.replay["index"] < EVERY)]
    assert set(earlier["model_version"]) == {first["from_version"]}
    assert first["promoted"] == (first["to_version"] != first["from_version"])
    assert last["status"] == "not awaited"  # started by the last observation: nothing is forecast after it


def test_each_forecast_uses_the_observations_up_to_its_origin_only(replayed, tiny_series, tiny_bundle):
    _, _, dep, start = replayed
    from lstmkit.bundle.runtime import load_bundle

    bundle = load_bundle(tiny_bundle)
    static = dep.replay[dep.replay["policy"] == "static"]
    assert static["mean"].abs().max() < POISON / 100  # no forecast read a poisoned row
    assert static["actual"].dropna().abs().max() < POISON / 100  # poisoned rows are never scored either
    for i in (0, 1, STEPS // 2, STEPS - 1):  # forecast i: from the rows before start + i, exactly
        served = static[static["index"] == i].sort_values("step")
        direct = bundle.predict(tiny_series.iloc[:start + i])
        assert pd.Timestamp(served["origin"].iloc[0]) == tiny_series.index[start + i - 1]
        assert list(pd.DatetimeIndex(served["timestamp"])) == list(direct.index)
        np.testing.assert_allclose(served["mean"].to_numpy(), direct["mean"].to_numpy(), rtol=1e-4, atol=1e-4)


def test_baselines_are_scored_at_the_same_origins_from_the_same_observations():
    values = np.arange(100, dtype=float)
    origins = np.array([30, 50])
    f = deployment.baseline_forecasts(values, origins, horizon=3, period=24)
    np.testing.assert_array_equal(f["persistence"], [[30, 30, 30], [50, 50, 50]])
    np.testing.assert_array_equal(f["seasonal_naive"], [[7, 8, 9], [27, 28, 29]])  # one season before each target
    f2 = deployment.baseline_forecasts(values, origins, horizon=3, period=2)  # steps beyond a season repeat it
    np.testing.assert_array_equal(f2["seasonal_naive"], [[29, 30, 29], [49, 50, 49]])


def test_resume_reuses_the_outputs_when_nothing_changed(replayed):
    run, cfg, dep, _ = replayed
    stamp = run.replay_file.stat().st_mtime_ns
    again = deployment.run_deployment(run, cfg)
    assert again.reused and run.replay_file.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again.replay, dep.replay)
    changed = from_dict(cfg.to_dict(), {"deployment.latency_requests": 9})
    version = dep.metrics["meta"]["bundle_version"]
    from lstmkit.data.series import read_series

    frame = read_series(run.series_file)
    assert deployment.replay_key(changed, version, frame) != dep.metrics["meta"]["key"]
    assert deployment.replay_key(cfg, "0" * 12, frame) != dep.metrics["meta"]["key"]
    assert deployment.replay_key(cfg, version, frame) == dep.metrics["meta"]["key"]


def test_a_service_that_cannot_start_fails_with_its_log(tmp_path):
    bogus = tmp_path / "not-a-bundle"
    bogus.mkdir()
    (bogus / "manifest.json").write_text("{}")
    with pytest.raises(errors.DeploymentError, match=r"(?s)exited with status.*log"):
        deployment.Service(bogus, tmp_path / "state", timeout=120).start()


def test_each_policy_sets_its_own_triggers_and_the_runs_other_serve_settings():
    from tests.conftest import tiny_config

    bundle_serve = tiny_config().serve
    run_serve = from_dict(tiny_config().to_dict(), {"serve.retrain_every": 7, "serve.drift_level": 0.9}).serve
    static = deployment.policy_settings("static", 5, run_serve, bundle_serve)
    assert static[:4] == ["--set", "serve.retrain_every=0", "--set", "serve.drift=false"]  # the run's 7 is not a policy
    assert "serve.drift_level=0.9" in static and not any("host" in s or "port" in s for s in static)
    assert deployment.policy_settings("periodic", 5)[:4] == ["--set", "serve.retrain_every=5", "--set", "serve.drift=false"]
    assert deployment.policy_settings("drift", 5)[:4] == ["--set", "serve.retrain_every=0", "--set", "serve.drift=true"]
    with pytest.raises(errors.DeploymentError, match="unknown policy 'nightly'"):
        deployment.policy_settings("nightly", 5)


def test_a_run_whose_model_cannot_be_exported_is_skipped_with_the_reason(tmp_path, tiny_series):
    from tests.conftest import tiny_config

    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    tiny_config().save(run.config_file)
    save_series(tiny_series, run.series_file)  # no trained model: nothing to export
    dep = deployment.run_deployment(run, tiny_config())
    assert dep.skipped and "cannot export" in dep.skipped and dep.bundle is None
    assert not run.replay_file.exists() and not run.deployment_metrics_file.exists()
