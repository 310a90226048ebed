"""Retraining and the model registry (issue 13, part 4): a better challenger is promoted and served (also after a
restart), a worse one rejected, rollback walks back one version and then refuses, the every-N and drift triggers fire
exactly when they should, a job killed half-way leaves the champion serving and no half-written bundle, and readers of
`current()` never fail while versions are swapped."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lstmkit.config import ServeConfig
from lstmkit.core.errors import JobFailed, RegistryError, RetrainBusy
from lstmkit.service.job import run_job
from lstmkit.service.registry import Registry
from lstmkit.service.retrain import TRAINING_STARTED, Retrainer, log_path
from lstmkit.service.storage import Storage

SERIES = "plant-1"
HISTORY = 900  # hourly rows stored for the series: the tiny bundle's 600 and 300 more of the same process
GOOD = {"training.epochs": 30, "training.patience": 30, "model.learning_rate": 0.01}  # a well-trained challenger
BAD = {"training.epochs": 1, "model.learning_rate": 1e-9}  # a challenger that cannot learn anything


def history(rows: int = HISTORY):
    """The tiny bundle's synthetic process (seed 7) over `rows` hourly rows."""
    from lstmkit.data.synthetic import make_synthetic

    frame, _ = make_synthetic(length=max(rows, 200), seed=7)
    return frame.iloc[:rows]


def store(storage: Storage, frame, series: str = SERIES) -> None:
    """Append a frame's rows to a series."""
    storage.append(series, frame.index, {c: frame[c].to_numpy() for c in frame.columns}, "h")


def finished(storage: Storage, job_id: str) -> dict:
    """The job's record, checked to have ended."""
    job = storage.job(job_id)
    assert job["status"] in ("succeeded", "failed"), job
    return job


def bundle_folders(state: Path) -> list[str]:
    """Names of everything in the model store."""
    return sorted(p.name for p in (state / "models").iterdir())


@pytest.fixture
def service(tmp_path, db_url, tiny_bundle):
    """(state, storage, registry, retrainer) over an empty database with the tiny bundle as initial champion."""
    state = tmp_path / "state"
    storage = Storage(db_url)
    registry = Registry(state, storage, tiny_bundle)
    retrainer = Retrainer(registry, storage, ServeConfig(), db_url)
    yield state, storage, registry, retrainer
    retrainer.close()


def cheap(retrainer: Retrainer) -> None:
    """Make the retrainer's jobs a process that exits at once (trigger tests need the bookkeeping, not a model)."""
    retrainer.job_command = lambda job_id, series_id: [sys.executable, "-c", "pass"]


def test_promote_reject_restart_and_rollback(service, db_url, tiny_bundle):
    """A better challenger is promoted and served (and after a restart); a worse one is rejected; rollback restores
    the previous version and then has nothing further to roll back to."""
    state, storage, registry, retrainer = service
    v0 = registry.current().version
    store(storage, history())

    job = retrainer.submit(SERIES, "on request", overrides=GOOD)
    with pytest.raises(RetrainBusy, match="one retrain runs at a time"):
        retrainer.submit(SERIES, "again")
    assert retrainer.wait(300)
    record = finished(storage, job)
    assert record["status"] == "succeeded", (record, log_path(state, job).read_text()[-2000:])
    result = record["detail"]["result"]
    assert result["decision"] == "promoted"
    assert result["challenger_mse"] < result["champion_mse"]
    assert set(result["scores"]) == {"champion", "challenger", "seasonal_naive"}
    v1 = result["version"]
    assert registry.current().version == v1 != v0
    assert storage.champion()["version"] == v1
    assert {m["version"]: m["parent"] for m in registry.versions()}[v1] == v0
    assert registry.current().cutoff == history().index[result["training_rows"] - 1]  # fitted on training rows
    assert result["training_rows"] + result["validation_rows"] + result["holdout_rows"] == HISTORY
    assert registry.current().calibration["source"] == "retrain-holdout"
    assert log_path(state, job).is_file() and TRAINING_STARTED in log_path(state, job).read_text()
    assert bundle_folders(state) == sorted([v0, v1])

    job = retrainer.submit(SERIES, "on request", overrides=BAD)
    assert retrainer.wait(300)
    record = finished(storage, job)
    assert record["status"] == "succeeded", record
    result = record["detail"]["result"]
    assert result["decision"] == "rejected" and result["challenger_mse"] > result["champion_mse"]
    assert registry.current().version == v1 and storage.champion()["version"] == v1
    assert {m["version"]: m["status"] for m in storage.models()}[result["version"]] == "rejected"
    assert bundle_folders(state) == sorted([v0, v1])  # a rejected challenger is recorded, not kept

    restarted = Registry(state, Storage(db_url), tiny_bundle)
    assert restarted.current().version == v1

    assert registry.rollback().version == v0
    assert registry.current().version == v0 and storage.champion()["version"] == v0
    with pytest.raises(RegistryError, match="no previous version"):
        registry.rollback()
    assert registry.current().version == v0


def test_too_little_history_fails_with_the_rows_needed(service):
    """A job on a short history fails saying how many rows it needs; through the service the job is marked failed
    with that message and the champion stays."""
    state, storage, registry, retrainer = service
    store(storage, history(50))
    champion = registry.current().version
    job_id = storage.create_job("retrain", {"series": SERIES, "reason": "test", "champion": champion})
    with pytest.raises(JobFailed, match=r"holds 50 stored rows; a retrain needs at least \d+"):
        run_job(state, storage, job_id, SERIES)
    job = retrainer.submit(SERIES, "on request")
    assert retrainer.wait(120)
    record = finished(storage, job)
    assert record["status"] == "failed" and "holds 50 stored rows; a retrain needs at least" in record["error"]
    assert registry.current().version == champion and storage.champion()["version"] == champion


def test_every_n_trigger_fires_exactly_at_n(service):
    """With serve.retrain_every = 5, appends one at a time start a job at the 5th new observation, not before, and
    the count starts again after it."""
    state, storage, registry, retrainer = service
    cheap(retrainer)
    retrainer.settings = retrainer.settings.model_copy(update={"retrain_every": 5})
    frame = history(40)
    store(storage, frame.iloc[:20])
    storage.reset_counter(SERIES)
    fired = []
    for i in range(20, 30):
        store(storage, frame.iloc[i:i + 1])
        job = retrainer.observed(SERIES, 1)
        if job is not None:
            fired.append(i - 19)
            assert retrainer.wait(60)
            assert storage.job(job)["detail"]["reason"] == "every 5 observations"
    assert fired == [5, 10]


def test_drift_trigger_fires_when_errors_leave_the_band(service):
    """The drift trigger stays quiet while the serving model's rolling step-1 error is inside the band and fires at
    the first scored forecast that takes it above; then it rests (cooldown of metrics_window observations)."""
    state, storage, registry, retrainer = service
    cheap(retrainer)
    window = 8
    retrainer.settings = retrainer.settings.model_copy(update={"drift": True, "metrics_window": window, "drift_level": 0.99})
    bundle = registry.current()
    band = bundle.drift_band(window, 0.99)
    frame = history(120)
    store(storage, frame.iloc[:40])
    y = frame["target"].to_numpy()

    def scored_step(i: int, error: float) -> str | None:
        """Issue a forecast from row i-1 whose step-1 error is `error`, observe row i, and check for drift."""
        idx = frame.index[i:i + bundle.horizon]
        mean = y[i:i + bundle.horizon] + error
        storage.add_forecast(SERIES, bundle.version, frame.index[i - 1], idx, mean, {}, {})
        store(storage, frame.iloc[i:i + 1])
        return retrainer.check_drift(SERIES)

    small, big = 0.5 * band, 3.0 * band
    errors = [small] * (window + 4) + [big] * window
    expected = next(k for k in range(len(errors)) if k >= window - 1
                    and np.mean(errors[k - window + 1:k + 1]) > band)
    fired = []
    for k, e in enumerate(errors):
        job = scored_step(40 + k, e)
        if job is not None:
            fired.append(k)
            assert retrainer.wait(60)
            assert storage.job(job)["detail"]["reason"].startswith("drift")
    assert fired == [expected]
    assert retrainer.rolling_error(SERIES) > band  # still above the band: the cooldown kept it to one job


def test_killed_job_leaves_champion_and_no_half_written_bundle(service, db_url, tiny_bundle):
    """SIGKILL of the job process while it trains: the job is failed with the reason, the champion keeps serving,
    and after the next start the model store holds no .tmp-* folder and only bundles that load."""
    from lstmkit.bundle.runtime import load_bundle

    state, storage, registry, retrainer = service
    v0 = registry.current().version
    store(storage, history())
    job = retrainer.submit(SERIES, "on request", overrides={"training.epochs": 500, "training.patience": 500})
    log, checkpoint = log_path(state, job), state / "models" / f".tmp-{job}" / "checkpoint.keras"
    deadline = time.monotonic() + 240
    while TRAINING_STARTED not in (log.read_text() if log.exists() else "") or not checkpoint.exists():
        assert time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
        assert retrainer.running() == job, log.read_text()
        time.sleep(0.2)
    # half-way: training has written a checkpoint into the job's work folder (models/.tmp-<job>)
    os.kill(retrainer.process().pid, signal.SIGKILL)
    assert retrainer.wait(60)
    record = finished(storage, job)
    assert record["status"] == "failed" and "SIGKILL" in record["error"], record
    assert registry.current().version == v0 and storage.champion()["version"] == v0

    leftover = state / "models" / ".tmp-copy-killed"  # as a copy killed while writing would leave it
    (leftover / "model").mkdir(parents=True)
    (leftover / "model" / "model.keras").write_bytes(b"half")
    restarted = Registry(state, Storage(db_url), tiny_bundle)
    assert restarted.current().version == v0
    assert bundle_folders(state) == [v0]
    for name in bundle_folders(state):
        assert load_bundle(state / "models" / name).version == name


def test_recover_marks_interrupted_jobs_failed(service):
    """Jobs a killed service left queued or running are marked failed (interrupted) on start."""
    state, storage, registry, retrainer = service
    running = storage.create_job("retrain", {"series": SERIES})
    storage.update_job(running, status="running")
    queued = storage.create_job("retrain", {"series": SERIES})
    retrainer.recover()
    for job in (running, queued):
        record = storage.job(job)
        assert record["status"] == "failed" and record["error"].startswith("interrupted"), record


def second_version(state: Path, tiny_bundle: Path, tiny_series) -> str:
    """Put a second version (the tiny model with other metrics) into the model store; returns its version."""
    from lstmkit.bundle.format import write_bundle
    from lstmkit.bundle.runtime import load_bundle
    from lstmkit.data.windows import prepare

    bundle = load_bundle(tiny_bundle)
    prepared = prepare(tiny_series, bundle.config)
    tmp = state / "models" / ".tmp-second"
    write_bundle(tmp, bundle.forecaster, prepared.scaler, prepared.target_scaler, bundle.columns, bundle.target,
                 bundle.freq, bundle.cutoff, bundle.config, {"source": "val"}, bundle.abs_errors, {"note": "second"})
    version = load_bundle(tmp).version
    tmp.rename(state / "models" / version)
    return version


def test_concurrent_readers_never_fail_during_swaps(tmp_path, tiny_bundle, tiny_series):
    """Readers forecasting through `current()` while versions are promoted and rolled back never see an error; a
    bundle folder that fails verification is never served (SQLite only: the swap, not the database, is tested)."""
    state, storage = tmp_path / "state", Storage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    registry = Registry(state, storage, tiny_bundle)
    v0 = registry.current().version
    v1 = second_version(state, tiny_bundle, tiny_series)
    window = tiny_series[registry.current().columns].to_numpy()[-registry.current().lookback:][None]
    errors, seen, stop = [], set(), threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                bundle = registry.current()
                mean, lower, upper = bundle.forecast_arrays(window)
                assert mean.shape == (1, bundle.horizon) and np.isfinite(mean).all()
                seen.add(bundle.version)
                time.sleep(0.002)  # leave the swapping thread some of the two cores
            except Exception as e:  # noqa: BLE001 - any failure is the test's finding
                errors.append(repr(e))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(1):  # each swap loads and warms up a bundle (seconds on a busy machine)
            assert registry.promote(v1).version == v1
            time.sleep(0.05)
            assert registry.rollback().version == v0
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert seen == {v0, v1}

    broken = state / "models" / v1
    (broken / "metrics.json").write_text("{}")  # a file changed after the bundle was written
    with pytest.raises(RegistryError, match="cannot be served"):
        registry.promote(v1)
    assert registry.current().version == v0 and storage.champion()["version"] == v0
    shutil.rmtree(broken)


def test_a_newly_exported_bundle_replaces_the_champion(tmp_path, tiny_bundle, tiny_series):
    """Restarting with a bundle the service has never seen serves it (rollback returns to the old champion);
    restarting with a known bundle keeps the stored champion."""
    state, url = tmp_path / "state", f"sqlite:///{tmp_path / 'db.sqlite'}"
    v0 = Registry(state, Storage(url), tiny_bundle).current().version
    v1 = second_version(state, tiny_bundle, tiny_series)
    exported = shutil.copytree(state / "models" / v1, tmp_path / "exported")
    shutil.rmtree(state / "models" / v1)
    registry = Registry(state, Storage(url), exported)
    assert registry.current().version == v1
    assert registry.rollback().version == v0
    assert Registry(state, Storage(url), exported).current().version == v0  # known: the stored champion stays


SERVICE = """
import sys, time
from lstmkit.config import ServeConfig
from lstmkit.service.registry import Registry
from lstmkit.service.retrain import Retrainer
from lstmkit.service.storage import Storage
state, url, bundle = sys.argv[1:4]
storage = Storage(url)
retrainer = Retrainer(Registry(state, storage, bundle), storage, ServeConfig(), url)
job = retrainer.submit("plant-1", "test", overrides={"training.epochs": 500, "training.patience": 500})
print(job, retrainer.process().pid, flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    """Whether a process has ended (a zombie counts as ended)."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the job dies with its service through Linux prctl")
def test_a_killed_service_takes_its_job_along(tmp_path, tiny_bundle):
    """kill -9 of the service while a job trains: the job process dies too, and the next start marks the job failed
    (interrupted), removes its work folder and serves the champion."""
    import subprocess

    state, url = tmp_path / "state", f"sqlite:///{tmp_path / 'db.sqlite'}"
    storage = Storage(url)
    store(storage, history())
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    service = subprocess.Popen([sys.executable, str(script), str(state), url, str(tiny_bundle)],
                               stdout=subprocess.PIPE, text=True)
    try:
        job, pid = service.stdout.readline().split()
        log, deadline = log_path(state, job), time.monotonic() + 240
        while TRAINING_STARTED not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline and service.poll() is None
            time.sleep(0.2)
    finally:
        service.kill()
        service.wait()
    deadline = time.monotonic() + 30
    while not gone(int(pid)):
        assert time.monotonic() < deadline, "the job process outlived its service"
        time.sleep(0.1)
    registry = Registry(state, storage, tiny_bundle)
    Retrainer(registry, storage, ServeConfig(), url).recover()
    record = storage.job(job)
    assert record["status"] == "failed" and record["error"].startswith("interrupted"), record
    assert not list((state / "models").glob(".tmp-*"))
    assert registry.current().version == storage.champion()["version"]
