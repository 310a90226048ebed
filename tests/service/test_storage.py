"""The service's storage over SQLite and PostgreSQL (fixture `db_url`): append rules, all-or-nothing refusals,
concurrency (threads and processes), issued forecasts scored against later observations, jobs, model versions,
and durability of acknowledged appends across `kill -9`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pandas as pd
import pytest

from lstmkit.core.errors import StorageError
from lstmkit.service.storage import AppendResult, Storage
from tests.paths import REPO

ROOT = REPO
START = pd.Timestamp("2024-01-01")


def frame_values(index: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Deterministic values of each timestamp (a function of the timestamp only): target and x1, shape (n,)."""
    hours = (index - START) / pd.Timedelta("1h")
    return {"target": np.sin(np.asarray(hours, dtype=float) / 7.0) * 10 + 0.1,
            "x1": np.asarray(hours, dtype=float) / 3.0}


def hours(start: int, n: int) -> pd.DatetimeIndex:
    """`n` hourly timestamps from START + `start` hours."""
    return pd.date_range(START + pd.Timedelta(hours=start), periods=n, freq="h")


@pytest.fixture
def store(db_url):
    """A Storage over a fresh database, closed afterwards."""
    storage = Storage(db_url)
    yield storage
    storage.close()


def snapshot(storage: Storage, series_id: str) -> tuple:
    """Everything an append can change for one series (to check that a refused append changed nothing)."""
    return storage.history(series_id).copy(), storage.count(series_id), storage.counter(series_id), storage.series()


def assert_unchanged(storage: Storage, series_id: str, before: tuple) -> None:
    """The series is exactly as in `before`."""
    history, count, counter, series = snapshot(storage, series_id)
    pd.testing.assert_frame_equal(history, before[0])
    assert (count, counter, series) == before[1:]


def test_round_trip_exact_timestamps_and_values(store):
    """Timestamps (to the nanosecond) and float values (float32 and float64) come back exactly."""
    index = pd.date_range("2024-03-05 00:00:00.123456789", periods=40, freq="1500ms")
    rng = np.random.default_rng(0)
    values = {"target": rng.normal(size=40).astype(np.float32), "x1": rng.normal(size=40) * 1e-7 + 1 / 3}
    result = store.append("s1", index[:25], {k: v[:25] for k, v in values.items()}, "1500ms")
    assert result == AppendResult(stored=25, duplicates=0, last=index[24], total=25)
    result = store.append("s1", index[25:], {k: v[25:] for k, v in values.items()}, "1500ms")
    assert result == AppendResult(stored=15, duplicates=0, last=index[-1], total=40)
    history = store.history("s1")
    assert list(history.columns) == ["target", "x1"]
    assert history.index.equals(index) and (history.index.asi8 == index.as_unit("ns").asi8).all()
    np.testing.assert_array_equal(history["target"].to_numpy(), values["target"].astype(np.float64))
    np.testing.assert_array_equal(history["x1"].to_numpy(), values["x1"])
    tail = store.history("s1", last=5)
    assert tail.index.equals(index[-5:])
    assert store.count("s1") == 40 and store.counter("s1") == 40 and store.series() == ["s1"]
    assert store.last("s1") == index[-1]
    store.reset_counter("s1")
    assert store.counter("s1") == 0 and store.count("s1") == 40
    store.append("s1", index[-1:] + pd.Timedelta("1500ms"), {"target": [1.0], "x1": [2.0]}, "1500ms")
    assert store.counter("s1") == 1
    empty = store.history("unknown")
    assert empty.empty and store.count("unknown") == 0 and store.last("unknown") is None


def test_columns_stored_in_series_order_whatever_the_body_order(store):
    """Later bodies may list the columns in another order; values land in the right column."""
    store.append("s", hours(0, 2), {"target": [1.0, 2.0], "x1": [10.0, 20.0]}, "h")
    store.append("s", hours(2, 1), {"x1": [30.0], "target": [3.0]}, "h")
    history = store.history("s")
    assert history["target"].tolist() == [1.0, 2.0, 3.0] and history["x1"].tolist() == [10.0, 20.0, 30.0]


def test_timezone_aware_timestamps_are_stored_in_utc(store):
    """A tz-aware index is converted to UTC and stored naive."""
    index = pd.date_range("2024-01-01 01:00", periods=3, freq="h", tz="Europe/Paris")
    store.append("s", index, {"target": [1.0, 2.0, 3.0]}, "h")
    assert store.history("s").index.equals(pd.date_range("2024-01-01 00:00", periods=3, freq="h"))


def test_reappend_is_idempotent(store):
    """The same batch twice stores nothing new; an overlapping batch stores only its new rows."""
    index = hours(0, 10)
    store.append("s", index, frame_values(index), "h")
    before = snapshot(store, "s")
    result = store.append("s", index, frame_values(index), "h")
    assert result == AppendResult(stored=0, duplicates=10, last=index[-1], total=10)
    assert_unchanged(store, "s", before)
    overlap = hours(6, 8)
    result = store.append("s", overlap, frame_values(overlap), "h")
    assert result == AppendResult(stored=4, duplicates=4, last=overlap[-1], total=14)
    history = store.history("s")
    assert history.index.equals(hours(0, 14))
    np.testing.assert_array_equal(history["target"].to_numpy(), frame_values(hours(0, 14))["target"])


def test_duplicates_compare_at_float32_precision(store):
    """A value equal to the stored one at float32 precision is a duplicate; a larger difference a conflict."""
    store.append("s", hours(0, 1), {"target": [0.1]}, "h")
    assert store.append("s", hours(0, 1), {"target": np.array([0.1], dtype=np.float32)}, "h").duplicates == 1
    with pytest.raises(StorageError) as err:
        store.append("s", hours(0, 1), {"target": [0.1 + 1e-6]}, "h")
    assert err.value.status == 409


def test_conflicting_reappend_is_409_and_stores_nothing(store):
    """A stored timestamp with another value: 409 naming series, timestamp and column; the batch's new rows are
    not stored either."""
    index = hours(0, 10)
    store.append("sensor-7", index, frame_values(index), "h")
    before = snapshot(store, "sensor-7")
    batch = hours(8, 5)
    values = frame_values(batch)
    values["x1"] = values["x1"].copy()
    values["x1"][1] += 0.5  # timestamp 09:00 differs; 10:00.. are new
    with pytest.raises(StorageError) as err:
        store.append("sensor-7", batch, values, "h")
    assert err.value.status == 409
    message = str(err.value)
    assert "sensor-7" in message and "2024-01-01 09:00:00" in message and "x1" in message
    assert_unchanged(store, "sensor-7", before)


def _rejections() -> list:
    """(name, index, values, expected message fragment) of bodies refused with 422 after hours 0..9 are stored."""
    ok = hours(10, 3)
    return [
        ("out of order", hours(-2, 3), frame_values(hours(-2, 3)), "out of order"),
        ("gap", hours(12, 3), frame_values(hours(12, 3)), "2024-01-01 10:00:00"),
        ("off grid", ok + pd.Timedelta("30min"), frame_values(ok), "off the"),
        ("off grid in body", pd.DatetimeIndex([ok[0], ok[1], ok[1] + pd.Timedelta("30min")]), frame_values(ok), "off the"),
        ("not increasing", pd.DatetimeIndex([ok[0], ok[2], ok[1]]), frame_values(ok), "strictly increasing"),
        ("repeated timestamp", pd.DatetimeIndex([ok[0], ok[0], ok[1]]), frame_values(ok), "strictly increasing"),
        ("unknown column", ok, {**frame_values(ok), "x9": np.ones(3)}, "unknown column(s) 'x9'"),
        ("missing column", ok, {"target": np.ones(3)}, "missing column(s) 'x1'"),
        ("empty body", hours(10, 0), {"target": np.array([]), "x1": np.array([])}, "empty"),
        ("no columns", ok, {}, "no columns"),
        ("non-finite", ok, {"target": np.array([1.0, np.nan, 2.0]), "x1": np.ones(3)}, "not a finite"),
        ("infinite", ok, {"target": np.array([1.0, np.inf, 2.0]), "x1": np.ones(3)}, "not a finite"),
        ("length mismatch", ok, {"target": np.ones(2), "x1": np.ones(3)}, "2 values for 3 timestamps"),
    ]


@pytest.mark.parametrize("case", _rejections(), ids=[c[0] for c in _rejections()])
def test_invalid_appends_are_422_and_store_nothing(store, case):
    """Each invalid body is refused with 422 and a message naming the series; nothing changes."""
    _, index, values, fragment = case
    stored = hours(0, 10)
    store.append("s", stored, frame_values(stored), "h")
    before = snapshot(store, "s")
    with pytest.raises(StorageError) as err:
        store.append("s", index, values, "h")
    assert err.value.status == 422
    assert "'s'" in str(err.value) and fragment in str(err.value)
    assert_unchanged(store, "s", before)


def test_rejected_first_append_leaves_no_series(store):
    """A refused first append of a new series leaves no trace of it."""
    with pytest.raises(StorageError):
        store.append("new", hours(0, 3), {"target": np.array([1.0, np.nan, 2.0])}, "h")
    with pytest.raises(StorageError):
        store.append("new", pd.DatetimeIndex([START, START]), {"target": np.ones(2)}, "h")
    assert store.series() == [] and store.count("new") == 0
    store.append("new", hours(5, 2), {"target": np.ones(2)}, "h")  # a new series starts anywhere
    assert store.series() == ["new"]


def test_anchored_offsets_and_other_time_step(store):
    """Month-start steps follow the calendar; a body with another time step than the series' is refused."""
    months = pd.date_range("2024-01-01", periods=4, freq="MS")
    store.append("m", months[:2], {"v": [1.0, 2.0]}, "MS")
    store.append("m", months[2:], {"v": [3.0, 4.0]}, "MS")
    assert store.history("m").index.equals(months)
    with pytest.raises(StorageError, match="off the"):
        store.append("m2", pd.DatetimeIndex(["2024-01-15"]), {"v": [1.0]}, "MS")
    with pytest.raises(StorageError, match="differs"):
        store.append("m", pd.DatetimeIndex(["2024-05-01"]), {"v": [5.0]}, "D")
    with pytest.raises(StorageError, match="offset alias"):
        store.append("m", pd.DatetimeIndex(["2024-05-01"]), {"v": [5.0]}, "fortnightly")


def test_sqlite_pragmas_and_synchronous_option(tmp_path):
    """SQLite runs in WAL mode with foreign keys and synchronous=FULL, or NORMAL when the URL asks for it."""
    for query, expected in (("", 2), ("?synchronous=normal", 1)):
        with Storage(f"sqlite:///{tmp_path / 'a.db'}{query}") as storage:
            with storage.engine.connect() as conn:
                pragmas = [conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in
                           ("journal_mode", "synchronous", "foreign_keys")]
            assert pragmas == ["wal", expected, 1]
    with pytest.raises(ValueError, match="synchronous=OFF"):
        Storage(f"sqlite:///{tmp_path / 'a.db'}?synchronous=off")


def test_bad_urls_are_refused(tmp_path):
    """In-memory SQLite and unsupported databases are refused with a clear ValueError."""
    for url in ("sqlite://", "sqlite:///:memory:", "mysql://u@h/db", "not a url"):
        with pytest.raises(ValueError):
            Storage(url)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConnectionError, match="cannot open the database"):
        Storage(f"sqlite:///{tmp_path / 'file' / 'x.db'}")
    with pytest.raises(ConnectionError, match="cannot open the database"):
        Storage("postgresql+psycopg://nobody:secret@127.0.0.1:1/none?connect_timeout=2")


def _shared_batches(worker: int, total: int) -> list[tuple[int, int]]:
    """(start hour, length) of one worker's overlapping batches covering hours 0..total-1 in order."""
    rng = np.random.default_rng(worker)
    batches, start = [], 0
    while start < total:
        n = int(rng.integers(2, 9))
        batches.append((start, min(n, total - start)))
        start = max(start + n - int(rng.integers(0, n)), start + 1)  # the next batch overlaps this one
    return batches


def test_concurrent_threads_store_every_timestamp_once(store):
    """8 threads append overlapping and duplicate batches to one shared series and to their own series: every
    timestamp is stored exactly once, each new row counted by exactly one thread, no error."""
    total = 120
    stored = [0] * 8
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        """Append this worker's batches to `shared` and, interleaved, to its own series."""
        try:
            barrier.wait()
            own = 0
            for start, n in _shared_batches(worker, total):
                index = hours(start, n)
                stored[worker] += store.append("shared", index, frame_values(index), "h").stored
                if own < 30:
                    store.append(f"own-{worker}", hours(own, 5), frame_values(hours(own, 5)), "h")
                    own += 5
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = store.history("shared")
    assert history.index.equals(hours(0, total)) and history.index.is_unique
    np.testing.assert_array_equal(history["target"].to_numpy(), frame_values(hours(0, total))["target"])
    assert sum(stored) == total and store.count("shared") == total
    for w in range(8):
        assert store.history(f"own-{w}").index.equals(hours(0, 30))
    assert store.series() == sorted(["shared"] + [f"own-{w}" for w in range(8)])


WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np, pandas as pd
    sys.path.insert(0, sys.argv[3])
    from tests.service.test_storage import _shared_batches, frame_values, hours
    from lstmkit.service.storage import Storage, StorageError
    url, worker = sys.argv[1], int(sys.argv[2])
    store = Storage(url)
    stored, refused = 0, 0
    for start, n in _shared_batches(worker, 60):
        index = hours(start, n)
        stored += store.append("shared", index, frame_values(index), "h").stored
        ahead = hours(start + 30, 2)  # a batch far ahead of what is stored: a gap (422) unless caught up
        try:
            stored += store.append("shared", ahead, frame_values(ahead), "h").stored
        except StorageError as exc:
            assert exc.status == 422, exc
            refused += 1
        store.append(f"own-{worker}", hours(start, n), frame_values(hours(start, n)), "h")
    print(json.dumps({"stored": stored, "refused": refused}))
""")


def test_concurrent_processes_store_every_timestamp_once(db_url):
    """4 processes (each its own engine, all creating the tables at once) append overlapping batches and batches
    ahead of the data (gaps, 422) to a shared series and to their own: every timestamp once, no error but the
    expected 422s."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, db_url, str(w), str(ROOT)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for w in range(4)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    store = Storage(db_url)
    try:
        history = store.history("shared")
        assert history.index.equals(hours(0, len(history))) and history.index.is_unique
        assert len(history) >= 60
        np.testing.assert_array_equal(history["x1"].to_numpy(), frame_values(history.index)["x1"])
        assert sum(r["stored"] for r in results) == len(history) == store.count("shared")
        for w in range(4):
            assert store.history(f"own-{w}").index.equals(hours(0, 60))
    finally:
        store.close()


def test_forecasts_scored_against_later_observations(store):
    """Stored forecasts appear in `scored` once their observations arrive, with step, version, bounds, actual."""
    index = hours(0, 10)
    store.append("s", index, frame_values(index), "h")
    future = hours(10, 3)
    fid = store.add_forecast("s", "v1", index[-1], future, np.array([1.0, 2.0, 3.0]),
                             {"80": np.array([0.5, 1.5, 2.5]), "lower_95": np.array([0.0, 1.0, 2.0])},
                             {"80": np.array([1.5, 2.5, 3.5]), "upper_95": np.array([2.0, 3.0, 4.0])})
    assert isinstance(fid, int)
    assert store.scored("s", "target").empty
    store.add_forecast("s", "v2", future[0], hours(11, 2), np.array([7.0, 8.0]), {}, {})
    arrived = hours(10, 2)
    store.append("s", arrived, frame_values(arrived), "h")
    scored = store.scored("s", "target")
    assert list(scored.columns) == ["origin", "timestamp", "step", "model_version", "mean", "lower_80", "lower_95",
                                    "upper_80", "upper_95", "actual"]
    assert len(scored) == 3  # v1 steps 1 and 2, v2 step 1 (hour 11)
    assert scored["timestamp"].tolist() == [arrived[0], arrived[1], arrived[1]]
    assert scored["step"].tolist() == [1, 2, 1] and scored["model_version"].tolist() == ["v1", "v1", "v2"]
    assert scored["origin"].tolist() == [index[-1], index[-1], future[0]]
    assert scored["mean"].tolist() == [1.0, 2.0, 7.0]
    assert scored["lower_80"].tolist()[:2] == [0.5, 1.5] and np.isnan(scored["lower_80"].iloc[2])
    np.testing.assert_array_equal(scored["actual"].to_numpy(), frame_values(arrived)["target"][[0, 1, 1]])
    assert store.scored("s", "x1")["actual"].tolist() == frame_values(arrived)["x1"][[0, 1, 1]].tolist()
    assert store.scored("s", "target", last=1)["model_version"].tolist() == ["v2"]
    assert store.scored("s", "target", step=1)["model_version"].tolist() == ["v1", "v2"]
    with pytest.raises(StorageError, match="'nope'"):
        store.scored("s", "nope")
    with pytest.raises(StorageError, match="2 values for 3"):
        store.add_forecast("s", "v1", index[-1], future, np.ones(2), {}, {})


def test_jobs_lifecycle(store):
    """queued -> running (started set) -> succeeded (finished set, detail merged); filters; unknown ids."""
    a = store.create_job("retrain", {"series_id": "s", "reason": "request"})
    b = store.create_job("retrain", {"series_id": "t", "reason": "drift"})
    job = store.job(a)
    assert job["status"] == "queued" and job["kind"] == "retrain" and job["created"] and job["started"] is None
    assert job["detail"] == {"series_id": "s", "reason": "request"} and job["error"] is None
    store.update_job(a, status="running")
    assert store.job(a)["started"] is not None and store.job(a)["finished"] is None
    store.update_job(a, status="succeeded", detail={"version": "abc", "metrics": {"mae": np.float32(0.5)}})
    done = store.job(a)
    assert done["status"] == "succeeded" and done["finished"] is not None
    assert done["detail"] == {"series_id": "s", "reason": "request", "version": "abc", "metrics": {"mae": 0.5}}
    store.update_job(b, status="failed", error="killed")
    assert store.job(b)["error"] == "killed"
    assert [j["id"] for j in store.jobs()] == [a, b]
    assert [j["id"] for j in store.jobs("failed")] == [b] and store.jobs("running") == []
    assert store.job("nope") is None
    with pytest.raises(KeyError):
        store.update_job("nope", status="running")
    with pytest.raises(ValueError):
        store.update_job(a, status="exploded")
    with pytest.raises(ValueError):
        store.update_job(a, colour="red")


def test_models_lifecycle_and_champion(store):
    """Registering, promoting (the previous champion retired in the same transaction), rolling back, rejecting."""
    assert store.champion() is None and store.models() == []
    store.add_model("v1", "/state/models/v1", None, {"mae": 1.0, "mase": float("nan")}, "champion")
    store.add_model("v2", "/state/models/v2", "v1", {"mae": 0.8}, "candidate")
    assert store.champion()["version"] == "v1"
    store.set_champion("v2")
    assert [(m["version"], m["status"]) for m in store.models()] == [("v1", "retired"), ("v2", "champion")]
    assert store.champion() == {**store.models()[1]}
    assert store.models()[1]["parent"] == "v1" and store.models()[0]["metrics"] == {"mae": 1.0, "mase": None}
    store.set_champion("v1")  # rollback
    assert [m["status"] for m in store.models()] == ["champion", "retired"]
    with pytest.raises(KeyError):
        store.set_champion("v9")
    assert store.champion()["version"] == "v1"
    store.add_model("v1", "/elsewhere", None, {}, "retired")  # already registered: unchanged
    assert store.models()[0]["path"] == "/state/models/v1" and store.champion()["version"] == "v1"
    store.add_model("v3", "/state/models/v3", "v1", {}, "champion")
    assert [m["status"] for m in store.models()] == ["retired", "retired", "champion"]
    store.add_model("v4", "/state/models/v4", "v3", {}, "candidate")
    store.set_model_status("v4", "rejected")
    assert store.models()[-1]["status"] == "rejected" and store.champion()["version"] == "v3"
    with pytest.raises(ValueError):
        store.add_model("v5", "/p", None, {}, "great")


APPENDER = textwrap.dedent("""
    import sys
    import pandas as pd
    from lstmkit.service.storage import Storage
    store = Storage(sys.argv[1])
    t = pd.Timestamp("2024-01-01")
    i = 0
    while True:
        store.append("k", pd.DatetimeIndex([t]), {"target": [float(i)], "x1": [i / 7.0]}, "min")
        print(t.isoformat(), flush=True)  # acknowledged: committed
        t += pd.Timedelta("1min")
        i += 1
""")


def test_acknowledged_appends_survive_kill_9(db_url):
    """A process appending in a loop is killed with SIGKILL: every timestamp it acknowledged is stored, the history
    has no gap, and the store takes further appends."""
    proc = subprocess.Popen([sys.executable, "-c", APPENDER, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    acknowledged = []
    try:
        for line in proc.stdout:
            acknowledged.append(pd.Timestamp(line.strip()))
            if len(acknowledged) >= 60:
                break
        os.kill(proc.pid, signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    acknowledged += [pd.Timestamp(line) for line in rest.split() if line.strip()]
    assert len(acknowledged) >= 60
    store = Storage(db_url)
    try:
        history = store.history("k")
        assert set(acknowledged) <= set(history.index)
        assert history.index.equals(pd.date_range("2024-01-01", periods=len(history), freq="min"))
        assert store.count("k") == len(history)
        np.testing.assert_array_equal(history["target"].to_numpy(), np.arange(len(history), dtype=float))
        nxt = history.index[-1] + pd.Timedelta("1min")
        assert store.append("k", pd.DatetimeIndex([nxt]), {"target": [-1.0], "x1": [0.0]}, "min").stored == 1
    finally:
        store.close()
